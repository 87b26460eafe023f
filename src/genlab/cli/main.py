"""The `genlab` command. This is the one place where errors become messages for people:
a GenlabError or a usage mistake prints one line on stderr and exits non-zero, never a traceback."""

from __future__ import annotations

import os
import sys

import typer

from genlab.cli import chat as chat_cmd
from genlab.cli import compare as compare_cmd
from genlab.cli import demo as demo_cmd
from genlab.cli import doctor as doctor_cmd
from genlab.cli import embed as embed_cmd
from genlab.cli import generate, guard, models
from genlab.cli import mcp as mcp_cmd
from genlab.cli import serve as serve_cmd
from genlab.cli import speech as speech_cmd
from genlab.cli.apps import apps_app, education_app, healthcare_app, marketing_app, software_app
from genlab.cli.console import err_console
from genlab.cli.review import audit_app, review_app
from genlab.cli.train import eval_app, export_app, train_app
from genlab.cli.tune import tune_app
from genlab.core import GenlabError, InvalidRequestError

try:  # Typer >= 0.29 vendors Click; older releases use Click itself
    from typer._click.exceptions import NoArgsIsHelpError as _NoArgsIsHelpError
except ImportError:  # pragma: no cover
    from click.exceptions import NoArgsIsHelpError as _NoArgsIsHelpError

app = typer.Typer(
    name="genlab",
    help="genlab: a local-first generative AI workbench (transformers, GANs, VAEs, diffusion; text, code, images, audio).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(models.app, name="models")
app.add_typer(generate.app, name="generate")
app.add_typer(guard.app, name="guard")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
app.add_typer(export_app, name="export")
app.command()(doctor_cmd.doctor)
app.command()(demo_cmd.demo)
app.command()(chat_cmd.chat)
app.command()(speech_cmd.transcribe)
app.command()(embed_cmd.embed)
app.command()(guard.verify)
app.command()(serve_cmd.serve)
app.command()(mcp_cmd.mcp)
app.command()(compare_cmd.compare)
app.add_typer(serve_cmd.keys_app, name="keys")
app.add_typer(review_app, name="review")
app.add_typer(audit_app, name="audit")
app.add_typer(tune_app, name="tune")
app.add_typer(apps_app, name="apps")
app.add_typer(software_app, name="software")
app.add_typer(education_app, name="education")
app.add_typer(marketing_app, name="marketing")
app.add_typer(healthcare_app, name="healthcare")


def _print_version(value: bool) -> None:
    if value:
        import genlab

        typer.echo(genlab.__version__)
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print genlab's version and exit.", is_eager=True, callback=_print_version
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        help="CPU threads for llama.cpp and torch (default: the physical cores; GENLAB_THREADS).",
    ),
) -> None:
    """genlab: a local-first generative AI workbench."""
    if threads is not None:
        if threads < 1:
            raise InvalidRequestError(f"--threads must be at least 1, got {threads}")
        os.environ["GENLAB_THREADS"] = str(threads)  # this process's setting, read by Settings.from_env


def _fail(message: str, code: int) -> None:
    err_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    try:
        result = app(args=argv, prog_name="genlab", standalone_mode=False)
    except GenlabError as e:
        _fail(str(e).replace("[", r"\["), e.exit_code)
    except _NoArgsIsHelpError:  # `genlab`, `genlab models add` with nothing: the help (Typer printed it)
        sys.exit(0)
    except typer.TyperException as e:  # usage mistakes: bad option, bad value, missing argument
        ctx = getattr(e, "ctx", None)
        where = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        _fail(f"{message}{where}".replace("[", r"\["), e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except BrokenPipeError:  # `genlab ... | head`: the reader left; that is not an error
        sys.stderr.close()
        sys.exit(0)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
