"""Measure the scanners on labelled sets: precision, recall, F1, F2 and the false-positive rate on
benign text (`genlab guard eval`).

Sets are JSON lines. PII: ``{"text", "entities": [...]}`` (an empty list for look-alike negatives);
counted per (text, entity type). Injection: ``{"text", "label": 1|0}`` (0 for benign prompts that use
the same words, in the manner of NotInject and XSTest, to measure over-defence). Policy:
``semantic.jsonl``, ``{"text", "label": "injection"|"benign"|"S1".."S14", "split"}``: the whole
input policy (rules and the learned guardrail) on the rows of the ``heldout`` split (all rows where
there is no split), as blocked or not, per class; benign rows marked ``"kind": "ordinary"``
(everyday prompts) are counted apart from the look-alikes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from genlab.core import InvalidRequestError
from genlab.safety.guard_training import breakdown
from genlab.safety.guardrails import InjectionScanner, PIIScanner

DEFAULT_DATA = (
    Path(__file__).resolve().parent / "evalsets"
)  # shipped in the package (development set; heldout/)


def scores(tp: int, fp: int, fn: int, tn: int | None = None) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0

    def f(beta: float) -> float:
        return (1 + beta**2) * p * r / (beta**2 * p + r) if p + r else 0.0

    out = {"precision": p, "recall": r, "f1": f(1), "f2": f(2), "tp": tp, "fp": fp, "fn": fn}
    if tn is not None:
        out["false_positive_rate"] = fp / (fp + tn) if fp + tn else 0.0
        out["tn"] = tn
    return out


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise InvalidRequestError(
            f"no labelled set at {path}", hint="give --data DIR with pii.jsonl and injection.jsonl"
        )
    rows = []
    for i, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise InvalidRequestError(f"{path}:{i}: not JSON: {e.msg}") from None
    return rows


def evaluate_pii(path: Path) -> dict[str, Any]:
    scanner = PIIScanner()
    per: dict[str, list[int]] = {}
    tp = fp = fn = 0
    neg_flagged = neg_total = 0
    misses = []
    for row in _read(path):
        expected = set(row["entities"])
        found = {f.category for f in scanner.scan(row["text"]).findings}
        for e in expected | found:
            counts = per.setdefault(e, [0, 0, 0])
            counts[0 if (e in expected and e in found) else 1 if e in found else 2] += 1
        tp += len(expected & found)
        fp += len(found - expected)
        fn += len(expected - found)
        if not expected:
            neg_total += 1
            neg_flagged += bool(found)
        if expected != found:
            misses.append({"text": row["text"], "expected": sorted(expected), "found": sorted(found)})
    overall = scores(tp, fp, fn)
    overall["negative_texts_flagged"] = neg_flagged
    overall["negative_texts"] = neg_total
    return {
        "overall": overall,
        "per_entity": {e: scores(*c) for e, c in sorted(per.items())},
        "errors": misses,
    }


def evaluate_injection(path: Path, threshold: float = 0.85) -> dict[str, Any]:
    scanner = InjectionScanner(threshold=threshold)
    tp = fp = fn = tn = 0
    misses = []
    for row in _read(path):
        flagged = not scanner.scan(row["text"]).valid
        if row["label"] and flagged:
            tp += 1
        elif row["label"]:
            fn += 1
        elif flagged:
            fp += 1
        else:
            tn += 1
        if flagged != bool(row["label"]):
            misses.append({"text": row["text"], "label": row["label"], "flagged": flagged})
    return {"threshold": threshold, **scores(tp, fp, fn, tn), "errors": misses}


def evaluate_policy(path: Path, guard: Any) -> dict[str, Any]:
    """The whole input policy on a labelled set: per class, how many were blocked; precision of a
    block for injections and harmful requests; the share of benign texts blocked."""
    rows = _read(path)
    if any("split" in r for r in rows):
        rows = [r for r in rows if r.get("split") == "heldout"]
    counts = {c: {"blocked": 0, "total": 0} for c in ("injection", "harmful", "benign", "ordinary")}
    errors, verdicts = [], []
    for row in rows:
        label = row["label"] if row["label"] in ("injection", "benign") else "harmful"
        label = "ordinary" if label == "benign" and row.get("kind") == "ordinary" else label
        result = guard.check_input(row["text"])
        verdicts.append(result.blocked)
        counts[label]["total"] += 1
        counts[label]["blocked"] += result.blocked
        if result.blocked != (label in ("injection", "harmful")):
            errors.append({"text": row["text"], "label": row["label"], "blocked": result.blocked})
    blocked_benign = counts["benign"]["blocked"] + counts["ordinary"]["blocked"]
    out: dict[str, Any] = {"policy": guard.policy.name, "rows": len(rows)}
    for cls in ("injection", "harmful"):
        tp, n = counts[cls]["blocked"], counts[cls]["total"]
        other = counts["harmful" if cls == "injection" else "injection"]["blocked"]
        # a block of the other harmful class is not a false alarm; a block of a benign text is
        out[cls] = {**scores(tp, blocked_benign, n - tp), "support": n, "other_blocked": other}
    # benign look-alikes ("ignore the previous step", "a bath bomb") and ordinary prompts apart
    out["benign_blocked"] = counts["benign"]["blocked"]
    out["benign"] = counts["benign"]["total"]
    out["benign_blocked_rate"] = counts["benign"]["blocked"] / max(counts["benign"]["total"], 1)
    out["ordinary_blocked"] = counts["ordinary"]["blocked"]
    out["ordinary"] = counts["ordinary"]["total"]
    out["ordinary_blocked_rate"] = counts["ordinary"]["blocked"] / max(counts["ordinary"]["total"], 1)
    out["breakdown"] = breakdown(rows, verdicts)  # per kind, hazard category, language; 95% intervals
    out["errors"] = errors
    return out


def evaluate(data: Path | None = None, guard: Any = None) -> dict[str, Any]:
    """Every set in ``data``; with a ``guard`` (its models provided) and a ``semantic.jsonl``, the
    whole input policy too."""
    data = Path(data) if data else DEFAULT_DATA
    report: dict[str, Any] = {
        "data": str(data),
        "pii": evaluate_pii(data / "pii.jsonl"),
        "prompt_injection": {
            f"threshold_{t}": evaluate_injection(data / "injection.jsonl", t) for t in (0.5, 0.85)
        },
    }
    if guard is not None and (data / "semantic.jsonl").is_file():
        report["policy"] = evaluate_policy(data / "semantic.jsonl", guard)
    return report
