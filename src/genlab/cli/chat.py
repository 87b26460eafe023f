"""`genlab chat`: an interactive chat in the terminal, in the model's own chat template, through the pipeline."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from genlab.cli.console import console, err_console
from genlab.cli.generate import CLI, cli_pipeline, report_held
from genlab.core import SamplingParams
from genlab.core.chat import plan
from genlab.pipeline import TEXT, ReviewRequired

DEFAULT_CHAT_MODEL = "smollm2-135m-instruct"
HELP = "/reset forgets the conversation, /system TEXT sets the system prompt, /exit (or Ctrl-D) leaves"


def chat(
    model: Annotated[
        str, typer.Option("--model", "-m", help="A text model (see `genlab models`).")
    ] = DEFAULT_CHAT_MODEL,
    system: Annotated[str | None, typer.Option(help="A system prompt to start with.")] = None,
    max_tokens: Annotated[int, typer.Option(help="The longest answer, in tokens.")] = 256,
    temperature: Annotated[float, typer.Option(help="0 = always the likeliest token.")] = 0.7,
    seed: Annotated[int | None, typer.Option(help="Seed of the first answer (then +1 per answer).")] = None,
    policy: Annotated[str, typer.Option(help="Guardrail policy: a shipped name or a YAML path.")] = "default",
) -> None:
    """Chat with a model in the terminal; each answer streams as it is written.

    The conversation is kept and sent with each message, rendered in the model's own chat template
    (a plain transcript for a base model). /reset forgets it, /system TEXT sets the system prompt,
    /exit or Ctrl-D leaves. Lines can also come from a pipe: `printf 'hi\\n' | genlab chat`.
    """
    pipeline = cli_pipeline(policy)
    generator = pipeline.check(model, TEXT)
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature).validate()
    interactive = sys.stdin.isatty()
    if interactive:
        err_console.print(f"[bold]{model}[/] ({generator.card.chat or 'transcript'}). {HELP}.")
    messages: list[dict] = [{"role": "system", "content": system}] if system else []
    turn_seed = seed
    while True:
        try:
            line = input("you> " if interactive else "")
        except EOFError:
            break
        line = line.strip()
        if not line:
            continue
        if line in ("/exit", "/quit"):
            break
        if line == "/reset":
            messages = [m for m in messages if m["role"] == "system"]
            err_console.print("[dim]conversation forgotten[/]")
            continue
        if line.startswith("/system"):
            text = line.removeprefix("/system").strip()
            messages = [{"role": "system", "content": text}] if text else []
            err_console.print(f"[dim]system prompt {'set' if text else 'cleared'}; conversation forgotten[/]")
            continue
        if line.startswith("/"):
            err_console.print(f"[yellow]unknown command {line.split()[0]}; {HELP}[/]")
            continue
        messages.append({"role": "user", "content": line})
        answer = _answer(pipeline, generator, messages, params, model, turn_seed)
        if answer is None:
            messages.pop()  # held for review: the turn did not happen here
        else:
            messages.append({"role": "assistant", "content": answer})
        turn_seed = turn_seed + 1 if turn_seed is not None else None
    pipeline.store.close()


def _answer(pipeline, generator, messages, params, model, seed) -> str | None:
    """Stream one answer to the terminal; returns its text (None when the review rule held it)."""
    turn = plan(generator, messages, params, model=model, seed=seed)
    try:
        stream = pipeline.stream(turn.request, endpoint="cli.chat", caller=CLI)
    except ReviewRequired:  # the review rule could hold it: answer whole, then hold or print it
        released = pipeline.generate(turn.request, endpoint="cli.chat", caller=CLI, shape=str.strip)
        if released.held:
            report_held(released.review)
            return None
        console.print(released.artifacts[0].text, markup=False, highlight=False)
        return released.artifacts[0].text
    console.print(f"[bold]{model}>[/] ", end="")
    pieces = []
    for chunk in stream:
        text = chunk.text.lstrip() if not pieces else chunk.text
        if text:
            pieces.append(text)
            console.print(text, end="", markup=False, highlight=False, soft_wrap=True)
    console.print()
    return "".join(pieces).strip()
