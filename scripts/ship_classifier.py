"""Train the evaluation classifier of a built-in image or audio dataset and ship it inside the package.

    python scripts/ship_classifier.py digits
    python scripts/ship_classifier.py glyphs
    python scripts/ship_classifier.py spoken-digits

Writes src/genlab/evaluation/classifiers/<dataset>/ (weights, card with held-out accuracy, config).
"""

from __future__ import annotations

import sys

from genlab.data.datasets import load_image_dataset
from genlab.evaluation.classifier import SHIPPED_CLASSIFIERS, train_classifier

STEPS = {"digits": 2000, "digits8": 2000, "glyphs": 4000, "spoken-digits": 3000}


def main(dataset: str) -> None:
    data = load_image_dataset(dataset)
    metrics = train_classifier(data, SHIPPED_CLASSIFIERS / dataset, steps=STEPS.get(dataset, 3000))
    print(f"shipped classifier for {dataset}: {metrics}")


if __name__ == "__main__":
    main(sys.argv[1])
