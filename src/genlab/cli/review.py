"""`genlab review ...` and `genlab audit verify`: the review queue and its audit log, from the terminal.

They work on the same database as `genlab serve` (GENLAB_DATABASE_URL, else GENLAB_HOME/genlab.db).
A terminal reviewer acts as ``cli:<user>`` (or ``--reviewer NAME``), like a key holder with the
reviewer role.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from genlab.cli.console import console, err_console, print_json
from genlab.core import InvalidRequestError

review_app = typer.Typer(
    help="The human review queue: list, show, approve, reject, edit, export.", no_args_is_help=True
)
audit_app = typer.Typer(
    help="Audits: the review log's hash chain (and bias audits of models).", no_args_is_help=True
)

_Reviewer = Annotated[str | None, typer.Option(help="Who decides (default: cli:<your user name>).")]
_Reason = Annotated[
    str, typer.Option("--reason", "-r", help="A reason code (`genlab review reasons` lists them).")
]
_Comment = Annotated[str, typer.Option(help="A comment for the record.")]
_Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _queue():
    from genlab.safety.review import ReviewQueue
    from genlab.storage import Store

    return ReviewQueue(Store())


def _who(reviewer: str | None) -> str:
    return reviewer or f"cli:{getpass.getuser()}"


@review_app.command("list")
def list_items(
    state: Annotated[
        str, typer.Option(help="pending, in_review, escalated, approved, edited, rejected, expired or all.")
    ] = "pending",
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    json_: _Json = False,
) -> None:
    """Items in the queue, highest priority and oldest first."""
    items = _queue().list(None if state == "all" else state, limit)
    if json_:
        print_json(items)
        return
    table = Table(title=f"review queue: {state}")
    for col in ("id", "model", "modality", "held because", "risk", "state", "due"):
        table.add_column(col)
    for i in items:
        table.add_row(
            i["id"],
            i["model"],
            i["modality"],
            i["rule"],
            f"{i['risk']:.2f}",
            i["state"],
            (i["due_at"] or "")[:16],
        )
    console.print(table if items else f"no {state} items")


@review_app.command("show")
def show(
    item_id: Annotated[str, typer.Argument(help="A review id (rev-...).")], json_: _Json = False
) -> None:
    """One item: the request, the output, the guardrail findings, the decisions."""
    item = _queue().get(item_id)
    if json_:
        print_json(item)
        return
    console.print(
        f"[bold]{item['id']}[/] {item['state']} · {item['model']} ({item['modality']}) · held: {item['rule']}"
    )
    from genlab.safety.review import outputs_of

    console.print(f"request: {json.dumps(item['request'])[:500]}")
    outputs = outputs_of(item["artifact"])
    for index, output in enumerate(outputs):  # every output the request made is held and shown
        shown = output["text"] if "text" in output else f"{output.get('path')} ({output.get('label')})"
        console.print(
            f"output {index} of {len(outputs)}: {shown}" if len(outputs) > 1 else f"output: {shown}"
        )
    for f in item["findings"]:
        console.print(
            f"  finding [{f.get('where')}] {f.get('scanner')}: {f.get('category')} {f.get('text', '')!r} ({f.get('action')})"
        )
    for d in item.get("decisions", []):
        console.print(
            f"  {d['created_at'][:19]} {d['reviewer']}: {d['verdict']} ({d['reason_code']}) {d['comment']}"
        )


def _decide(
    item_id: str,
    verdict: str,
    reason: str,
    comment: str,
    reviewer: str | None,
    edited=None,
    json_=False,
    output: int = 0,
) -> None:
    """A terminal reviewer is the local user: the CLI's and an open server's requests are theirs."""
    from genlab.safety.review import LOCAL_OWNER

    item = _queue().decide(
        item_id,
        _who(reviewer),
        verdict,
        reason,
        comment=comment,
        edited=edited,
        output=output,
        identity=LOCAL_OWNER,
    )
    if json_:
        print_json(item)
    else:
        console.print(f"{item['id']}: {item['state']}")


@review_app.command("approve")
def approve(
    item_id: Annotated[str, typer.Argument()],
    reason: _Reason = "ok",
    comment: _Comment = "",
    reviewer: _Reviewer = None,
    json_: _Json = False,
) -> None:
    """Release the item as it is."""
    _decide(item_id, "approve", reason, comment, reviewer, json_=json_)


@review_app.command("reject")
def reject(
    item_id: Annotated[str, typer.Argument()],
    reason: _Reason,
    comment: _Comment = "",
    reviewer: _Reviewer = None,
    json_: _Json = False,
) -> None:
    """Never release the item; the reason says why."""
    _decide(item_id, "reject", reason, comment, reviewer, json_=json_)


@review_app.command("escalate")
def escalate(
    item_id: Annotated[str, typer.Argument()],
    reason: _Reason = "needs_expert",
    comment: _Comment = "",
    reviewer: _Reviewer = None,
    json_: _Json = False,
) -> None:
    """Hand the item to another reviewer."""
    _decide(item_id, "escalate", reason, comment, reviewer, json_=json_)


@review_app.command("edit")
def edit(
    item_id: Annotated[str, typer.Argument()],
    text: Annotated[str | None, typer.Option(help="The corrected text (text and code items).")] = None,
    file: Annotated[
        Path | None, typer.Option(help="A corrected .png (image items) or .wav (audio items).")
    ] = None,
    output: Annotated[
        int, typer.Option(help="Which output the correction replaces (`review show` numbers them).")
    ] = 0,
    reason: _Reason = "minor_fix",
    comment: _Comment = "",
    reviewer: _Reviewer = None,
    json_: _Json = False,
) -> None:
    """Release a corrected version instead of the original (of the item's own modality); the
    request's other outputs are released as they were reviewed."""
    import base64

    if (text is None) == (file is None):
        raise InvalidRequestError("give the correction as --text or as --file, one of them")
    if file is not None:
        if not file.is_file():
            raise InvalidRequestError(f"no such file: {file}")
        key = {".png": "b64_png", ".wav": "b64_wav"}.get(file.suffix.lower())
        if key is None:
            raise InvalidRequestError(f"--file takes a .png or a .wav, not {file.suffix or file.name}")
        edited = {key: base64.b64encode(file.read_bytes()).decode("ascii")}
    else:
        edited = {"text": text}
    _decide(item_id, "edit", reason, comment, reviewer, edited=edited, json_=json_, output=output)


@review_app.command("reasons")
def reasons(json_: _Json = False) -> None:
    """The reason codes a decision can give."""
    from genlab.safety.review import REASON_CODES

    if json_:
        print_json(REASON_CODES)
        return
    for code, meaning in REASON_CODES.items():
        console.print(f"{code:>18}  {meaning}")


@review_app.command("export")
def export(
    format_: Annotated[str, typer.Option("--format", help="jsonl (one decided item per line).")] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="Write here instead of to stdout.")] = None,
) -> None:
    """Decided items as JSONL: prompt, output, decision, edited output (chosen/rejected pairs for
    preference tuning where a reviewer edited)."""
    if format_ != "jsonl":
        raise InvalidRequestError(f"unknown format {format_!r}; expected jsonl")
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _queue().export())
    if out is None:
        typer.echo(lines, nl=False)
    else:
        from genlab.core.io import atomic_write_bytes

        atomic_write_bytes(out, lines.encode("utf-8"))
        console.print(f"{lines.count(chr(10))} decided items -> {out}")


@review_app.command("stats")
def stats(json_: _Json = False) -> None:
    """Items per state, and per guardrail scanner the reviewers' verdicts on its flags: false positives
    (flagged but approved) and false negatives (not flagged, rejected for its reason), to tune thresholds."""
    queue = _queue()
    data = {"states": queue.counts(), "scanners": queue.scanner_feedback()}
    if json_:
        print_json(data)
        return
    console.print(" · ".join(f"{k} {v}" for k, v in data["states"].items()))
    table = Table(title="guardrail scanners, judged by reviewers")
    for col in ("scanner", "true positives", "false positives", "false negatives"):
        table.add_column(col, justify="right")
    for scanner, c in sorted(data["scanners"].items()):
        table.add_row(scanner, str(c["true_positives"]), str(c["false_positives"]), str(c["false_negatives"]))
    console.print(table)


@audit_app.command("verify")
def verify_audit(json_: _Json = False) -> None:
    """Recompute the review log's hash chain; name any edited, deleted or reordered event (exit 1)."""
    report = _queue().verify()
    if json_:
        print_json(report.to_dict())
    elif report.ok:
        console.print(f"[green]audit log intact: {report.events} events, hash chain verified[/]")
    else:
        for p in report.problems:
            console.print(f"[red]{p}[/]")
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("bias")
def audit_bias(
    model: Annotated[
        str,
        typer.Option("--model", "-m", help="Any text model, or a class-conditional image or audio model."),
    ],
    suite: Annotated[
        str | None,
        typer.Option(help="A shipped suite (default, quick; classes for images and audio) or a YAML path."),
    ] = None,
    samples: Annotated[
        int | None, typer.Option(help="Samples per prompt (text) or per class (images, audio).")
    ] = None,
    fail_on_gap: Annotated[
        float | None,
        typer.Option(
            help="Exit 1 when the largest gap (sentiment for text, class accuracy otherwise) exceeds this "
            "and is statistically significant (p < 0.05); a larger but insignificant gap is reported."
        ),
    ] = None,
    json_: _Json = False,
) -> None:
    """Audit how a model treats groups of people (text) or classes (images, audio), with confidence
    intervals and permutation tests; writes JSON and an HTML report with plots under GENLAB_HOME/audits,
    records it, and puts the headline into the model's card."""
    from rich.progress import Progress

    from genlab.evaluation.bias import run_audit
    from genlab.storage import Store

    if fail_on_gap is not None and fail_on_gap < 0:
        raise InvalidRequestError(f"--fail-on-gap must be a non-negative number, got {fail_on_gap}")
    store = Store()
    try:
        with Progress(disable=json_, transient=True) as bar:
            task = bar.add_task("auditing", total=None)
            from genlab.reports import write_html

            report = run_audit(
                model,
                suite=suite,
                samples=samples,
                store=store,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
            write_html("bias", report["path"])
    finally:
        store.close()
    if json_:
        print_json(report)
    else:
        if report["kind"] == "text":
            table = Table(
                title=f"bias audit of {model}: suite {report['suite']} ({report['generations']} generations)"
            )
            for col in (
                "axis",
                "largest sentiment gap",
                "between",
                "p (permutation)",
                "detectable gap",
                "toxic parity diff.",
                "refusal parity diff.",
            ):
                table.add_column(col)
            for axis, a in report["axes"].items():
                table.add_row(
                    axis,
                    f"{a['largest_gap']['sentiment']:.3f}",
                    " vs ".join(a["largest_gap"]["between"]),
                    f"{a['p_value']:.3f}",
                    f"{a['minimum_detectable_gap']:.3f}",
                    f"{a['parity']['toxic_rate']['difference']:.3f}",
                    f"{a['parity']['refusal_rate']['difference']:.3f}",
                )
        else:
            table = Table(title=f"class audit of {model} ({report['samples_per_class']} per class)")
            for col in (
                "class",
                "accuracy",
                "precision",
                "generated share",
                "training share",
                "FID vs its class",
            ):
                table.add_column(col)
            for c, v in report["classes"].items():
                table.add_row(
                    c,
                    str(v["accuracy"]),
                    str(v["precision"]),
                    str(v["share_generated"]),
                    str(v["share_training"]),
                    str(v["fid"]),
                )
        console.print(table)
        console.print(f"report: {report['path']}/report.html")
    if fail_on_gap is not None and report["gap"] > fail_on_gap:
        gap, p, detectable = report["gap"], report["gap_p_value"], report["gap_detectable"]
        evidence = f"p = {p:.3f}, smallest detectable gap {detectable:.3f}"
        if p < 0.05:
            err_console.print(
                f"[red]largest gap {gap:.3f} exceeds --fail-on-gap {fail_on_gap} ({evidence})[/]"
            )
            raise typer.Exit(1)
        err_console.print(
            f"[yellow]largest gap {gap:.3f} exceeds --fail-on-gap {fail_on_gap} but is not significant "
            f"({evidence}): not failing; more --samples would tell[/]"
        )
