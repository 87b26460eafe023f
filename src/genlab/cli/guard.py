"""`genlab guard check`: run a guardrail policy over a text and show every finding with its span."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from genlab.cli.console import console, print_json

app = typer.Typer(
    help="Usage guardrails: check text against a policy, measure it, retrain the learned guardrail.",
    no_args_is_help=True,
)


@app.command()
def check(
    text: Annotated[str, typer.Argument(help="The text to check; '-' reads standard input.")],
    policy: Annotated[
        str, typer.Option(help="A shipped policy name or a path to a policy YAML file.")
    ] = "default",
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Scan a text with every scanner of a policy; show what a model would receive of it (the
    input policy's text: only a redaction or sanitising changes it, never a warn or a flag); exit
    1 if the policy would block it."""
    from genlab.safety.guardrails import Vault
    from genlab.safety.policy import Guard, Policy

    if text == "-":
        text = sys.stdin.read()
    guard = Guard(Policy.load(policy))
    provide_models(guard.policy)
    result = guard.scan_all(text)
    received = guard.check_input(text, Vault())  # as the pipeline calls it: numbered placeholders
    if json_:
        print_json({**result.to_dict(), "model_receives": None if received.blocked else received.text})
    else:
        shown = Text(text)
        for f in result.findings:
            if f.end <= len(text) and text[f.start : f.end] == f.text:
                shown.stylize("bold red underline", f.start, f.end)
        console.print(shown)
        table = Table("scanner", "action", "category", "span", "score", "why")
        for r in result.results:
            for f in r.findings:
                table.add_row(
                    r.scanner,
                    result.actions.get(r.scanner, ""),
                    f.category,
                    f"{f.start}-{f.end}",
                    f"{f.score:.2f}",
                    f.explanation,
                )
            if r.error:
                table.add_row(
                    r.scanner, result.actions.get(r.scanner, ""), "scanner_error", "", "1.00", r.error
                )
        console.print(table if table.row_count else "[green]no findings[/]")
        console.print(f"decision: [bold]{result.decision}[/]")
        if received.blocked:
            console.print("the model receives: nothing (the input policy blocks it)")
        elif received.text == text:
            console.print("the model receives: the text as written")
        else:
            console.print("the model receives:", Text(received.text))
    if result.blocked:
        raise typer.Exit(1)


def provide_models(policy) -> None:
    """Load the guardrail models a policy's scanners read with (the learned guardrail's embedding
    model, an LLM judge's chat model) only when it has such scanners."""
    names = {rule.scanner.name for rule in policy.input + policy.output}
    if names & {"semantic", "llm_judge"}:
        from genlab.pipeline import provide_guard_models
        from genlab.registry import default_registry

        provide_guard_models(default_registry())


@app.command("eval")
def eval_(
    data: Annotated[
        str | None,
        typer.Option(
            help="Folder with pii.jsonl and injection.jsonl (default: the sets shipped in the package)."
        ),
    ] = None,
    policy: Annotated[
        str,
        typer.Option(
            help="The policy run over semantic.jsonl's held-out rows (injections, harmful requests, "
            "benign look-alikes): a shipped name or a YAML path."
        ),
    ] = "default",
    json_: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Precision, recall, F1, F2 and false-positive rate of the PII and injection rules, and of the
    whole input policy (rules and the learned guardrail) on the held-out injections, harmful
    requests and benign look-alikes."""
    from pathlib import Path

    from genlab.safety.evaluate import evaluate
    from genlab.safety.policy import Guard, Policy

    guard = Guard(Policy.load(policy))
    provide_models(guard.policy)
    report = evaluate(Path(data) if data else None, guard)
    if json_:
        print_json(report)
        return
    table = Table("scanner", "set", "precision", "recall", "F1", "F2", "false positives")
    pii = report["pii"]["overall"]
    table.add_row(
        "pii",
        "all entities",
        *(f"{pii[k]:.3f}" for k in ("precision", "recall", "f1", "f2")),
        f"{pii['negative_texts_flagged']}/{pii['negative_texts']} negative texts",
    )
    for entity, s in report["pii"]["per_entity"].items():
        table.add_row("", entity, *(f"{s[k]:.3f}" for k in ("precision", "recall", "f1", "f2")), f"{s['fp']}")
    for name, s in report["prompt_injection"].items():
        table.add_row(
            "prompt_injection",
            name,
            *(f"{s[k]:.3f}" for k in ("precision", "recall", "f1", "f2")),
            f"{s['false_positive_rate']:.1%} of benign",
        )
    whole = report.get("policy")
    for cls in ("injection", "harmful") if whole else ():
        s = whole[cls]
        table.add_row(
            f"policy {whole['policy']}",
            f"{cls} (held out, {s['support']})",
            *(f"{s[k]:.3f}" for k in ("precision", "recall", "f1", "f2")),
            f"{whole['benign_blocked']}/{whole['benign']} look-alikes, "
            f"{whole['ordinary_blocked']}/{whole['ordinary']} ordinary blocked",
        )
    console.print(table)
    if whole:
        console.print(breakdown_table(whole["breakdown"], f"policy {whole['policy']}, held-out split"))


def breakdown_table(breakdown: dict, title: str) -> Table:
    """Blocked rates per kind, hazard category and language, with Wilson 95% intervals."""
    table = Table("part", "group", "blocked", "95% interval", "n", title=title)
    for part, groups in breakdown.items():
        for name, s in groups.items():
            low, high = s["ci95"]
            table.add_row(part, name, f"{s['blocked']:.1%}", f"{low:.1%} - {high:.1%}", str(s["n"]))
    return table


def verify(
    file: Annotated[
        str, typer.Argument(help="An image (.png, .jpg ...), audio (.wav, .flac ...), .json or .txt file.")
    ],
    json_: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Say whether genlab made a file, with which model and seed, and whether its content changed since.

    Images and audio are also checked for genlab's invisible watermark, which survives re-encoding
    (JPEG, resizing, resampling, noise) that strips the metadata. Exits 1 when genlab did not make
    the file or its content changed.
    """
    from genlab.safety.provenance import verify as verify_file

    verdict = verify_file(file)
    if json_:
        print_json(verdict.to_dict())
    else:
        style = "green" if verdict.trusted else "red"
        console.print(f"[{style}]{verdict.detail}[/]")
    if not verdict.trusted:
        raise typer.Exit(1)


@app.command()
def train(
    extra: Annotated[
        list[str] | None,
        typer.Option(
            help='A JSONL file of labelled rows ({"text", "label"}: benign, injection, S1-S14); repeatable.'
        ),
    ] = None,
    appeals: Annotated[
        bool, typer.Option(help="Add this home's reviewed appeals (approved: benign).")
    ] = True,
    limit: Annotated[
        int | None,
        typer.Option(
            min=50, help="At most this many shipped rows per split, drawn at random (a quick trial)."
        ),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the before/after figures as JSON.")] = False,
) -> None:
    """Retrain the learned guardrail on the shipped set plus this home's reviewed appeals and any
    --extra rows; write it to GENLAB_HOME/guard/ (which this home's guard then reads; delete the
    folder to go back to the shipped weights) and print the held-out blocked rates before and after."""
    from genlab.core.settings import Settings
    from genlab.registry import default_registry
    from genlab.safety import semantic
    from genlab.safety.guard_training import shipped_rows
    from genlab.safety.guard_training import train as fit

    settings = Settings.from_env()
    added = [row for path in extra or [] for row in read_rows(path)]
    if appeals:
        added += reviewed_rows()
    before = semantic_figures(settings)
    registry = default_registry()
    with console.status("training the guardrail") as status:
        meta = fit(
            sample(shipped_rows(), limit) + [{**r, "split": "train"} for r in added],
            registry.guard_features,
            settings.guard_dir,
            progress=lambda line: status.update(line),
        )
    semantic.use_weights(settings.guard_dir)
    after = meta["heldout"]["kind"]
    if json_:
        print_json(
            {"added_rows": len(added), "before": before, "after": after, "weights": str(settings.guard_dir)}
        )
        return
    table = Table("held-out", "before", "after", "n")
    for kind, now in after.items():
        was = before.get(kind, {}).get("blocked")
        table.add_row(kind, "-" if was is None else f"{was:.1%}", f"{now['blocked']:.1%}", str(now["n"]))
    console.print(table)
    console.print(
        f"trained on {meta['trained_on']['train']} rows ({len(added)} added); weights in {settings.guard_dir}"
    )


def sample(rows: list[dict], limit: int | None) -> list[dict]:
    """At most ``limit`` rows of each split (seeded, so a rerun draws the same)."""
    import random

    if limit is None:
        return rows
    out = []
    for split in ("train", "calibration", "heldout"):
        part = [r for r in rows if r.get("split") == split]
        out += random.Random(0).sample(part, min(limit, len(part)))
    return out


def read_rows(path: str) -> list[dict]:
    """A JSONL file of labelled rows, checked; one line on a bad file or row."""
    import json
    from pathlib import Path

    from genlab.core import InvalidRequestError
    from genlab.safety.guard_training import validate_rows

    try:
        lines = Path(path).read_text("utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InvalidRequestError(
            f"{path}: not a readable JSONL file ({e})", hint="one JSON object per line"
        ) from e
    return validate_rows(rows, path)


def reviewed_rows() -> list[dict]:
    from genlab.safety.appeals import reviewed_examples
    from genlab.storage import Store

    return [
        {"text": text, "label": label, "group": f"appeal/{i}"}
        for i, (text, label) in enumerate(reviewed_examples(Store()))
    ]


def semantic_figures(settings) -> dict:
    """The held-out figures recorded with the weights this home reads now."""
    from genlab.safety import semantic

    semantic.use_weights(settings.guard_dir)
    return semantic.weights().get("heldout", {}).get("kind", {})
