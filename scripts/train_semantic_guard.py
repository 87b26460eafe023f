"""Train the semantic guardrail: a logistic regression on what ``genlab.safety.semantic`` reads (the
int8 first three layers of all-MiniLM-L6-v2: the mean and max of their token states, and hashed
character n-grams) of the labelled
set ``safety/evalsets/semantic.jsonl`` (written for genlab: prompt injections and jailbreaks,
harmful requests by MLCommons hazard category, and benign look-alikes), on its train split only.
A threshold per class is chosen by 5-fold cross-validation on the train split (the pair with the
best recall among those that flag at most 5% of the benign look-alikes and 2% of the ordinary
prompts, rows marked ``"kind": "ordinary"``); the held-out split is scored once and recorded, never tuned on.
Writes the weights as JSON (no pickle) to ``src/genlab/safety/semantic_guard.json``.

    python scripts/train_semantic_guard.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

ROOT = Path(__file__).resolve().parent.parent / "src" / "genlab" / "safety"
DATA = ROOT / "evalsets" / "semantic.jsonl"
OUT = ROOT / "semantic_guard.json"
C = 8.0  # inverse regularisation, chosen by cross-validation on the train split
MAX_BENIGN_FLAGGED = 0.05  # of the benign look-alikes
MAX_ORDINARY_FLAGGED = 0.02  # of ordinary prompts ("Say hello.", "a cat on a mat")


def coarse(label: str) -> str:
    return label if label in ("benign", "injection") else "harmful"


def model() -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=5000, class_weight="balanced")


def decide(probs: np.ndarray, classes: list[str], thresholds: dict[str, float]) -> np.ndarray:
    """A class other than benign only when its probability reaches that class's threshold."""
    out = []
    for p in probs:
        over = [i for i, c in enumerate(classes) if c != "benign" and p[i] >= thresholds[c]]
        out.append(classes[max(over, key=lambda i: p[i])] if over else "benign")
    return np.array(out)


def choose_thresholds(x: np.ndarray, y: np.ndarray, ordinary: np.ndarray, folds: int = 5) -> dict[str, float]:
    """Per class, the pair of thresholds with the best cross-validated recall (both classes summed)
    among those that flag at most 5% of the benign look-alikes and 2% of ordinary prompts."""
    classes = sorted(set(y))
    probs = np.zeros((len(y), len(classes)))
    for fit, test in StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y):
        probs[test] = model().fit(x[fit], y[fit]).predict_proba(x[test])
    look_alike, everyday = (y == "benign") & ~ordinary, (y == "benign") & ordinary
    grid = np.round(np.arange(0.30, 0.96, 0.025), 3)
    best, chosen = -1.0, {"injection": 0.95, "harmful": 0.95}
    for t_injection in grid:
        for t_harmful in grid:
            thresholds = {"injection": float(t_injection), "harmful": float(t_harmful)}
            predicted = decide(probs, classes, thresholds)
            if (predicted[look_alike] != "benign").mean() > MAX_BENIGN_FLAGGED:
                continue
            if everyday.any() and (predicted[everyday] != "benign").mean() > MAX_ORDINARY_FLAGGED:
                continue
            recall = sum((predicted[y == c] == c).mean() for c in ("injection", "harmful"))
            if recall > best + 1e-9:
                best, chosen = recall, thresholds
    return chosen


def scores(predicted: np.ndarray, truth: np.ndarray, ordinary: np.ndarray) -> dict:
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
    look_alike, everyday = (truth == "benign") & ~ordinary, (truth == "benign") & ordinary
    metrics["benign_flagged"] = round(float((predicted[look_alike] != "benign").mean()), 3)
    metrics["benign_support"] = int(look_alike.sum())
    metrics["ordinary_flagged"] = round(float((predicted[everyday] != "benign").mean()), 3)
    metrics["ordinary_support"] = int(everyday.sum())
    return metrics


def main() -> None:
    from genlab.core.settings import Settings
    from genlab.generators.embedding import guard_encoder
    from genlab.safety.semantic import features

    rows = [json.loads(line) for line in DATA.read_text("utf-8").splitlines() if line.strip()]
    texts = [r["text"] for r in rows]
    embedded = guard_encoder(Settings.from_env()).features(texts)
    x = features(texts, embedded)
    train = np.array([r["split"] == "train" for r in rows])
    y = np.array([coarse(r["label"]) for r in rows])
    ordinary = np.array([r.get("kind") == "ordinary" for r in rows])
    thresholds = choose_thresholds(x[train], y[train], ordinary[train])
    fitted = model().fit(x[train], y[train])
    dims = embedded.shape[1] // 2  # the mean half: the category centroids live there
    centroids = {}
    for code in sorted({r["label"] for r in rows if coarse(r["label"]) == "harmful"}):
        members = [i for i, r in enumerate(rows) if r["label"] == code and train[i]]
        if members:
            c = embedded[members, :dims].mean(axis=0)
            centroids[code] = (c / np.linalg.norm(c)).round(6).tolist()
    held = ~train
    predicted = decide(fitted.predict_proba(x[held]), list(fitted.classes_), thresholds)
    metrics = scores(predicted, y[held], ordinary[held])
    OUT.write_text(
        json.dumps(
            {
                "model": "all-minilm-l6-v2 layers 1-3 (int8 ONNX: mean and max token states) + hashed char 3-5-grams",
                "classes": list(fitted.classes_),
                "coef": fitted.coef_.round(5).tolist(),
                "intercept": fitted.intercept_.round(5).tolist(),
                "centroids": centroids,
                "thresholds": thresholds,
                "trained_on": f"{DATA.name}: {int(train.sum())} train rows; C = {C}",
                "heldout": metrics,
            }
        )
        + "\n"
    )
    print(json.dumps({"thresholds": thresholds, "heldout": metrics}, indent=2))


if __name__ == "__main__":
    main()
