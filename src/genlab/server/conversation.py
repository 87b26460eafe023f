"""A conversation over HTTP (chat completions and the Responses API): messages in OpenAI's shape
become one ``GenerationRequest`` through the model's own chat format (``genlab.core.chat``: its
chat template, or the transcript for a base model), tools become a constraint on the answer, and
the answer comes back as text or as tool calls.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from genlab.core import GenerationRequest, InvalidRequestError, SamplingParams, UnsupportedError, chat
from genlab.server.schemas import ChatMessage


def message_text(message: ChatMessage, index: int) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    texts = []
    for part in message.content:
        if isinstance(part, dict):
            kind = part.get("type")
            raise InvalidRequestError(
                f"messages[{index}] has a content part of type {kind!r}; this model reads text parts only",
                param=f"messages.{index}.content",
            )
        texts.append(part.text)
    return "".join(texts)


def message_dicts(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    out = []
    for i, m in enumerate(messages):
        d: dict[str, Any] = {"role": m.role, "content": message_text(m, i)}
        if m.tool_calls:
            if m.role != "assistant":
                raise InvalidRequestError(
                    f"messages[{i}] has tool_calls but is a {m.role} message",
                    param=f"messages.{i}.tool_calls",
                )
            d["tool_calls"] = [c.model_dump() for c in m.tool_calls]
        if m.tool_call_id is not None:
            d["tool_call_id"] = m.tool_call_id
        if m.name is not None:
            d["name"] = m.name
        out.append(d)
    return out


@dataclass
class Turn:
    """What the model is asked: the request, and the tools its answer may call."""

    request: GenerationRequest
    tools: list[dict[str, Any]]


def plan(
    generator: Any,
    messages: list[dict[str, Any]],
    params: SamplingParams,
    *,
    model: str,
    n: int = 1,
    seed: int | None = None,
    tools: list[dict[str, Any]] | None = None,
    tool_choice: Any = None,
    parallel: bool = True,
) -> Turn:
    """Render the conversation in the model's chat format and constrain the answer to the tools."""
    active = chat.check_tools(tools or [], tool_choice or "auto") if tools else []
    if active and not getattr(generator, "supports_constraints", False):
        raise UnsupportedError(
            f"{model} cannot call tools: genlab constrains tool calls on models it runs itself "
            "(llama.cpp GGUFs and its own transformers), and will not answer prose in place of a call"
        )
    constrained = params.json_schema is not None or params.grammar is not None or params.regex is not None
    if active and constrained:
        raise InvalidRequestError("tools and a response format or grammar cannot be combined", param="tools")
    fmt = getattr(generator, "chat_format", chat.TRANSCRIPT)
    prompt, stop = chat.render(messages, fmt, active or None)
    grammar = None
    if tools and not active and not constrained and getattr(generator, "supports_constraints", False):
        grammar = chat.NO_CALL_GRAMMAR  # tool_choice "none": an answer in words, even after calls
    if active:
        required = tool_choice == "required" or isinstance(tool_choice, dict)
        grammar = chat.tool_grammar(active, required=required, parallel=parallel)
    params = dataclasses.replace(
        params,
        stop=params.stop + (() if constrained else stop),
        grammar=grammar if grammar is not None else params.grammar,
    )
    parts = tuple(m["content"] for m in messages if (m.get("content") or "").strip())
    parts += tuple(t["function"].get("description") or "" for t in active if t["function"].get("description"))
    if fmt.template is None:  # the transcript: the whole prompt is the people's text (and "User:")
        parts = ()
    request = GenerationRequest(
        prompt=prompt, model=model, n=n, seed=seed, params=params, parts=parts
    ).validate()
    return Turn(request, active)


def answer(turn: Turn, text: str, finish_reason: str | None) -> tuple[str | None, list[dict], str | None]:
    """(content, tool_calls, finish_reason) of one choice, as OpenAI returns them."""
    if not turn.tools:
        return text, [], finish_reason
    content, calls = chat.parse_tool_calls(text)
    return content, calls, ("tool_calls" if calls else finish_reason)


def tools_of(body_tools: list[Any] | None) -> list[dict[str, Any]] | None:
    return [t.model_dump(exclude_none=True) for t in body_tools] if body_tools else None


def choice_of(tool_choice: Any) -> Any:
    return tool_choice.model_dump() if hasattr(tool_choice, "model_dump") else tool_choice
