"""Train the learned guardrail that genlab ships (``src/genlab/safety/semantic_guard.*``): the network
of ``genlab.safety.semantic`` fitted end to end on the train split of ``safety/evalsets/semantic.jsonl``
(built by ``scripts/build_guard_data.py``), calibrated on its calibration split, scored once on its
held-out split. The same code as ``genlab guard train``, which writes to a home instead.

    python scripts/train_semantic_guard.py [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genlab.backends.gemma_tokens import gemma_tokens
from genlab.core.settings import Settings
from genlab.safety.evaluate import DEFAULT_DATA, read_rows
from genlab.safety.guard_training import TrainConfig, train

OUT = Path(__file__).resolve().parent.parent / "src" / "genlab" / "safety"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    args = parser.parse_args()
    rows = read_rows(DEFAULT_DATA / "semantic.jsonl")
    meta = train(rows, gemma_tokens(Settings.from_env()), OUT, config=TrainConfig(epochs=args.epochs))
    print(json.dumps(meta["heldout"], indent=1))


if __name__ == "__main__":
    main()
