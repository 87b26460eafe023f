"""Score a model on a recipe's evaluation set, and the tutor on simulated learners.

Every recipe ships an evaluation set (``data/<industry>/<recipe>-eval.yaml``) and a ``score`` of
one result; ``evaluate`` runs the set through the whole recipe pipeline (guardrails included, no
review queue) and reports the mean of each metric, the latency per case and per model call, and
each case's row. Reports are JSON under ``GENLAB_HOME/reports/apps``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from genlab.apps.education import Course, simulate
from genlab.apps.recipe import Recipe, run_recipe
from genlab.core import Generator
from genlab.core.io import atomic_write_json
from genlab.core.settings import Settings


def evaluate(
    recipe: Recipe,
    generator: Generator,
    *,
    limit: int | None = None,
    seed: int = 0,
    on_case: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    cases = recipe.eval_cases()[: limit or None]
    rows = []
    started = time.perf_counter()
    for case in cases:
        result = run_recipe(recipe, recipe.case_input(case), generator=generator, seed=seed)
        row = {
            "id": case["id"],
            "latency_s": result.latency_s,
            "model_s": result.model_s,
            "calls": result.calls,
            "attempts": result.attempts,
            **recipe.score(case, result),
        }
        rows.append(row)
        if on_case is not None:
            on_case(row)
    names = (
        [k for k in rows[0] if k not in ("id", "latency_s", "model_s", "calls", "attempts")]
        if rows
        else [recipe.metric]
    )
    metrics = {k: _mean([r[k] for r in rows]) for k in names}
    calls = sum(r["calls"] for r in rows)
    caught = checks_caught(recipe)
    return {
        "check_cases": caught,
        "recipe": recipe.name,
        "model": generator.card.name,
        "metric": recipe.metric,
        "score": metrics.get(recipe.metric),
        "metrics": metrics,
        "cases": len(rows),
        "seed": seed,
        "latency_s_per_case": _mean([r["latency_s"] for r in rows]),
        "latency_s_per_call": round(sum(r["latency_s"] for r in rows) / calls, 3) if calls else None,
        "model_share": round(
            sum(r["model_s"] for r in rows) / max(sum(r["latency_s"] for r in rows), 1e-9), 3
        ),
        "wall_s": round(time.perf_counter() - started, 2),
        "rows": rows,
    }


def checks_caught(recipe: Recipe) -> dict[str, Any] | None:
    """The recipe's checks on its known-wrong outputs: how many each catches (all, or the checks
    cannot be trusted to catch what the model gets wrong)."""
    cases = recipe.check_cases()
    if not cases:
        return None
    missed = []
    for i, case in enumerate(cases):
        failed = {c.name for c in recipe.judge(case) if not c.passed}
        missed += [f"case {i + 1}: {name!r} passed" for name in case["must_fail"] if name not in failed]
    return {
        "cases": len(cases),
        "caught": len(cases) - len({m.split(":")[0] for m in missed}),
        "missed": missed,
    }


def evaluate_tutor(course: str = "python-basics", *, learners: int = 500, seed: int = 0) -> dict[str, Any]:
    started = time.perf_counter()
    result = simulate(Course.load(course), learners=learners, seed=seed)
    return {
        "recipe": "tutor",
        "model": "bkt",
        "course": course,
        "metric": "adaptive_learned_rate",
        "score": result["adaptive_learned_rate"],
        "metrics": result,
        "wall_s": round(time.perf_counter() - started, 2),
    }


def save_report(report: dict[str, Any], settings: Settings | None = None) -> Path:
    settings = settings or Settings.from_env()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = settings.reports_dir / "apps" / f"{report['recipe']}-{report['model']}-{stamp}.json"
    return atomic_write_json(path, report)


def _mean(values: list[float]) -> float:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return round(sum(values) / len(values), 4) if values else float("nan")
