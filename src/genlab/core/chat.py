"""Chat: a conversation rendered into the prompt a model was trained on, and tool calls parsed back.

Messages are OpenAI's (``role``, ``content``, ``tool_calls``, ``tool_call_id``, ``name``), as
plain dicts with text content. A model's :class:`ChatFormat` says how to render them:

- **its own chat template**: the Jinja template an instruction-tuned GGUF carries
  (``tokenizer.chat_template``) or one the user gave (``genlab models add --chat-template``),
  rendered by llama-cpp-python's sandboxed ``Jinja2ChatFormatter`` (an immutable sandbox; the
  variables templates expect: ``messages``, ``tools``, ``add_generation_prompt``, ``bos_token``,
  ``eos_token``, ``raise_exception``, ``strftime_now``), within a time budget
  (:data:`RENDER_SECONDS`, :func:`time_budget`): a template that loops is a 400, not a frozen worker;
- **the transcript**, for base models that have none: ``User: ...`` / ``Assistant:`` lines that a
  base model continues, stopped at the next turn.

**Tools.** A template that knows tools (it mentions ``tools``) gets them as the variable; for one
that does not, the tools are described in the system message. Either way the model answers a call
as ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (Hermes' and Qwen's format), and
:func:`tool_grammar` constrains it: the arguments always parse and match the function's JSON Schema
(through the constraint engine, ``genlab.core.constraints``). ``tool_choice`` ``auto`` lets the model
choose text or a call (a text answer starts with a visible character other than ``<``), ``required`` or a named function
forces a call (a named one exactly once), ``none`` leaves the tools out. :func:`parse_tool_calls`
reads the calls back. Calls end: right after tool results, ``auto`` answers in words on a model whose
template does not know tools (and may not call again what was just answered on one that does), and a
parallel call that repeats another or whose required arguments are empty is dropped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from genlab.core.constraints import closed_objects
from genlab.core.errors import InvalidRequestError, UnsupportedError
from genlab.core.generator import ChatTemplated, Constrained
from genlab.core.request import GenerationRequest, InputField, SamplingParams

RENDER_SECONDS = 2.0  # a chat template's time to render one conversation (real ones take milliseconds)
TRANSCRIPT_STOP = ("\nUser:", "\nAssistant:")
NAMES = {"user": "User", "assistant": "Assistant", "tool": "Tool"}
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"


@dataclass(frozen=True)
class ChatFormat:
    """How a model's conversations become its prompt."""

    template: str | None = None  # Jinja; None: the plain transcript
    bos: str = ""
    eos: str = ""
    source: str = "transcript"  # "gguf" (the file's own), "user" (models add --chat-template), "transcript"

    @property
    def knows_tools(self) -> bool:
        return self.template is not None and "tools" in self.template

    def describe(self) -> str:
        return {
            "gguf": "the model's own chat template (from its GGUF file)",
            "user": "a chat template given with `genlab models add --chat-template`",
            "transcript": "a plain User:/Assistant: transcript (a base model without a chat template)",
        }[self.source]


TRANSCRIPT = ChatFormat()

#: Widely used chat templates, by name, for `genlab models add --chat-template NAME` (a GGUF that
#: lacks its own, or one to override). The user's own Jinja file works too.
CHAT_TEMPLATES = {
    "chatml": (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
        "+ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
    "llama-3": (
        "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
        "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
    ),
    "gemma": (
        "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' "
        "else 'user' %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
    ),
}


# -- rendering -------------------------------------------------------------------------------------
class TemplateTimeout(BaseException):
    """A template ran past its budget. A BaseException, so no ``except Exception`` in the
    template's compiled code or in Jinja can swallow it and run on."""


@contextlib.contextmanager
def time_budget(seconds: float, filename: str = "<template>") -> Iterator[None]:
    """Stop the Python code compiled from ``filename`` (a Jinja template: Jinja compiles templates
    to Python, so a loop in one is a loop of lines) once ``seconds`` have passed in this thread.
    A trace function checks the clock at every call, and at every line of the template's own code;
    the sandbox bounds what a template may touch, this bounds how long it may run."""
    deadline = time.perf_counter() + seconds

    def line(frame: Any, event: str, arg: Any) -> Any:
        if time.perf_counter() > deadline:
            raise TemplateTimeout
        return line

    def call(frame: Any, event: str, arg: Any) -> Any:
        if time.perf_counter() > deadline:
            raise TemplateTimeout
        return line if frame.f_code.co_filename == filename else None

    previous = sys.gettrace()
    sys.settrace(call)
    try:
        yield
    finally:
        sys.settrace(previous)


def render(
    messages: list[dict[str, Any]], fmt: ChatFormat, tools: list[dict[str, Any]] | None = None
) -> tuple[str, tuple[str, ...]]:
    """The prompt for ``messages`` (ending where the assistant's answer starts) and the stop
    sequences that end its turn. A template that fails to render is a 400 naming the reason."""
    check_messages(messages)
    messages = _name_tool_results(messages)
    if fmt.template is None:
        return _transcript(messages, tools), TRANSCRIPT_STOP
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    if fmt.knows_tools:
        shown = [_for_template(m, keep_calls=True) for m in messages]
    else:
        shown = [_for_template(m, keep_calls=False) for m in _with_tool_instructions(messages, tools)]
    try:
        formatter = Jinja2ChatFormatter(fmt.template, eos_token=fmt.eos, bos_token=fmt.bos)
        with time_budget(RENDER_SECONDS):
            result = formatter(messages=shown, tools=tools if fmt.knows_tools else None)
    except TemplateTimeout:
        raise InvalidRequestError(
            f"the model's chat template ran past its budget of {RENDER_SECONDS:g} s on these messages "
            "(a template that loops); give the model a working one with `genlab models add --chat-template`",
            param="messages",
        ) from None
    except Exception as e:  # a template error (or its raise_exception): the request cannot be rendered
        raise InvalidRequestError(
            f"the model's chat template could not render these messages: {' '.join(str(e).split())[:300]}",
            param="messages",
        ) from None
    prompt = result.prompt
    if fmt.bos and prompt.startswith(fmt.bos):
        prompt = prompt[len(fmt.bos) :]  # llama.cpp adds the beginning-of-sequence token itself
    return prompt, ()


def check_messages(messages: list[dict[str, Any]]) -> None:
    """Roles in order and every ``tool`` message answering a call made before it."""
    if not any(m["role"] == "user" for m in messages):
        raise InvalidRequestError("messages need at least one user message", param="messages")
    called: set[str] = set()
    for i, m in enumerate(messages):
        for call in m.get("tool_calls") or ():
            called.add(call["id"])
        if m["role"] == "tool":
            if not m.get("tool_call_id"):
                raise InvalidRequestError(
                    f"messages[{i}] is a tool result without a tool_call_id",
                    param=f"messages.{i}.tool_call_id",
                )
            if m["tool_call_id"] not in called:
                raise InvalidRequestError(
                    f"messages[{i}] answers tool call {m['tool_call_id']!r}, which no assistant message made",
                    param=f"messages.{i}.tool_call_id",
                )


def _name_tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each tool result carries the name of the function whose call it answers."""
    names = {c["id"]: c["function"]["name"] for m in messages for c in m.get("tool_calls") or ()}
    return [
        {**m, "name": m.get("name") or names.get(m.get("tool_call_id"))} if m["role"] == "tool" else m
        for m in messages
    ]


def _call_text(calls: list[dict[str, Any]]) -> str:
    return "\n".join(
        CALL_OPEN
        + json.dumps({"name": c["function"]["name"], "arguments": _arguments(c)}, ensure_ascii=False)
        + CALL_CLOSE
        for c in calls
    )


def _arguments(call: dict[str, Any]) -> Any:
    raw = call["function"].get("arguments") or "{}"
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return raw


def _for_template(message: dict[str, Any], *, keep_calls: bool) -> dict[str, Any]:
    """A message as templates expect it: text content always (never None)."""
    out = {**message, "content": message.get("content") or ""}
    if message.get("tool_calls") and not keep_calls:
        out["content"] = (out["content"] + "\n" if out["content"] else "") + _call_text(message["tool_calls"])
        del out["tool_calls"]
    if message["role"] == "tool" and not keep_calls:
        name = message.get("name") or "the function"
        out = {"role": "user", "content": f"{name} returned: {out['content']}\nAnswer my question with this."}
    return out


def tool_instructions(tools: list[dict[str, Any]]) -> str:
    described = [
        {k: v for k, v in t["function"].items() if k in ("name", "description", "parameters")} for t in tools
    ]
    return (
        "You can call these functions. To call one, answer only with "
        f'{CALL_OPEN}{{"name": <function name>, "arguments": <arguments object>}}{CALL_CLOSE}; '
        "its result comes back in the next message. Functions:\n"
        + "\n".join(json.dumps(d, ensure_ascii=False) for d in described)
    )


def _with_tool_instructions(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[dict]:
    if not tools:
        return messages
    text = tool_instructions(tools)
    if messages and messages[0]["role"] in ("system", "developer"):
        first = messages[0]
        return [
            {**first, "role": "system", "content": f"{first.get('content') or ''}\n\n{text}".strip()},
            *messages[1:],
        ]
    return [{"role": "system", "content": text}, *messages]


def _transcript(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    messages = _with_tool_instructions(messages, tools)
    system = [m.get("content") or "" for m in messages if m["role"] in ("system", "developer")]
    lines = []
    for m in messages:
        if m["role"] in ("system", "developer"):
            continue
        text = (m.get("content") or "").strip()
        if m.get("tool_calls"):
            text = (text + "\n" if text else "") + _call_text(m["tool_calls"])
        lines.append(f"{NAMES[m['role']]}: {text}")
    head = "\n".join(s.strip() for s in system if s.strip())
    return (head + "\n\n" if head else "") + "\n".join(lines) + "\nAssistant:"


# -- tools -----------------------------------------------------------------------------------------
def check_tools(tools: list[dict[str, Any]], tool_choice: Any) -> list[dict[str, Any]]:
    """The tools a request may call under ``tool_choice`` ("auto", "none", "required" or
    ``{"type": "function", "function": {"name": ...}}``); a 400 for an unknown name."""
    names = [t["function"]["name"] for t in tools]
    if len(set(names)) != len(names):
        raise InvalidRequestError("two tools have the same name", param="tools")
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name")
        if wanted not in names:
            raise InvalidRequestError(
                f"tool_choice names {wanted!r}, which is not among the tools ({', '.join(names) or 'none'})",
                param="tool_choice",
            )
        return [t for t in tools if t["function"]["name"] == wanted]
    if tool_choice not in ("auto", "none", "required"):
        raise InvalidRequestError(
            f"tool_choice must be auto, none, required or a function, got {tool_choice!r}",
            param="tool_choice",
        )
    if (tool_choice == "required" or isinstance(tool_choice, dict)) and not tools:
        raise InvalidRequestError("tool_choice asks for a call but no tools were given", param="tool_choice")
    return [] if tool_choice == "none" else tools


def tool_grammar(tools: list[dict[str, Any]], *, required: bool, parallel: bool) -> str:
    """A Lark grammar (llguidance's dialect) for the answer: one call (or several, in parallel)
    whose arguments match the function's schema, or, unless ``required``, text."""
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t["function"]["name"]},
                "arguments": closed_objects(t["function"].get("parameters") or {"type": "object"}),
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    schema = {"anyOf": options, "x-guidance": {"whitespace_flexible": False}}
    calls = 'call ("\\n" call)*' if parallel else "call"
    start = "calls" if required else "TEXT | calls"
    return (
        f"start: {start}\n"
        f"calls: {calls}\n"
        f'call: "{CALL_OPEN}" body "{CALL_CLOSE}"\n'
        f"body: %json {json.dumps(schema)}\n"
        "TEXT: /[^<\\s](.|\\n)*/\n"
    )


NO_CALL_GRAMMAR = "start: TEXT\nTEXT: /[^<\\s](.|\\n)*/\n"  # tool_choice "none": prose, never a call


def parse_tool_calls(text: str) -> tuple[str | None, list[dict[str, Any]]]:
    """(content, tool_calls) of an answer: OpenAI's ``tool_calls`` (ids ``call_...``, arguments as
    a JSON string) when the answer is calls, else the text and no calls."""
    stripped = text.strip()
    if not stripped.startswith(CALL_OPEN):
        return text, []
    calls = []
    for chunk in stripped.split(CALL_OPEN)[1:]:
        body = chunk.split(CALL_CLOSE)[0]
        try:
            call = json.loads(body)
        except json.JSONDecodeError:  # cut by max_tokens: not a call
            continue
        calls.append(
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": json.dumps(call.get("arguments", {}), ensure_ascii=False),
                },
            }
        )
    return (None if calls else text), calls


def _check_tool_grammar(tools: list[dict[str, Any]], grammar: str) -> None:
    """Each function's parameters are JSON Schema the engine can enforce: a 400 naming the tool."""
    from genlab.core.constraints import _check_json_schema, compile_constraint

    for i, t in enumerate(tools):
        try:
            _check_json_schema(t["function"].get("parameters") or {"type": "object"})
        except InvalidRequestError as e:
            raise InvalidRequestError(
                f"tool {t['function']['name']!r}: {e.message}", param=f"tools.{i}"
            ) from None
    try:
        compile_constraint(SamplingParams(grammar=grammar))
    except InvalidRequestError as e:
        raise InvalidRequestError(
            f"the tools' parameters cannot be enforced: {e.message}", param="tools"
        ) from None


# -- what the model reads -------------------------------------------------------------------------
INSTRUCTION_ROLES = ("system", "developer")
NAMED = ("properties", "patternProperties", "$defs", "definitions")  # a JSON Schema's maps of names


def visible_fields(
    messages: list[dict[str, Any]], tools: dict[int, dict[str, Any]], paths: list[str] | None = None
) -> tuple[InputField, ...]:
    """Every text of a conversation that its rendered prompt shows the model, each labelled with
    its path in the request: each message's content, name and tool_call_id; each tool call's id,
    name and arguments (every key and string of them, decoded as the prompt shows them, so an
    escaped ``\\u003c`` is read as ``<``); each shown tool's name, description and the names and
    strings of its parameter schema. ``tools``: the tools the prompt shows, by their index in the
    request; ``paths``: each message's path (``input.3`` for a Responses item), ``messages.i`` by
    default. Each string is its own field: read apart, a harmful sentence is not diluted by the
    ordinary words of a schema around it."""
    found: list[tuple[str, str, bool]] = []
    for i, m in enumerate(messages):
        where = paths[i] if paths is not None else f"messages.{i}"
        own = m.get("role") in INSTRUCTION_ROLES
        found += [(f"{where}.{k}", m[k], own) for k in ("content", "name", "tool_call_id") if k in m]
        for j, call in enumerate(m.get("tool_calls") or ()):
            at = f"{where}.tool_calls.{j}"
            found += [
                (f"{at}.id", call.get("id"), False),
                (f"{at}.function.name", call["function"]["name"], False),
            ]
            found += [(p, s, False) for p, s in _strings(_arguments(call), f"{at}.function.arguments")]
    for i, t in tools.items():
        at, function = f"tools.{i}.function", t["function"]
        found += [(f"{at}.{k}", function.get(k), False) for k in ("name", "description")]
        found += [(p, s, False) for p, s in _strings(function.get("parameters"), f"{at}.parameters", True)]
    return tuple(InputField(p, s, own) for p, s, own in found if isinstance(s, str) and s.strip())


def _strings(value: Any, path: str, schema: bool = False) -> list[tuple[str, str]]:
    """(path, string) of every string inside a JSON value, keys included, in order. In a JSON
    Schema (``schema``) the keys are its own keywords: only property names are kept, and the names
    of types left out."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, list):
        return [found for k, v in enumerate(value) for found in _strings(v, f"{path}.{k}", schema)]
    if not isinstance(value, dict):
        return []
    out: list[tuple[str, str]] = []
    for k, v in value.items():
        at = f"{path}.{k}"
        if not schema:
            out += [(at, str(k)), *_strings(v, at)]
        elif k in NAMED and isinstance(v, dict):
            for name, sub in v.items():
                out += [(f"{at}.{name}", str(name)), *_strings(sub, f"{at}.{name}", True)]
        elif k != "type":
            out += _strings(v, at, True)
    return out


# -- one turn --------------------------------------------------------------------------------------
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
    paths: list[str] | None = None,
) -> Turn:
    """Render the conversation in the model's chat format and constrain the answer to the tools;
    the request carries every field the prompt shows (``visible_fields``; ``paths`` name the
    messages as the caller sent them) for the input policy."""
    asks_for_tools = bool(tools) or tool_choice not in (None, "auto", "none")
    active = check_tools(tools or [], tool_choice or "auto") if asks_for_tools else []
    constrains = isinstance(generator, Constrained) and generator.supports_constraints
    if active and not constrains:
        raise UnsupportedError(
            f"{model} cannot call tools: genlab constrains tool calls on models it runs itself "
            "(llama.cpp GGUFs and its own transformers), and will not answer prose in place of a call"
        )
    constrained = params.json_schema is not None or params.grammar is not None or params.regex is not None
    if active and constrained:
        raise InvalidRequestError("tools and a response format or grammar cannot be combined", param="tools")
    fmt = generator.chat_format if isinstance(generator, ChatTemplated) else TRANSCRIPT
    prompt, stop = render(messages, fmt, active or None)
    grammar = None
    if tools and not active and not constrained and constrains:
        grammar = NO_CALL_GRAMMAR  # tool_choice "none": an answer in words, even after calls
    if active:
        named = isinstance(tool_choice, dict)  # a named function: exactly one call of it
        required = tool_choice == "required" or named
        callable_now = active if required else _callable_after(active, messages, fmt)
        grammar = (
            tool_grammar(callable_now, required=required, parallel=parallel and not named)
            if callable_now
            else NO_CALL_GRAMMAR
        )
        _check_tool_grammar(active, grammar)
    params = dataclasses.replace(
        params,
        stop=params.stop + (() if constrained else stop),
        grammar=grammar if grammar is not None else params.grammar,
    )
    shown = {i: t for i, t in enumerate(tools or []) if t in active}
    fields = visible_fields(messages, shown, paths)
    request = GenerationRequest(
        prompt=prompt, model=model, n=n, seed=seed, params=params, fields=fields
    ).validate()
    return Turn(request, active)


def _callable_after(
    tools: list[dict[str, Any]], messages: list[dict[str, Any]], fmt: ChatFormat
) -> list[dict[str, Any]]:
    """What ``auto`` may call right after tool results: a model whose template knows tools (trained
    to use them) may chain to another function, but not call again those whose results just came
    back; a model that only reads them described in its system message (SmolLM2) answers in words:
    small models otherwise call again instead of answering (measured in bench/chat.py), and an
    agent loops until its turn limit. ``required`` or a named function still forces a call."""
    if not messages or messages[-1]["role"] != "tool":
        return tools
    if not fmt.knows_tools:
        return []
    last = next((m for m in reversed(messages) if m["role"] == "assistant" and m.get("tool_calls")), None)
    answered = {c["function"]["name"] for c in (last or {}).get("tool_calls") or ()}
    return [t for t in tools if t["function"]["name"] not in answered]


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and not value)


def _is_filled(call: dict[str, Any], tools: list[dict[str, Any]]) -> bool:
    """A call whose required arguments all have a value (an empty string, list or object is none)."""
    schema = next(
        (
            t["function"].get("parameters") or {}
            for t in tools
            if t["function"]["name"] == call["function"]["name"]
        ),
        {},
    )
    arguments = _arguments(call)
    if not isinstance(arguments, dict):
        return False
    return not any(_empty(arguments.get(name)) for name in schema.get("required") or ())


def _kept(calls: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first call, and each parallel one after it that has its required arguments and is not
    the same as one before it: the others are the model running on past its real calls (the
    grammar lets it write more)."""
    kept, seen = calls[:1], {_signature(c) for c in calls[:1]}
    for call in calls[1:]:
        if _is_filled(call, tools) and _signature(call) not in seen:
            kept.append(call)
            seen.add(_signature(call))
    return kept


def _signature(call: dict[str, Any]) -> str:
    return json.dumps([call["function"]["name"], _arguments(call)], sort_keys=True)


def answer(turn: Turn, text: str, finish_reason: str | None) -> tuple[str | None, list[dict], str | None]:
    """(content, tool_calls, finish_reason) of one choice, as OpenAI returns them."""
    if not turn.tools:
        return text, [], finish_reason
    content, calls = parse_tool_calls(text)
    calls = _kept(calls, turn.tools)
    return content, calls, ("tool_calls" if calls else finish_reason)


class ToolCallStream:
    """One streamed choice's tool calls, whole and streaming as vLLM's ``ToolParser`` has them:
    ``feed`` passes a text answer's deltas through as they come and holds an answer that opens with
    a call's marker (the tool grammar lets a text answer never start with ``<``); ``finish`` parses
    what it held, whole, once the choice ends. Chat completions and Responses both stream through it."""

    def __init__(self, turn: Turn) -> None:
        self.turn, self.held, self.opened = turn, "", False

    def feed(self, text: str) -> str:
        """The text to send now: the delta, or "" while a call is being written (held)."""
        if not text:
            return ""
        if self.turn.tools and (self.held or (not self.opened and text.lstrip().startswith(CALL_OPEN[0]))):
            self.held += text
            return ""
        self.opened = True
        return text

    def finish(self, finish_reason: str | None) -> tuple[str | None, list[dict[str, Any]], str | None]:
        """(held text to send as content, the calls, finish_reason) at the choice's end: a call cut
        by max_tokens is no call, and what was written is sent as text."""
        if not self.held:
            return None, [], finish_reason
        _, calls, finish = answer(self.turn, self.held, finish_reason)
        return (None if calls else self.held), calls, finish
