"""A trained image family (GAN, VAE or diffusion) as a Generator: a prompt names a class, out come images.

The three families share everything here: building from a published folder, prompt -> class,
one seed per image (image i of a request is reproducible on its own), batching, and artifacts with
provenance. Only ``sample`` differs, and each family file writes its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genlab.codecs.image import resolve_class, to_uint8
from genlab.core import (
    GenerationRequest,
    ImageArtifact,
    InvalidRequestError,
    ModelCard,
    ModelLoadError,
    SamplingParams,
    UnsupportedError,
    as_request,
)
from genlab.families.build import build_family, published_module
from genlab.families.spec import families, family_spec


def sample_option_names() -> set[str]:
    """Every sampling option any family takes (``steps``, ``sampler``, ``guidance`` ...)."""
    return {k for spec in families() for k in spec.sampling}


def family_request(
    model: str, prompt: str | None, *, n: int = 1, seed: int | None = None, options: dict[str, Any]
) -> GenerationRequest:
    """A request to a family genlab trains (every face's: images, audio, video): the prompt names
    a class; its sampling options ride in ``extra``, diffusion's three always, and
    any other that a declared family takes (``FamilySpec.sampling``), checked by it when sampling."""
    declared = {k: v for k, v in options.items() if k in sample_option_names()}
    extra = {**declared, **{k: options.get(k) for k in ("steps", "sampler", "guidance")}}
    return GenerationRequest(
        prompt=prompt, model=model, n=n, seed=seed, params=SamplingParams(extra=extra)
    ).validate(needs_prompt=False)


class ImageModel:
    """Generate images from a GAN, VAE or diffusion model trained in genlab."""

    supports_streaming = False

    def __init__(
        self, card: ModelCard, model: nn.Module, classes: list[str], defaults: dict[str, Any]
    ) -> None:
        self._card = card
        self.model = model.eval()
        self.classes = list(classes)
        self.defaults = dict(defaults)
        self._lock = threading.Lock()

    @classmethod
    def from_dir(cls, directory: Path, card: ModelCard, config: dict[str, Any]) -> ImageModel:
        from genlab.generators.lm import load_weights

        try:
            model = build_family(config["family"], config["model"])
            weights = Path(directory) / config["weights"]
        except KeyError as e:
            raise ModelLoadError(f"{Path(directory) / 'config.json'} lacks {e}") from None
        load_weights(published_module(model), weights, expected_sha256=config.get("weights_sha256"))
        made = cls(card, model, config.get("classes", []), config.get("sampling", {}))
        made.read_codec(config.get("codec", {}), Path(directory) / "config.json")
        return made

    def read_codec(self, codec: dict[str, Any], where: Path) -> None:
        """What a modality's codec needs from the config's ``codec`` (images: nothing; audio its
        mel settings, video its frame rate), or a ``ModelLoadError`` naming ``where``."""

    @property
    def card(self) -> ModelCard:
        return self._card

    @property
    def family(self) -> str:
        return self.model.family

    @property
    def conditional(self) -> bool:
        return bool(self.classes)

    def size(self, text: str | None) -> tuple[int, int]:
        """The one size it draws (its network's), or a 400 naming it."""
        side = getattr(self.model.config, "size", None)
        if text is not None and side is not None and text != f"{side}x{side}":
            raise InvalidRequestError(
                f"model {self.card.name!r} draws {side}x{side} images; size {text!r} is not available",
                param="size",
            )
        return side or 0, side or 0

    def image_request(
        self, prompt: str | None, *, model: str, n: int, seed: int | None, options: dict[str, Any]
    ) -> GenerationRequest:
        prompt = prompt if prompt is not None and prompt.strip() else None  # blank: no class
        return family_request(model, prompt, n=n, seed=seed, options=options)

    def class_index(self, prompt: str | None) -> int | None:
        if prompt is None or not str(prompt).strip():
            return None
        if not self.conditional:
            raise InvalidRequestError(
                f"{self.card.name} is unconditional: it takes no class prompt; leave the prompt out",
                param="prompt",
            )
        return resolve_class(prompt, self.classes)

    def options(self, extra: dict[str, Any]) -> dict[str, Any]:
        """The request's sampling options, checked by the family's declaration."""
        given = {k: v for k, v in extra.items() if v is not None}
        return family_spec(self.family).options(self.model, {**self.defaults, **given}, name=self.card.name)

    def sample(
        self,
        labels: list[int] | None,
        seeds: list[int],
        *,
        batch: int = 256,
        progress: Callable[[int, int], None] | None = None,
        **options: Any,
    ) -> torch.Tensor:
        """Images in [-1, 1] for these labels and seeds, computed in batches. ``progress(done,
        total)`` hears each step of each batch (a diffusion model's denoising steps; a GAN's or a
        VAE's one pass), and may raise to stop the work there."""
        out, batches = [], range(0, len(seeds), batch)
        steps = int(options.get("steps") or 1) if self.family == "diffusion" else 1
        with self._lock, torch.no_grad():
            for k, i in enumerate(batches):
                gens = [torch.Generator().manual_seed(s) for s in seeds[i : i + batch]]
                y = None if labels is None else torch.tensor(labels[i : i + batch], dtype=torch.long)

                def on_step(step: int, _total: int, k: int = k) -> None:
                    progress(k * steps + step, len(batches) * steps)

                if progress is not None:
                    on_step(0, steps)
                out.append(self.model.sample(y, gens, on_step=on_step if progress else None, **options))
        return torch.cat(out)

    def plan(
        self, request: GenerationRequest | str | None, kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], list[int] | None, list[int]]:
        """A request -> (sampling options, one class index per item or None, one seed per item)."""
        extra = {k: kwargs.pop(k) for k in sample_option_names() if k in kwargs}
        request = as_request(request, **kwargs)
        request = request.validate(needs_prompt=False)
        options = self.options({**request.params.extra, **extra})
        index = self.class_index(request.condition or request.prompt)
        seeds = request.choice_seeds()
        if not self.conditional:
            labels = None
        elif index is None:  # no prompt: a class per item, cycling through them
            labels = [s % len(self.classes) for s in seeds]
        else:
            labels = [index] * len(seeds)
        return options, labels, seeds

    def generate(
        self,
        request: GenerationRequest | str | None = None,
        progress: Callable[[int, int], None] | None = None,
        **kwargs: Any,
    ) -> list[ImageArtifact]:
        options, labels, seeds = self.plan(request, kwargs)
        from genlab.safety.watermark import SCHEME, embed_image, watermark_key

        images = self.sample(labels, seeds, progress=progress, **options)
        images = to_uint8(images).permute(0, 2, 3, 1).numpy()
        key = watermark_key()
        artifacts = []
        for i, seed in enumerate(seeds):
            pixels = images[i][:, :, 0] if images.shape[3] == 1 else images[i]
            pixels, marked = embed_image(np.ascontiguousarray(pixels), key)  # images of 64 px and more
            label = self.classes[labels[i]] if labels is not None else None
            artifacts.append(
                ImageArtifact.create(
                    pixels,
                    watermark=SCHEME if marked else None,
                    label=label,
                    model=self.card.name,
                    family=self.card.family,
                    seed=seed,
                    parameters={"class": label, **options},
                )
            )
        return artifacts

    def stream(self, request, **kwargs: Any) -> Iterator:
        raise UnsupportedError(f"{self.card.name} is a {self.family} image model: it does not stream tokens")
