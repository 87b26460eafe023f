"""OpenAI's Responses API: ``POST /v1/responses``, for text and function tools, streamed or not.

Stateless: the whole conversation comes in ``input`` (messages, ``function_call`` and
``function_call_output`` items); ``previous_response_id`` is a 400, since genlab does not store
responses. It is the same conversation as chat completions (``server/conversation.py``: the model's
chat template, tools as a constraint) through the same pipeline.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from genlab.core import InvalidRequestError, SamplingParams, UnsupportedError
from genlab.core.chat import ToolCallStream
from genlab.pipeline import TEXT, Released
from genlab.server import conversation
from genlab.server.deps import CallerDep, StateDep
from genlab.server.responses import cancellable, chunks, held, or_appeal, sse
from genlab.server.schemas import ResponsesRequest

router = APIRouter(prefix="/v1", tags=["responses"])
DEFAULT_MAX_OUTPUT_TOKENS = 256


# -- the request -----------------------------------------------------------------------------------
def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text", "text"):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise InvalidRequestError(
                    f"{where} has a part of type {kind!r}; this model reads text only", param="input"
                )
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise InvalidRequestError(f"{where} needs text content", param="input")


def messages_of(body: ResponsesRequest) -> tuple[list[dict[str, Any]], list[str]]:
    """``instructions`` and ``input`` as chat messages (function calls and their outputs included),
    and each message's path in the request (``instructions``, ``input.3``) for the input policy."""
    items = [{"role": "user", "content": body.input}] if isinstance(body.input, str) else body.input
    messages: list[dict[str, Any]] = (
        [{"role": "system", "content": body.instructions}] if body.instructions else []
    )
    paths = ["instructions"] if body.instructions else []
    for i, item in enumerate(items):
        where = "input" if isinstance(body.input, str) else f"input.{i}"
        kind = item.get("type", "message")
        if kind == "message" or ("role" in item and kind not in ("function_call", "function_call_output")):
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise InvalidRequestError(f"input[{i}] has an unknown role {role!r}", param=f"input.{i}.role")
            messages.append({"role": role, "content": _text(item.get("content"), f"input[{i}]")})
            paths.append(where)
        elif kind == "function_call":
            call = {
                "id": item.get("call_id") or "",
                "type": "function",
                "function": {"name": item.get("name") or "", "arguments": item.get("arguments") or "{}"},
            }
            last = messages[-1] if messages else None
            if (
                last
                and last["role"] == "assistant"
                and last.get("tool_calls") is not None
                and not last["content"]
            ):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
                paths.append(where)
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id") or "",
                    "content": _text(output, f"input[{i}]"),
                }
            )
            paths.append(where)
        else:
            raise InvalidRequestError(
                f"input[{i}] is a {kind!r} item, which genlab does not take", param=f"input.{i}"
            )
    return messages, paths


def tools_of(body: ResponsesRequest) -> tuple[list[dict[str, Any]] | None, Any]:
    """Responses' flat function tools and tool_choice in chat's shape."""
    tools = []
    for i, t in enumerate(body.tools or []):
        if t.get("type") != "function" or not t.get("name"):
            raise UnsupportedError(
                f"tools[{i}] is a {t.get('type')!r} tool; genlab runs function tools only (your code runs them)"
            )
        tools.append(
            {
                "type": "function",
                "function": {k: t[k] for k in ("name", "description", "parameters") if t.get(k)},
            }
        )
    choice = body.tool_choice
    if isinstance(choice, dict):
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    return tools or None, choice


def schema_of(body: ResponsesRequest) -> dict[str, Any] | None:
    fmt = body.text.format if body.text else None
    if fmt is None or fmt.type == "text":
        return None
    return {"type": "object"} if fmt.type == "json_object" else (fmt.schema_ or {"type": "object"})


def turn_of(body: ResponsesRequest, generator) -> conversation.Turn:
    if body.previous_response_id is not None:
        raise InvalidRequestError(
            "genlab's Responses API is stateless and stores no responses: send the whole conversation "
            "in input (earlier messages, function_call and function_call_output items)",
            param="previous_response_id",
        )
    tools, choice = tools_of(body)
    params = SamplingParams(
        max_tokens=body.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        min_p=body.min_p,
        repeat_penalty=body.repeat_penalty,
        json_schema=schema_of(body),
    )
    messages, paths = messages_of(body)
    return conversation.plan(
        generator,
        messages,
        params,
        model=body.model,
        seed=body.seed,
        tools=tools,
        tool_choice=choice,
        parallel=body.parallel_tool_calls,
        paths=paths,
    )


# -- the response ----------------------------------------------------------------------------------
def output_items(turn: conversation.Turn, text: str, finish: str | None) -> list[dict[str, Any]]:
    content, calls, _ = conversation.answer(turn, text, finish)
    items = [
        {
            "type": "function_call",
            "id": f"fc_{uuid.uuid4().hex[:24]}",
            "call_id": c["id"],
            "name": c["function"]["name"],
            "arguments": c["function"]["arguments"],
            "status": "completed",
        }
        for c in calls
    ]
    if content is not None:
        items.insert(0, message_item(content.strip(), "completed"))
    return items


def message_item(text: str, status: str, item_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id or f"msg_{uuid.uuid4().hex[:24]}",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        if text or status == "completed"
        else [],
    }


def envelope(body: ResponsesRequest, rid: str, status: str, output: list, usage: dict | None) -> dict:
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": body.model,
        "output": output,
        "usage": usage,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "error": None,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "parallel_tool_calls": body.parallel_tool_calls,
        "previous_response_id": None,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "tool_choice": body.tool_choice or "auto",
        "tools": body.tools or [],
        "text": {"format": {"type": "text"}} if body.text is None else body.text.model_dump(by_alias=True),
        "truncation": "disabled",
        "metadata": body.metadata or {},
        "store": False,
    }


def usage_of(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt_tokens + completion_tokens,
    }


def response_of(body: ResponsesRequest, turn: conversation.Turn, released: Released, rid: str) -> dict:
    a = released.artifacts[0]
    status = "incomplete" if a.finish_reason == "length" else "completed"
    out = envelope(
        body,
        rid,
        status,
        output_items(turn, a.text, a.finish_reason),
        usage_of(a.prompt_tokens, a.completion_tokens),
    )
    out["genlab"] = {"generation_ids": released.record_ids}
    return out


@router.post("/responses")
async def responses(body: ResponsesRequest, http: Request, state: StateDep, who: CallerDep):
    caps = state.pipeline.caps
    items = 1 if isinstance(body.input, str) else len(body.input)
    caps.count("input items", items, caps.items, "input")
    conversation.admit(caps, body.tools, schema_of(body))
    generator = await run_in_threadpool(state.pipeline.check, body.model, TEXT)
    turn = await run_in_threadpool(turn_of, body, generator)  # rendering and compiling: off the loop
    raw, rid = (
        {**body.model_dump(exclude_none=True), "prompt": turn.request.prompt},
        f"resp_{uuid.uuid4().hex}",
    )
    appeal = {"endpoint": "responses", "caller": who, "raw": raw}  # a block goes to a reviewer if asked
    if not body.stream:
        released = await or_appeal(
            cancellable(
                http,
                state.pipeline.generate,
                turn.request,
                endpoint="responses",
                caller=who,
                raw=raw,
                respond=lambda r: response_of(body, turn, r, rid),
                shape=str.strip,
            ),
            body,
            state,
            **appeal,
        )
        if isinstance(released, Response):
            return released
        return held(released.review) if released.held else response_of(body, turn, released, rid)
    stream = await or_appeal(
        run_in_threadpool(state.pipeline.stream, turn.request, endpoint="responses", caller=who, raw=raw),
        body,
        state,
        **appeal,
    )
    if isinstance(stream, Response):
        return stream
    return sse(response_events(http, stream, body, turn, rid))


async def response_events(http, stream, body: ResponsesRequest, turn, rid: str) -> AsyncIterator[dict]:
    """The Responses stream: created, the message's text deltas as tokens come (or each function
    call once its arguments are complete), the items' done events, then completed."""
    seq = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "sequence_number": next(seq), **fields}

    yield event("response.created", response=envelope(body, rid, "in_progress", [], None))
    yield event("response.in_progress", response=envelope(body, rid, "in_progress", [], None))
    text, msg_id, opened = "", f"msg_{uuid.uuid4().hex[:24]}", False
    calls = ToolCallStream(turn)  # a tool call: sent whole once its arguments are complete
    async for c in chunks(http, stream):
        if piece := calls.feed(c.text):
            if not opened:
                opened = True
                yield event(
                    "response.output_item.added", output_index=0, item=message_item("", "in_progress", msg_id)
                )
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                yield event(
                    "response.content_part.added", item_id=msg_id, output_index=0, content_index=0, part=part
                )
            delta = piece.lstrip() if not text else piece
            text += delta
            yield event(
                "response.output_text.delta",
                item_id=msg_id,
                output_index=0,
                content_index=0,
                delta=delta,
                logprobs=[],
            )
        if c.finish_reason is None:
            continue
        output: list[dict[str, Any]] = []
        if opened:
            done = {"type": "output_text", "text": text.strip(), "annotations": [], "logprobs": []}
            yield event(
                "response.output_text.done",
                item_id=msg_id,
                output_index=0,
                content_index=0,
                text=text.strip(),
                logprobs=[],
            )
            yield event(
                "response.content_part.done", item_id=msg_id, output_index=0, content_index=0, part=done
            )
            output.append(message_item(text.strip(), "completed", msg_id))
            yield event("response.output_item.done", output_index=0, item=output[-1])
        for item in output_items(turn, calls.held, c.finish_reason) if calls.held else []:
            k = len(output)
            if item["type"] == "message":  # a call cut by max_output_tokens: what was written, as text
                yield event("response.output_item.added", output_index=k, item=item)
                yield event("response.output_item.done", output_index=k, item=item)
                output.append(item)
                continue
            yield event(
                "response.output_item.added",
                output_index=k,
                item={**item, "arguments": "", "status": "in_progress"},
            )
            yield event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=k,
                delta=item["arguments"],
            )
            yield event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=k,
                arguments=item["arguments"],
            )
            yield event("response.output_item.done", output_index=k, item=item)
            output.append(item)
        status = "incomplete" if c.finish_reason == "length" else "completed"
        final = envelope(body, rid, status, output, usage_of(c.prompt_tokens, c.completion_tokens))
        yield event(f"response.{status}", response=final)
