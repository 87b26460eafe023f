"""Video metrics, next to the real-data floor: what a clip shows, and how it moves.

- **Per-frame class accuracy**: each frame's sprite, cropped to 16x16 around its centre of mass,
  classified by the shipped digits classifier; the share that is the asked digit.
- **Temporal consistency**: the share of a clip's frames classified as its most frequent digit
  (a digit that morphs mid-clip scores low), and the mean frame-to-frame distance of the crops'
  classifier features (jitter).
- **Motion accuracy**: the sprite's centre-of-mass track over the first half of the clip (before
  any bounce, as moving-digits is drawn) gives a displacement; its dominant axis and sign are the
  direction, its length per frame the speed. Direction accuracy, and the mean absolute speed error
  in pixels per frame against the asked speed.
- **Per-frame FID** of the crops in the classifier's feature space (generated vs held-out frames).

The floor is the same measures on held-out real clips (for FID: training frames vs held-out).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from genlab.codecs.video import DIRECTIONS
from genlab.data.video import PIXELS_PER_FRAME, SPRITE, STEP

CROP = SPRITE


def centroids(clips: torch.Tensor) -> torch.Tensor:
    """Clips (N, T, C, H, W) in [-1, 1] -> each frame's centre of mass (N, T, 2) as (y, x) pixels."""
    mass = ((clips.mean(2) + 1) / 2).clamp_min(0)  # (N, T, H, W) brightness in [0, 1]
    h, w = mass.shape[-2:]
    total = mass.sum((-1, -2)).clamp_min(1e-6)
    ys = (mass.sum(-1) * torch.arange(h)).sum(-1) / total
    xs = (mass.sum(-2) * torch.arange(w)).sum(-1) / total
    return torch.stack([ys, xs], -1)


def motion(track: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tracks (N, T, 2) -> (direction index (N,), speed in pixels per frame (N,)) over the first half."""
    half = track.shape[1] // 2
    d = (track[:, half] - track[:, 0]) / half  # (dy, dx) per frame
    steps = torch.tensor([STEP[i] for i in range(len(DIRECTIONS))], dtype=torch.float32)  # (4, 2)
    direction = (d @ steps.T).argmax(1)  # the direction whose unit step the displacement follows most
    return direction, d.norm(dim=1)


def crops(clips: torch.Tensor, track: torch.Tensor) -> torch.Tensor:
    """Each frame's CROPxCROP window centred on its centre of mass: (N·T, C, CROP, CROP)."""
    n, t, c, h, w = clips.shape
    frames = clips.reshape(n * t, c, h, w)
    corner = (track.reshape(n * t, 2) - (CROP - 1) / 2).round().long()
    corner[:, 0].clamp_(0, h - CROP)
    corner[:, 1].clamp_(0, w - CROP)
    return torch.stack(
        [f[:, y : y + CROP, x : x + CROP] for f, (y, x) in zip(frames, corner.tolist(), strict=True)]
    )


def clip_metrics(
    clips: torch.Tensor, labels: torch.Tensor, sizes: tuple[int, int, int], classifier
) -> dict[str, Any]:
    """The measures above for clips asked for ``labels`` (factorised: digit, direction, speed)."""
    digit = labels // (sizes[1] * sizes[2])
    direction, speed = (labels // sizes[2]) % sizes[1], labels % sizes[2]
    track = centroids(clips)
    moved, pace = motion(track)
    asked_pace = torch.tensor(PIXELS_PER_FRAME, dtype=torch.float32)[speed]
    out = {
        "motion_accuracy": float((moved == direction).float().mean()),
        "speed_error": float((pace - asked_pace).abs().mean()),
    }
    if classifier is not None:
        seen = crops(clips, track)
        predicted = classifier.predict(seen).view(len(clips), -1)  # (N, T)
        majority = predicted.mode(1).values
        feats = torch.as_tensor(classifier.features(seen)).view(len(clips), clips.shape[1], -1)
        out |= {
            "frame_class_accuracy": float((predicted == digit[:, None]).float().mean()),
            "temporal_consistency": float((predicted == majority[:, None]).float().mean()),
            "frame_feature_distance": float((feats[:, 1:] - feats[:, :-1]).norm(dim=-1).mean()),
        }
    return {k: round(v, 4) for k, v in out.items()}


def frame_fid(real: torch.Tensor, fake: torch.Tensor, classifier) -> float:
    """Per-frame FID of the sprites' crops in the classifier's feature space."""
    from genlab.evaluation.metrics import fid

    def features(clips: torch.Tensor) -> np.ndarray:
        return classifier.features(crops(clips, centroids(clips)))

    return round(fid(features(real), features(fake)), 4)


def evaluate_video_model(
    name: str,
    *,
    samples: int = 80,
    options: dict[str, Any] | None = None,
    seed: int = 0,
    write_card: bool = True,
    progress=None,
) -> dict[str, Any]:
    """Sample ``samples`` clips (labels in turn) and measure them, next to the held-out floor."""
    import time

    from genlab.core import InvalidRequestError, UnsupportedError
    from genlab.data.datasets import load_image_dataset
    from genlab.evaluation.classifier import load_classifier
    from genlab.registry import default_registry

    registry = default_registry()
    entry = registry.get(name)
    if entry.kind != "video":
        raise UnsupportedError(
            f"{name!r} is a {entry.card.modality} model; `genlab eval video` measures video models"
        )
    if samples < 8:
        raise InvalidRequestError(f"samples must be at least 8, got {samples}", param="samples")
    model = registry.load(name)
    opts = model.options({k: v for k, v in (options or {}).items() if v is not None})
    data = load_image_dataset(entry.config["data"], registry.settings)
    loaded = load_classifier("digits", registry.settings)
    classifier = loaded[0] if loaded else None
    k = len(model.classes)
    labels = torch.tensor([i % k for i in range(samples)]) if k else None
    step = progress or (lambda _message: None)
    step(f"sampling {samples} clips")
    started = time.perf_counter()
    clips = model.sample(
        labels.tolist() if labels is not None else None, [seed + i for i in range(samples)], **opts
    )
    seconds = time.perf_counter() - started
    step("measuring")
    metrics: dict[str, Any] = {"model": name, "data": entry.config["data"], "samples": samples, **opts}
    if labels is None or not model.moving:  # the measures read moving digits; a folder's clips get none
        classifier = None
    else:
        sizes = model.label_sizes
        metrics |= clip_metrics(clips, labels, sizes, classifier)
        metrics["floor"] = clip_metrics(data.val[:], data.val_labels, sizes, classifier)
    if classifier is not None:
        metrics["frame_fid"] = frame_fid(data.val[:], clips, classifier)
        metrics.setdefault("floor", {})["frame_fid"] = frame_fid(
            data.val[:], data.train[:samples], classifier
        )
    metrics["sampling_seconds"] = round(seconds, 2)
    metrics["seconds_per_clip"] = round(seconds / samples, 3)
    if write_card and entry.path is not None and "card" in entry.config:
        registry.record_metrics(name, "eval", {k2: v for k2, v in metrics.items() if k2 != "model"})
    return metrics
