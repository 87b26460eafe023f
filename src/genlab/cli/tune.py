"""`genlab tune ...`: reviewers' decisions become training data, and LoRA adapters served on their base.

genlab tune data --recipe marketing-copy      # SFT rows, DPO pairs, KTO labels (+ a preview)
genlab tune lora --recipe marketing-copy      # a LoRA on the base, registered as BASE+ADAPTER
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from genlab.cli.console import console, print_json

tune_app = typer.Typer(
    help="Review that teaches: decisions -> SFT/DPO/KTO data -> LoRA adapters served on their base.",
    no_args_is_help=True,
)

_Recipe = Annotated[str, typer.Option("--recipe", help="The recipe whose review decisions teach.")]
_Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
_Min = Annotated[int, typer.Option(help="Approved or edited outputs needed to tune.", min=1)]

#: the base a tune uses when the decisions name no GGUF model
DEFAULT_BASE = "smollm2-135m-instruct"


def _rows() -> list[dict]:
    from genlab.safety.review import ReviewQueue
    from genlab.storage import Store

    store = Store()
    try:
        return ReviewQueue(store).export()
    finally:
        store.close()


def _recipe(name: str) -> str:
    from genlab.apps import tunable_recipe

    return tunable_recipe(name).name


@tune_app.command("data")
def data(
    recipe: _Recipe,
    min_decisions: _Min = 8,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count and preview; write nothing.")] = False,
    json_: _Json = False,
) -> None:
    """A recipe's review decisions as datasets in TRL's columns, written under GENLAB_HOME/datasets/tune:
    sft.jsonl (approved and edited outputs), dpo.jsonl (edits: chosen = edited, rejected = original),
    kto.jsonl (approvals and edits true, rejections and edited originals false); the prompt as the
    model saw it, redacted as the input policy left it, de-duplicated."""
    from genlab.core.settings import Settings
    from genlab.tuning.data import prepare

    out = prepare(_rows(), _recipe(recipe), Settings.from_env(), minimum=min_decisions, save=not dry_run)
    if json_:
        print_json(out)
        return
    c = out["counts"]
    console.print(
        f"{out['recipe']}: {c['decisions']} decisions -> {c['sft']} SFT rows, {c['dpo']} DPO pairs, "
        f"{c['kto']} KTO labels" + (f" (skipped: {out['skipped']})" if out["skipped"] else "")
    )
    for kind, rows in out["preview"].items():
        for row in rows:
            line = f"{kind} {json.dumps(row, ensure_ascii=False)}"
            console.print(line, soft_wrap=True, markup=False, highlight=False)
    console.print(f"written to {out['path']}" if "path" in out else "dry run: nothing written")


@tune_app.command("lora")
def lora(
    recipe: _Recipe,
    base: Annotated[
        str | None, typer.Option(help="A GGUF model to adapt (default: the model the decisions judged).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="The adapter's name (default: the recipe's).")] = None,
    steps: Annotated[int, typer.Option(help="SFT steps, one row each.", min=1)] = 24,
    dpo_steps: Annotated[int, typer.Option(help="DPO steps after SFT, on the edits' pairs.", min=0)] = 0,
    rank: Annotated[int, typer.Option(help="LoRA rank.", min=1)] = 8,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 5e-4,
    max_tokens: Annotated[int, typer.Option(help="Tokens per row at most.", min=16)] = 384,
    min_decisions: _Min = 8,
    resume: Annotated[bool, typer.Option(help="Continue the last interrupted tune of this adapter.")] = False,
    json_: _Json = False,
) -> None:
    """LoRA on the base's attention and MLP projections from the recipe's review decisions (SFT, then
    DPO on the edits with --dpo-steps), on CPU; registered as BASE+NAME, served by llama.cpp on the
    quantised base. Nothing is registered until the tune ends."""
    import shutil

    from genlab.core.settings import Settings
    from genlab.registry import Registry, validate_name
    from genlab.tuning import data as tune_data
    from genlab.tuning import lora as tune_lora

    settings = Settings.from_env()
    recipe = _recipe(recipe)
    built = tune_data.build(_rows(), recipe)
    built.require(min_decisions)
    registry = Registry(settings)
    base = base or next(iter(m for m, _ in built.models.most_common()), DEFAULT_BASE)
    base = registry.get(base).name
    name = validate_name(name or recipe)
    cfg = tune_lora.TuneConfig(
        steps=steps, dpo_steps=dpo_steps, rank=rank, lr=lr, max_tokens=max_tokens
    ).check()
    registry.gguf_path(base)  # an unknown or non-GGUF base fails before anything loads
    run_dir = settings.home / "runs" / "tune" / f"{base}+{name}"
    if not resume:
        shutil.rmtree(run_dir, ignore_errors=True)
    if not json_:
        console.print(f"reading {base} from its GGUF into float weights ...")
    with tune_lora.quiet():
        _tune(registry, base, name, cfg, built, run_dir, resume=resume, json_=json_)


def _tune(registry, base: str, name: str, cfg, built, run_dir, *, resume: bool, json_: bool) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from genlab.tuning import lora as tune_lora

    model = tune_lora.load_base(registry, base)
    manifest, rows = built.manifest(), {"sft": built.sft, "dpo": built.dpo}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=json_) as bar:
        task = bar.add_task("tuning", total=cfg.steps + (cfg.dpo_steps if built.dpo else 0), loss=0.0)
        result = tune_lora.train(
            model,
            rows,
            cfg,
            run_dir,
            resume=resume,
            progress=lambda phase, step, total, loss: bar.update(
                task, completed=step, description=phase, loss=loss
            ),
            estimate=lambda s: bar.console.print(f"estimated time: about {s:.0f} s on this machine"),
        )
    entry = tune_lora.register(registry, model, name, cfg, result, manifest)
    if json_:
        print_json({"model": entry.name, "config": entry.config, "card": entry.card.to_dict()})
        return
    console.print(
        f"{entry.name}: {result.steps} steps in {result.seconds:.0f} s (SFT loss {result.sft_loss}), "
        f"adapter {(entry.path / 'adapter.gguf').stat().st_size / 1e6:.1f} MB; "
        f'use it as --model {entry.name} or "model": "{entry.name}"'
    )
