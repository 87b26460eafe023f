"""Bias-audit the models genlab ships and write each headline into its shipped card.

    python scripts/audit_shipped.py                 # the class audit of every shipped image/audio model
    python scripts/audit_shipped.py gemma-3-270m    # the default text suite on the embedded LLM (minutes)

Shipped cards live in src/genlab/shipped/<name>/card.json; the embedded Gemma's card is code
(backends/llamacpp.py), so its headline is printed for pasting into EMBEDDED_CARD.metrics.
"""

from __future__ import annotations

import json
import sys

from genlab.core.io import atomic_write_json
from genlab.evaluation.bias import run_audit
from genlab.registry import SHIPPED_DIR, Registry
from genlab.reports import write_html


def main(names: list[str]) -> None:
    registry = Registry()
    if not names:
        names = [e.name for e in registry.list() if e.card.builtin and e.kind in ("image", "audio")]
    for name in names:
        report = run_audit(name, registry=registry, write_card=False)
        write_html("bias", report["path"])
        headline = {"id": report["id"], "suite": report.get("suite", "classes"), **report["headline"]}
        card_path = SHIPPED_DIR / name / "card.json"
        if card_path.is_file():
            card = json.loads(card_path.read_text("utf-8"))
            card.setdefault("metrics", {})["bias_audit"] = headline
            atomic_write_json(card_path, card)
            print(f"{name}: {headline} -> {card_path}")
        else:
            print(f"{name}: {json.dumps(headline)}  (paste into its card)")
            print(f"  throughput {report['samples_per_second']} samples/s, {report['seconds']} s in all")


if __name__ == "__main__":
    main(sys.argv[1:])
