"""Ollama's protocol: its request bodies, its option names mapped to OpenAI's sampling fields, its
messages in OpenAI's shape, and the pieces of its answers (a chat's message or generate's
response, logprobs, the ``done`` object's counts and durations). The routes are
``routes/ollama.py`` and ``routes/ollama_models.py``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from genlab.core import InvalidRequestError, UnsupportedError
from genlab.server.routes.completions import DEFAULT_CHAT_MAX_TOKENS

#: Ollama's option -> the OpenAI field genlab samples it by.
OPTIONS = {
    "num_predict": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "seed": "seed",
    "stop": "stop",
    "repeat_penalty": "repeat_penalty",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
#: Options about where and how the model runs, not what it writes: accepted and ignored.
RUNTIME_OPTIONS = frozenset(
    {"numa", "num_batch", "num_gpu", "main_gpu", "low_vram", "use_mmap", "use_mlock", "num_thread"}
    | {"num_keep", "f16_kv", "vocab_only", "logits_all", "embedding_only"}
)
#: Sampler options genlab does not have, accepted only at the value that turns them off.
OFF = {"mirostat": 0, "tfs_z": 1.0, "typical_p": 1.0, "repeat_last_n": 64}
#: Ollama's sampling defaults (its docs), where they differ from OpenAI's.
DEFAULTS = {"temperature": 0.8, "top_p": 0.9, "top_k": 40, "min_p": 0.0, "repeat_penalty": 1.1}


class OllamaToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    function: dict[str, Any]  # {"name", "arguments": an object, as Ollama sends it}


class OllamaMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[OllamaToolCall] | None = Field(default=None, max_length=32)
    tool_name: str | None = Field(default=None, max_length=64)
    thinking: str | None = None


class Generation(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=100)
    stream: bool = True  # Ollama streams unless told not to
    options: dict[str, Any] | None = None
    format: Literal["", "json"] | dict[str, Any] | None = None
    keep_alive: float | str | None = None  # genlab keeps a model loaded once loaded
    think: bool | str | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)


class OllamaChat(Generation):
    messages: list[OllamaMessage] = Field(default_factory=list, max_length=256)
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=64)


class OllamaGenerate(Generation):
    prompt: str = ""
    system: str | None = None
    raw: bool = False
    suffix: str | None = None
    template: str | None = None
    context: list[int] | None = None
    images: list[str] | None = None


class OllamaEmbed(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=100)
    input: str | list[str] = ""
    prompt: str | None = None  # the legacy /api/embeddings
    truncate: bool = True
    dimensions: int | None = Field(default=None, ge=1, le=4096)
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None


def model_name(name: str) -> str:
    """genlab's name of an Ollama model name: ``gemma-3-270m:latest`` is ``gemma-3-270m``."""
    return name.removesuffix(":latest")


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# -- Ollama's body -> the OpenAI request -----------------------------------------------------------
def sampling_fields(body: Generation) -> dict[str, Any]:
    """OpenAI's sampling fields from Ollama's options; an option genlab cannot honour is a 400."""
    fields: dict[str, Any] = {**DEFAULTS, "model": model_name(body.model), "stream": body.stream}
    for name, value in (body.options or {}).items():
        if name in OPTIONS:
            fields[OPTIONS[name]] = value
        elif name == "num_ctx" or name in RUNTIME_OPTIONS or (name in OFF and value == OFF[name]):
            continue  # num_ctx: checked against the model's context (check_context)
        else:
            raise UnsupportedError(f"option {name!r} is not supported by genlab{off_hint(name)}")
    if fields.get("max_tokens") in (-1, -2):  # Ollama's "until the end": genlab's chat default
        fields["max_tokens"] = DEFAULT_CHAT_MAX_TOKENS
    if body.format == "json":
        fields["json_schema"] = {"type": "object"}
    elif isinstance(body.format, dict):
        fields["json_schema"] = body.format
    if body.think:
        raise UnsupportedError("think is not supported: genlab's models do not separate their reasoning")
    return fields


def off_hint(name: str) -> str:
    return f" (only {name}={OFF[name]!r}, which turns it off)" if name in OFF else ""


def validated(cls: type[BaseModel], fields: dict[str, Any]) -> Any:
    """``cls`` from ``fields``; a field out of range is a 400 naming the Ollama option it came from."""
    try:
        return cls.model_validate(fields)
    except ValidationError as e:
        first = e.errors()[0]
        loc = [str(p) for p in first["loc"]] or ["request"]
        names = {v: k for k, v in OPTIONS.items()}
        param = f"options.{names[loc[0]]}" if loc[0] in names else ".".join(loc)
        raise InvalidRequestError(f"invalid value for {param}: {first['msg']}", param=param) from None


def check_context(body: Generation, generator) -> None:
    asked, has = (body.options or {}).get("num_ctx"), generator.card.context_length
    if asked is not None and (not isinstance(asked, int) or (has and asked > has)):
        raise InvalidRequestError(
            f"option num_ctx={asked!r} is more than {generator.card.name}'s context of {has} tokens",
            param="options.num_ctx",
        )


def openai_messages(messages: list[OllamaMessage]) -> list[dict[str, Any]]:
    """Ollama's messages in OpenAI's shape: a call gets an id, and a tool result the id of the
    first call still unanswered (of its ``tool_name`` where it names one)."""
    out, pending = [], []
    for i, m in enumerate(messages):
        if m.images:
            raise UnsupportedError(f"messages[{i}] has images; genlab's text models read text only")
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            d["tool_calls"] = [call_of(c, f"call_{i}_{k}") for k, c in enumerate(m.tool_calls)]
            pending += [(c["id"], c["function"]["name"]) for c in d["tool_calls"]]
        if m.role == "tool" and pending:
            chosen = next((p for p in pending if p[1] == m.tool_name), pending[0])
            pending.remove(chosen)
            d["tool_call_id"], d["name"] = chosen
        out.append(d)
    return out


def call_of(call: OllamaToolCall, call_id: str) -> dict[str, Any]:
    arguments = call.function.get("arguments", {})
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": call.function.get("name", ""), "arguments": text},
    }


def piece(kind: str, text: str, calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The part of an Ollama object that carries text: a chat's message or generate's response."""
    if kind == "generate":
        return {"response": text}
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [
            {"function": {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}}
            for c in calls
        ]
    return {"message": message}


def ollama_logprobs(tokens: list[dict[str, Any]] | None) -> dict[str, Any]:
    if tokens is None:
        return {}
    return {
        "logprobs": [
            {
                "token": t["token"],
                "logprob": t["logprob"],
                "top_logprobs": [{"token": k, "logprob": v} for k, v in t["top_logprobs"].items()],
            }
            for t in tokens
        ]
    }


def final(reason: str | None, prompt_tokens: int, eval_tokens: int, started: int, first: int) -> dict:
    """The ``done`` fields of Ollama's last object: counts, and durations in nanoseconds."""
    end = time.perf_counter_ns()
    return {
        "done": True,
        "done_reason": reason or "stop",
        "total_duration": end - started,
        "load_duration": 0,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": first - started,
        "eval_count": eval_tokens,
        "eval_duration": end - first,
    }
