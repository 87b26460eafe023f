"""The video codec: frames <-> tensors, and a motion prompt -> (digit, direction, speed).

A clip is a tensor (T, C, H, W) in [-1, 1], a batch (N, T, C, H, W); the frames people see are
uint8 (T, H, W, C). Files (MP4, WebM, GIF, the frame rate in their metadata) are
``genlab.core.video``'s. A prompt such as "a 7 moving left, fast" names the factors a moving-digits
clip is labelled with; a factor the prompt leaves out is drawn per clip from its seed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from genlab.codecs.image import DIGIT_WORDS, from_uint8, to_uint8
from genlab.core import InvalidRequestError

DIRECTIONS = ("left", "right", "up", "down")
SPEEDS = ("slow", "fast")
_SYNONYMS = {
    "leftwards": "left",
    "rightwards": "right",
    "upwards": "up",
    "downwards": "down",
    "quick": "fast",
    "quickly": "fast",
    "fastly": "fast",
    "slowly": "slow",
}


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W) or (T, H, W, C) -> float (T, C, H, W) in [-1, 1]."""
    frames = np.asarray(frames)
    frames = frames[..., None] if frames.ndim == 3 else frames
    return from_uint8(frames).permute(0, 3, 1, 2).contiguous()


def to_frames(clip: torch.Tensor) -> np.ndarray:
    """float (T, C, H, W) in [-1, 1] -> uint8 (T, H, W, C)."""
    return to_uint8(clip).permute(0, 2, 3, 1).contiguous().numpy()


@dataclass(frozen=True)
class Motion:
    """What a prompt asks of a clip; None where it does not say."""

    digit: int | None = None
    direction: int | None = None
    speed: int | None = None


def factor_names(factors: list[list[str]]) -> list[str]:
    """Every combination of the factors' values, the class names of a factorised label: "7 left fast"."""
    names = [""]
    for values in factors:
        names = [f"{n} {v}".strip() for n in names for v in values]
    return names


def parse_motion(prompt: str, digits: list[str]) -> Motion:
    """ "a 7 moving left, fast" -> Motion(7, left, fast). Words it does not know are a 400 naming them."""
    words = [_SYNONYMS.get(w, w) for w in re.findall(r"[a-z0-9]+", prompt.lower())]
    filler = {
        "a",
        "an",
        "the",
        "digit",
        "number",
        "moving",
        "moves",
        "going",
        "goes",
        "to",
        "and",
        "at",
        "speed",
        "towards",
        "toward",
        "is",
        "that",
        "which",
        "clip",
        "of",
        "video",
        "sliding",
    }
    digit = direction = speed = None
    for w in words:
        value = str(DIGIT_WORDS.index(w)) if w in DIGIT_WORDS else w
        if value in digits:
            digit = _once(digit, digits.index(value), "digit", prompt)
        elif w in DIRECTIONS:
            direction = _once(direction, DIRECTIONS.index(w), "direction", prompt)
        elif w in SPEEDS:
            speed = _once(speed, SPEEDS.index(w), "speed", prompt)
        elif w not in filler:
            raise InvalidRequestError(
                f"cannot read {w!r} in {prompt!r}: a prompt names a digit ({', '.join(digits)}), a direction "
                f'({", ".join(DIRECTIONS)}) and a speed ({", ".join(SPEEDS)}), e.g. "a 7 moving left, fast"',
                param="prompt",
            )
    return Motion(digit, direction, speed)


def _once(current: int | None, value: int, what: str, prompt: str) -> int:
    if current is not None and current != value:
        raise InvalidRequestError(f"{prompt!r} names two of a clip's {what}s; name one", param="prompt")
    return value


def motion_label(motion: Motion, sizes: tuple[int, int, int], seed: int) -> int:
    """The factorised label index of a clip: what the prompt names, the rest drawn from ``seed``."""
    rng = np.random.default_rng([seed, 7411])
    drawn = [int(rng.integers(n)) for n in sizes]
    d = motion.digit if motion.digit is not None else drawn[0]
    r = motion.direction if motion.direction is not None else drawn[1]
    s = motion.speed if motion.speed is not None else drawn[2]
    return (d * sizes[1] + r) * sizes[2] + s
