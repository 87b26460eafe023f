"""`genlab transcribe`: speech to text from the terminal, through the pipeline (its output policy and record)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from genlab.cli.console import console, err_console, print_json
from genlab.cli.generate import CLI, cli_pipeline, report_held
from genlab.core import InvalidRequestError

FORMATS = ("text", "json", "srt", "vtt", "verbose_json")


def transcribe(
    file: Annotated[Path, typer.Argument(help="An audio file: WAV, FLAC, MP3 or OGG.")],
    model: Annotated[str, typer.Option("--model", "-m", help="A transcription model.")] = "whisper-tiny-en",
    format_: Annotated[
        str, typer.Option("--format", "-f", help="text, json, srt, vtt or verbose_json.")
    ] = "text",
    out: Annotated[
        Path | None, typer.Option(help="Write the transcript here instead of printing it.")
    ] = None,
    prompt: Annotated[
        str | None, typer.Option(help="Words to expect (names, jargon), as Whisper's prompt.")
    ] = None,
    policy: Annotated[str, typer.Option(help="Guardrail policy: a shipped name or a YAML path.")] = "default",
) -> None:
    """Transcribe speech to text, with segment timestamps (srt, vtt); progress on long files.

    Example: genlab transcribe meeting.mp3 --format srt --out meeting.srt
    """
    from rich.progress import BarColumn, Progress, TextColumn

    from genlab.codecs.audio import read_audio
    from genlab.core.io import atomic_write_text
    from genlab.generators.transcriber import SAMPLE_RATE

    if format_ not in FORMATS:
        raise InvalidRequestError(f"--format must be one of {', '.join(FORMATS)}, got {format_!r}")
    if not file.is_file():
        raise InvalidRequestError(f"no such file: {file}")
    audio = read_audio(file, SAMPLE_RATE)
    pipeline = cli_pipeline(policy)
    seconds = TextColumn("{task.completed:.0f} of {task.total:.0f} s of audio")
    with Progress("transcribing", BarColumn(), seconds, console=err_console, transient=True) as bar:
        task = bar.add_task("t", total=audio.size / SAMPLE_RATE)
        transcript, released = pipeline.transcribe(
            model,
            audio,
            endpoint="cli.transcribe",
            caller=CLI,
            raw={"model": model, "file": str(file), "format": format_},
            prompt=prompt,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    pipeline.store.close()
    if released.held:
        report_held(released.review)
        return
    rendered = transcript.render("json" if format_ == "text" else format_)
    text = transcript.text + "\n" if format_ == "text" else rendered
    if out is not None:
        atomic_write_text(
            out, text if isinstance(text, str) else json.dumps(text, indent=2, ensure_ascii=False)
        )
        err_console.print(f"[dim]wrote {out}[/]")
    elif isinstance(text, dict):
        print_json(text)
    else:
        console.print(text, end="", markup=False, highlight=False, soft_wrap=True)
    if not transcript.text.strip():
        err_console.print("[yellow]no speech was recognised[/]")
        sys.exit(0)
