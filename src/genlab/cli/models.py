"""`genlab models`: list, show, add and remove registered models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from genlab.cli.console import console, err_console, human_count, print_json
from genlab.core import InvalidRequestError
from genlab.registry import ModelEntry, default_registry

app = typer.Typer(help="List, inspect, add and remove models.", no_args_is_help=False)


def _entry_json(entry: ModelEntry) -> dict:
    config = {k: v for k, v in entry.config.items() if k not in ("size", "mtime_ns")}
    return {**entry.card.to_dict(), "kind": entry.kind, "config": config}


@app.callback(invoke_without_command=True)
def models(
    ctx: typer.Context,
    json_: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List every registered model (built-in and under GENLAB_HOME/models)."""
    if ctx.invoked_subcommand is None:
        _print_list(json_)


@app.command("list")
def list_(json_: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False) -> None:
    """List every registered model (same as `genlab models`)."""
    _print_list(json_)


def _print_list(json_: bool) -> None:
    entries = default_registry().list()
    if json_:
        print_json([_entry_json(e) for e in entries])
        return
    table = Table(title="genlab models", title_justify="left")
    for column in ("name", "family", "modality", "backend", "params", "context", "source"):
        table.add_column(column, overflow="fold")
    for e in entries:
        c = e.card
        table.add_row(
            c.name,
            c.family,
            c.modality,
            c.backend,
            human_count(c.parameters),
            str(c.context_length or "-"),
            c.source,
        )
    console.print(table)


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="The model's name, as `genlab models` lists it.")],
    json_: Annotated[bool, typer.Option("--json", help="Print the card as JSON.")] = False,
) -> None:
    """Show a model's card: what it is, its training data, licence, metrics, how to reproduce it."""
    entry = default_registry().get(name)
    if json_:
        print_json(_entry_json(entry))
        return
    c = entry.card
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold cyan")
    table.add_column(overflow="fold")
    rows = [
        ("name", c.name),
        ("family", c.family),
        ("modality", c.modality),
        ("backend", c.backend),
        ("parameters", f"{c.parameters:,}" if c.parameters else "unknown"),
        ("context", str(c.context_length or "-")),
        ("training data", c.training_data),
        ("licence", c.licence),
        ("source", c.source),
        ("reproduce", c.reproduce),
        ("description", c.description),
    ]
    rows += [(f"metric: {k}", str(v)) for k, v in sorted(_flatten(c.metrics).items())]
    for k, v in rows:
        table.add_row(k, v or "-")
    console.print(table)


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="A new name: letters, digits, '.', '_' or '-'.")],
    gguf: Annotated[Path | None, typer.Option("--gguf", help="A GGUF file to run with llama.cpp.")] = None,
    diffusers: Annotated[
        Path | None,
        typer.Option("--diffusers", help="A diffusers text-to-image pipeline folder (save_pretrained's)."),
    ] = None,
    sha256: Annotated[str | None, typer.Option(help="Refuse the GGUF unless its sha256 is this.")] = None,
    n_ctx: Annotated[
        int | None, typer.Option("--n-ctx", help="Context window for the GGUF (default: min(trained, 4096)).")
    ] = None,
    openai_url: Annotated[
        str | None,
        typer.Option(
            "--openai-url", help="Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."
        ),
    ] = None,
    remote_model: Annotated[
        str | None, typer.Option("--remote-model", help="The model's name on that server.")
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option("--api-key-env", help="Environment variable that holds the server's API key."),
    ] = None,
    chat_template: Annotated[
        str | None,
        typer.Option(
            "--chat-template",
            help="The GGUF's chat template: chatml, llama-3, gemma, or a Jinja file "
            "(default: the template inside the GGUF, else a plain transcript).",
        ),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the new entry as JSON.")] = False,
) -> None:
    """Register a GGUF file (--gguf), a diffusers pipeline folder (--diffusers) or a model on an
    OpenAI-compatible server (--openai-url)."""
    registry = default_registry()
    if sum(x is not None for x in (gguf, openai_url, diffusers)) != 1:
        raise InvalidRequestError("give exactly one of --gguf PATH, --diffusers DIR or --openai-url URL")
    if diffusers is not None:
        entry = registry.add_diffusers(name, diffusers)
    elif gguf is not None:
        template = _chat_template(chat_template) if chat_template is not None else None
        entry = registry.add_gguf(name, gguf, sha256=sha256, n_ctx=n_ctx, chat_template=template)
    else:
        if not remote_model:
            raise InvalidRequestError(
                "--openai-url needs --remote-model NAME (the model's name on that server)"
            )
        entry = registry.add_openai(name, openai_url, remote_model, api_key_env=api_key_env)
    if json_:
        print_json(_entry_json(entry))
    else:
        console.print(f"added [bold]{entry.name}[/] ({entry.card.backend}): {entry.card.source}")


def _chat_template(value: str) -> str:
    from genlab.core.chat import CHAT_TEMPLATES

    if value in CHAT_TEMPLATES:
        return CHAT_TEMPLATES[value]
    path = Path(value.removeprefix("@")).expanduser()
    if path.is_file():
        return path.read_text("utf-8")
    raise InvalidRequestError(
        f"--chat-template {value!r} is neither a known template ({', '.join(CHAT_TEMPLATES)}) nor a file"
    )


@app.command()
def pull(
    repo: Annotated[
        str,
        typer.Argument(
            help="A Hugging Face Hub repository of GGUF files, e.g. bartowski/SmolLM2-360M-Instruct-GGUF."
        ),
    ],
    file: Annotated[
        str | None, typer.Argument(help="The file to pull (default: the one with --quant in its name).")
    ] = None,
    quant: Annotated[
        str | None, typer.Option(help="The quantisation to pick by name (default Q4_K_M).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Register it under this name (default: from the file's name).")
    ] = None,
    revision: Annotated[str, typer.Option(help="A branch, tag or commit of the repository.")] = "main",
    chat_template: Annotated[
        str | None,
        typer.Option("--chat-template", help="Override its chat template: chatml, llama-3, gemma or a file."),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the new entry as JSON.")] = False,
) -> None:
    """Download a GGUF model from the Hugging Face Hub and register it (the only command that downloads).

    Resumable, with a progress bar; its sha256 is checked against the Hub's and recorded in its card.
    HF_ENDPOINT (a mirror) and HF_TOKEN (gated or private repositories) are respected.

    Example: genlab models pull bartowski/SmolLM2-360M-Instruct-GGUF --quant Q4_K_M
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    template = _chat_template(chat_template) if chat_template is not None else None
    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress("pulling", *columns, console=err_console, disable=json_, transient=True) as bar:
        task = bar.add_task("pull", total=None)
        entry = default_registry().pull(
            repo,
            file,
            name=name,
            quant=quant,
            revision=revision,
            chat_template=template,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if json_:
        print_json(_entry_json(entry))
    else:
        console.print(f"pulled [bold]{entry.name}[/] from {entry.card.source} (sha256 checked)")
        console.print(
            f'try it: genlab chat --model {entry.name}   or   genlab generate text --model {entry.name} "..."'
        )


@app.command()
def remove(
    name: Annotated[
        str, typer.Argument(help="The model to unregister (its files outside GENLAB_HOME stay).")
    ],
) -> None:
    """Unregister a model you added."""
    default_registry().remove(name)
    console.print(f"removed [bold]{name}[/]")


def _flatten(metrics: dict, prefix: str = "") -> dict:
    """{"eval": {"fid": 1, "floor": {"fid": 0.5}}} -> {"eval.fid": 1, "eval.floor.fid": 0.5}."""
    out: dict = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
