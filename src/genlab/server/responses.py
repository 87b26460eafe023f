"""Response shapes shared by the routes: server-sent events, held-for-review answers, streams."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from genlab.core import GenlabError
from genlab.pipeline import AudioStream, Stream
from genlab.safety.policy import GuardBlocked
from genlab.server import errors
from genlab.server.runtime import iterate_in_thread


async def or_appeal(
    work: Awaitable[Any], body: Any, state: Any, *, endpoint: str, caller: Any, raw: dict
) -> Any:
    """What ``work`` gives; where the input policy blocks it and the body asks to ``appeal``, a 202
    for the review the block went to (``Pipeline.appeal``) instead of the 400."""
    try:
        return await work
    except GuardBlocked as blocked:
        if not getattr(body, "appeal", False):
            raise
        review = await run_in_threadpool(
            state.pipeline.appeal, blocked, endpoint=endpoint, model=body.model, caller=caller, raw=raw
        )
        return held(review)


def held(review: dict[str, Any]) -> JSONResponse:
    """What a client gets instead of a held generation: 202 and where to poll for its release."""
    body = held_body(review["id"], review["rule"], review["due_at"])
    return JSONResponse(body, status_code=202, headers={"location": body["url"]})


def held_body(item_id: str, rule: str, due_at: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "review",
        "status": "pending",
        "rule": rule,
        "url": f"/v1/reviews/{item_id}",
        "due_at": due_at,
    }


def sse(events: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    """Server-sent events, ending with ``[DONE]``; an error after the first byte is reported in-band."""

    async def body() -> AsyncIterator[bytes]:
        try:
            async for event in events:
                yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()
        except GenlabError as e:
            _, error, _ = errors.http_error(e)
            yield f"data: {json.dumps(error)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def ndjson(events: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    """Newline-delimited JSON, as Ollama streams: one object a line; an error after the first
    byte is a last ``{"error": "..."}`` line (what Ollama's clients raise)."""

    async def body() -> AsyncIterator[bytes]:
        try:
            async for event in events:
                yield (json.dumps(event, ensure_ascii=False) + "\n").encode()
        except GenlabError as e:
            yield (json.dumps({"error": str(e)}) + "\n").encode()

    return StreamingResponse(body(), media_type="application/x-ndjson")


async def chunks(http: Request, stream: Stream | AudioStream) -> AsyncIterator[Any]:
    """A pipeline stream (text chunks or audio) read in a worker thread; a client that leaves cancels the generation."""
    cancelled = threading.Event()
    iterator = iterate_in_thread(lambda: iter(stream), cancelled)
    try:
        async for chunk in iterator:
            yield chunk
            if await http.is_disconnected():
                break
    finally:
        cancelled.set()
        await iterator.aclose()


async def cancellable(http: Request, work, *args: Any, **kwargs: Any):
    """Run blocking pipeline work in a thread with a ``cancel`` event that is set if the client
    disconnects: a non-streamed generation stops too when nobody waits for it."""
    cancel = threading.Event()

    async def watch() -> None:
        while not cancel.is_set():
            if await http.is_disconnected():
                cancel.set()
                return
            await asyncio.sleep(0.25)

    watcher = asyncio.create_task(watch())
    try:
        return await run_in_threadpool(work, *args, cancel=cancel, **kwargs)
    finally:
        cancel.set()
        watcher.cancel()


def completion_logprobs(tokens: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """genlab's per-token logprobs -> OpenAI completions' parallel lists."""
    if tokens is None:
        return None
    offsets, pos = [], 0
    for t in tokens:
        offsets.append(pos)
        pos += len(t["token"])
    return {
        "tokens": [t["token"] for t in tokens],
        "token_logprobs": [t["logprob"] for t in tokens],
        "top_logprobs": [t["top_logprobs"] for t in tokens],
        "text_offset": offsets,
    }


def chat_logprobs(tokens: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """genlab's per-token logprobs -> OpenAI chat's ``logprobs.content``."""
    if tokens is None:
        return None

    def top(alternatives: dict[str, float]) -> list[dict[str, Any]]:
        return [{"token": k, "logprob": v, "bytes": list(k.encode())} for k, v in alternatives.items()]

    return {
        "content": [
            {
                "token": t["token"],
                "logprob": t["logprob"],
                "bytes": list(t["token"].encode()),
                "top_logprobs": top(t["top_logprobs"]),
            }
            for t in tokens
        ]
    }
