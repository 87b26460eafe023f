"""The industry recipes on their evaluation sets, with the embedded model (or any text model).

Per recipe: the headline quality score and the other metrics of its set, latency per case and per
model call, and the model's share of the wall time (the rest is the recipe's own work: guardrails,
parsing, checks, and for test generation the sandboxed pytest runs). The tutor is measured on
simulated learners (BKT-adaptive against a fixed curriculum at the same number of questions).

    python bench/apps.py [--model gemma-3-270m] [--recipes quiz,docstrings] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "apps.json"


def main() -> None:
    from genlab.apps import RECIPES
    from genlab.apps.evaluate import evaluate, evaluate_tutor
    from genlab.registry import default_registry

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--recipes", default=",".join([*RECIPES, "tutor"]))
    parser.add_argument("--limit", type=int, default=None, help="Cases per recipe (default: all).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console(width=160)
    generator = default_registry().load(args.model)
    reports = {}
    for name in args.recipes.split(","):
        console.print(f"[dim]{name} ...[/]")
        if name == "tutor":
            reports[name] = evaluate_tutor(seed=args.seed)
        else:
            reports[name] = evaluate(RECIPES[name], generator, limit=args.limit, seed=args.seed,
                                     on_case=lambda row: console.print(f"[dim]  {row}[/]"))  # fmt: skip
    table = Table(title=f"genlab recipes with {args.model}")
    for col in (
        "recipe",
        "cases",
        "headline",
        "score",
        "other metrics",
        "s / case",
        "s / call",
        "model share",
    ):
        table.add_column(
            col, justify="right" if col not in ("recipe", "headline", "other metrics") else "left"
        )
    for name, r in reports.items():
        others = ", ".join(
            f"{k} {v:.3g}" for k, v in r["metrics"].items() if k != r["metric"] and isinstance(v, float)
        )
        table.add_row(name, str(r.get("cases", r["metrics"].get("learners", ""))), r["metric"], f"{r['score']:.3f}", others,
                      f"{r['latency_s_per_case']:.1f}" if "latency_s_per_case" in r else "",
                      f"{r['latency_s_per_call']:.2f}" if r.get("latency_s_per_call") else "",
                      f"{r['model_share']:.2f}" if "model_share" in r else "")  # fmt: skip
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text("utf-8")) if RESULTS.is_file() else {}
    if previous.get("model") == args.model:  # a run of some recipes updates their entries only
        reports = {**previous.get("reports", {}), **reports}
    RESULTS.write_text(json.dumps({"model": args.model, "machine": platform.platform(), "python": sys.version.split()[0],
                                   "reports": reports}, indent=2) + "\n", "utf-8")  # fmt: skip
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
