"""Image datasets for the GAN, VAE and diffusion families. All offline, all deterministic.

- ``digits``: the 1,797 real handwritten digits scikit-learn ships (``load_digits``: 8x8, 17 grey
  levels, from the UCI "Optical Recognition of Handwritten Digits" set), upsampled to 16x16
  (bilinear). ``digits8`` serves them at their native 8x8. A fixed, stratified 80/20 split.
- ``glyphs``: the 62 letters and digits (0-9, A-Z, a-z) rendered at 28x28 from the fonts Debian's
  font packages install (DejaVu, Liberation, FreeFont, URW base35), with small random affine
  jitter, deterministic given a seed. Whole font files are held out for validation, so validation
  measures generalisation to unseen typefaces.
- any image folder (``--data PATH``): one sub-folder per class, or a flat folder of images for
  unconditional training.

Pixels are float32 in [-1, 1], shape (N, C, H, W); labels are int64 class indices (or None).
Every dataset records a manifest of what it holds, saved with each model trained on it.
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.codecs.image import IMAGE_SUFFIXES, from_uint8, to_uint8
from genlab.core import InvalidRequestError
from genlab.core.io import atomic_write_json
from genlab.core.settings import Settings

BUILTIN_IMAGE_DATASETS = ("digits", "digits8", "glyphs")
BUILTIN_AUDIO_DATASETS = ("spoken-digits",)
GLYPH_CLASSES = [*"0123456789", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", *"abcdefghijklmnopqrstuvwxyz"]

# Font files from Debian packages: fonts-dejavu-core/-extra, fonts-liberation, fonts-freefont-ttf,
# fonts-urw-base35. Symbol, dingbat, math and script faces are left out: they have no usable Latin.
FONT_DIRS = ("/usr/share/fonts/truetype", "/usr/share/fonts/opentype")
FONT_EXCLUDE = ("D050000L", "StandardSymbols", "MathTeX", "Z003", "DejaVuSans-ExtraLight")
FONT_PACKAGES = "fonts-dejavu fonts-liberation fonts-freefont-ttf fonts-urw-base35"


@dataclass
class ImageDataset:
    name: str
    train: torch.Tensor  # (N, C, H, W) float32 in [-1, 1]
    val: torch.Tensor
    train_labels: torch.Tensor | None  # (N,) int64, or None when unconditional
    val_labels: torch.Tensor | None
    class_names: list[str]
    source: str
    modality: str = "image"  # "audio": the pictures are log-mel spectrograms of ``codec``
    codec: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        return int(self.train.shape[1])

    @property
    def size(self) -> int:
        return int(self.train.shape[2])

    @property
    def conditional(self) -> bool:
        return self.train_labels is not None

    def shape_config(self) -> dict[str, Any]:
        """The fields of a family's config that the data fixes (a video dataset adds its frames)."""
        return {"channels": self.channels, "size": self.size}

    def manifest(self) -> dict[str, Any]:
        def counts(labels: torch.Tensor | None) -> dict[str, int] | None:
            if labels is None:
                return None
            c = Counter(labels.tolist())
            return {self.class_names[i]: c.get(i, 0) for i in range(len(self.class_names))}

        return {
            "dataset": self.name,
            "source": self.source,
            "modality": self.modality,
            **({"codec": self.codec} if self.codec else {}),
            "shape": [self.channels, self.size, self.size],
            "classes": self.class_names,
            "train": {"images": len(self.train), "per_class": counts(self.train_labels)},
            "val": {"images": len(self.val), "per_class": counts(self.val_labels)},
            "train_sha256": _tensor_sha(self.train),
            "val_sha256": _tensor_sha(self.val),
            **self.extra,
        }


def _tensor_sha(x: torch.Tensor) -> str:
    return hashlib.sha256(to_uint8(x).numpy().tobytes()).hexdigest()


def save_image_manifest(dataset: ImageDataset, model_dir: Path) -> None:
    atomic_write_json(model_dir / "data_manifest.json", dataset.manifest())


def _stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = max(1, round(len(idx) * val_fraction))
        val.extend(idx[:k])
        train.extend(idx[k:])
    return np.sort(np.array(train)), np.sort(np.array(val))


# -- digits ---------------------------------------------------------------------------------------
def load_digits(size: int = 16) -> ImageDataset:
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0  # (1797, 1, 8, 8) in [0, 1]
    if size != 8:
        images = torch.nn.functional.interpolate(
            images, size=(size, size), mode="bilinear", align_corners=False
        )
    # Quantise to 8 bits like every other image genlab reads, so likelihoods are over 256 levels.
    images = from_uint8(np.round(images.clamp(0, 1).numpy() * 255).astype(np.uint8))
    labels = np.asarray(bunch.target)
    train, val = _stratified_split(labels, 0.2, seed=0)
    y = torch.tensor(labels, dtype=torch.long)
    return ImageDataset(
        name="digits" if size == 16 else f"digits{size}",
        train=images[train],
        val=images[val],
        train_labels=y[train],
        val_labels=y[val],
        class_names=[str(i) for i in range(10)],
        source="scikit-learn load_digits (UCI optical recognition of handwritten digits, 8x8, 1,797 images)"
        + (f", upsampled bilinearly to {size}x{size}" if size != 8 else ""),
        extra={"split": "stratified 80/20, seed 0"},
    )


# -- glyphs ---------------------------------------------------------------------------------------
def font_files() -> list[Path]:
    files: list[Path] = []
    for root in FONT_DIRS:
        base = Path(root)
        if base.is_dir():
            files.extend(p for p in base.rglob("*") if p.suffix.lower() in {".ttf", ".otf"})
    files = [p for p in files if not any(x in p.name for x in FONT_EXCLUDE)]
    return sorted(files, key=lambda p: p.name)


def _font_is_val(path: Path) -> bool:
    """About one font file in five is held out, chosen by a hash of its name (stable across machines)."""
    return int(hashlib.sha256(path.name.encode()).hexdigest(), 16) % 5 == 0


def render_glyph(font, char: str, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """One character, MNIST-style: fitted into a 20x20 box, centred on 28x28, with affine jitter."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (96, 96), 0)
    ImageDraw.Draw(canvas).text((16, 8), char, fill=255, font=font)
    box = canvas.getbbox()
    if box is None:
        return np.zeros((size, size), np.uint8)
    glyph = canvas.crop(box)
    w, h = glyph.size
    inner = size * 20 / 28
    scale = inner / max(w, h) * rng.uniform(0.9, 1.05)
    glyph = glyph.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    glyph = glyph.rotate(rng.uniform(-8, 8), resample=Image.Resampling.BILINEAR, expand=True)
    out = Image.new("L", (size, size), 0)
    dx, dy = rng.integers(-1, 2, size=2)
    out.paste(glyph, ((size - glyph.size[0]) // 2 + int(dx), (size - glyph.size[1]) // 2 + int(dy)))
    return np.asarray(out, dtype=np.uint8)


def load_glyphs(settings: Settings, *, seed: int = 0, per_font: int = 3, size: int = 28) -> ImageDataset:
    """Render (or read the cached rendering of) every glyph of every installed font, ``per_font`` times."""
    from PIL import ImageFont
    from safetensors.torch import load_file, save_file

    fonts = font_files()
    if len(fonts) < 2:
        raise InvalidRequestError(
            "the glyphs dataset needs fonts from Debian's font packages, and fewer than two are installed",
            hint=f"apt-get install {FONT_PACKAGES}",
        )
    key = hashlib.sha256(
        repr((seed, per_font, size, [(p.name, p.stat().st_size) for p in fonts])).encode()
    ).hexdigest()[:16]
    cache = settings.datasets_dir / f"glyphs-{key}.safetensors"
    val_fonts = [p.name for p in fonts if _font_is_val(p)]
    if not val_fonts:  # a machine with few fonts: still hold one out
        val_fonts = [fonts[-1].name]
    if cache.is_file():
        t = load_file(str(cache))
    else:
        images: list[np.ndarray] = []
        labels: list[int] = []
        is_val: list[bool] = []
        for f_index, path in enumerate(fonts):
            font = ImageFont.truetype(str(path), 56)
            rng = np.random.default_rng([seed, f_index])
            for c_index, char in enumerate(GLYPH_CLASSES):
                for _ in range(per_font):
                    images.append(render_glyph(font, char, rng, size))
                    labels.append(c_index)
                    is_val.append(path.name in val_fonts)
        t = {
            "images": torch.tensor(np.stack(images))[:, None],
            "labels": torch.tensor(labels, dtype=torch.long),
            "is_val": torch.tensor(is_val),
        }
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        save_file(t, str(tmp))
        tmp.replace(cache)
    x = t["images"].float() / 127.5 - 1.0
    val = t["is_val"].bool()
    return ImageDataset(
        name="glyphs",
        train=x[~val],
        val=x[val],
        train_labels=t["labels"][~val],
        val_labels=t["labels"][val],
        class_names=list(GLYPH_CLASSES),
        source=f"{len(GLYPH_CLASSES)} characters rendered from {len(fonts)} font files of Debian's "
        f"{FONT_PACKAGES}, {per_font} jittered renderings each",
        extra={"fonts_train": [p.name for p in fonts if p.name not in val_fonts], "fonts_val": val_fonts},
    )


# -- folders --------------------------------------------------------------------------------------
def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def class_files(path: Path, suffixes: set[str], what: str) -> tuple[list[str], list[tuple[int, Path]]]:
    """(class names, [(class index, file)]) of a folder: one sub-folder per class, or flat (no classes)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise InvalidRequestError(f"{path} is not a folder of {what}", param="data")
    subdirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subdirs:
        groups = [(d.name, sorted(f for f in d.iterdir() if f.suffix.lower() in suffixes)) for d in subdirs]
        groups = [(n, fs) for n, fs in groups if fs]
        class_names = [n for n, _ in groups]
    else:
        groups = [("", sorted(f for f in path.iterdir() if f.suffix.lower() in suffixes))]
        class_names = []
    files = [(ci, f) for ci, (_, fs) in enumerate(groups) for f in fs]
    if not files:
        raise InvalidRequestError(
            f"{path} holds no {what} ({', '.join(sorted(suffixes))})",
            hint=f"put {what} in it, one sub-folder per class for a conditional model",
            param="data",
        )
    if len(files) < 4:
        raise InvalidRequestError(f"{path} holds {len(files)} {what}; at least 4 are needed", param="data")
    return class_names, files


def folder_dataset(
    path: Path, x: torch.Tensor, files: list[tuple[int, Path]], class_names: list[str], seed: int, **kw: Any
) -> ImageDataset:
    """A folder's tensors split 90/10 (stratified by class when there are classes)."""
    labels = np.array([ci for ci, _ in files])
    if class_names:
        train, val = _stratified_split(labels, 0.1, seed)
        if len(train) == 0:
            train = val
    else:
        order = np.random.default_rng(seed).permutation(len(files))
        k = max(1, len(files) // 10)
        val, train = np.sort(order[:k]), np.sort(order[k:])
    y = torch.tensor(labels, dtype=torch.long)
    return ImageDataset(
        name=Path(path).name,
        train=x[train],
        val=x[val],
        train_labels=y[train] if class_names else None,
        val_labels=y[val] if class_names else None,
        class_names=class_names,
        **kw,
    )


def load_folder(path: Path, *, seed: int = 0) -> ImageDataset:
    """One sub-folder per class (conditional) or a flat folder of images (unconditional)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path).expanduser()
    class_names, files = class_files(path, IMAGE_SUFFIXES, "images")
    pictures = []
    for _, f in files:
        try:
            with Image.open(f) as im:
                im.load()
                pictures.append(im.copy())
        except (UnidentifiedImageError, OSError) as e:
            raise InvalidRequestError(f"{f} is not a readable image: {e}", param="data") from None
    color = any(p.mode not in ("L", "1", "LA", "I", "I;16") for p in pictures)
    sizes = Counter(p.size for p in pictures)
    (w, h), _ = sizes.most_common(1)[0]
    side = max(8, min(w, h) // 4 * 4)
    if len(sizes) > 1 or w != h or side != w:
        _warn(
            f"{path}: images have sizes {', '.join(f'{a}x{b}' for a, b in sizes)}; resizing all to {side}x{side}"
        )
    mode = "RGB" if color else "L"
    arrays = [np.asarray(p.convert(mode).resize((side, side), Image.Resampling.BILINEAR)) for p in pictures]
    x = from_uint8(np.stack(arrays))
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return folder_dataset(
        path,
        x,
        files,
        class_names,
        seed,
        source=f"image folder {path} ({len(files)} images, {len(class_names) or 'no'} classes)",
    )
