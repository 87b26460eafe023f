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
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from genlab.core import InvalidRequestError
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


def read_rows(path: Path) -> list[dict[str, Any]]:
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
    for row in read_rows(path):
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
    for row in read_rows(path):
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


def _category_order(label: str) -> tuple[int, str]:
    return (int(label[1:]), label) if label[1:].isdigit() else (0, label)


def wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    """The 95% Wilson score interval of a proportion k/n."""
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def breakdown(blocked: np.ndarray, rows: list[dict]) -> dict[str, Any]:
    """Blocked share per group (harmful, injection, look-alike, ordinary; per category; per
    language for the harmful and injection rows), each with its 95% interval."""

    def share(mask: np.ndarray) -> dict[str, Any]:
        k, n = int(blocked[mask].sum()), int(mask.sum())
        return {"blocked": k, "total": n, "rate": round(k / max(n, 1), 4), "ci95": wilson(k, n)}

    label = np.array([r["label"] for r in rows])
    kind = np.array([r.get("kind", "") for r in rows])
    lang = np.array([r.get("lang", "") for r in rows])
    harmful = np.char.startswith(label.astype(str), "S")
    bad = harmful | (label == "injection")
    out = {
        "harmful": share(harmful),
        "injection": share(label == "injection"),
        "look_alike": share((label == "benign") & (kind != "ordinary")),
        "ordinary": share((label == "benign") & (kind == "ordinary")),
        "per_category": {
            c: share(label == c)
            for c in sorted(set(label.tolist()) - {"benign"}, key=_category_order)
            if (label == c).any()
        },
        "per_language": {g: share(bad & (lang == g)) for g in sorted(set(lang)) if (bad & (lang == g)).any()},
        "benign_per_language": {
            g: share(~bad & (lang == g)) for g in sorted(set(lang)) if (~bad & (lang == g)).any()
        },
    }
    return out


def evaluate_policy(path: Path, guard: Any) -> dict[str, Any]:
    """The whole input policy on a labelled set: per class, how many were blocked; precision of a
    block for injections and harmful requests; the share of benign texts blocked."""
    rows = read_rows(path)
    if any("split" in r for r in rows):
        rows = [r for r in rows if r.get("split") == "heldout"]
    counts = {c: {"blocked": 0, "total": 0} for c in ("injection", "harmful", "benign", "ordinary")}
    errors, blocked = [], []
    for row in rows:
        label = row["label"] if row["label"] in ("injection", "benign") else "harmful"
        label = "ordinary" if label == "benign" and row.get("kind") == "ordinary" else label
        result = guard.check_input(row["text"])
        counts[label]["total"] += 1
        counts[label]["blocked"] += result.blocked
        blocked.append(result.blocked)
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
    out["breakdown"] = breakdown(np.array(blocked, bool), rows)
    out["errors"] = errors
    return out


def policy_latency(guard: Any, rows: list[dict], chars: int = 2_000, repeats: int = 30) -> dict[str, Any]:
    """p50 and p95 (ms) of the whole input policy on texts of ``chars`` characters made of held-out
    benign rows (every language, joined as one document: what an ordinary long request costs)."""
    benign = [r["text"] for r in rows if r["label"] == "benign" and r.get("split", "heldout") == "heldout"]
    benign = benign or [r["text"] for r in rows] or ["The meeting moved to Thursday."]
    texts = []
    for k in range(repeats):
        text, i = "", k * 7
        while len(text) < chars:
            text += benign[i % len(benign)] + " "
            i += 1
        texts.append(text[:chars])
    guard.check_input(texts[0])  # warm-up: the tokenizer and weights load once per process
    times = []
    for text in texts:
        start = time.perf_counter()
        guard.check_input(text)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]
    return {
        "chars": chars,
        "repeats": repeats,
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(p95, 2),
    }


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
        report["policy"]["latency"] = policy_latency(guard, read_rows(data / "semantic.jsonl"))
    return report
