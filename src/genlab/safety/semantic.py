"""A learned guardrail: prompt injection, jailbreaks and harmful requests recognised by meaning.

The rules (``guardrails.py``) are exact where they can be (checksums, secret formats, markup) but
keyword lists miss paraphrases, role-play and other languages. This scanner reads each window of
the text with two pretrained models genlab already ships, and classifies what they read:

- the shipped sentence-embedding model (all-MiniLM-L6-v2's first three layers as int8 ONNX: the
  mean and the max of their token states, 768 numbers): what an English text means;
- the embedded Gemma 3 270M's input embeddings of the text's tokens (their mean and max, 1,280
  numbers; ``backends/gemma_tokens.py``): Gemma's vocabulary was trained on 140 languages, so
  Spanish, Hindi or Japanese are read as words, not as the unknown tokens an English encoder makes
  of them.

The classifier is a softmax regression over sixteen classes (benign, injection, and the MLCommons
hazard categories S1-S14, as Llama Guard 3), trained by :mod:`genlab.safety.guard_training` on
``evalsets/semantic.jsonl``; its probabilities are calibrated by a temperature, and a window is
blocked when P(not benign) reaches the threshold chosen on seeds held apart from training; its
category is the likeliest class other than benign. Weights: ``semantic_guard.safetensors`` (no
pickle) with ``semantic_guard.json`` (classes, temperature, threshold, held-out figures, the
safetensors' sha256, checked at load); a home's retrained weights (``genlab guard train``) in
``GENLAB_HOME/guard/`` replace them (:func:`use_weights`).

Long texts are read in windows of about ``WINDOW`` characters cut at sentence ends, so an injection
in the middle of a long document is read on its own, not averaged away, and its finding spans its
window. A window's verdict is remembered (a small LRU), so a streamed answer, rescanned as it
grows, costs one new window per scan.

The safety room does not load models: the pipeline hands it the features
(:func:`use_embedder`). Where none is set the scan fails (and a policy that fails closed blocks):
a guardrail that cannot read must not pass the text as if it had.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from genlab.core import GenlabError, ModelLoadError
from genlab.safety.guardrails import HAZARDS, SCANNERS, Finding, Scanner

CLASSES = ("benign", "injection", *(f"S{i}" for i in range(1, 15)))
WEIGHTS = "semantic_guard"  # .json and .safetensors, in the package or a home's guard/ folder
_EMBED: list[Callable[[list[str]], np.ndarray]] = []
_WEIGHTS_DIR: list[Path] = []
WINDOW = 320  # characters per window (the longest training rows), cut at sentence ends
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:/=+-]{1,128}")  # an id, a name, a key: no sentence to judge
_SENTENCE_END = re.compile(r"(?<=[.!?。！？\n])\s+")


def use_embedder(features: Callable[[list[str]], np.ndarray]) -> None:
    """Where the scanner gets its features: ``texts -> (n, 2048)`` (``Registry.guard_features``)."""
    _EMBED[:] = [features]
    _VERDICTS.clear()


def use_weights(directory: Path | None) -> None:
    """Read a home's retrained weights from ``directory`` when it holds them (else the shipped ones)."""
    _WEIGHTS_DIR[:] = [directory] if directory and (directory / f"{WEIGHTS}.json").is_file() else []
    weights.cache_clear()
    _VERDICTS.clear()


def forget() -> None:
    """Drop the remembered window verdicts (a benchmark timing a fresh read)."""
    _VERDICTS.clear()


def warm() -> None:
    """Read one text, so the models are loaded before the first request needs it."""
    if _EMBED:
        _EMBED[0](["warm up"])


def weights_files() -> tuple[Any, Any]:
    """The (json, safetensors) the guardrail reads: a home's retrained pair, or the shipped one."""
    if _WEIGHTS_DIR:
        return _WEIGHTS_DIR[0] / f"{WEIGHTS}.json", _WEIGHTS_DIR[0] / f"{WEIGHTS}.safetensors"
    package = files("genlab.safety")
    return package.joinpath(f"{WEIGHTS}.json"), package.joinpath(f"{WEIGHTS}.safetensors")


@cache
def weights() -> dict[str, Any]:
    """The classifier: its JSON description with ``coef`` (16, features) and ``intercept`` (16,)
    from the safetensors file, whose sha256 the JSON pins."""
    from safetensors.numpy import load

    meta_file, tensor_file = weights_files()
    data = json.loads(meta_file.read_text("utf-8"))
    raw = tensor_file.read_bytes()
    if hashlib.sha256(raw).hexdigest() != data["sha256"]:
        raise ModelLoadError(f"{tensor_file}: sha256 does not match {meta_file.name}; retrain or delete it")
    tensors = load(raw)
    data["coef"], data["intercept"] = tensors["coef"], tensors["intercept"]
    return data


def probabilities(matrix: np.ndarray) -> np.ndarray:
    """(n, 16) calibrated probabilities, in ``CLASSES`` order: ``softmax(logits / T)``."""
    w = weights()
    logits = (matrix @ w["coef"].T + w["intercept"]) / w["temperature"]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def decide(probs: np.ndarray, threshold: float, *, hazards_only: bool = False) -> list[tuple[str, float]]:
    """(class, P(not benign)) per row: the likeliest class other than benign where P(not benign)
    reaches ``threshold``, else benign. ``hazards_only``: injection does not count (an answer is
    judged for harm, not for instructions it quotes)."""
    first = 2 if hazards_only else 1
    bad = probs[:, first:].sum(axis=1)
    out = []
    for p, b in zip(probs, bad, strict=True):
        label = CLASSES[first + int(np.argmax(p[first:]))] if b >= threshold else "benign"
        out.append((label, float(b)))
    return out


class _Verdicts:
    """Probabilities of recently read windows (LRU), so a text rescanned as it grows (a stream)
    reads only its new windows."""

    def __init__(self, size: int = 512) -> None:
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def clear(self) -> None:
        with self.lock:
            self.items.clear()

    def __call__(self, pieces: list[str]) -> np.ndarray:
        with self.lock:
            known = {p: self.items[p] for p in pieces if p in self.items}
        new = [p for p in dict.fromkeys(pieces) if p not in known]
        if new:
            fresh = probabilities(_EMBED[0](new))
            with self.lock:
                for piece, row in zip(new, fresh, strict=True):
                    self.items[piece] = known[piece] = row
                while len(self.items) > self.size:
                    self.items.popitem(last=False)
        return np.stack([known[p] for p in pieces])


_VERDICTS = _Verdicts()


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
    in_process: ClassVar[bool] = True  # it needs the process's models
    judges_intent: ClassVar[bool] = True  # not run on the caller's own system message

    def __init__(self, threshold: float | None = None, **options: Any) -> None:
        """``threshold`` given: a policy's own operating point; otherwise the weights' own.
        ``hazards_only: true`` (for answers): only the hazard categories count."""
        super().__init__(0.0, **options)
        self.operating = threshold

    def find(self, text: str, *, prompt: str | None = None) -> list[Finding]:
        if not text.strip() or _IDENTIFIER.fullmatch(text.strip()):
            return []  # a tool call's id or a function's name is not a request (the rules still read it)
        if not _EMBED:
            raise GenlabError(
                "the semantic guardrail has no models to read with",
                hint="run it through genlab's pipeline (serve, generate, guard check), which provides them",
            )
        spans = windows(text)
        probs = _VERDICTS([text[s:e] for s, e in spans])
        threshold = float(self.operating if self.operating is not None else weights()["threshold"])
        found = self._rules(text, probs) if self.options.get("rules") else []
        verdicts = decide(probs, threshold, hazards_only=bool(self.options.get("hazards_only")))
        for (start, end), (label, p) in zip(spans, verdicts, strict=True):
            if label == "benign":
                continue
            category = "prompt_injection" if label == "injection" else label
            why = (
                "reads as an attempt to override the assistant's instructions"
                if label == "injection"
                else f"reads as harm: {HAZARDS.get(category, category)}"
            )
            excerpt = text[start:end].strip()[:200]
            found.append(
                Finding(self.name, category, start, end, round(p, 3), f"{why} (p = {p:.2f})", excerpt)
            )
        return found

    def _rules(self, text: str, probs: np.ndarray) -> list[Finding]:
        """With ``rules: true``, the injection rules run too: their certain matches (0.9 and up,
        and chat-template control tokens) stand alone; a weaker keyword match ("jailbreak", a
        privileged "mode") stands only where the model also reads some intent (P(injection) >= 0.25
        in some window), so benign look-alikes pass."""
        from genlab.safety.guardrails import InjectionScanner

        matches = InjectionScanner(threshold=0.0).find(text)
        certain = [f for f in matches if f.score >= 0.9 or "control tokens" in f.explanation]
        weak = [f for f in matches if f not in certain]
        agrees = float(probs[:, CLASSES.index("injection")].max()) >= 0.25
        return certain + (weak if agrees else [])


SCANNERS[SemanticScanner.name] = SemanticScanner
