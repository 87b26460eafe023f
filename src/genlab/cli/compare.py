"""`genlab compare`: every family on every modality it fits, measured side by side (evaluation/compare.py)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from genlab.cli.console import console, err_console, print_json
from genlab.reports import write_html

COLUMNS = (
    "family",
    "modality",
    "model",
    "params",
    "train s",
    "sample s/item",
    "quality",
    "floor",
    "class acc.",
    "likelihood",
    "diversity",
)


def _num(value, fmt: str = ".3f") -> str:
    return "" if value is None else format(value, fmt)


def compare_table(report: dict) -> Table:
    """One row per cell, one value per column (the HTML report's columns)."""
    table = Table(title=f"genlab compare ({report['budget']['name']}, {report['wall_seconds']} s)")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("family", "modality", "model") else "right")
    for r in report["cells"]:
        if r["status"] != "ok":
            table.add_row(
                r["family"], r["modality"], f"[red]failed: {r['error']}[/]", *[""] * (len(COLUMNS) - 3)
            )
            continue
        q, lk, dv = r["quality"], r.get("likelihood"), r.get("diversity") or {}
        accuracy = _num(r.get("class_accuracy"))
        if accuracy and r.get("class_accuracy_floor") is not None:
            accuracy += f" ({r['class_accuracy_floor']:.3f})"
        if r.get("word_accuracy") is not None:  # audio: what Whisper hears (real clips in brackets)
            accuracy += f"; words {r['word_accuracy']:.2f} ({r['word_accuracy_real']:.2f})"
        row = (
            r["family"],
            r["modality"],
            r["model"],
            f"{r['parameters']:,}" if r.get("parameters") else "?",
            str(r.get("train_seconds") or ("shipped" if not r.get("trained_here") else "?")),
            f"{r['sampling_seconds_per_item']:.3g}",
            f"{q['metric']} {q['value']:.3f}",
            _num(q.get("floor")),
            accuracy,
            _num(lk["value"]) if lk else "",
            _num(dv.get("value")),
        )
        assert len(row) == len(COLUMNS)
        table.add_row(*row)
    return table


def compare(
    budget: Annotated[
        str,
        typer.Option(
            help="small (the shipped models, the rest trained 45 s each; under 10 "
            "minutes on 2 cores) or full (every cell trained 10 minutes)."
        ),
    ] = "small",
    modality: Annotated[
        list[str] | None, typer.Option(help="Only this modality: text, code, image or audio (repeatable).")
    ] = None,
    fresh: Annotated[bool, typer.Option(help="Start again instead of resuming the finished cells.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Train (or load the shipped) models of every family on every modality, evaluate them with the
    shared metrics, and write report.json and report.html (the studio shows the latest at /studio/compare).

    A rerun resumes: finished cells are kept. A family that fails is reported in the report.
    """
    from genlab.evaluation.compare import budget_for, run_compare

    budget_for(budget)  # an unknown budget fails before anything runs

    started = time.perf_counter()

    def on_cell(cell, result) -> None:
        if result is None:
            err_console.print(f"[dim]{cell.key} ... ({time.perf_counter() - started:.0f} s so far)[/]")
        elif result["status"] == "ok":
            q = result["quality"]
            err_console.print(
                f"[green]✓[/] {cell.key}: {q['metric']} {q['value']:.3f} ({result['seconds']} s)"
            )
        else:
            err_console.print(f"[red]✗[/] {cell.key}: {result['error']}", highlight=False)

    report = run_compare(budget, fresh=fresh, modalities=modality, on_cell=None if json_ else on_cell)
    write_html("compare", report["dir"])
    if json_:
        print_json(report)
        return
    console.print(compare_table(report))
    err_console.print(
        "quality: FID (images, audio) or bits per character (text, code), lower is better. floor: the "
        "same metric for real data (as many training images as samples, against the held-out set) or "
        "a unigram model (text); it carries its own sampling noise, so a model at or below it is at "
        "real-data level on this metric, not better than real data. class acc.: the shipped "
        "classifier's accuracy on conditional samples (real held-out data in brackets), and for audio the "
        "share of clips whisper-tiny-en hears as the right digit. likelihood: "
        "bits per dim or per character; diversity: recall or distinct bigrams"
    )
    err_console.print(f"report: {report['dir']}/report.html")
