"""Ollama's generation API beside OpenAI's: ``POST /api/chat``, ``/api/generate``, ``/api/embed``
and the legacy ``/api/embeddings``, so the clients and tools that speak only Ollama work unchanged.

An Ollama body is translated into the OpenAI request the other routes take (``ChatRequest``,
``CompletionRequest``, ``EmbeddingRequest``), built by their own code (``completions.chat_turn``,
``completions.completion_requests``, ``embeddings.texts_of``) and run through the same one gate
under the same endpoint names, so a policy, a review rule, a key and a record treat the two APIs
alike. Streams are newline-delimited JSON, as Ollama's; errors are ``{"error": "..."}`` (errors.py).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from genlab.core import UnsupportedError
from genlab.core.chat import ToolCallStream
from genlab.pipeline import TEXT
from genlab.server import conversation
from genlab.server.deps import CallerDep, StateDep
from genlab.server.ollama import (
    Generation,
    OllamaChat,
    OllamaEmbed,
    OllamaGenerate,
    check_context,
    final,
    model_name,
    now,
    ollama_logprobs,
    openai_messages,
    piece,
    sampling_fields,
    validated,
)
from genlab.server.responses import cancellable, chunks, held, ndjson
from genlab.server.routes import completions
from genlab.server.routes.embeddings import EmbeddingRequest, texts_of
from genlab.server.schemas import ChatRequest, CompletionRequest

router = APIRouter(prefix="/api", tags=["ollama"])


# -- the routes ------------------------------------------------------------------------------------
@router.post("/chat")
async def chat(body: OllamaChat, http: Request, state: StateDep, who: CallerDep):
    fields = sampling_fields(body)
    if not body.messages:  # Ollama's way to load a model: an empty conversation
        return await loaded(body, state, "chat")
    request = validated(
        ChatRequest,
        {
            **fields,
            "messages": openai_messages(body.messages),
            "tools": body.tools,
            "logprobs": body.logprobs,
            "top_logprobs": body.top_logprobs,
        },
    )
    conversation.admit(state.pipeline.caps, conversation.tools_of(request.tools), fields.get("json_schema"))
    generator = await run_in_threadpool(state.pipeline.check, request.model, TEXT)
    check_context(body, generator)
    turn = await run_in_threadpool(completions.chat_turn, request, generator)
    shape = None if "json_schema" in fields else str.strip
    return await answer(http, state, who, body, Answer("chat", turn, "chat.completions", shape))


@router.post("/generate")
async def generate(body: OllamaGenerate, http: Request, state: StateDep, who: CallerDep):
    fields = sampling_fields(body)
    for name in ("suffix", "template", "context", "images"):
        if getattr(body, name):
            raise UnsupportedError(f"{name} is not supported on /api/generate; send the text in prompt")
    if not body.prompt:  # Ollama's way to load a model: an empty prompt
        return await loaded(body, state, "generate")
    conversation.admit(state.pipeline.caps, None, fields.get("json_schema"))
    generator = await run_in_threadpool(state.pipeline.check, model_name(body.model), TEXT)
    check_context(body, generator)
    if body.raw:  # the prompt as it is: a completion
        request = validated(CompletionRequest, {**fields, "prompt": body.prompt})
        requests = completions.completion_requests(request)
        return await answer(http, state, who, body, Answer("generate", requests[0], "completions"))
    system = [{"role": "system", "content": body.system}] if body.system else []
    messages = [*system, {"role": "user", "content": body.prompt}]
    request = validated(ChatRequest, {**fields, "messages": messages, "logprobs": body.logprobs})
    turn = await run_in_threadpool(completions.chat_turn, request, generator)
    shape = None if "json_schema" in fields else str.strip
    return await answer(http, state, who, body, Answer("generate", turn, "chat.completions", shape))


async def loaded(body: Generation, state, kind: str) -> dict[str, Any]:
    await run_in_threadpool(state.pipeline.check, model_name(body.model), TEXT)
    return {"model": body.model, "created_at": now(), **piece(kind, ""), "done": True, "done_reason": "load"}


class Answer:
    """What one Ollama generation is: its kind (``chat`` answers a message, ``generate`` a
    response), the request (or the chat turn whose request it is), its endpoint, its shape."""

    def __init__(self, kind: str, planned: Any, endpoint: str, shape=None) -> None:
        self.kind, self.endpoint, self.shape = kind, endpoint, shape
        self.turn = planned if isinstance(planned, conversation.Turn) else None
        self.request = planned.request if self.turn else planned

    def split(self, text: str, finish: str | None) -> tuple[str, list[dict[str, Any]], str | None]:
        if self.turn is None:
            return text, [], finish
        content, calls, finish = conversation.answer(self.turn, text, finish)
        return content or "", calls, "stop" if finish == "tool_calls" else finish


async def answer(http: Request, state, who, body: Generation, plan: Answer):
    """The generation through the one gate: one object (``stream: false``) or NDJSON lines."""
    raw = {**body.model_dump(exclude_none=True), "api": "ollama", "prompt": plan.request.prompt}
    base, started = {"model": body.model}, time.perf_counter_ns()
    if not body.stream:

        def whole(released) -> dict[str, Any]:
            a = released.artifacts[0]
            text, calls, reason = plan.split(a.text, a.finish_reason)
            done = final(reason, a.prompt_tokens, a.completion_tokens, started, started)
            lp = ollama_logprobs(a.logprobs) if body.logprobs else {}
            return {**base, "created_at": now(), **piece(plan.kind, text, calls), **lp, **done}

        released = await cancellable(
            http,
            state.pipeline.generate,
            plan.request,
            endpoint=plan.endpoint,
            caller=who,
            raw=raw,
            respond=whole,
            shape=plan.shape,
        )
        return held(released.review) if released.held else whole(released)
    stream = await run_in_threadpool(
        state.pipeline.stream, plan.request, endpoint=plan.endpoint, caller=who, raw=raw
    )
    return ndjson(events(http, stream, body, plan, started))


async def events(http, stream, body: Generation, plan: Answer, started: int) -> AsyncIterator[dict]:
    """Ollama's stream: an object per piece of text (a tool call once it is whole), then ``done``."""
    parser, first = ToolCallStream(plan.turn) if plan.turn else None, None
    async for c in chunks(http, stream):
        first = first or time.perf_counter_ns()
        text = parser.feed(c.text) if parser else c.text
        lp = ollama_logprobs(c.logprobs) if body.logprobs else {}
        if text:
            yield {"model": body.model, "created_at": now(), **piece(plan.kind, text), **lp, "done": False}
        if c.finish_reason is not None:
            held_text, calls, reason = parser.finish(c.finish_reason) if parser else ("", [], c.finish_reason)
            if held_text or calls:
                yield {
                    "model": body.model,
                    "created_at": now(),
                    **piece(plan.kind, held_text or "", calls),
                    "done": False,
                }
            reason = "stop" if reason == "tool_calls" else reason
            done = final(reason, c.prompt_tokens, c.completion_tokens, started, first)
            yield {"model": body.model, "created_at": now(), **piece(plan.kind, ""), **done}


@router.post("/embed")
async def embed(body: OllamaEmbed, http: Request, state: StateDep, who: CallerDep) -> Any:
    texts = texts_of(body.input)
    vectors, tokens, review, started = await embedded(body, texts, http, state, who)
    if review is not None:
        return held(review)
    return {
        "model": body.model,
        "embeddings": [[float(x) for x in v] for v in vectors],
        "total_duration": time.perf_counter_ns() - started,
        "load_duration": 0,
        "prompt_eval_count": tokens,
    }


@router.post("/embeddings")
async def embeddings(body: OllamaEmbed, http: Request, state: StateDep, who: CallerDep) -> Any:
    """Ollama's legacy embedding route: one ``prompt``, one ``embedding``."""
    texts = texts_of(body.prompt if body.prompt is not None else body.input)
    vectors, _, review, _ = await embedded(body, texts[:1], http, state, who)
    return held(review) if review is not None else {"embedding": [float(x) for x in vectors[0]]}


async def embedded(body: OllamaEmbed, texts: list[str], http, state, who) -> tuple:
    """(vectors, tokens, review, start) of the texts, through the gate as /v1/embeddings has them."""
    if not body.truncate:
        raise UnsupportedError(
            "truncate: false is not supported: genlab's embedding model cuts each text to its "
            "256 word pieces; send truncate: true"
        )
    request = validated(
        EmbeddingRequest, {"model": model_name(body.model), "input": texts, "dimensions": body.dimensions}
    )
    started = time.perf_counter_ns()
    vectors, tokens, _, review = await cancellable(
        http,
        lambda cancel: state.pipeline.embed(
            request.model,
            texts,
            endpoint="embeddings",
            caller=who,
            cancel=cancel,
            raw={"model": request.model, "inputs": len(texts), "api": "ollama"},
            dimensions=request.dimensions,
        ),
    )
    return vectors, tokens, review, started
