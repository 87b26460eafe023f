"""PII recall and precision on the held-out labelled sets, with Wilson 95% intervals, and the PII
scanner's latency (the named-entity model included) at 200 and 2,000 characters. Counted per
(text, entity type), as `genlab guard eval` counts. Writes bench/results/pii.json.

    python bench/pii.py [--repeats 30]

``heldout/pii_ner.jsonl`` was scored once before the named-entity fixes its misses suggested, so
its figure after them is not a held-out figure; ``heldout/pii_ner2.jsonl`` was written after that
and is scored here for the first time with the fixed scanner (docs/guardrails.md gives both).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from genlab.safety.evaluate import DEFAULT_DATA, evaluate_pii
from genlab.safety.guardrails import PIIScanner

RESULTS = Path(__file__).parent / "results" / "pii.json"
SETS = ["pii.jsonl", "heldout/pii.jsonl", "heldout/pii_ner.jsonl", "heldout/pii_ner2.jsonl"]
TEXT = (
    "Please forward the contract to Helena Marchetti before Friday; she lives at 12 Rosebank Close. "
    "The build 2.10.11 fixed JIRA-12345. Call +44 7911 123456 if the card 4532 0151 1283 0366 fails. "
)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of k successes in n (the 95% interval by default)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def latency(chars: int, repeats: int) -> dict[str, float]:
    text = (TEXT * (chars // len(TEXT) + 1))[:chars]
    scanner = PIIScanner()
    scanner.scan(text)  # loads the model
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        scanner.scan(text)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"p50_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    table = Table("set", "texts", "precision [95% CI]", "recall [95% CI]", "negatives flagged")
    out: dict = {"machine": platform.processor() or platform.machine(), "sets": {}}
    for name in SETS:
        report = evaluate_pii(DEFAULT_DATA / name)
        o = report["overall"]
        p_ci, r_ci = wilson(o["tp"], o["tp"] + o["fp"]), wilson(o["tp"], o["tp"] + o["fn"])
        texts = sum(1 for line in (DEFAULT_DATA / name).read_text("utf-8").splitlines() if line.strip())
        out["sets"][name] = {**o, "precision_ci": p_ci, "recall_ci": r_ci, "errors": report["errors"]}
        table.add_row(
            name,
            str(texts),
            f"{o['precision']:.3f} [{p_ci[0]:.2f}, {p_ci[1]:.2f}]",
            f"{o['recall']:.3f} [{r_ci[0]:.2f}, {r_ci[1]:.2f}]",
            f"{o['negative_texts_flagged']}/{o['negative_texts']}",
        )
    out["latency"] = {str(n): latency(n, args.repeats) for n in (200, 2000)}
    console = Console()
    console.print(table)
    for n, s in out["latency"].items():
        console.print(f"pii scanner at {n} characters: p50 {s['p50_ms']:.1f} ms, p95 {s['p95_ms']:.1f} ms")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
