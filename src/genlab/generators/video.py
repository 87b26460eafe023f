"""A video family trained in genlab as a Generator: "a 7 moving left, fast" in, clips out.

The prompt names the clip's label factors (``codecs/video.py``: digit, direction, speed); a factor
it leaves out is drawn per clip from the clip's seed, so clip i of a request is reproducible on
its own. Each clip becomes a ``VideoArtifact`` (MP4 with the provenance in its metadata); the
image watermark is embedded in every frame where it applies (frames of 64 px and more), so a
32x32 clip is unmarked and its provenance says so (``watermark: null``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.codecs.image import resolve_class
from genlab.codecs.video import Motion, motion_label, parse_motion, to_frames
from genlab.core import (
    GenerationRequest,
    InvalidRequestError,
    ModelLoadError,
    VideoArtifact,
    as_request,
)
from genlab.generators.image import ImageModel, sample_option_names

Progress = Callable[[int, int], None]  # (denoising steps done, steps in all)


class VideoModel(ImageModel):
    """Generate clips from a video family (``video-diffusion``) trained on moving digits."""

    fps: float = 8.0

    def read_codec(self, codec: dict[str, Any], where: Path) -> None:
        if "fps" not in codec:
            raise ModelLoadError(f"{where} lacks the video codec's fps")
        self.fps = float(codec["fps"])

    @property
    def frames(self) -> int:
        return int(self.model.config.frames)

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    @property
    def label_sizes(self) -> tuple[int, ...]:
        sizes = tuple(self.model.config.label_sizes)
        return sizes if len(sizes) == 3 else (sizes[0], 1, 1)

    @property
    def digits(self) -> list[str]:
        """The first factor's values, read from the class names ("7 left fast" -> "7")."""
        inner = math.prod(self.label_sizes[1:])
        return [self.classes[i * inner].split()[0] for i in range(self.label_sizes[0])]

    @property
    def moving(self) -> bool:
        """Labelled digit x direction x speed (moving-digits), not a folder's classes."""
        return len(self.model.config.label_sizes) == 3

    def motion(self, prompt: str | None) -> Motion:
        """What the prompt asks; a model of a folder's classes reads a class name ("waving")."""
        if prompt is None or not prompt.strip():
            return Motion()
        if not self.conditional:
            raise InvalidRequestError(
                f"{self.card.name} is unconditional: leave the prompt out", param="prompt"
            )
        if not self.moving:
            return Motion(digit=resolve_class(prompt, self.classes))
        return parse_motion(prompt, self.digits)

    def plan(self, request, kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[int] | None, list[int]]:
        """A request -> (sampling options, one label per clip or None, one seed per clip)."""
        extra = {k: kwargs.pop(k) for k in sample_option_names() if k in kwargs}
        request = as_request(request, **kwargs).validate(needs_prompt=False)
        options = self.options({**request.params.extra, **extra})
        motion = self.motion(request.condition or request.prompt)
        seeds = request.choice_seeds()
        labels = [motion_label(motion, self.label_sizes, s) for s in seeds] if self.conditional else None
        return options, labels, seeds

    def generate(
        self, request: GenerationRequest | str | None = None, progress: Progress | None = None, **kwargs: Any
    ) -> list[VideoArtifact]:
        """One clip per seed; ``progress(done, total)`` hears each denoising step: the pipeline's
        budget (deadline, a client that left), then a progress bar or a job's percentage."""
        options, labels, seeds = self.plan(request, kwargs)
        clips = self.sample(labels, seeds, progress=progress, **options)  # (N, T, C, H, W)
        from genlab.safety.watermark import SCHEME, embed_image, watermark_key

        key = watermark_key()
        artifacts = []
        for i, seed in enumerate(seeds):
            frames, marked = self.mark(to_frames(clips[i]), key, embed_image)
            label = self.classes[labels[i]] if labels is not None else None
            artifacts.append(
                VideoArtifact.create(
                    frames,
                    self.fps,
                    watermark=SCHEME if marked else None,
                    label=label,
                    model=self.card.name,
                    family=self.card.family,
                    seed=seed,
                    parameters={"class": label, "frames": self.frames, "fps": self.fps, **options},
                )
            )
        return artifacts

    @staticmethod
    def mark(frames: np.ndarray, key, embed) -> tuple[np.ndarray, bool]:
        """The image watermark in every frame, or no frame marked where it does not apply."""
        out, marks = [], []
        for f in frames:
            pixels, marked = embed(np.ascontiguousarray(f[..., 0] if f.shape[2] == 1 else f), key)
            out.append(pixels.reshape(f.shape))
            marks.append(marked)
        return (np.stack(out), True) if all(marks) else (frames, False)

    def sample(
        self, labels, seeds, *, batch: int = 64, progress: Progress | None = None, **options
    ) -> torch.Tensor:
        """Clips in [-1, 1], (N, T, C, H, W); ``progress`` hears the steps of all batches together."""
        out, batches = [], math.ceil(len(seeds) / batch)
        with self._lock, torch.no_grad():
            for b, i in enumerate(range(0, len(seeds), batch)):
                gens = [torch.Generator().manual_seed(s) for s in seeds[i : i + batch]]
                y = None if labels is None else torch.tensor(labels[i : i + batch], dtype=torch.long)

                def heard(done: int, steps: int, b: int = b) -> None:
                    if progress is not None:
                        progress(b * steps + done, batches * steps)

                out.append(self.model.sample(y, gens, progress=heard, **options))
        return torch.cat(out)
