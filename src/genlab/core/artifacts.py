"""Artifacts: what a generator makes, one type per modality, each with its provenance.

An artifact holds its content in memory and saves it to the standard file of its modality:
text as .txt (or .json with the provenance inside), images as PNG (provenance in a tEXt chunk),
audio as 16-bit PCM WAV (provenance in a LIST/INFO comment chunk), video as MP4 (H.264; or WebM,
GIF by the file's suffix; provenance in the container's comment). Provenance that cannot live
inside the file (.txt) goes to a sidecar ``<file>.provenance.json``. ``load_artifact`` reads any of them back.

``sha256`` is the hash of the *content*, not of the file bytes, so it survives re-encoding:
text -> its UTF-8 bytes; image -> ``"<H>x<W>x<C>:"`` + raw uint8 pixels; audio ->
``"<rate>:"`` + the little-endian int16 samples the WAV stores; video -> ``"<T>x<H>x<W>x<C>:"``
+ the raw uint8 frames as generated. H.264 and VP9 are lossy, so a decoded MP4 differs from them;
a grey GIF holds them exactly (its frame rate, in hundredths of a second, is not hashed).
"""

from __future__ import annotations

import io
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from genlab.core.errors import InvalidRequestError
from genlab.core.io import atomic_write_bytes, atomic_write_json, sha256_bytes

MODALITIES = ("text", "code", "image", "audio", "video")
PROVENANCE_KEY = "genlab:provenance"


@dataclass(frozen=True)
class Provenance:
    """Where an artifact came from: enough to trace it and, with the seed, to make it again."""

    model: str
    family: str
    modality: str
    seed: int | None
    parameters: dict[str, Any]
    sha256: str
    created_at: str
    generator: str = "genlab"
    watermark: str | None = None  # the invisible mark's scheme, when the content carries one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_provenance(
    content_hash: str,
    *,
    model: str,
    family: str,
    modality: str,
    seed: int | None = None,
    parameters: dict[str, Any] | None = None,
    watermark: str | None = None,
) -> Provenance:
    if modality not in MODALITIES:
        raise InvalidRequestError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    return Provenance(
        model=model,
        family=family,
        modality=modality,
        seed=seed,
        parameters=dict(parameters or {}),
        sha256=content_hash,
        created_at=_now(),
        watermark=watermark,
    )


@dataclass
class Artifact(ABC):
    """Base class. Subclasses define the content, its hash and its file format."""

    provenance: Provenance
    extension: ClassVar[str] = ""
    media_type: ClassVar[str] = "application/octet-stream"

    @property
    def sha256(self) -> str:
        return self.provenance.sha256

    @abstractmethod
    def content_sha256(self) -> str:
        """The hash of the content as it is now (differs from ``sha256`` if the content was edited)."""

    @classmethod
    def _signed(cls, modality: str, provenance: dict[str, Any], **content: Any) -> Self:
        """The artifact of this content, its provenance's hash by ``content_sha256``: the one hash
        every artifact is created with and checked against."""
        made = cls(provenance=None, **content)  # type: ignore[arg-type]  # signed on the next line
        made.provenance = make_provenance(made.content_sha256(), **{"modality": modality, **provenance})
        return made

    @property
    def modality(self) -> str:
        return self.provenance.modality

    @abstractmethod
    def to_bytes(self) -> bytes:
        """The artifact in its standard file format."""

    def save(self, path: str | Path) -> Path:
        """Write the artifact atomically. A directory gets ``<sha256[:16]><extension>``."""
        target = Path(path)
        if target.is_dir():
            target = target / f"{self.sha256[:16]}{self.extension}"
        atomic_write_bytes(target, self.to_bytes())
        self._save_sidecar(target)
        return target

    def _save_sidecar(self, target: Path) -> None:
        atomic_write_json(sidecar_path(target), self.provenance.to_dict())


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".provenance.json")


@dataclass
class TextArtifact(Artifact):
    """Generated text or code. ``finish_reason`` is "stop" (model or stop sequence) or "length"."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: list[dict[str, Any]] | None = None
    extension: ClassVar[str] = ".txt"
    media_type: ClassVar[str] = "text/plain; charset=utf-8"

    @classmethod
    def create(cls, text: str, **kwargs: Any) -> TextArtifact:
        fields = {k: kwargs.pop(k) for k in list(kwargs) if k in cls.__dataclass_fields__}
        return cls._signed("text", kwargs, text=text, **fields)

    def to_bytes(self) -> bytes:
        return self.text.encode("utf-8")

    def content_sha256(self) -> str:
        return sha256_bytes(self.text.encode("utf-8"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "usage": {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens},
            "logprobs": self.logprobs,
            "provenance": self.provenance.to_dict(),
        }

    def save(self, path: str | Path) -> Path:
        target = Path(path)
        if target.suffix == ".json":
            # .json keeps text and provenance in one file: no sidecar needed.
            return atomic_write_json(target, self.to_dict())
        return super().save(target)


def _image_hash(pixels: np.ndarray) -> str:
    h, w = pixels.shape[:2]
    c = 1 if pixels.ndim == 2 else pixels.shape[2]
    return sha256_bytes(f"{h}x{w}x{c}:".encode() + np.ascontiguousarray(pixels).tobytes())


@dataclass
class ImageArtifact(Artifact):
    """An image as uint8 pixels, (H, W) grayscale or (H, W, 3) RGB."""

    pixels: np.ndarray = field(default_factory=lambda: np.zeros((1, 1), np.uint8))
    label: str | None = None
    extension: ClassVar[str] = ".png"
    media_type: ClassVar[str] = "image/png"

    @classmethod
    def create(cls, pixels: np.ndarray, *, label: str | None = None, **kwargs: Any) -> ImageArtifact:
        pixels = np.asarray(pixels)
        if (
            pixels.dtype != np.uint8
            or pixels.ndim not in (2, 3)
            or (pixels.ndim == 3 and pixels.shape[2] != 3)
        ):
            raise InvalidRequestError(
                f"image pixels must be uint8 (H, W) or (H, W, 3), got {pixels.dtype} {pixels.shape}"
            )
        return cls._signed("image", kwargs, pixels=pixels, label=label)

    def content_sha256(self) -> str:
        return _image_hash(self.pixels)

    def to_bytes(self) -> bytes:
        from PIL import Image, PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_text(PROVENANCE_KEY, json.dumps(self.provenance.to_dict(), sort_keys=True))
        buf = io.BytesIO()
        Image.fromarray(self.pixels).save(buf, format="PNG", pnginfo=info)
        return buf.getvalue()

    def _save_sidecar(self, target: Path) -> None:
        """PNG carries its provenance inside (tEXt chunk)."""


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> the int16 values a 16-bit WAV stores."""
    return np.round(np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0) * 32767).astype("<i2")


def _audio_hash(pcm: np.ndarray, sample_rate: int) -> str:
    return sha256_bytes(f"{sample_rate}:".encode() + np.ascontiguousarray(pcm, dtype="<i2").tobytes())


@dataclass
class AudioArtifact(Artifact):
    """Mono audio as float32 samples in [-1, 1] at ``sample_rate`` Hz."""

    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    sample_rate: int = 16000
    label: str | None = None
    extension: ClassVar[str] = ".wav"
    media_type: ClassVar[str] = "audio/wav"

    @classmethod
    def create(
        cls, samples: np.ndarray, sample_rate: int, *, label: str | None = None, **kwargs: Any
    ) -> AudioArtifact:
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise InvalidRequestError(f"audio samples must be mono (1-D), got shape {samples.shape}")
        if sample_rate <= 0:
            raise InvalidRequestError(f"sample_rate must be positive, got {sample_rate}")
        samples = (to_pcm16(samples) / 32767).astype(np.float32)  # exactly what its WAV file holds
        return cls._signed("audio", kwargs, samples=samples, sample_rate=sample_rate, label=label)

    def content_sha256(self) -> str:
        return _audio_hash(to_pcm16(self.samples), self.sample_rate)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def to_bytes(self) -> bytes:
        import soundfile

        buf = io.BytesIO()
        with soundfile.SoundFile(buf, "w", self.sample_rate, 1, "PCM_16", format="WAV") as f:
            f.comment = json.dumps(self.provenance.to_dict(), sort_keys=True)  # a LIST/INFO ICMT chunk
            f.write(to_pcm16(self.samples))  # int16 written verbatim: no second rounding
        return buf.getvalue()

    def _save_sidecar(self, target: Path) -> None:
        """WAV carries its provenance inside (LIST/INFO chunk)."""


def _video_hash(frames: np.ndarray) -> str:
    t, h, w, c = frames.shape
    return sha256_bytes(f"{t}x{h}x{w}x{c}:".encode() + np.ascontiguousarray(frames).tobytes())


@dataclass
class VideoArtifact(Artifact):
    """A clip as uint8 frames, (T, H, W, 1) grey or (T, H, W, 3) RGB, at ``fps`` frames per second.
    ``to_bytes`` is MP4 (H.264); ``save`` writes MP4, WebM or GIF by the path's suffix."""

    frames: np.ndarray = field(default_factory=lambda: np.zeros((1, 2, 2, 1), np.uint8))
    fps: float = 8.0
    label: str | None = None
    extension: ClassVar[str] = ".mp4"
    media_type: ClassVar[str] = "video/mp4"

    @classmethod
    def create(
        cls, frames: np.ndarray, fps: float, *, label: str | None = None, **kwargs: Any
    ) -> VideoArtifact:
        from genlab.core.video import check_frames

        return cls._signed("video", kwargs, frames=check_frames(frames), fps=float(fps), label=label)

    def content_sha256(self) -> str:
        return _video_hash(self.frames)

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps

    def encode(self, fmt: str = "mp4") -> bytes:
        from genlab.core.video import encode_video

        comment = json.dumps(self.provenance.to_dict(), sort_keys=True)
        return encode_video(self.frames, self.fps, fmt, comment=comment)

    def to_bytes(self) -> bytes:
        return self.encode("mp4")

    def save(self, path: str | Path) -> Path:
        from genlab.core.video import VIDEO_SUFFIXES

        target = Path(path)
        if target.is_dir():
            target = target / f"{self.sha256[:16]}{self.extension}"
        suffix = target.suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            raise InvalidRequestError(
                f"a video is saved as {', '.join(sorted(VIDEO_SUFFIXES))}, not {target.name!r}", param="out"
            )
        atomic_write_bytes(target, self.encode(suffix[1:]))
        return target  # provenance is inside the file (the container's comment)


def _load_video(path: Path) -> VideoArtifact:
    from genlab.core.video import read_video

    frames, fps, comment = read_video(path)
    try:
        provenance = Provenance.from_dict(json.loads(comment or ""))
    except (json.JSONDecodeError, TypeError, KeyError):
        raise InvalidRequestError(f"{path} has no genlab provenance in its metadata") from None
    grey = bool((frames == frames[..., :1]).all())
    return VideoArtifact(provenance=provenance, frames=frames[..., :1] if grey else frames, fps=fps)


def load_artifact(path: str | Path) -> Artifact:
    """Read an artifact saved by ``Artifact.save`` back, provenance included."""
    path = Path(path)
    if not path.is_file():
        raise InvalidRequestError(f"no such artifact file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = json.loads(path.read_text("utf-8"))
        usage = data.get("usage") or {}
        return TextArtifact(
            provenance=Provenance.from_dict(data["provenance"]),
            text=data["text"],
            finish_reason=data.get("finish_reason"),
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
            logprobs=data.get("logprobs"),
        )
    if suffix == ".png":
        from PIL import Image

        with Image.open(path) as img:
            meta = img.text.get(PROVENANCE_KEY)  # type: ignore[attr-defined]
            pixels = np.asarray(img.convert("L" if img.mode in ("L", "1", "P") else "RGB"))
        if meta is None:
            raise InvalidRequestError(f"{path} has no genlab provenance chunk")
        return ImageArtifact(provenance=Provenance.from_dict(json.loads(meta)), pixels=pixels)
    if suffix == ".wav":
        import soundfile

        with soundfile.SoundFile(path) as f:
            comment = f.comment
            rate = f.samplerate
            samples = (f.read(dtype="int16", always_2d=False) / 32767).astype(np.float32)
        try:
            provenance = Provenance.from_dict(json.loads(comment))
        except (json.JSONDecodeError, TypeError, KeyError):
            raise InvalidRequestError(f"{path} has no genlab provenance chunk") from None
        return AudioArtifact(provenance=provenance, samples=samples, sample_rate=rate)
    if suffix in (".mp4", ".webm", ".gif"):
        return _load_video(path)
    side = sidecar_path(path)
    if not side.is_file():
        raise InvalidRequestError(f"{path} has no provenance sidecar ({side.name})")
    provenance = Provenance.from_dict(json.loads(side.read_text("utf-8")))
    return TextArtifact(provenance=provenance, text=path.read_text("utf-8"))
