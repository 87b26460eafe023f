"""The Generator protocol: what every family and every backend offers.

A trained family + codec, the embedded llama.cpp model and a remote OpenAI-compatible server all
satisfy it, so the CLI, the server, the guardrails and the review gate never ask which one they
hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from genlab.core.artifacts import Artifact, TextArtifact
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


class StopFilter:
    """Turns a growing text into stream pieces that never show a stop sequence.

    ``push(full_text)`` returns the new text that is safe to emit: text that could still be the
    start of a stop sequence is held back until it is clearly not. ``stopped`` says whether a stop
    sequence has appeared; ``text`` is then the output up to (not including) it.
    """

    def __init__(self, stop: tuple[str, ...] | list[str]) -> None:
        self.stop = tuple(stop)
        self.text = ""
        self.emitted = 0
        self.stopped = False

    def push(self, full_text: str) -> str:
        if self.stopped:
            return ""
        cut = min((i for i in (full_text.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self.text = full_text[:cut]
        else:
            self.text = full_text
        safe = len(self.text)
        if not self.stopped:
            # hold back a tail that is a prefix of some stop sequence
            for s in self.stop:
                for k in range(min(len(s) - 1, len(self.text)), 0, -1):
                    if self.text.endswith(s[:k]):
                        safe = min(safe, len(self.text) - k)
                        break
            if self.text.endswith("\ufffd"):  # an incomplete UTF-8 sequence from a byte-level codec
                safe = min(safe, len(self.text) - 1)
        piece = self.text[self.emitted : safe] if safe > self.emitted else ""
        self.emitted = max(self.emitted, safe)
        return piece

    def flush(self) -> str:
        piece = self.text[self.emitted :]
        self.emitted = len(self.text)
        return piece


def collect_text(
    chunks: Iterable[TextChunk],
    card: ModelCard,
    *,
    seed: int,
    parameters: dict[str, Any],
    keep_logprobs: bool = False,
) -> TextArtifact:
    """Run one choice's stream to its end and make the artifact: every streaming backend's
    ``generate`` is its ``stream`` collected, so the two can never disagree."""
    texts: list[str] = []
    logprobs: list[dict[str, Any]] = []
    last: TextChunk | None = None
    for chunk in chunks:
        texts.append(chunk.text)
        logprobs.extend(chunk.logprobs or [])
        last = chunk
    if last is None:  # pragma: no cover - every stream ends with a finish chunk
        raise RuntimeError("the stream ended without a finish chunk")
    return TextArtifact.create(
        "".join(texts),
        model=card.name,
        family=card.family,
        modality=card.modality,
        seed=seed,
        parameters=parameters,
        finish_reason=last.finish_reason,
        prompt_tokens=last.prompt_tokens,
        completion_tokens=last.completion_tokens,
        logprobs=logprobs if keep_logprobs else None,
    )


# -- capabilities beyond ``Generator``: a face asks by protocol, never by backend or family name ------
@runtime_checkable
class Voice(Protocol):
    """A voice: speaks free text (not a class), and hands out its audio as it is synthesised
    (float32 chunks at ``sample_rate`` Hz, each with whether it carries the watermark), the joined
    chunks becoming one clip with its provenance (``clip``)."""

    sample_rate: int

    def stream_audio(
        self, request: GenerationRequest, progress: Any = None
    ) -> Iterator[tuple[Any, bool]]: ...

    def clip(self, request: GenerationRequest, samples: Any, marked: bool) -> Artifact: ...


@runtime_checkable
class ImageMaker(Protocol):
    """A model of images (or frames): the sizes it draws, and the request it builds from a prompt
    and a face's options (``steps``, ``sampler``, ``size``, ``negative_prompt`` ...; it keeps the
    ones it takes). A trained family and a diffusers pipeline build different requests; no face
    needs to know which it holds."""

    def size(self, text: str | None) -> tuple[int, int]:
        """ "WIDTHxHEIGHT" (None: its own) -> (width, height); a 400 naming the sizes it draws."""
        ...

    def image_request(
        self, prompt: str | None, *, model: str, n: int, seed: int | None, options: dict[str, Any]
    ) -> GenerationRequest: ...


@runtime_checkable
class Constrained(Protocol):
    """A model genlab runs itself, whose sampling the constraint engine steers (JSON Schema,
    regex, grammars, tool calls: ``core/constraints.py``)."""

    supports_constraints: bool


@runtime_checkable
class ChatTemplated(Protocol):
    """A chat model with its own template (``core.chat.ChatFormat``); others read a transcript."""

    chat_format: Any


@runtime_checkable
class Embedder(Protocol):
    """Texts to vectors (``dimensions`` truncates where the model allows), and its token count."""

    def embed(self, texts: list[str], *, dimensions: int | None = None, progress: Any = None) -> Any: ...

    def count_tokens(self, texts: list[str]) -> int: ...


@runtime_checkable
class Transcriber(Protocol):
    """Speech (float32 samples at 16 kHz) to a transcript with its segments and duration."""

    def transcribe(self, samples: Any, *, progress: Any = None, **options: Any) -> Any: ...
