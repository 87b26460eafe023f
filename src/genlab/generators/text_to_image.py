"""Pretrained text-to-image pipelines a user brings or pulls (Stable Diffusion 1.x/2.x, SD-Turbo,
SDXL-class, tiny distilled ones), run by diffusers on the CPU.

genlab's own diffusion family draws the classes it was trained on; these pipelines draw what a
prompt describes. A pipeline folder (``model_index.json`` and its components, as ``save_pretrained``
writes it) is loaded once in float32 (CPUs have no fast float16) with attention slicing, and each
request picks its prompt, negative prompt, size, steps, guidance scale, scheduler and seed. Before a
request runs, its memory is estimated (the weights plus the activations of the latents at that
size and batch) and refused with a clear error if it would not fit the RAM that is free, instead
of being killed half-way. Every image carries provenance and the invisible watermark.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

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

SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "pndm": "PNDMScheduler",
    "lms": "LMSDiscreteScheduler",
}
ACTIVATION_BYTES_PER_PIXEL = 3 * 1024  # a rough working set of the UNet and VAE decoder per output pixel


def pipeline_request(
    prompt: str | None,
    *,
    model: str,
    n: int = 1,
    seed: int | None = None,
    size: str | None = None,
    negative_prompt: str | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    scheduler: str | None = None,
) -> GenerationRequest:
    """A text-to-image pipeline's request (the API's and the CLI's): the prompt describes the image;
    size, negative prompt, steps, guidance and scheduler ride in ``extra``."""
    extra = {
        "size": size,
        "negative_prompt": negative_prompt,
        "steps": steps,
        "guidance": guidance,
        "scheduler": scheduler,
    }
    return GenerationRequest(
        prompt=prompt, model=model, n=n, seed=seed, params=SamplingParams(extra=extra)
    ).validate()


def pipeline_info(directory: Path) -> dict[str, Any]:
    """The pipeline class and components of a diffusers folder; a clear error if it is not one."""
    index = Path(directory) / "model_index.json"
    if not index.is_file():
        raise InvalidRequestError(
            f"{directory} is not a diffusers pipeline folder (it has no model_index.json)",
            hint="give the folder that `save_pretrained` wrote, or `genlab models pull REPO`",
        )
    try:
        data = json.loads(index.read_text("utf-8"))
    except json.JSONDecodeError as e:
        raise InvalidRequestError(f"{index} is not JSON: {e}") from None
    components = [k for k, v in data.items() if not k.startswith("_") and isinstance(v, list) and v[0]]
    if "unet" not in components and "transformer" not in components:
        raise InvalidRequestError(f"{directory} is a {data.get('_class_name')}, not a text-to-image pipeline")
    return {"class": data.get("_class_name", "DiffusionPipeline"), "components": components}


def available_memory() -> int:
    """Bytes of RAM free for new work (MemAvailable), or a large number when unknown."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 1 << 62


class TextToImagePipeline:
    """A diffusers text-to-image pipeline behind genlab's Generator protocol. Thread-safe."""

    supports_streaming = False

    def __init__(self, card: ModelCard, directory: Path, *, threads: int = 1) -> None:
        import torch
        from diffusers import DiffusionPipeline
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        for log in (diffusers_logging, transformers_logging):  # genlab reports its own progress
            log.set_verbosity_error()
            log.disable_progress_bar()
        self._card = card
        self.directory = Path(directory)
        try:
            self.pipe = DiffusionPipeline.from_pretrained(
                str(directory), torch_dtype=torch.float32, local_files_only=True, use_safetensors=True
            )  # never a pickled .bin, even through the restricted unpickler
        except (OSError, ValueError, TypeError) as e:
            raise ModelLoadError(
                f"diffusers could not load {directory}: {' '.join(str(e).split())[:300]}"
            ) from None
        self.pipe.set_progress_bar_config(disable=True)
        if hasattr(self.pipe, "enable_attention_slicing"):
            self.pipe.enable_attention_slicing()  # less peak memory on a CPU, the same images
        self.weights_bytes = sum(
            p.numel() * p.element_size()
            for c in self.pipe.components.values()
            if hasattr(c, "parameters")
            for p in c.parameters()
        )
        unet = getattr(self.pipe, "unet", None) or getattr(self.pipe, "transformer", None)
        sample = getattr(unet.config, "sample_size", 64) if unet is not None else 64
        sample = sample[0] if isinstance(sample, list | tuple) else sample
        self.default_size = int(sample) * int(getattr(self.pipe, "vae_scale_factor", 8))
        self._lock = threading.Lock()

    @property
    def card(self) -> ModelCard:
        return self._card

    def size(self, text: str | None) -> tuple[int, int]:
        """ "512x512" -> (width, height); the pipeline's native size by default; multiples of 8."""
        if not text:
            return self.default_size, self.default_size
        try:
            w, h = (int(x) for x in text.lower().split("x"))
        except ValueError:
            raise InvalidRequestError(
                f"size must be WIDTHxHEIGHT, like 512x512, got {text!r}", param="size"
            ) from None
        if not (8 <= w <= 2048 and 8 <= h <= 2048 and w % 8 == 0 and h % 8 == 0):
            raise InvalidRequestError(
                f"size {text!r}: width and height must be multiples of 8 from 8 to 2048", param="size"
            )
        return w, h

    def image_request(
        self, prompt: str | None, *, model: str, n: int, seed: int | None, options: dict[str, Any]
    ) -> GenerationRequest:
        """The prompt describes the image; genlab's sampler names are schedulers too."""
        return pipeline_request(
            prompt,
            model=model,
            n=n,
            seed=seed,
            size=options.get("size"),
            negative_prompt=options.get("negative_prompt"),
            steps=options.get("steps"),
            guidance=options.get("guidance"),
            scheduler=options.get("scheduler") or options.get("sampler"),
        )

    def estimate(self, width: int, height: int, n: int) -> int:
        return self.weights_bytes + n * width * height * ACTIVATION_BYTES_PER_PIXEL

    def _scheduler(self, name: str | None) -> None:
        import diffusers

        if name is None:
            return
        if name not in SCHEDULERS:
            raise InvalidRequestError(
                f"scheduler must be one of {', '.join(SCHEDULERS)}, got {name!r}", param="scheduler"
            )
        self.pipe.scheduler = getattr(diffusers, SCHEDULERS[name]).from_config(self.pipe.scheduler.config)

    def generate(
        self,
        request: GenerationRequest | str,
        progress: Callable[[int, int], None] | None = None,
        **kwargs: Any,
    ) -> list[ImageArtifact]:
        import torch

        from genlab.safety.watermark import SCHEME, embed_image, watermark_key

        request = as_request(request, **kwargs)
        prompt = (request.prompt or "").strip()
        if not prompt:
            raise InvalidRequestError("describe the image to draw: the prompt is empty", param="prompt")
        extra = request.params.extra
        width, height = self.size(extra.get("size"))
        steps = int(extra.get("steps") or 25)
        guidance = float(extra["guidance"]) if extra.get("guidance") is not None else 7.5
        need, free = self.estimate(width, height, request.n), available_memory()
        if need > 0.9 * free:
            raise InvalidRequestError(
                f"{self.card.name} at {width}x{height} x {request.n} needs about {need / 2**30:.1f} GiB of memory "
                f"and {free / 2**30:.1f} GiB are free; ask for fewer or smaller images",
                param="size",
            )
        seeds = request.choice_seeds()
        key, artifacts = watermark_key(), []
        with self._lock:
            self._scheduler(extra.get("scheduler"))
            for i, seed in enumerate(seeds):

                def step(pipe, index, timestep, tensors, i=i):
                    if progress is not None:
                        progress(i * steps + index + 1, len(seeds) * steps)
                    return tensors

                image = self.pipe(
                    prompt,
                    negative_prompt=extra.get("negative_prompt") or None,
                    width=width,
                    height=height,
                    num_inference_steps=steps,
                    guidance_scale=guidance,
                    generator=torch.Generator().manual_seed(seed),
                    output_type="np",
                    callback_on_step_end=step,
                ).images[0]
                pixels = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
                pixels, marked = embed_image(np.ascontiguousarray(pixels), key)
                parameters = {
                    "prompt": prompt,
                    "negative_prompt": extra.get("negative_prompt"),
                    "size": f"{width}x{height}",
                    "steps": steps,
                    "guidance": guidance,
                    "scheduler": type(self.pipe.scheduler).__name__,
                }
                artifacts.append(
                    ImageArtifact.create(
                        pixels,
                        watermark=SCHEME if marked else None,
                        label=prompt[:80],
                        model=self.card.name,
                        family=self.card.family,
                        seed=seed,
                        parameters=parameters,
                    )
                )
        return artifacts

    def stream(self, request, **kwargs: Any):
        raise UnsupportedError(f"{self.card.name} draws images: it does not stream tokens")


def describe_pipeline(
    name: str, directory: Path, source: str, reproduce: str
) -> tuple[dict[str, Any], ModelCard]:
    info = pipeline_info(directory)
    config = {"kind": "diffusers", "path": str(Path(directory).resolve()), "pipeline": info["class"]}
    card = ModelCard(
        name=name,
        family="diffusion",
        modality="image",
        backend="diffusers",
        description=f"a pretrained {info['class']} (text to image) added by the user, run by diffusers on the CPU",
        training_data="see the pipeline's own model card",
        licence="see the pipeline's own licence",
        reproduce=reproduce,
        source=source,
    )
    return config, card
