"""Chat on a base model: a plain-text transcript template.

The embedded Gemma 3 270M is a base model, not instruction-tuned, so genlab does not use Gemma's
chat markup; it writes the conversation as a transcript the model can continue:

    {system message}

    User: {message}
    Assistant: {message}
    User: {message}
    Assistant:

and stops when the model starts the next turn (``"\\nUser:"``).
"""

from __future__ import annotations

from genlab.core import InvalidRequestError
from genlab.server.schemas import ChatMessage

STOP = ("\nUser:", "\nAssistant:")
NAMES = {"user": "User", "assistant": "Assistant", "tool": "Tool"}


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


def render(messages: list[ChatMessage]) -> str:
    system = [message_text(m, i) for i, m in enumerate(messages) if m.role in ("system", "developer")]
    lines = []
    for i, m in enumerate(messages):
        if m.role in ("system", "developer"):
            continue
        lines.append(f"{NAMES[m.role]}: {message_text(m, i).strip()}")
    if not lines:
        raise InvalidRequestError("messages need at least one user message", param="messages")
    head = (
        ("\n".join(s.strip() for s in system if s.strip()) + "\n\n") if any(s.strip() for s in system) else ""
    )
    return head + "\n".join(lines) + "\nAssistant:"
