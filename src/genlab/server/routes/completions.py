"""OpenAI's text routes: ``POST /v1/completions`` and ``POST /v1/chat/completions``.

Each builds ``GenerationRequest``s from the body and hands them to the pipeline, which runs the
whole gate (``genlab.pipeline``); the route only shapes OpenAI's response.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from genlab.core import GenerationRequest, InvalidRequestError, SamplingParams, UnsupportedError
from genlab.core.chat import ToolCallStream
from genlab.pipeline import TEXT, Released
from genlab.server import conversation
from genlab.server.deps import CallerDep, StateDep
from genlab.server.responses import (
    cancellable,
    chat_logprobs,
    chunks,
    completion_logprobs,
    held,
    or_appeal,
    sse,
)
from genlab.server.schemas import ChatRequest, CompletionRequest

router = APIRouter(prefix="/v1", tags=["completions"])
DEFAULT_CHAT_MAX_TOKENS = 256


def sampling(
    body,
    *,
    max_tokens: int,
    logprobs: int | None = None,
    json_schema: dict | None = None,
) -> SamplingParams:
    """OpenAI's sampling fields (and the llama.cpp/vLLM extensions) as genlab's parameters."""
    if body.presence_penalty or body.frequency_penalty:
        raise UnsupportedError("presence_penalty and frequency_penalty are not supported; use repeat_penalty")
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        min_p=body.min_p,
        repeat_penalty=body.repeat_penalty,
        stop=tuple(stop),
        logprobs=logprobs,
        json_schema=json_schema if json_schema is not None else body.json_schema,
        grammar=body.grammar,
        regex=body.regex,
        logit_bias=_logit_bias(body.logit_bias),
    )


def _logit_bias(bias: dict[str, float] | None) -> dict[int, float] | None:
    """OpenAI's ``logit_bias`` (token ids as JSON object keys) with integer ids."""
    if not bias:
        return None
    try:
        return {int(token): float(value) for token, value in bias.items()}
    except ValueError:
        raise InvalidRequestError(
            "logit_bias keys must be token ids (integers)", param="logit_bias"
        ) from None


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def envelope(kind: str, cid: str, model: str, choices: list, released: Released, prompt_tokens: int) -> dict:
    """OpenAI's response object around the choices, with the generation ids of the records."""
    completion_tokens = sum(a.completion_tokens for a in released.artifacts)
    return {
        "id": cid,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage(prompt_tokens, completion_tokens),
        "genlab": {"generation_ids": released.record_ids},
    }


# -- /v1/completions --------------------------------------------------------------------------------
def completion_requests(body: CompletionRequest) -> list[GenerationRequest]:
    if body.echo:
        raise InvalidRequestError("echo (the prompt's own logprobs) is not supported yet", param="echo")
    if body.suffix is not None:  # neither shipped vocabulary has fill-in-the-middle tokens
        raise InvalidRequestError(
            f"suffix (fill-in-the-middle) is not supported: {body.model} is not served as a FIM model",
            param="suffix",
        )
    if body.best_of is not None and body.best_of != body.n:
        raise InvalidRequestError(
            f"best_of {body.best_of} (more candidates than the n={body.n} returned) is not supported; "
            "ask for n choices with logprobs and rank them yourself",
            param="best_of",
        )
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if not 1 <= len(prompts) <= 16:
        raise InvalidRequestError("prompt must be a string or a list of 1-16 strings", param="prompt")
    params = sampling(body, max_tokens=body.max_tokens or 16, logprobs=body.logprobs)
    return [
        GenerationRequest(prompt=p, model=body.model, n=body.n, seed=body.seed, params=params).validate()
        for p in prompts
    ]


def completion_response(body: CompletionRequest, released: Released, cid: str) -> dict[str, Any]:
    choices = [
        {
            "text": a.text,
            "index": i,
            "logprobs": completion_logprobs(a.logprobs),
            "finish_reason": a.finish_reason,
        }
        for i, a in enumerate(released.artifacts)
    ]
    prompt_tokens = sum(a.prompt_tokens for i, a in enumerate(released.artifacts) if i % body.n == 0)
    return envelope("text_completion", cid, body.model, choices, released, prompt_tokens)


@router.post("/completions")
async def completions(body: CompletionRequest, http: Request, state: StateDep, who: CallerDep):
    requests = completion_requests(body)
    raw, cid = body.model_dump(exclude_none=True), f"cmpl-{uuid.uuid4().hex}"
    appeal = {"endpoint": "completions", "caller": who, "raw": raw}  # a block goes to a reviewer if asked
    if not body.stream:
        released = await or_appeal(
            cancellable(
                http,
                state.pipeline.generate,
                requests,
                endpoint="completions",
                caller=who,
                raw=raw,
                respond=lambda r: completion_response(body, r, cid),
            ),
            body,
            state,
            **appeal,
        )
        if isinstance(released, Response):
            return released
        return held(released.review) if released.held else completion_response(body, released, cid)
    streams = await or_appeal(admit_streams(state, requests, who, raw), body, state, **appeal)
    if isinstance(streams, Response):
        return streams
    base = {"id": cid, "object": "text_completion", "created": int(time.time()), "model": body.model}
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    async def events() -> AsyncIterator[dict[str, Any]]:
        prompt_tokens = completion_tokens = 0
        for i, stream in enumerate(streams):
            async for c in chunks(http, stream):
                if c.finish_reason is not None:
                    prompt_tokens += c.prompt_tokens if c.index == 0 else 0
                    completion_tokens += c.completion_tokens
                if c.text or c.finish_reason:
                    choice = {
                        "text": c.text,
                        "index": i * body.n + c.index,
                        "logprobs": completion_logprobs(c.logprobs),
                        "finish_reason": c.finish_reason,
                    }
                    yield {**base, "choices": [choice]}
        if include_usage:
            yield {**base, "choices": [], "usage": usage(prompt_tokens, completion_tokens)}

    return sse(events())


async def admit_streams(state, requests: list[GenerationRequest], who, raw: dict) -> list:
    """Every prompt admitted before the 200 starts; a refusal frees the slots already taken."""
    streams = []
    try:
        for request in requests:
            streams.append(
                await run_in_threadpool(
                    state.pipeline.stream, request, endpoint="completions", caller=who, raw=raw
                )
            )
    except BaseException:
        for s in streams:
            s.slot.release()
        raise
    return streams


# -- /v1/chat/completions ---------------------------------------------------------------------------
def response_schema(body: ChatRequest) -> dict | None:
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "object"}
    if fmt.json_schema is None:
        raise InvalidRequestError(
            "response_format json_schema needs a json_schema object", param="response_format"
        )
    return fmt.json_schema.schema_ or {"type": "object"}


def chat_turn(body: ChatRequest, generator) -> conversation.Turn:
    schema = response_schema(body)
    max_tokens = body.max_completion_tokens or body.max_tokens or DEFAULT_CHAT_MAX_TOKENS
    logprobs = (body.top_logprobs or 0) if body.logprobs else None
    params = sampling(body, max_tokens=max_tokens, logprobs=logprobs, json_schema=schema)
    return conversation.plan(
        generator,
        conversation.message_dicts(body.messages),
        params,
        model=body.model,
        n=body.n,
        seed=body.seed,
        tools=conversation.tools_of(body.tools),
        tool_choice=conversation.choice_of(body.tool_choice),
        parallel=body.parallel_tool_calls,
    )


def chat_response(body: ChatRequest, turn: conversation.Turn, released: Released, cid: str) -> dict[str, Any]:
    choices = []
    for j, a in enumerate(released.artifacts):
        content, calls, finish = conversation.answer(turn, a.text, a.finish_reason)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        choices.append(
            {
                "index": j,
                "message": message,
                "logprobs": chat_logprobs(a.logprobs) if body.logprobs else None,
                "finish_reason": finish,
            }
        )
    return envelope(
        "chat.completion", cid, body.model, choices, released, released.artifacts[0].prompt_tokens
    )


@router.post("/chat/completions")
async def chat_completions(body: ChatRequest, http: Request, state: StateDep, who: CallerDep):
    conversation.admit(state.pipeline.caps, conversation.tools_of(body.tools), response_schema(body))
    generator = await run_in_threadpool(state.pipeline.check, body.model, TEXT)
    turn = await run_in_threadpool(chat_turn, body, generator)  # rendering and compiling: off the loop
    request = turn.request
    raw, cid = (
        {**body.model_dump(exclude_none=True, by_alias=True), "prompt": request.prompt},
        f"chatcmpl-{uuid.uuid4().hex}",
    )
    appeal = {
        "endpoint": "chat.completions",
        "caller": who,
        "raw": raw,
    }  # a block goes to a reviewer if asked
    if not body.stream:
        released = await or_appeal(
            cancellable(
                http,
                state.pipeline.generate,
                request,
                endpoint="chat.completions",
                caller=who,
                raw=raw,
                respond=lambda r: chat_response(body, turn, r, cid),
                shape=None if response_schema(body) else str.strip,
            ),
            body,
            state,
            **appeal,
        )
        if isinstance(released, Response):
            return released
        return held(released.review) if released.held else chat_response(body, turn, released, cid)
    stream = await or_appeal(
        run_in_threadpool(state.pipeline.stream, request, endpoint="chat.completions", caller=who, raw=raw),
        body,
        state,
        **appeal,
    )
    if isinstance(stream, Response):
        return stream
    base = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": body.model}
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return sse(chat_events(http, stream, turn, base, body.logprobs, include_usage))


async def chat_events(http, stream, turn, base, logprobs: bool, include_usage: bool) -> AsyncIterator[dict]:
    """OpenAI's chunks: a role delta, content deltas as tokens come (or, for a tool call, the
    call's deltas once its arguments are complete), the finish reason, the usage if asked."""

    def choice(index: int, delta: dict[str, Any], lp=None, finish: str | None = None) -> dict[str, Any]:
        return {
            **base,
            "choices": [{"index": index, "delta": delta, "logprobs": lp, "finish_reason": finish}],
        }

    started: set[int] = set()
    parsers: dict[int, ToolCallStream] = {}  # choice -> its tool calls, held until complete
    held: dict[int, list] = {}  # choice -> the logprobs of its tokens not yet sent with their text

    def logprobs_of(index: int) -> dict | None:
        return chat_logprobs(held.pop(index, [])) if logprobs else None

    prompt_tokens = completion_tokens = 0
    async for c in chunks(http, stream):
        if c.index not in started:
            started.add(c.index)
            yield choice(c.index, {"role": "assistant", "content": ""})
        parser = parsers.setdefault(c.index, ToolCallStream(turn))
        held.setdefault(c.index, []).extend(c.logprobs or [])
        if text := parser.feed(c.text):
            yield choice(c.index, {"content": text}, logprobs_of(c.index))
        if c.finish_reason is not None:
            prompt_tokens, completion_tokens = c.prompt_tokens, completion_tokens + c.completion_tokens
            held_text, tool_calls, finish = parser.finish(c.finish_reason)
            if held_text:  # a call cut by max_tokens: what was written, as text
                yield choice(c.index, {"content": held_text}, logprobs_of(c.index))
            for k, call in enumerate(tool_calls):
                head = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
                yield choice(c.index, {"tool_calls": [{"index": k, **head}]})
                arguments = {"index": k, "function": {"arguments": call["function"]["arguments"]}}
                yield choice(c.index, {"tool_calls": [arguments]})
            rest = logprobs_of(c.index) if not tool_calls else None  # a call's tokens are not content
            yield choice(c.index, {}, rest if rest and rest["content"] else None, finish=finish)
    if include_usage:
        yield {**base, "choices": [], "usage": usage(prompt_tokens, completion_tokens)}
