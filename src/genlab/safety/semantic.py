"""A learned guardrail: prompt injection, jailbreaks and harmful requests recognised by meaning.

The rules (``guardrails.py``) are exact where they can be (checksums, secret formats, markup) but
keyword lists miss paraphrases, role-play and other languages. This scanner embeds the text with
the shipped sentence-embedding model (all-MiniLM-L6-v2) and applies a logistic regression trained
by ``scripts/train_semantic_guard.py`` on ``evalsets/semantic.jsonl`` (written for genlab: injections
and jailbreaks in five languages, harmful requests by MLCommons hazard category, benign look-alikes
such as "ignore the previous step if I use a convection oven"), its weights shipped as JSON. A
class other than benign needs a probability at or above the threshold chosen by cross-validation on
the train split (at most 5% of benign texts flagged); a harmful text's category is the nearest
category centroid. The held-out split's figures are in the weights file and docs/guardrails.md.

It is in the shipped ``strict`` policy (``--policy strict``), not in ``default``: its recall on the
held-out split is modest (a small training set), its precision high. The safety room does not load
models: the pipeline hands it the embedding model (:func:`use_embedder`); where none is set (a
worker process scanning a very long text) it finds nothing and the rules still run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib.resources import files
from typing import Any, ClassVar

import numpy as np

from genlab.safety.guardrails import HAZARDS, SCANNERS, Finding, Scanner

_EMBED: list[Callable[[list[str]], np.ndarray]] = []
MAX_CHARS = 2000  # the model reads 256 word pieces; the head of a long text is what it sees


def use_embedder(embed: Callable[[list[str]], np.ndarray]) -> None:
    _EMBED[:] = [embed]


@cache
def weights() -> dict[str, Any]:
    data = json.loads(files("genlab.safety").joinpath("semantic_guard.json").read_text("utf-8"))
    data["coef"], data["intercept"] = np.array(data["coef"]), np.array(data["intercept"])
    data["centroid_codes"] = list(data["centroids"])
    data["centroid_matrix"] = np.array([data["centroids"][c] for c in data["centroid_codes"]])
    return data


def probabilities(vector: np.ndarray) -> dict[str, float]:
    w = weights()
    logits = w["coef"] @ vector + w["intercept"]
    probs = np.exp(logits - logits.max())
    return dict(zip(w["classes"], (probs / probs.sum()).tolist(), strict=True))


def classify(vector: np.ndarray) -> tuple[str, float, str | None]:
    """(class, its probability, the hazard code of a harmful text)."""
    w = weights()
    classes = w["classes"]
    probs = np.array([probabilities(vector)[c] for c in classes])
    best = max((i for i, c in enumerate(classes) if c != "benign"), key=lambda i: probs[i])
    if probs[best] < w["threshold"]:
        return "benign", float(probs[classes.index("benign")]), None
    code = None
    if classes[best] == "harmful":
        code = w["centroid_codes"][int(np.argmax(w["centroid_matrix"] @ vector))]
    return classes[best], float(probs[best]), code


class SemanticScanner(Scanner):
    name = "semantic"
    default_category = "prompt_injection"
    normalizes: ClassVar[bool] = True

    def find(self, text: str, *, prompt: str | None = None) -> list[Finding]:
        if not _EMBED or not text.strip():
            return []
        vector = _EMBED[0]([text[:MAX_CHARS]])[0]
        found = self._rules(text, vector) if self.options.get("rules") else []
        label, p, code = classify(vector)
        if label == "benign":
            return found
        category = "prompt_injection" if label == "injection" else code or "S1"
        why = (
            "reads as an attempt to override the assistant's instructions"
            if label == "injection"
            else f"reads as a request for harm: {HAZARDS.get(category, category)}"
        )
        score = round(min(p, 1.0), 3)
        return [*found, Finding(self.name, category, 0, len(text), score, f"{why} (p = {p:.2f})", text[:200])]

    def _rules(self, text: str, vector: np.ndarray) -> list[Finding]:
        """With ``rules: true``, the injection rules run too: their certain matches (0.95, and
        chat-template control tokens) stand alone; a weaker keyword match ("ignore the previous
        step", "jailbreak") stands only where the model also reads some intent (p >= 0.25), so
        benign look-alikes pass."""
        from genlab.safety.guardrails import InjectionScanner

        matches = InjectionScanner(threshold=0.0).find(text)
        certain = [f for f in matches if f.score >= 0.95 or "control tokens" in f.explanation]
        weak = [f for f in matches if f not in certain]
        agrees = probabilities(vector).get("injection", 0.0) >= 0.25
        return certain + (weak if agrees else [])


SCANNERS[SemanticScanner.name] = SemanticScanner
