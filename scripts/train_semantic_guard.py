"""Train the semantic guardrail: a logistic regression on all-MiniLM-L6-v2 embeddings of the
labelled set ``safety/evalsets/semantic.jsonl`` (written for genlab: prompt injections and
jailbreaks, harmful requests by MLCommons hazard category, and benign look-alikes), on its train
split only; the held-out split is scored and recorded, never tuned on. Writes the weights as JSON
(no pickle) to ``src/genlab/safety/semantic_guard.json``.

    python scripts/train_semantic_guard.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent / "src" / "genlab" / "safety"
DATA = ROOT / "evalsets" / "semantic.jsonl"
OUT = ROOT / "semantic_guard.json"


def coarse(label: str) -> str:
    return label if label in ("benign", "injection") else "harmful"


def decide(probs: np.ndarray, classes: list[str], threshold: float) -> np.ndarray:
    """A class other than benign only when its probability reaches the threshold."""
    out = []
    for p in probs:
        best = int(np.argmax([0 if c == "benign" else p[i] for i, c in enumerate(classes)]))
        out.append(classes[best] if p[best] >= threshold else "benign")
    return np.array(out)


def choose_threshold(x: np.ndarray, y: np.ndarray, folds: int = 5, max_benign_flagged: float = 0.05) -> float:
    """The lowest threshold whose cross-validated rate of flagged benign texts is at most 5%."""
    from sklearn.model_selection import StratifiedKFold

    probs = np.zeros((len(y), 3))
    classes = sorted(set(y))
    for fit, test in StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y):
        m = LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced").fit(x[fit], y[fit])
        probs[test] = m.predict_proba(x[test])
    for threshold in np.arange(0.35, 0.96, 0.05):
        flagged = decide(probs[y == "benign"], classes, threshold) != "benign"
        if flagged.mean() <= max_benign_flagged:
            return round(float(threshold), 2)
    return 0.95


def main() -> None:
    from genlab.core.settings import Settings
    from genlab.registry import Registry

    rows = [json.loads(line) for line in DATA.read_text("utf-8").splitlines() if line.strip()]
    embedder = Registry(Settings.from_env()).load("all-minilm-l6-v2")
    vectors = embedder.embed([r["text"] for r in rows])
    train = [i for i, r in enumerate(rows) if r["split"] == "train"]
    held = [i for i, r in enumerate(rows) if r["split"] == "heldout"]
    y = np.array([coarse(r["label"]) for r in rows])
    threshold = choose_threshold(vectors[train], y[train])  # by cross-validation on the train split
    model = LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced").fit(vectors[train], y[train])
    centroids = {}
    for code in sorted({r["label"] for r in rows if coarse(r["label"]) == "harmful"}):
        members = [i for i in train if rows[i]["label"] == code]
        c = vectors[members].mean(axis=0)
        centroids[code] = (c / np.linalg.norm(c)).round(6).tolist()
    predicted = decide(model.predict_proba(vectors[held]), list(model.classes_), threshold)
    truth = y[held]
    metrics = {}
    for cls in ("injection", "harmful"):
        tp = int(((predicted == cls) & (truth == cls)).sum())
        fp = int(((predicted == cls) & (truth != cls)).sum())
        fn = int(((predicted != cls) & (truth == cls)).sum())
        metrics[cls] = {
            "precision": round(tp / max(tp + fp, 1), 3),
            "recall": round(tp / max(tp + fn, 1), 3),
            "support": int((truth == cls).sum()),
        }
    benign = truth == "benign"
    metrics["benign_flagged"] = round(float((predicted[benign] != "benign").mean()), 3)
    metrics["benign_support"] = int(benign.sum())
    OUT.write_text(
        json.dumps(
            {
                "model": "all-minilm-l6-v2",
                "classes": list(model.classes_),
                "coef": model.coef_.round(6).tolist(),
                "intercept": model.intercept_.round(6).tolist(),
                "centroids": centroids,
                "threshold": threshold,
                "trained_on": f"{DATA.name}: {len(train)} train rows",
                "heldout": metrics,
            },
            indent=1,
        )
    )
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
