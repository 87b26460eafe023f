"""A learned guardrail: prompt injections, jailbreaks and harmful requests (the MLCommons hazard
categories S1-S14, as Llama Guard 3) recognised by meaning, in any of the languages it was trained on.

The network (trained end to end by ``guard_training.py`` on ``evalsets/semantic.jsonl``) reads a
text as the embedded Gemma 3 270M's tokens: Gemma's own 640-dimensional input embeddings ``e_t``
(its vocabulary covers 140 languages), through

1. a fine-tuned projection ``h_t = act(W_p e_t + b_p)``, (n, H);
2. optionally a width-3 convolution with a residual, ``c_t = gelu(W_c [h_{t-1}; h_t; h_{t+1}] + b_c) + h_t``;
3. pooling: the mean of ``c``, or attention ``sum_t softmax(w_a . c)_t c_t`` with the mean and the max;
4. optionally hashed character 3-5-grams through a learned embedding, (G,);
5. ``logits = W_o [gelu(W_h z + b_h) | z] + b_o`` over benign, injection and S1-S14 (``z`` the pooled
   state, the hidden layer optional), and ``softmax(logits / T)`` with the temperature ``T``
   fitted on a calibration split, so a score is a probability (its calibration error is recorded).

Which parts a trained model has is in its weights (``config``); the shipped one is the smallest,
``act`` the identity, mean pooling and no hidden layer, because on seeds held apart from training
the larger variants memorised their seeds and generalised worse (docs/guardrails.md has the figures).

A window is blocked when ``P(not benign)`` reaches the threshold chosen on the calibration split
(or a policy's own ``threshold``); its category is the likeliest harmful class. Long texts are read
in windows of about ``WINDOW`` characters cut at sentence ends, so an injection in the middle of a
long document is read on its own, not averaged away, and its finding spans its window.

Weights: ``semantic_guard.safetensors`` and ``semantic_guard.json`` shipped in the package (their
sha256 is checked at load), or a home's own retrained copy under ``GENLAB_HOME/guard/``
(``genlab guard train``). The safety room loads no models: the pipeline hands it the tokens'
embeddings (:func:`use_embedder`, ``backends.gemma_tokens``). Where none is set the scan fails
(and a policy that fails closed blocks): a guardrail that cannot read must not pass the text.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from genlab.core import GenlabError, ModelLoadError
from genlab.core.settings import Settings
from genlab.safety.guardrails import HAZARDS, SCANNERS, Finding, Scanner

CLASSES = ["benign", "injection", *(f"S{i}" for i in range(1, 15))]  # the network's outputs, in order
_EMBED: list[Callable[[list[str]], list[np.ndarray]]] = []
WINDOW = 320  # characters per window (a few sentences: the longest training rows), cut at sentence ends
GRAMS = 4096  # hashed character n-gram buckets
_SENTENCE_END = re.compile(r"(?<=[.!?。！？\n])\s*")
_WEIGHTS: dict[Path, dict[str, Any]] = {}


def use_embedder(embed: Callable[[list[str]], list[np.ndarray]]) -> None:
    """Where the scanner gets its input: ``texts -> [(n_tokens, 640)]`` (``Registry.guard_features``)."""
    _EMBED[:] = [embed]


def warm() -> None:
    """Read one text, so the tokenizer and the weights are loaded before the first request."""
    if _EMBED:
        _EMBED[0](["warm up"])
        weights()


def weights_dir() -> Path:
    """The home's retrained weights where there are any, else the shipped ones."""
    home = Settings.from_env().home / "guard"
    if (home / "semantic_guard.json").is_file():
        return home
    return Path(str(files("genlab.safety")))


def weights(directory: Path | None = None) -> dict[str, Any]:
    """The network's arrays and its metadata (classes, temperature, threshold, held-out figures)."""
    directory = directory or weights_dir()
    if directory not in _WEIGHTS:
        from safetensors.numpy import load

        meta = json.loads((directory / "semantic_guard.json").read_text("utf-8"))
        blob = (directory / "semantic_guard.safetensors").read_bytes()
        if meta.get("sha256") and hashlib.sha256(blob).hexdigest() != meta["sha256"]:
            raise ModelLoadError(f"{directory / 'semantic_guard.safetensors'} does not match its sha256")
        _WEIGHTS[directory] = {**meta, "arrays": load(blob)}
    return _WEIGHTS[directory]


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


def gelu(x: np.ndarray) -> np.ndarray:
    """The tanh approximation (Hendrycks & Gimpel 2016), as torch's ``approximate="tanh"``."""
    return 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def forward(
    w: dict[str, np.ndarray], e: np.ndarray, grams: np.ndarray, activation: str = "gelu"
) -> np.ndarray:
    """Logits (C,) of one text: ``e`` its tokens' embeddings (n, 640), ``grams`` (GRAMS,). The
    convolution, the attention pooling and the n-grams run where the weights have them."""
    if activation == "none" and "conv.weight" not in w and "attn.weight" not in w:
        # a linear projection, mean-pooled: mean_t(W e_t + b) = W mean_t(e_t) + b, one product
        return _head(w, [w["proj.weight"] @ e.mean(0) + w["proj.bias"]], grams)
    c = e @ w["proj.weight"].T + w["proj.bias"]  # (n, H)
    c = gelu(c) if activation == "gelu" else c
    if "conv.weight" in w:
        zero = np.zeros((1, c.shape[1]), c.dtype)
        shifted = np.hstack([np.vstack([zero, c[:-1]]), c, np.vstack([c[1:], zero])])  # (n, 3H)
        c = gelu(shifted @ w["conv.weight"].T + w["conv.bias"]) + c
    parts = [c.mean(0)]
    if "attn.weight" in w:
        a = softmax((c @ w["attn.weight"].T)[:, 0])  # (n,)
        parts = [a @ c, c.mean(0), c.max(0)]
    return _head(w, parts, grams)


def _head(w: dict[str, np.ndarray], parts: list[np.ndarray], grams: np.ndarray) -> np.ndarray:
    """The pooled state (with the n-grams where the model has them) -> logits (C,)."""
    if "grams.weight" in w:
        parts = [*parts, grams @ w["grams.weight"]]  # (G,)
    z = np.concatenate(parts)
    if "hid.weight" in w:
        z = gelu(z @ w["hid.weight"].T + w["hid.bias"])
    return z @ w["out.weight"].T + w["out.bias"]  # (C,)


def probabilities(texts: list[str], embedded: list[np.ndarray]) -> np.ndarray:
    """(n, C) calibrated class probabilities, in ``weights()["classes"]`` order."""
    w = weights()
    grams = char_grams(texts) if "grams.weight" in w["arrays"] else np.zeros((len(texts), 0), np.float32)
    act = w["config"].get("activation", "gelu")
    logits = np.stack([forward(w["arrays"], e, g, act) for e, g in zip(embedded, grams, strict=True)])
    return softmax(logits / w["temperature"])


def windows(text: str) -> list[tuple[int, int]]:
    """Spans of about WINDOW characters, cut after a sentence (or at a space when one is longer)."""
    if len(text) <= WINDOW:
        return [(0, len(text))]
    cuts = [m.end() for m in _SENTENCE_END.finditer(text) if m.end() < len(text)] + [len(text)]
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
    in_process: ClassVar[bool] = True  # it needs the process's token embeddings
    judges_intent: ClassVar[bool] = True  # not run on the caller's own system message

    def __init__(self, threshold: float | None = None, **options: Any) -> None:
        """``threshold`` given: the policy's own operating point on P(not benign); otherwise the one
        chosen on the calibration split (in the weights file)."""
        super().__init__(0.0, **options)
        self.operating = threshold

    def find(self, text: str, *, prompt: str | None = None) -> list[Finding]:
        if not text.strip():
            return []
        if not _EMBED:
            raise GenlabError(
                "the semantic guardrail has no token embeddings to read with",
                hint="run it through genlab's pipeline (serve, generate, guard check), which provides them",
            )
        spans = windows(text)
        pieces = [text[s:e] for s, e in spans]
        probs = probabilities(pieces, _EMBED[0](pieces))
        classes = weights()["classes"]
        threshold = weights()["threshold"] if self.operating is None else float(self.operating)
        found = self._rules(text, probs) if self.options.get("rules") else []
        for (start, end), p in zip(spans, probs, strict=True):
            risk = 1.0 - float(p[0])  # P(not benign)
            if risk < threshold:
                continue
            label = classes[1 + int(np.argmax(p[1:]))]
            category = "prompt_injection" if label == "injection" else label
            why = (
                "reads as an attempt to override the assistant's instructions"
                if label == "injection"
                else f"reads as a request for harm: {HAZARDS.get(label, label)}"
            )
            excerpt = text[start:end].strip()[:200]
            found.append(
                Finding(self.name, category, start, end, round(risk, 3), f"{why} (p = {risk:.2f})", excerpt)
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
