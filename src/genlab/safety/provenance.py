"""Provenance: was a file made by genlab, by which model, and has its content changed since?

Every artifact carries its provenance inside the file where the format allows it (a PNG tEXt
chunk, a WAV LIST/INFO comment, the JSON of a text artifact) or beside it (``.txt`` sidecar). The
provenance records the content's sha256, so an edit after generation is detected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from genlab.codecs.audio import AUDIO_SUFFIXES
from genlab.codecs.image import IMAGE_SUFFIXES
from genlab.core import InvalidRequestError, load_artifact

TEXT_SUFFIXES = (".json", ".txt")


@dataclass
class Verification:
    path: str
    made_by_genlab: bool
    content_unchanged: bool | None
    provenance: dict[str, Any] | None
    detail: str
    watermark: dict[str, Any] | None = None  # the invisible mark's detection, for images and audio

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def trusted(self) -> bool:
        """genlab made it and, where its metadata survives, its content is as generated."""
        return self.made_by_genlab and self.content_unchanged is not False


def verify(path: str | Path) -> Verification:
    """Provenance metadata inside the file, and for images and audio the invisible watermark.

    A copy re-encoded elsewhere (a JPEG of a PNG, a resampled WAV, a FLAC) has lost the metadata;
    the watermark still says genlab made it (``content_unchanged`` is then unknown: None).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidRequestError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES | AUDIO_SUFFIXES | set(TEXT_SUFFIXES):
        raise InvalidRequestError(
            f"{path.name}: genlab checks images ({', '.join(sorted(IMAGE_SUFFIXES))}), audio "
            f"({', '.join(sorted(AUDIO_SUFFIXES))}) and text artifacts (.json, .txt); cannot check {suffix or 'this file'}"
        )
    mark = _watermark(path) if suffix not in TEXT_SUFFIXES else None
    found = bool(mark and mark["present"])
    mark_note = f"; {mark['detail']}" if mark else ""
    try:
        artifact = load_artifact(path) if suffix in (".png", ".wav", *TEXT_SUFFIXES) else None
    except InvalidRequestError as e:
        artifact, reason = None, f"no genlab provenance found ({e.message})"
    except Exception as e:  # unreadable or foreign file: not ours, and not a crash
        artifact, reason = None, f"not a readable genlab artifact ({type(e).__name__})"
    else:
        reason = "no genlab provenance in this format (metadata does not survive re-encoding)"
    grid = _grid(path) if artifact is None and suffix == ".png" else None
    if grid is not None:
        models = sorted({g.get("model", "?") for g in grid})
        seeds = [g.get("seed") for g in grid]
        detail = (
            f"made by genlab: a grid of {len(grid)} images by {', '.join(models)}, seeds {seeds[0]}-{seeds[-1]}; "
            "each image's own hash is in its provenance (a grid's pixels are not hashed as a whole)"
        )
        return Verification(str(path), True, None, {"grid": grid}, detail + mark_note, mark)
    if artifact is None:
        if found:
            return Verification(
                str(path),
                True,
                None,
                None,
                f"made by genlab: its metadata is gone, but {mark['detail']}",
                mark,
            )
        return Verification(str(path), False, None, None, reason + mark_note, mark)
    p = artifact.provenance
    unchanged = artifact.content_sha256() == p.sha256
    detail = (
        f"made by genlab: model {p.model} ({p.family}, {p.modality}), seed {p.seed}, at {p.created_at}; "
        + ("content unchanged" if unchanged else "CONTENT CHANGED since it was generated")
        + (mark_note if p.watermark or found else "")
    )
    return Verification(str(path), p.generator == "genlab", unchanged, p.to_dict(), detail, mark)


GRID_KEY = "genlab:grid"  # the PNG text chunk of a grid: every tile's provenance


def grid_png(artifacts: list[Any], scale: int = 1) -> bytes:
    """One PNG of image artifacts tiled, as `genlab generate image` shares them: the invisible mark
    in the tiles only (the grey gutters stay flat, no mottling) and every tile's provenance in the
    ``genlab:grid`` chunk, which :func:`verify` reads back."""
    import io
    import json

    import numpy as np
    from PIL import Image, PngImagePlugin

    from genlab.codecs.image import image_grid
    from genlab.safety.watermark import SCHEME, embed_image

    grid = image_grid([a.pixels for a in artifacts], scale=scale)
    # where the gutters are: the same grid tiled from white images leaves them at the grey 200
    gutters = image_grid([np.full_like(a.pixels, 255) for a in artifacts], scale=scale) == 200
    grid, marked = embed_image(grid, keep=gutters)
    info = PngImagePlugin.PngInfo()
    info.add_text(GRID_KEY, json.dumps([a.provenance.to_dict() for a in artifacts], sort_keys=True))
    if marked:
        info.add_text("genlab:watermark", SCHEME)
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def _grid(path: Path) -> list[dict[str, Any]] | None:
    """The provenance of every image of a grid PNG (:func:`grid_png`), or None."""
    import json

    from PIL import Image

    try:
        with Image.open(path) as image:
            text = getattr(image, "text", {}).get(GRID_KEY)
        grid = json.loads(text) if text else None
    except (OSError, ValueError):
        return None
    if not isinstance(grid, list) or not grid or not all(isinstance(g, dict) for g in grid):
        return None
    return grid if all(g.get("generator") == "genlab" for g in grid) else None


def _watermark(path: Path) -> dict[str, Any] | None:
    from genlab.safety.watermark import detect_audio, detect_image, read_media

    try:
        kind, content, rate = read_media(path)
    except InvalidRequestError:
        return None
    found = detect_image(content) if kind == "image" else detect_audio(content, rate)
    return found.to_dict()
