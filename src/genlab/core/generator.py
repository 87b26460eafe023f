"""The Generator protocol: what every family and every backend offers.

A trained family + codec, the embedded llama.cpp model and a remote OpenAI-compatible server all
satisfy it, so the CLI, the server, the guardrails and the review gate never ask which one they
hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from genlab.core.artifacts import Artifact
from genlab.core.card import ModelCard
from genlab.core.request import GenerationRequest


@dataclass(frozen=True)
class TextChunk:
    """One piece of a token stream.

    Every chunk but the last carries ``text``; the last of each choice carries ``finish_reason``
    ("stop" or "length") and the usage counts. ``logprobs`` holds one entry per generated token in
    the chunk when the request asked for them: ``{"token", "logprob", "top_logprobs"}``.
    """

    text: str
    index: int = 0
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: list[dict[str, Any]] | None = None


@runtime_checkable
class Generator(Protocol):
    """Anything genlab can generate from."""

    @property
    def card(self) -> ModelCard: ...

    @property
    def supports_streaming(self) -> bool: ...

    def generate(self, request: GenerationRequest | str, **kwargs: Any) -> list[Artifact]:
        """Make ``request.n`` artifacts. A bare prompt and keyword settings are accepted too."""
        ...

    def stream(self, request: GenerationRequest | str, **kwargs: Any) -> Iterator[TextChunk]:
        """Yield the output as it is made; families without tokens raise ``UnsupportedError``."""
        ...


def token_logprobs(raw: dict[str, Any] | None, top_n: int | None = None) -> list[dict[str, Any]] | None:
    """OpenAI completions-style logprobs (parallel lists) -> one dict per token.

    ``top_n`` keeps the n most likely alternatives (llama.cpp adds the sampled token to them even
    when it is not among the top n; OpenAI does not).
    """
    if not raw:
        return None
    tokens = raw.get("tokens") or []
    values = raw.get("token_logprobs") or []
    tops = raw.get("top_logprobs") or [None] * len(tokens)
    return [
        {"token": t, "logprob": float(v) if v is not None else None, "top_logprobs": _top(top or {}, top_n)}
        for t, v, top in zip(tokens, values, tops, strict=False)
    ]


def _top(alternatives: dict[str, float], n: int | None) -> dict[str, float]:
    ranked = sorted(alternatives.items(), key=lambda kv: -kv[1])
    return dict(ranked if n is None else ranked[:n])
