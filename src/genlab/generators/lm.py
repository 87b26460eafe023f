"""A trained transformer language model as a Generator: the GPT family + a text codec + weights."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from genlab.codecs.text import load_codec
from genlab.core import (
    GenerationRequest,
    InvalidRequestError,
    ModelCard,
    ModelLoadError,
    TextArtifact,
    TextChunk,
    as_request,
)
from genlab.core.constraints import Constrained, Grammar, compile_constraint
from genlab.core.generator import StopFilter, collect_text
from genlab.core.io import sha256_file
from genlab.families.transformer import GPT, TransformerConfig


def load_weights(model: torch.nn.Module, path: Path, *, expected_sha256: str | None = None) -> None:
    """Load safetensors weights (never pickle), checking the file's sha256 against the card's."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelLoadError(f"missing weights file {path}")
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        raise ModelLoadError(
            f"{path} is corrupt: its sha256 does not match the one recorded in the model card"
        )
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelLoadError(f"{path} is not a readable safetensors file: {e}") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("rope_")]
    if missing or unexpected:
        raise ModelLoadError(
            f"{path} does not fit this architecture (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


class TransformerLM:
    """Generate text or code from a transformer trained in genlab."""

    supports_streaming = True
    supports_constraints = True  # JSON Schema, regex, grammars, tool calls (core/constraints.py)

    def __init__(self, card: ModelCard, model: GPT, codec) -> None:
        self._card = card
        self.model = model.eval()
        self.codec = codec
        self._lock = threading.Lock()
        self._lltokenizer = None  # built from the codec on the first constrained request

    @classmethod
    def from_dir(cls, directory: Path, card: ModelCard, config: dict[str, Any]) -> TransformerLM:
        directory = Path(directory)
        try:
            arch = TransformerConfig(**config["model"])
            weights = directory / config["weights"]
        except (KeyError, TypeError) as e:
            raise ModelLoadError(f"{directory / 'config.json'} is not a transformer config: {e}") from None
        model = GPT(arch)
        load_weights(model, weights, expected_sha256=config.get("weights_sha256"))
        return cls(card, model, load_codec(directory))

    @property
    def card(self) -> ModelCard:
        return self._card

    @property
    def n_ctx(self) -> int:
        return self.model.config.block_size

    def count_tokens(self, text: str) -> int:
        return len(self.codec.encode(text))

    def _prepare(self, request, kwargs) -> tuple[GenerationRequest, list[int], Grammar | None]:
        request = as_request(request, **kwargs).validate()
        outside = [t for t in request.params.logit_bias or () if t >= self.codec.vocab_size]
        if outside:
            raise InvalidRequestError(
                f"logit_bias names token {outside[0]}, outside the vocabulary of {self.codec.vocab_size} tokens",
                param="logit_bias",
            )
        prompt = self.codec.encode(request.prompt)
        grammar = compile_constraint(request.params)
        if grammar is not None:
            with self._lock:
                if self._lltokenizer is None:
                    self._lltokenizer = self.codec.lltokenizer()
            Constrained(self._lltokenizer, grammar)  # refuses what this vocabulary cannot write
        return request, prompt, grammar

    def stream(self, request: GenerationRequest | str, **kwargs: Any) -> Iterator[TextChunk]:
        request, prompt, grammar = self._prepare(request, kwargs)
        return self._stream(request, prompt, grammar)

    def _stream(self, request: GenerationRequest, prompt: list[int], grammar) -> Iterator[TextChunk]:
        for index, seed in enumerate(request.choice_seeds()):
            yield from self._stream_one(request, prompt, grammar, seed, index)

    def _filter(self, grammar: Grammar | None, logit_bias: dict[int, float] | None = None):
        """The matcher of one constrained choice and the logits filter that adds the request's
        ``logit_bias`` and applies the matcher's mask."""
        if grammar is None and not logit_bias:
            return None, None
        constrained = Constrained(self._lltokenizer, grammar) if grammar is not None else None
        ids = torch.tensor(list(logit_bias or {}), dtype=torch.long)
        bias = torch.tensor(list((logit_bias or {}).values()), dtype=torch.float32)

        def apply(logits: torch.Tensor) -> torch.Tensor:
            logits = logits.float().index_add(0, ids, bias) if len(ids) else logits
            return torch.from_numpy(constrained.mask(logits.numpy())) if constrained is not None else logits

        return constrained, apply

    def _stream_one(self, request, prompt, grammar, seed, index) -> Iterator[TextChunk]:
        p = request.params
        constrained, logits_filter = self._filter(grammar, p.logit_bias)
        generator = torch.Generator().manual_seed(seed)
        stops = StopFilter(p.stop)
        new: list[int] = []
        finish = "length"
        # Prompts longer than the context keep their last block_size tokens (the window slides).
        context = prompt[-self.model.config.block_size :] or [self.codec.eot_id]
        with self._lock:
            for token in self.model.sample_tokens(
                context,
                p.max_tokens,
                temperature=p.temperature,
                top_k=p.top_k,
                top_p=p.top_p,
                generator=generator,
                logits_filter=logits_filter,
            ):
                if constrained is not None:
                    constrained.advance(token)
                if token == self.codec.eot_id:
                    finish = "stop"
                    new.append(token)
                    break
                new.append(token)
                piece = stops.push(self.codec.decode(new))
                if piece:
                    yield TextChunk(text=piece, index=index)
                if stops.stopped:
                    finish = "stop"
                    break
        if not stops.stopped:
            rest = stops.flush()
            if rest:
                yield TextChunk(text=rest, index=index)
        yield TextChunk(
            text="", index=index, finish_reason=finish, prompt_tokens=len(prompt), completion_tokens=len(new)
        )

    def generate(self, request: GenerationRequest | str, **kwargs: Any) -> list[TextArtifact]:
        request, prompt, grammar = self._prepare(request, kwargs)
        artifacts = []
        for index, seed in enumerate(request.choice_seeds()):
            chunks = self._stream_one(request, prompt, grammar, seed, index)
            parameters = {**request.params.to_dict(), "backend": "torch"}
            artifacts.append(collect_text(chunks, self.card, seed=seed, parameters=parameters))
        return artifacts
