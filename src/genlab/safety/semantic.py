"""A learned guardrail: prompt injection, jailbreaks and harmful requests recognised by meaning.

The rules (``guardrails.py``) are exact where they can be (checksums, secret formats, markup) but
keyword lists miss paraphrases, role-play and other languages. This scanner reads the text with
the shipped sentence-embedding model (all-MiniLM-L6-v2's first three layers as int8 ONNX: the mean
and the max of their token states) plus hashed character n-grams (3-5 characters: they carry words across
languages and spellings the English model reads poorly), and applies a logistic regression trained
by ``scripts/train_semantic_guard.py`` on ``evalsets/semantic.jsonl`` (written for genlab:
injections and jailbreaks in eleven languages, harmful requests by MLCommons hazard category,
benign look-alikes such as "ignore the previous step if I use a convection oven"), its weights
shipped as JSON. A class other than benign needs a probability at or above its threshold, chosen
by cross-validation on the train split (the best recall with at most 5% of benign texts flagged);
a harmful text's category is the nearest category centroid. The held-out split's figures are in the weights file
and docs/guardrails.md.

Long texts are read in windows of about ``WINDOW`` characters (a sentence or two) cut at sentence
ends, so an injection in the middle of a long document is read on its own, not averaged away, and
its finding spans its window.

The safety room does not load models: the pipeline hands it the embedding model's features
(:func:`use_embedder`). Where none is set the scan fails (and a policy that fails closed blocks):
a guardrail that cannot read must not pass the text as if it had.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from importlib.resources import files
from typing import Any, ClassVar

import numpy as np

from genlab.core import GenlabError
from genlab.safety.guardrails import HAZARDS, SCANNERS, Finding, Scanner

_EMBED: list[Callable[[list[str]], np.ndarray]] = []
WINDOW = 120  # characters per window (a sentence or two), cut at sentence ends
GRAMS = 4096  # hashed character n-gram buckets
_SENTENCE_END = re.compile(r"(?<=[.!?。！？\n])\s+")


def use_embedder(features: Callable[[list[str]], np.ndarray]) -> None:
    """Where the scanner gets its features: ``texts -> (n, 768)`` (``Registry.guard_features``)."""
    _EMBED[:] = [features]


def warm() -> None:
    """Read one text, so the model is loaded before the first request needs it."""
    if _EMBED:
        _EMBED[0](["warm up"])


@cache
def weights() -> dict[str, Any]:
    data = json.loads(files("genlab.safety").joinpath("semantic_guard.json").read_text("utf-8"))
    data["coef"], data["intercept"] = np.array(data["coef"]), np.array(data["intercept"])
    data["centroid_codes"] = list(data["centroids"])
    data["centroid_matrix"] = np.array([data["centroids"][c] for c in data["centroid_codes"]])
    return data


def char_grams(texts: list[str]) -> np.ndarray:
    """Hashed counts of the 3-5 character n-grams of each lower-cased text (spaces collapsed and
    added at both ends), unit length. The hash is a polynomial over the code points, mod 2^32,
    computed for all n-grams at once with numpy."""
    out = np.zeros((len(texts), GRAMS), np.float32)
    for i, text in enumerate(texts):
        t = " " + " ".join(text.lower().split()) + " "
        codes = np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        for n in (3, 4, 5):
            if len(codes) < n:
                continue
            h = np.full(len(codes) - n + 1, n, dtype=np.uint64)
            for k in range(n):
                h = (h * np.uint64(1_000_003) + codes[k : len(codes) - n + 1 + k]) & np.uint64(0xFFFFFFFF)
            np.add.at(out[i], (h % np.uint64(GRAMS)).astype(np.int64), 1.0)
        out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
    return out


def features(texts: list[str], embedded: np.ndarray) -> np.ndarray:
    """What the classifier reads: the model's features next to the character n-grams."""
    return np.hstack([embedded, char_grams(texts)])


def probabilities(matrix: np.ndarray) -> np.ndarray:
    """(n, classes) probabilities of the softmax regression, in ``weights()["classes"]`` order."""
    w = weights()
    logits = matrix @ w["coef"].T + w["intercept"]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def decide(probs: np.ndarray, thresholds: dict[str, float]) -> list[tuple[str, float]]:
    """(class, probability) per row: the likeliest class other than benign among those that reach
    their threshold, else benign."""
    classes = weights()["classes"]
    out = []
    for p in probs:
        over = [i for i, c in enumerate(classes) if c != "benign" and p[i] >= thresholds[c]]
        best = max(over, key=lambda i: p[i]) if over else classes.index("benign")
        out.append((classes[best], float(p[best])))
    return out


def hazard(vector: np.ndarray) -> str:
    """The MLCommons category whose centroid is nearest to a harmful text's mean embedding."""
    w = weights()
    dims = w["centroid_matrix"].shape[1]
    return w["centroid_codes"][int(np.argmax(w["centroid_matrix"] @ vector[:dims]))]


def windows(text: str) -> list[tuple[int, int]]:
    """Spans of about WINDOW characters, cut after a sentence (or at a space when one is longer)."""
    if len(text) <= WINDOW:
        return [(0, len(text))]
    cuts = [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]
    spans, start, end = [], 0, 0
    for cut in cuts:
        while cut - start > WINDOW:  # a sentence longer than a window: cut at a space
            if end > start:
                spans.append((start, end))
                start = end
                continue
            space = text.rfind(" ", start + WINDOW // 2, start + WINDOW)
            end = space + 1 if space > start else start + WINDOW
            spans.append((start, end))
            start = end
        end = cut
    if end > start:
        spans.append((start, end))
    return [(s, e) for s, e in spans if text[s:e].strip()]


class SemanticScanner(Scanner):
    name = "semantic"
    default_category = "prompt_injection"
    normalizes: ClassVar[bool] = True
    in_process: ClassVar[bool] = True  # it needs the process's embedding model
    judges_intent: ClassVar[bool] = True  # not run on the caller's own system message

    def __init__(self, threshold: float | None = None, **options: Any) -> None:
        """``threshold`` given: one operating point for both classes (a policy's own trade-off);
        otherwise each class's cross-validated threshold from the weights file."""
        super().__init__(0.0, **options)
        self.operating = threshold

    def find(self, text: str, *, prompt: str | None = None) -> list[Finding]:
        if not text.strip():
            return []
        if not _EMBED:
            raise GenlabError(
                "the semantic guardrail has no embedding model to read with",
                hint="run it through genlab's pipeline (serve, generate, guard check), which provides one",
            )
        spans = windows(text)
        pieces = [text[s:e] for s, e in spans]
        embedded = _EMBED[0](pieces)
        probs = probabilities(features(pieces, embedded))
        thresholds = dict(weights()["thresholds"])
        if self.operating is not None:
            thresholds = dict.fromkeys(thresholds, float(self.operating))
        found = self._rules(text, probs) if self.options.get("rules") else []
        for (start, end), (label, p), vector in zip(spans, decide(probs, thresholds), embedded, strict=True):
            if label == "benign":
                continue
            category = "prompt_injection" if label == "injection" else hazard(vector)
            why = (
                "reads as an attempt to override the assistant's instructions"
                if label == "injection"
                else f"reads as a request for harm: {HAZARDS.get(category, category)}"
            )
            excerpt = text[start:end].strip()[:200]
            found.append(
                Finding(self.name, category, start, end, round(p, 3), f"{why} (p = {p:.2f})", excerpt)
            )
        return found

    def _rules(self, text: str, probs: np.ndarray) -> list[Finding]:
        """With ``rules: true``, the injection rules run too: their certain matches (0.95, and
        chat-template control tokens) stand alone; a weaker keyword match ("jailbreak", a
        privileged "mode") stands only where the model also reads some intent (p >= 0.25 in some
        window), so benign look-alikes pass."""
        from genlab.safety.guardrails import InjectionScanner

        matches = InjectionScanner(threshold=0.0).find(text)
        certain = [f for f in matches if f.score >= 0.9 or "control tokens" in f.explanation]
        weak = [f for f in matches if f not in certain]
        injection = weights()["classes"].index("injection")
        agrees = float(probs[:, injection].max()) >= 0.25
        return certain + (weak if agrees else [])


SCANNERS[SemanticScanner.name] = SemanticScanner
