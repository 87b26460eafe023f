"""Reviewers' decisions on a recipe's held items, seeded through the real review queue of a home."""

from __future__ import annotations

from pathlib import Path

from genlab.core.settings import Settings
from genlab.safety.review import ReviewQueue
from genlab.storage import Store

RECIPE = "marketing-copy"
BASE = "smollm2-135m-instruct"
EDITED = "Zebra zebra zebra sale!"  # what the reviewer writes instead: a phrase the base never says


def prompt(i: int) -> str:
    return f"Brand: Acme. Voice: bright.\nBrief: announce product {i}\nWrite: copy\nText:"


def seed(home: Path, n: int, *, recipe: str = RECIPE, model: str = BASE) -> None:
    """``n`` held items of ``recipe``, decided in turn: approve (the model wrote ``EDITED``), edit
    (its "meh product i" into ``EDITED``), reject (its "meh product i")."""
    store = Store(settings=Settings(home=home))
    queue = ReviewQueue(store)
    for i in range(n):
        verdict = ("approve", "edit", "reject")[i % 3]
        text = EDITED if verdict == "approve" else f"meh product {i}"
        item = queue.submit(
            endpoint=f"apps.{recipe}",
            model=model,
            modality="text",
            request={"brief": f"announce product {i}", "model_prompts": [prompt(i)]},
            artifact={"text": text, "outputs": [{"text": text}]},
            findings=[],
            rule="always",
        )
        edited = {"text": EDITED} if verdict == "edit" else None
        reason = {"approve": "ok", "edit": "minor_fix", "reject": "low_quality"}[verdict]
        queue.decide(item["id"], "cli:reviewer", verdict, reason, edited=edited, identity="local")
    store.close()
