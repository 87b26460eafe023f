"""Evaluate a trained text model on the held-out documents recorded in its manifest."""

from __future__ import annotations

from typing import Any

from genlab.core import UnsupportedError
from genlab.data.text import load_corpus
from genlab.registry import default_registry


def evaluate_text_model(name: str, *, batches: int = 50, seed: int = 0) -> dict[str, Any]:
    registry = default_registry()
    entry = registry.get(name)
    if entry.kind != "transformer":
        raise UnsupportedError(
            f"{name!r} is a {entry.card.backend} model; `genlab eval text` measures models trained in genlab"
        )
    from genlab.training.text import TextTask

    lm = registry.load(name)
    corpus = load_corpus(entry.config["data"], registry.settings, seed=0)
    task = TextTask(lm.model, lm.codec, corpus)
    metrics = task.evaluate(lm.model, batches, seed)
    return {
        "model": name,
        "data": entry.config["data"],
        "val_documents": len(corpus.val),
        **{k: round(v, 4) for k, v in metrics.items()},
    }
