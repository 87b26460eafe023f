"""Video datasets: ``moving-digits``, the shipped handwritten digits moving on a small canvas.

Each clip is one 16x16 digit of ``digits`` (scikit-learn's, the same 80/20 split: validation clips
move handwriting no training clip shows) on a 32x32 black canvas for 8 frames at 8 frames per
second. Per clip a direction (left, right, up, down) and a speed (slow: 1 px a frame, fast: 2) are
drawn, every combination equally often; the sprite bounces off the canvas's edges. Its start is
drawn where the first half of the clip runs before any bounce, so the asked direction is what the
clip shows first (the motion metric reads that half). Labels are the factorised index
``(digit * 4 + direction) * 2 + speed``, class names such as "7 left fast".

Deterministic given the seed; rendered in a second, so nothing is cached.

A folder of the user's clips (MP4, WebM, animated GIF; one sub-folder per class, or flat for an
unconditional model) is the second source: every clip is read (``core/video.py``), cut to the
shortest clip's length (at most 16 frames), resized to 32x32 and split 90/10 by class.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.codecs.image import from_uint8, to_uint8
from genlab.codecs.video import DIRECTIONS, SPEEDS, factor_names
from genlab.core import InvalidRequestError
from genlab.core.video import VIDEO_SUFFIXES, read_video
from genlab.data.images import ImageDataset, _stratified_split, class_files, load_digits

BUILTIN_VIDEO_DATASETS = ("moving-digits",)
CANVAS, SPRITE, FRAMES, FPS = 32, 16, 8, 8.0
PIXELS_PER_FRAME = (1, 2)  # slow, fast
STEP = {0: (0, -1), 1: (0, 1), 2: (-1, 0), 3: (1, 0)}  # direction -> (dy, dx): left, right, up, down


class Clips:
    """uint8 clips (N, T, C, H, W) that index as float tensors in [-1, 1], a batch at a time: the
    dataset stays a quarter of its float size in memory."""

    def __init__(self, pixels: torch.Tensor) -> None:
        self.pixels = pixels

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, idx) -> torch.Tensor:
        return from_uint8(self.pixels[idx])

    @property
    def shape(self) -> torch.Size:
        return self.pixels.shape


@dataclass
class VideoDataset(ImageDataset):
    """Clips (N, T, C, H, W) with factorised labels; ``train`` and ``val`` are ``Clips``."""

    fps: float = FPS
    factors: dict[str, tuple[str, ...]] = field(default_factory=dict)  # the label's factors, outermost first

    @property
    def frames(self) -> int:
        return int(self.train.shape[1])

    @property
    def channels(self) -> int:
        return int(self.train.shape[2])

    @property
    def size(self) -> int:
        return int(self.train.shape[3])

    def shape_config(self) -> dict[str, Any]:
        return {
            **super().shape_config(),
            "frames": self.frames,
            "factors": [len(f) for f in self.factors.values()],
        }

    def manifest(self) -> dict[str, Any]:
        def sha(clips: Clips) -> str:
            return hashlib.sha256(clips.pixels.numpy().tobytes()).hexdigest()

        labels = self.train_labels if self.train_labels is not None else torch.zeros(1, dtype=torch.long)
        counts = {"train": np.bincount(labels.numpy(), minlength=len(self.class_names))}
        return {
            "dataset": self.name,
            "source": self.source,
            "modality": self.modality,
            "codec": self.codec,
            "shape": [self.frames, self.channels, self.size, self.size],
            "factors": {k: list(v) for k, v in self.factors.items()},
            "train": {"clips": len(self.train), "min_per_class": int(counts["train"].min())},
            "val": {"clips": len(self.val)},
            "train_sha256": sha(self.train),
            "val_sha256": sha(self.val),
            **self.extra,
        }


def bounce(start: np.ndarray, velocity: np.ndarray, frames: int, room: int) -> np.ndarray:
    """Positions (frames, 2) of a point moving at ``velocity`` in [0, room], reflected at both ends."""
    raw = start[None, :] + velocity[None, :] * np.arange(frames)[:, None]  # unfolded path
    folded = np.mod(raw, 2 * room)
    return np.where(folded > room, 2 * room - folded, folded).astype(int)


def draw_motion(rng: np.random.Generator, combo: int, frames: int = FRAMES) -> tuple[int, int, np.ndarray]:
    """(direction, speed, positions (frames, 2) as (y, x)) of one clip; ``combo`` picks direction x speed."""
    direction, speed = divmod(combo, len(SPEEDS))
    room = CANVAS - SPRITE
    velocity = np.array(STEP[direction]) * PIXELS_PER_FRAME[speed]
    clear = PIXELS_PER_FRAME[speed] * (frames // 2)  # travel before the first bounce is allowed
    start = rng.integers(0, room + 1, size=2)
    axis = 0 if direction in (2, 3) else 1
    forward = velocity[axis] > 0
    start[axis] = rng.integers(0, room - clear + 1) if forward else rng.integers(clear, room + 1)
    return direction, speed, bounce(start, velocity, frames, room)


def render_clip(sprite: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """uint8 (T, 1, CANVAS, CANVAS): the sprite pasted at each position on a black canvas."""
    clip = np.zeros((len(positions), 1, CANVAS, CANVAS), np.uint8)
    for t, (y, x) in enumerate(positions):
        clip[t, 0, y : y + SPRITE, x : x + SPRITE] = sprite
    return clip


def _clips(
    sprites: np.ndarray, digits: np.ndarray, per_sprite: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    combos = len(DIRECTIONS) * len(SPEEDS)
    clips, labels = [], []
    for i, (sprite, digit) in enumerate(zip(sprites, digits, strict=True)):
        for k in range(per_sprite):
            direction, speed, positions = draw_motion(rng, (i * per_sprite + k) % combos)
            clips.append(render_clip(sprite, positions))
            labels.append((int(digit) * len(DIRECTIONS) + direction) * len(SPEEDS) + speed)
    return torch.from_numpy(np.stack(clips)), torch.tensor(labels, dtype=torch.long)


def load_moving_digits(*, seed: int = 0, per_sprite: int = 4) -> VideoDataset:
    digits = load_digits(16)
    sprites = {s: to_uint8(getattr(digits, s))[:, 0].numpy() for s in ("train", "val")}
    train, train_y = _clips(sprites["train"], digits.train_labels.numpy(), per_sprite, seed)
    val, val_y = _clips(sprites["val"], digits.val_labels.numpy(), 1, seed + 1)
    names = tuple(digits.class_names)
    return VideoDataset(
        name="moving-digits",
        train=Clips(train),
        val=Clips(val),
        train_labels=train_y,
        val_labels=val_y,
        class_names=factor_names([list(names), list(DIRECTIONS), list(SPEEDS)]),
        source=f"scikit-learn's handwritten digits (16x16) moving on a {CANVAS}x{CANVAS} canvas, {FRAMES} "
        f"frames at {FPS:g} fps, bouncing; {per_sprite} clips per training digit, 1 per held-out digit",
        modality="video",
        codec={"fps": FPS, "frames": FRAMES},
        extra={"split": "the digits' stratified 80/20 split (seed 0)", "seed": seed},
        fps=FPS,
        factors={"digit": names, "direction": DIRECTIONS, "speed": SPEEDS},
    )


# -- folders --------------------------------------------------------------------------------------
MAX_FRAMES = 16


def holds_video(path: Path) -> bool:
    """Whether a folder (or its class sub-folders) holds clips: MP4/WebM files, or animated GIFs."""
    from PIL import Image

    files = [f for f in Path(path).rglob("*") if f.is_file()]
    if any(f.suffix.lower() in (".mp4", ".webm") for f in files):
        return True
    for gif in [f for f in files if f.suffix.lower() == ".gif"][:3]:
        try:
            with Image.open(gif) as im:
                if getattr(im, "n_frames", 1) > 1:
                    return True
        except OSError:
            continue
    return False


def _square(frames: np.ndarray, side: int, grey: bool) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, C, side, side), bilinear."""
    from PIL import Image

    mode = "L" if grey else "RGB"
    out = [
        np.asarray(Image.fromarray(f).convert(mode).resize((side, side), Image.Resampling.BILINEAR))
        for f in frames
    ]
    x = np.stack(out)
    return x[:, None] if grey else x.transpose(0, 3, 1, 2)


def load_video_folder(path: Path, *, seed: int = 0, side: int = CANVAS) -> VideoDataset:
    path = Path(path).expanduser()
    class_names, files = class_files(path, VIDEO_SUFFIXES, "video clips")
    read = []
    for _, f in files:
        try:
            read.append(read_video(f))
        except InvalidRequestError as e:
            raise InvalidRequestError(f"{f} is not a readable clip: {e}", param="data") from None
    frames = min(MAX_FRAMES, min(len(clip) for clip, _, _ in read))
    if frames < 2:
        raise InvalidRequestError(f"{path}: a clip has {frames} frame; at least 2 are needed", param="data")
    grey = all(bool((clip == clip[..., :1]).all()) for clip, _, _ in read)
    x = torch.from_numpy(np.stack([_square(clip[:frames], side, grey) for clip, _, _ in read]))
    labels = np.array([ci for ci, _ in files])
    if class_names:
        train, val = _stratified_split(labels, 0.1, seed)
    else:
        order = np.random.default_rng(seed).permutation(len(files))
        val, train = np.sort(order[: max(1, len(files) // 10)]), np.sort(order[max(1, len(files) // 10) :])
    y = torch.tensor(labels, dtype=torch.long)
    fps = float(np.median([fps for _, fps, _ in read]))
    return VideoDataset(
        name=path.name,
        train=Clips(x[train]),
        val=Clips(x[val]),
        train_labels=y[train] if class_names else None,
        val_labels=y[val] if class_names else None,
        class_names=class_names,
        source=f"video folder {path} ({len(files)} clips, {len(class_names) or 'no'} classes), "
        f"{frames} frames at {side}x{side}",
        modality="video",
        codec={"fps": fps, "frames": frames},
        fps=fps,
        factors={"class": tuple(class_names)} if class_names else {},
    )
