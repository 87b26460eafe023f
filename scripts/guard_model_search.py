"""Compare guardrail network settings without touching the held-out split: a quarter of the train
split's seed groups (by a hash of the group name) is held apart as a development set, each setting
is fitted on the rest and scored by the area under the ROC curve of P(not benign), harmful against
benign; logistic regression on the mean token embedding is the baseline. The figures in
docs/guardrails.md come from this script.

    python scripts/guard_model_search.py '[{"mlp": 0, "activation": "none"}, {"epochs": 5, "conv": true}]'
"""

from __future__ import annotations

import json
import sys
import zlib
from dataclasses import replace

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from genlab.backends.gemma_tokens import gemma_tokens
from genlab.core.settings import Settings
from genlab.safety import guard_training as gt
from genlab.safety.evaluate import DEFAULT_DATA, read_rows


def development(group: str) -> bool:
    return zlib.crc32(group.encode()) % 4 == 0


def mean_of(encoded: gt.Encoded) -> np.ndarray:
    return np.stack([encoded.table[i].mean(0) for i in encoded.ids])


def main() -> None:
    rows = [r for r in read_rows(DEFAULT_DATA / "semantic.jsonl") if r["split"] == "train"]
    fitted = [r for r in rows if not development(r["group"])]
    dev = [r for r in rows if development(r["group"]) and r["label"] != "injection"]
    tokens = gemma_tokens(Settings.from_env())
    e_fit, e_dev = (
        gt.Encoded([r["text"] for r in fitted], tokens),
        gt.Encoded([r["text"] for r in dev], tokens),
    )
    index = {c: i for i, c in enumerate(gt.CLASSES)}
    y_fit = np.array([index[r["label"]] for r in fitted])
    y_dev = np.array([r["label"].startswith("S") for r in dev])
    print(f"development: {len({r['group'] for r in dev})} seed groups, {len(dev)} rows", flush=True)
    for setting in json.loads(sys.argv[1]) if len(sys.argv) > 1 else [{}]:
        net = gt.fit(e_fit, y_fit, replace(gt.TrainConfig(), **setting), lambda _line: None)
        auc = roc_auc_score(y_dev, gt.unsafe(gt.logits_of(net, e_dev), 1.0))
        print(setting, "development AUC", round(auc, 3), flush=True)
    keep = np.array([r["label"] != "injection" for r in fitted])
    harmful = np.array([r["label"].startswith("S") for r in fitted])
    for c in (0.3, 1.0, 3.0):
        baseline = LogisticRegression(C=c, max_iter=3000).fit(mean_of(e_fit)[keep], harmful[keep])
        auc = roc_auc_score(y_dev, baseline.predict_proba(mean_of(e_dev))[:, 1])
        print(f"logistic regression on the mean embedding, C = {c}: development AUC {auc:.3f}", flush=True)


if __name__ == "__main__":
    main()
