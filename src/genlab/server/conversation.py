"""A conversation over HTTP (chat completions and the Responses API): messages in OpenAI's shape
become one ``GenerationRequest`` through the model's own chat format (``genlab.core.chat``: its
chat template, or the transcript for a base model), tools become a constraint on the answer, and
the answer comes back as text or as tool calls.
"""

from __future__ import annotations

from typing import Any

from genlab.core import InvalidRequestError
from genlab.core.chat import Turn, answer, plan
from genlab.pipeline import Caps
from genlab.server.schemas import ChatMessage

__all__ = ["Turn", "admit", "answer", "choice_of", "message_dicts", "plan", "tools_of"]


def admit(caps: Caps, tools: list[dict[str, Any]] | None, schema: dict[str, Any] | None) -> None:
    """The caps a conversation's tools and response format must keep, checked before the chat
    template is rendered or a grammar compiled from them (each takes time in their size)."""
    tools = tools or []
    caps.count("tools", len(tools), caps.tools, "tools")
    functions = [t.get("function", t) for t in tools]  # chat's nested shape, or Responses' flat one
    caps.schemas(*(f.get("parameters") for f in functions if isinstance(f, dict)), schema)


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


def tools_of(body_tools: list[Any] | None) -> list[dict[str, Any]] | None:
    return [t.model_dump(exclude_none=True) for t in body_tools] if body_tools else None


def choice_of(tool_choice: Any) -> Any:
    return tool_choice.model_dump() if hasattr(tool_choice, "model_dump") else tool_choice
