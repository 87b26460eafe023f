"""Train the shipped learned guardrail on ``safety/evalsets/semantic.jsonl`` (its train split; built by
``scripts/build_guard_data.py``) and write ``src/genlab/safety/semantic_guard.{json,safetensors}``.
The method is ``genlab.safety.guard_training`` (the same code ``genlab guard train`` runs).

    python scripts/train_semantic_guard.py [--c 4.0]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genlab.registry import default_registry
from genlab.safety.guard_training import TrainConfig, shipped_rows, train

OUT = Path(__file__).resolve().parent.parent / "src" / "genlab" / "safety"


def cached(features, path: Path):
    """``features`` that remembers every text it read in ``path`` (texts are keys)."""
    import numpy as np

    store = dict(np.load(path, allow_pickle=False)) if path.is_file() else {}
    known = dict(zip(store.get("texts", []), store.get("vectors", []), strict=True))

    def read(texts: list[str]):
        new = [t for t in dict.fromkeys(texts) if t not in known]
        if new:
            known.update(zip(new, features(new), strict=True))
            np.savez(path, texts=np.array(list(known)), vectors=np.stack(list(known.values())))
        return np.stack([known[t] for t in texts])

    return read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--c", type=float, default=TrainConfig.c)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--cache", type=Path, help="keep the texts' features in this .npz (for reruns)")
    args = parser.parse_args()
    features = (
        cached(default_registry().guard_features, args.cache)
        if args.cache
        else default_registry().guard_features
    )
    meta = train(shipped_rows(), features, args.out, config=TrainConfig(c=args.c), progress=print)
    print(json.dumps({k: meta[k] for k in ("temperature", "threshold", "heldout", "seconds")}, indent=1))


if __name__ == "__main__":
    main()
