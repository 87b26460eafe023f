"""Invisible watermarks for generated images and audio: keyed spread spectrum (Cox et al., 1997).

Metadata inside a file (PNG tEXt, WAV LIST/INFO) is lost the moment someone re-encodes it as a
JPEG or an MP3; a watermark lives in the content itself. genlab's mark is *zero-bit*: it answers
"did genlab, holding this key, make this?", and the metadata answers everything else.

Scheme (one ``_Carrier`` for both modalities; only the canonical domain differs):
- domain: images as luminance resampled to a canonical 256x256 grid (so a resized copy is read on
  the same grid); audio resampled to 16 kHz.
- pattern: ±1 noise drawn from HMAC-SHA256(key, modality), secret without the key, band-limited
  (images 0.02-0.2 cycles per pixel: below what JPEG quantises hard and what a 0.5x resize
  removes; audio 300-3400 Hz, the telephone band, which survives 8 kHz and lossy codecs) and
  shaped by the content's local activity, so it hides in busy regions and stays out of flat
  black and silence (a rough perceptual mask). The audio pattern is one endless signal indexed
  by position (±1 noise drawn per block of ``AUDIO_BLOCK`` samples from HMAC(key, block number),
  then a fixed FIR band-pass), so any stretch of it is known without the rest: a stream marks
  each chunk with the stretch at its offset, and the chunks joined carry one mark, read as one.
- embed: add the shaped pattern with a strength set per item by secant steps on the finished
  file (resized, rounded, clipped; for audio with 20 dB SNR noise added), so the detector reads
  ``TARGET_Z`` (informed embedding), capped at ``MAX_STRENGTH``.
- detect: whiten the received content (images: minus the local mean; audio: the residual of an
  order-16 linear predictor) and the pattern rebuilt from it, and correlate:
  z = <a, b> / (|a| |b|) · sqrt(n_eff), n_eff the band's degrees of freedom. Without the mark z is
  about N(0, 1), so the threshold z >= 4 is a false-positive rate of about 3e-5 per item;
  ``bench/watermark.py`` measures it on unmarked data and under each edit.

Capacity needs coefficients: images smaller than ``MIN_IMAGE_SIDE`` (the 16x16 digits themselves)
and clips shorter than ``MIN_AUDIO_SECONDS`` are not marked, and detection on them says so. The
image *grids* genlab writes (what people share) are marked.

The key is ``GENLAB_WATERMARK_KEY`` (hex) or ``GENLAB_HOME/keys/watermark.key``, made on first
use (32 random bytes, mode 0600). Share it to let another machine verify; keep it to keep the
mark unforgeable.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genlab.codecs.audio import AUDIO_SUFFIXES, read_audio, resample
from genlab.core import InvalidRequestError
from genlab.core.settings import Settings
from genlab.safety.keys import secret_key

SCHEME = "genlab-ss1"
TARGET_Z = 6.5
THRESHOLD_Z = 4.0
MAX_STRENGTH = 0.5
MIN_IMAGE_SIDE = 64
MIN_AUDIO_SECONDS = 0.5
CANON = 256  # canonical image grid
IMAGE_BAND = (0.02, 0.2)  # cycles per pixel of the canonical grid: below JPEG's and a 0.5x resize's cuts
AUDIO_RATE = 16000
AUDIO_NOISE_DB = 20.0  # the audio mark is sized to survive noise this loud
AUDIO_BAND_CYCLES = (300 / AUDIO_RATE, 3400 / AUDIO_RATE)  # 300-3400 Hz: survives 8 kHz and codecs
AUDIO_BLOCK = 4096  # samples of AUDIO_RATE per keyed draw of the endless audio pattern
AUDIO_TAPS = 257  # the band-pass FIR's length


@dataclass
class Detection:
    present: bool
    z: float | None
    threshold: float
    scheme: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def watermark_key(settings: Settings | None = None) -> bytes:
    settings = settings or Settings.from_env()
    return secret_key(settings.home, "watermark", settings.watermark_key, "GENLAB_WATERMARK_KEY")


def _pattern(key: bytes, label: str, shape: tuple[int, ...]) -> np.ndarray:
    seed = int.from_bytes(hmac.new(key, f"{SCHEME}:{label}".encode(), hashlib.sha256).digest()[:16], "big")
    return np.random.default_rng(seed).choice(np.array([-1.0, 1.0]), size=shape)


def _audio_pattern(key: bytes, start: int, n: int) -> np.ndarray:
    """Samples ``start`` .. ``start + n`` of the endless band-limited audio pattern: ±1 noise keyed
    per block of AUDIO_BLOCK samples, through a fixed FIR band-pass (so no stretch depends on the
    length of the clip around it)."""
    from scipy.signal import firwin, oaconvolve

    taps = firwin(AUDIO_TAPS, [2 * f for f in AUDIO_BAND_CYCLES], pass_zero=False)
    lo, hi = start - AUDIO_TAPS // 2, start + n + AUDIO_TAPS // 2
    first, last = lo // AUDIO_BLOCK, (hi - 1) // AUDIO_BLOCK
    white = np.concatenate([_pattern(key, f"audio:{b}", (AUDIO_BLOCK,)) for b in range(first, last + 1)])
    segment = white[lo - first * AUDIO_BLOCK : hi - first * AUDIO_BLOCK]
    return oaconvolve(segment, taps, mode="valid")


def _bandpass(x: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Keep radial frequencies in ``band`` (cycles per sample, 0-0.5) of a 1-D or 2-D signal."""
    spectrum = np.fft.rfftn(x)
    axes = [np.fft.fftfreq(n) for n in x.shape[:-1]] + [np.fft.rfftfreq(x.shape[-1])]
    radius = np.sqrt(sum(g**2 for g in np.meshgrid(*axes, indexing="ij")))
    spectrum[(radius < band[0]) | (radius > band[1])] = 0
    return np.fft.irfftn(spectrum, s=x.shape, axes=tuple(range(x.ndim)))


def _activity(x: np.ndarray, size: int) -> np.ndarray:
    """Local RMS of the host's detail, mean 1: the mark hides where the content is busy, not in silence
    or flat areas (perceptual masking, roughly)."""
    from scipy.ndimage import uniform_filter

    detail = x - uniform_filter(x, size=size, mode="reflect")
    rms = np.sqrt(np.maximum(uniform_filter(detail**2, size=size * 4, mode="reflect"), 0.0))
    rms = np.maximum(rms, 0.02 * rms.max())
    return rms / max(rms.mean(), 1e-12)


def _whiten(x: np.ndarray, size: int, like: np.ndarray | None = None) -> np.ndarray:
    """Remove what is predictable from the neighbourhood (the host), keep the noise-like mark.

    Images: minus the local mean. Audio: the residual of an order-``size`` linear predictor fitted
    to ``like`` (the received clip), as speech coders whiten speech (LPC).
    """
    from scipy.ndimage import uniform_filter

    if x.ndim == 2:
        return x - uniform_filter(x, size=size, mode="reflect")
    from scipy.linalg import solve_toeplitz
    from scipy.signal import lfilter

    ref = x if like is None else like
    spectrum = np.fft.rfft(ref, 2 * len(ref))
    r = np.fft.irfft(np.abs(spectrum) ** 2)[: size + 1]  # autocorrelation, lags 0..size
    if r[0] <= 0:
        return x
    r[0] *= 1.0 + 1e-6  # a touch of white noise keeps the system well posed
    a = solve_toeplitz(r[:size], r[1 : size + 1])
    return lfilter(np.concatenate([[1.0], -a]), [1.0], x)


@dataclass(frozen=True)
class _Carrier:
    """One modality's canonical domain: a band, a masking size, a whitening size."""

    label: str
    band: tuple[float, float]
    mask: int
    whiten: int

    def reference(self, host: np.ndarray, key: bytes, start: int = 0) -> np.ndarray:
        """The shaped pattern for ``host``; audio's is the stretch that begins at sample ``start``."""
        if host.ndim == 1:
            pattern = _audio_pattern(key, start, len(host))
        else:
            pattern = _bandpass(_pattern(key, self.label, host.shape), self.band)
        return pattern * _activity(host, self.mask)

    def z(self, received: np.ndarray, key: bytes, start: int = 0) -> float:
        a = _whiten(received, self.whiten, received).ravel()
        b = _whiten(self.reference(received, key, start), self.whiten, received).ravel()
        norm = np.sqrt((a**2).sum() * (b**2).sum())
        if norm < 1e-12:
            return 0.0
        # Under no mark, <a, b> / (|a| |b|) has variance ~1 / n_eff, n_eff the band's degrees of freedom.
        n_eff = a.size * _band_fraction(self.band, received.ndim)
        return float((a @ b) / norm * np.sqrt(n_eff))

    def embed(self, host: np.ndarray, key: bytes, start: int = 0) -> np.ndarray:
        """The mark to add to ``host`` (same domain), scaled so the detector reads TARGET_Z."""
        ref = self.reference(host, key, start)
        scale = host.std() / max(ref.std(), 1e-12)
        alpha = 0.005
        z0 = self.z(host, key, start)
        for _ in range(6):  # z is close to linear in the strength: a few secant steps hit the target
            z = self.z(host + alpha * scale * ref, key, start)
            if abs(z - TARGET_Z) < 0.25:
                break
            alpha = float(np.clip(alpha * (TARGET_Z - z0) / max(z - z0, 1e-6), 1e-4, MAX_STRENGTH))
        return alpha * scale * ref


def _band_fraction(band: tuple[float, float], ndim: int) -> float:
    lo, hi = (2 * b for b in band)  # as a fraction of Nyquist
    return hi - lo if ndim == 1 else np.pi / 4 * (hi**2 - lo**2)


IMAGE_CARRIER = _Carrier("image", IMAGE_BAND, mask=5, whiten=3)
AUDIO_CARRIER = _Carrier("audio", AUDIO_BAND_CYCLES, mask=80, whiten=16)


# -- images ---------------------------------------------------------------------------------------
def _luma(pixels: np.ndarray) -> np.ndarray:
    x = np.asarray(pixels, dtype=np.float64)
    return x @ np.array([0.299, 0.587, 0.114]) if x.ndim == 3 else x


def _resize(x: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(
        Image.fromarray(x.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BICUBIC)
    )


def embed_image(
    pixels: np.ndarray, key: bytes | None = None, *, keep: np.ndarray | None = None
) -> tuple[np.ndarray, bool]:
    """(marked uint8 pixels, whether a mark was embedded). Colour images are marked in luminance,
    on a canonical CANON x CANON grid, so a resized copy is read on the same grid. ``keep`` (a
    boolean mask, HxW) marks pixels left exactly as they are (a grid's flat gutters); the rest of
    the picture carries the whole mark (the correction steps raise its strength to make up)."""
    pixels = np.asarray(pixels)
    h, w = pixels.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        return pixels, False
    key = key or watermark_key()
    canon = _resize(_luma(pixels), CANON, CANON).astype(np.float64)
    mark = _resize(IMAGE_CARRIER.embed(canon, key), h, w)

    def apply(m: np.ndarray) -> np.ndarray:
        out = pixels.astype(np.float64) + (m[..., None] if pixels.ndim == 3 else m)
        out = np.clip(np.round(out), 0, 255).astype(np.uint8)
        if keep is not None:
            out[keep] = pixels[keep]
        return out

    steps = 1 if keep is None else 3
    return apply(_correct(mark, apply, lambda x: detect_image(x, key).z or 0.0, pixels, steps)), True


def _correct(mark: np.ndarray, apply, z_of, host, steps: int = 1) -> np.ndarray:
    """Secant steps on the finished file (resized, rounded, clipped, perhaps with noise added), which
    loses some of the mark, until the detector reads TARGET_Z."""
    z_host = z_of(host)
    for _ in range(steps):
        z_marked = z_of(apply(mark))
        if z_marked - z_host <= 1e-6 or abs(z_marked - TARGET_Z) < 0.25:
            break
        mark = mark * float(np.clip((TARGET_Z - z_host) / (z_marked - z_host), 0.5, 4.0))
    return mark


def detect_image(pixels: np.ndarray, key: bytes | None = None) -> Detection:
    pixels = np.asarray(pixels)
    if min(pixels.shape[:2]) < MIN_IMAGE_SIDE // 2:  # a 0.5x copy of a marked image is still read
        return Detection(
            False,
            None,
            THRESHOLD_Z,
            SCHEME,
            f"too small to carry a mark ({pixels.shape[1]}x{pixels.shape[0]})",
        )
    key = key or watermark_key()
    canon = _resize(_luma(pixels), CANON, CANON).astype(np.float64)
    return _verdict(IMAGE_CARRIER.z(canon, key))


# -- audio ----------------------------------------------------------------------------------------
def canonical_offset(start: int, rate: int) -> int:
    """Where sample ``start`` of a ``rate`` stream falls on the canonical AUDIO_RATE grid; a chunk
    must begin on that grid (``stream_frame(rate)`` samples divide ``start``) to join its neighbours'
    mark in phase."""
    offset, rest = divmod(start * AUDIO_RATE, rate)
    if rest:
        raise ValueError(f"sample {start} at {rate} Hz is not on the {AUDIO_RATE} Hz grid")
    return offset


def stream_frame(rate: int) -> int:
    """The fewest samples at ``rate`` that span a whole number of AUDIO_RATE samples."""
    import math

    return rate // math.gcd(rate, AUDIO_RATE)


def embed_audio(
    samples: np.ndarray, rate: int, key: bytes | None = None, *, start: int = 0
) -> tuple[np.ndarray, bool]:
    """Mark a clip on the canonical AUDIO_RATE grid (the band lies below 4 kHz, so it survives 8 kHz).
    ``start`` is the clip's first sample within a stream (0 for a whole clip): chunks marked at their
    offsets and joined carry one mark that reads as a whole, and each reads alone at its offset."""
    samples = np.asarray(samples, dtype=np.float32)
    if len(samples) < MIN_AUDIO_SECONDS * rate or np.abs(samples).max() < 1e-4:
        return samples, False
    key = key or watermark_key()
    offset = canonical_offset(start, rate)
    host = resample(samples, rate, AUDIO_RATE).astype(np.float64)
    mark = AUDIO_CARRIER.embed(host, key, offset).astype(np.float32)
    mark = resample(mark, AUDIO_RATE, rate)[: len(samples)]

    def apply(m: np.ndarray) -> np.ndarray:
        out = samples + m
        peak = np.abs(out).max()
        if peak > 1.0:  # never clip: scale the whole clip down a little
            out = out / peak
        return np.round(out.astype(np.float32) * 32767) / 32767  # what a 16-bit WAV keeps

    # Tuned so that the mark is still read under noise at AUDIO_NOISE_DB SNR (a fixed draw), not
    # merely on the pristine file: speech leaves the whitened detector little headroom otherwise.
    noise = np.random.default_rng(0).normal(0.0, 1.0, len(samples)).astype(np.float32)
    noise *= np.sqrt((samples**2).mean() / 10 ** (AUDIO_NOISE_DB / 10))

    def z_under_noise(x: np.ndarray) -> float:
        return detect_audio(x + noise, rate, key, start=start).z or 0.0

    return apply(_correct(mark, apply, z_under_noise, samples, steps=4)).astype(np.float32), True


def detect_audio(samples: np.ndarray, rate: int, key: bytes | None = None, *, start: int = 0) -> Detection:
    """Whether ``samples`` carry the mark (``start``: where they begin in the stream they came from)."""
    samples = np.asarray(samples, dtype=np.float32)
    if len(samples) < MIN_AUDIO_SECONDS * rate / 2:
        return Detection(
            False, None, THRESHOLD_Z, SCHEME, f"too short to carry a mark ({len(samples) / rate:.2f} s)"
        )
    key = key or watermark_key()
    host = resample(samples, rate, AUDIO_RATE).astype(np.float64)
    return _verdict(AUDIO_CARRIER.z(host, key, canonical_offset(start, rate)))


def _verdict(z: float) -> Detection:
    present = z >= THRESHOLD_Z
    detail = (
        f"genlab watermark found (z = {z:.1f}, threshold {THRESHOLD_Z:g})"
        if present
        else f"no genlab watermark for this key (z = {z:.1f}, threshold {THRESHOLD_Z:g})"
    )
    return Detection(present, round(z, 2), THRESHOLD_Z, SCHEME, detail)


def read_media(path: Path) -> tuple[str, Any, int | None]:
    """('image', pixels, None) or ('audio', samples, rate) for any image or audio file."""
    if path.suffix.lower() in AUDIO_SUFFIXES:
        return "audio", read_audio(path, AUDIO_RATE), AUDIO_RATE
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB") if im.mode not in ("L", "RGB") else im.copy()
    except (UnidentifiedImageError, OSError) as e:
        raise InvalidRequestError(f"{path.name} is not a readable image: {e}") from None
    return "image", np.asarray(im), None
