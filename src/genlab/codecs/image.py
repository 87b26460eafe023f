"""The image codec: pixels <-> tensors, a class prompt -> its index, and grids of images.

Room ``codecs``: may import ``core`` (and numpy/torch) only.
"""

from __future__ import annotations

import numpy as np
import torch

from genlab.core import InvalidRequestError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 pixels, rounding to the nearest of 256 levels."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(pixels), dtype=torch.float32) / 127.5 - 1.0


def image_grid(
    pixels: list[np.ndarray], columns: int | None = None, scale: int = 1, pad: int = 2
) -> np.ndarray:
    """Tile images (uint8, HxW or HxWx3, one size) into one picture, light grey gutters between them."""
    import math

    if not pixels:
        raise InvalidRequestError("no images to tile")
    columns = columns or math.ceil(math.sqrt(len(pixels)))
    rows = math.ceil(len(pixels) / columns)
    h, w = pixels[0].shape[:2]
    color = pixels[0].ndim == 3
    shape = (rows * (h + pad) + pad, columns * (w + pad) + pad) + ((3,) if color else ())
    grid = np.full(shape, 200, np.uint8)
    for i, p in enumerate(pixels):
        r, c = divmod(i, columns)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = p
    if scale > 1:
        grid = grid.repeat(scale, 0).repeat(scale, 1)
    return grid


# -- prompts -> classes ---------------------------------------------------------------------------
def resolve_class(prompt: str, class_names: list[str]) -> int:
    """A prompt names a class: "7", "seven", "digit 7", "letter A", "lowercase a", or a folder's name."""
    if not class_names:
        raise InvalidRequestError("this model is unconditional: it takes no class prompt", param="prompt")
    try:
        return _lookup(prompt, class_names)
    except InvalidRequestError:  # name what the user typed, not what was left after "letter ..."
        return _unknown(prompt, class_names)


def _lookup(prompt: str, class_names: list[str]) -> int:
    text = " ".join(str(prompt).strip().split())
    if text in class_names:
        return class_names.index(text)
    lowered = text.lower()
    for prefix in (
        "the word ",
        "a ",
        "an ",
        "the ",
        "digit ",
        "number ",
        "letter ",
        "capital ",
        "uppercase ",
        "upper-case ",
        "say ",
        "speak ",
    ):
        if lowered.startswith(prefix):
            rest = text[len(prefix) :].strip()
            if prefix in ("capital ", "uppercase ", "upper-case "):
                rest = rest.upper()
            return _lookup(rest, class_names) if rest else _unknown(prompt, class_names)
    for prefix in ("lowercase ", "lower-case ", "small "):
        if lowered.startswith(prefix):
            rest = text[len(prefix) :].strip().lower()
            if rest in class_names:
                return class_names.index(rest)
    if lowered in DIGIT_WORDS and str(DIGIT_WORDS.index(lowered)) in class_names:
        return class_names.index(str(DIGIT_WORDS.index(lowered)))
    folded = [c.lower() for c in class_names]
    if lowered in folded and folded.count(lowered) == 1:
        return folded.index(lowered)
    return _unknown(prompt, class_names)


def _unknown(prompt: str, class_names: list[str]) -> int:
    shown = ", ".join(class_names[:70]) + (" ..." if len(class_names) > 70 else "")
    raise InvalidRequestError(f"this model has no class {prompt!r}; valid classes: {shown}", param="prompt")
