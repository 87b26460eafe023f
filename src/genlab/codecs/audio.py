"""Audio <-> log-mel "images": how the image families (GAN, VAE, diffusion) generate sound.

    waveform (16 kHz, 1 s) --STFT--> |X| --mel filterbank--> mel power --dB, clip, scale--> [-1, 1]
    [-1, 1] --dB--> mel power --pseudo-inverse filterbank--> |X| --Griffin-Lim--> waveform

A spectrogram of ``n_mels`` mel bands by ``frames`` STFT frames is a one-channel picture, so the
family code is shared with images unchanged; only this codec knows it is sound. The spectrogram is
quantised to 256 levels like a picture (0.35 dB steps over a 90 dB range: below what an ear hears),
so the VAE's discretised likelihood and every uint8 code path apply as they are.

Phase is not modelled: Griffin-Lim (Griffin & Lim, 1984), with the momentum of "fast Griffin-Lim"
(Perraudin, Balazs & Søndergaard, 2013), estimates a phase consistent with the magnitudes. Its
losses (the mel bands' coarse frequency resolution, the estimated phase) set a ceiling on generated
audio that ``round_trip`` measures on real clips. Mel scale: HTK's 2595 log10(1 + f/700).
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.core import InvalidRequestError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif"}


def hz_to_mel(f: torch.Tensor | float) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters, equally spaced on the mel scale, each of area 1."""
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    fb = torch.clamp(torch.minimum(rising, falling), min=0.0)
    fb = fb * (2.0 / (upper - lower))  # Slaney's area normalisation: bands of equal energy
    return fb.float()


@dataclass(frozen=True)
class MelCodec:
    sample_rate: int = 16000
    seconds: float = 1.0
    n_fft: int = 1024
    hop: int = 512
    n_mels: int = 32
    f_min: float = 40.0
    f_max: float = 7600.0
    db_min: float = -100.0
    db_max: float = -10.0

    def __post_init__(self) -> None:
        if not 0 <= self.n_mels - self.stft_frames <= 4:
            raise InvalidRequestError(
                f"a mel codec makes square spectrograms: {self.samples} samples at hop {self.hop} give "
                f"{self.stft_frames} frames, which do not fit {self.n_mels} mel bands; choose hop so that "
                "samples / hop + 1 is n_mels or a little less"
            )
        if self.n_mels % 4:
            raise InvalidRequestError(f"n_mels must be a multiple of 4, got {self.n_mels}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MelCodec:
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def samples(self) -> int:
        return round(self.sample_rate * self.seconds)

    @property
    def stft_frames(self) -> int:
        return self.samples // self.hop + 1  # centred STFT frames

    @property
    def frames(self) -> int:
        """Frames in the spectrogram picture: the STFT's, padded with silence to make it square."""
        return self.n_mels

    @property
    def size(self) -> int:
        return self.n_mels

    @cached_property
    def _window(self) -> torch.Tensor:
        return torch.hann_window(self.n_fft, dtype=torch.float32)

    @cached_property
    def _filterbank(self) -> torch.Tensor:
        return mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.f_min, self.f_max)

    @cached_property
    def _inverse_filterbank(self) -> torch.Tensor:
        return torch.linalg.pinv(self._filterbank)

    def _stft(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.stft(wave, self.n_fft, self.hop, window=self._window, center=True, return_complex=True)

    def _istft(self, spec: torch.Tensor) -> torch.Tensor:
        return torch.istft(spec, self.n_fft, self.hop, window=self._window, center=True, length=self.samples)

    # -- waveform -> spectrogram -------------------------------------------------------------------
    def encode(self, wave: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(N, samples) or (samples,) float waveforms in [-1, 1] -> (N, 1, n_mels, frames) in [-1, 1]."""
        wave = torch.as_tensor(np.asarray(wave), dtype=torch.float32)
        if wave.ndim == 1:
            wave = wave[None]
        if wave.shape[1] != self.samples:
            raise InvalidRequestError(f"expected {self.samples} samples per clip, got {wave.shape[1]}")
        magnitude = self._stft(wave).abs() / self._window.sum()  # a full-scale sine peaks near 0.5
        mel = torch.einsum("mf,nft->nmt", self._filterbank, magnitude.pow(2))
        db = 10.0 * torch.log10(mel.clamp_min(1e-12))
        x = (db.clamp(self.db_min, self.db_max) - self.db_min) / (self.db_max - self.db_min) * 2 - 1
        x = torch.nn.functional.pad(x, (0, self.frames - self.stft_frames), value=-1.0)
        return x[:, None].contiguous()

    # -- spectrogram -> waveform -------------------------------------------------------------------
    def magnitude(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, n_mels, frames) in [-1, 1] -> linear STFT magnitudes (N, n_fft/2+1, frames)."""
        db = (x[:, 0, :, : self.stft_frames].clamp(-1, 1) + 1) / 2 * (self.db_max - self.db_min) + self.db_min
        mel = 10.0 ** (db / 10.0)
        mel = torch.where(db <= self.db_min + 1e-3, torch.zeros_like(mel), mel)  # the floor is silence
        power = torch.einsum("fm,nmt->nft", self._inverse_filterbank, mel).clamp_min(0)
        return power.sqrt() * self._window.sum()

    def decode(self, x: torch.Tensor, *, iterations: int = 32, momentum: float = 0.99) -> torch.Tensor:
        """Spectrograms -> (N, samples) waveforms by fast Griffin-Lim, peak-normalised to 0.9.

        The initial phase is drawn from a fixed seed, so decoding is deterministic.
        """
        if iterations < 1:
            raise InvalidRequestError(f"iterations must be at least 1, got {iterations}", param="iterations")
        if not 0 <= momentum < 1:
            raise InvalidRequestError(f"momentum must be in [0, 1), got {momentum}", param="momentum")
        magnitude = self.magnitude(x)
        g = torch.Generator().manual_seed(0)
        angles = torch.polar(
            torch.ones_like(magnitude), 2 * math.pi * torch.rand(magnitude.shape, generator=g)
        )
        previous = torch.zeros_like(angles)
        for _ in range(iterations):
            rebuilt = self._stft(self._istft(magnitude * angles))
            angles = rebuilt - previous * (momentum / (1 + momentum))
            angles = angles / (angles.abs() + 1e-16)
            previous = rebuilt
        wave = self._istft(magnitude * angles)
        return peak_normalise(wave)

    def round_trip(self, x: torch.Tensor, *, iterations: int = 32, batch: int = 256) -> torch.Tensor:
        """Spectrograms -> waveforms -> spectrograms: what a listener's ear (or classifier) gets back."""
        return torch.cat(
            [
                self.encode(self.decode(x[i : i + batch], iterations=iterations))
                for i in range(0, len(x), batch)
            ]
        )

    def fit(self, wave: np.ndarray, *, threshold_db: float = -40.0) -> np.ndarray:
        """Trim silence (below ``threshold_db`` of the peak), centre in the clip length, peak to 0.9."""
        wave = np.asarray(wave, dtype=np.float32)
        peak = float(np.abs(wave).max()) if wave.size else 0.0
        if peak <= 1e-6:
            raise InvalidRequestError("the clip is silent")
        loud = np.flatnonzero(np.abs(wave) >= peak * 10 ** (threshold_db / 20))
        wave = wave[loud[0] : loud[-1] + 1] * (0.9 / peak)
        n = self.samples
        if len(wave) > n:  # longer than the clip: keep its middle
            start = (len(wave) - n) // 2
            return wave[start : start + n].copy()
        out = np.zeros(n, np.float32)
        start = (n - len(wave)) // 2
        out[start : start + len(wave)] = wave
        return out


def peak_normalise(wave: torch.Tensor, peak: float = 0.9) -> torch.Tensor:
    top = wave.abs().amax(dim=-1, keepdim=True).clamp_min(1e-8)
    return wave * (peak / top)


def spectral_convergence(reference: torch.Tensor, estimate: torch.Tensor, codec: MelCodec) -> float:
    """|| |S| - |Ŝ| ||_F / || |S| ||_F over STFT magnitudes (Sturmel & Daudet, 2011): 0 is perfect."""
    ref = codec._stft(torch.as_tensor(reference)).abs()
    est = codec._stft(torch.as_tensor(estimate)).abs()
    return float(torch.linalg.norm(ref - est) / torch.linalg.norm(ref).clamp_min(1e-12))


# -- WAV files ------------------------------------------------------------------------------------
def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Polyphase resampling (scipy), float32; the same array when the rates agree."""
    if rate == target:
        return wave
    from scipy.signal import resample_poly

    g = math.gcd(int(rate), int(target))
    return resample_poly(wave, int(target) // g, int(rate) // g).astype(np.float32)


def _unreadable(source: str | Path | bytes, e: Exception) -> InvalidRequestError:
    reason = str(e).rsplit(": ", 1)[-1].strip() or "unknown format"
    return InvalidRequestError(
        f"{'the uploaded file' if isinstance(source, bytes) else source} is not a readable audio file "
        f"(WAV, FLAC, MP3 or OGG): {reason}",
        param="file" if isinstance(source, bytes) else "data",
    )


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says it holds, read without decoding a sample."""

    seconds: float
    frames: int
    channels: int
    rate: int


def audio_info(source: str | Path | bytes) -> AudioInfo:
    """The header of an audio file (``soundfile.info``): its length, before anything is decoded
    (a small FLAC of hours of silence decodes to gigabytes)."""
    import soundfile

    try:
        info = soundfile.info(io.BytesIO(source) if isinstance(source, bytes) else str(source))
    except (RuntimeError, soundfile.LibsndfileError, OSError) as e:
        raise _unreadable(source, e) from None
    frames = max(0, int(info.frames))
    return AudioInfo(frames / max(1, info.samplerate), frames, int(info.channels), int(info.samplerate))


def decode_audio(
    source: str | Path | bytes, sample_rate: int, *, max_seconds: float | None = None
) -> tuple[np.ndarray, bool]:
    """(mono float32 waveform at ``sample_rate``, whether it had to be resampled or downmixed).

    ``source`` is a path or the bytes of a file (WAV, FLAC, OGG, AIFF: what libsndfile reads).
    ``max_seconds`` stops decoding there, whatever the header said: a longer file is a 400.
    """
    import soundfile

    name = "audio" if isinstance(source, bytes) else str(source)
    try:
        with soundfile.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as f:
            rate = f.samplerate
            limit = -1 if max_seconds is None else int(max_seconds * rate) + 1
            data = f.read(frames=limit, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, OSError) as e:
        raise _unreadable(source, e) from None
    if max_seconds is not None and data.shape[0] >= limit:
        raise InvalidRequestError(
            f"{name} is longer than {max_seconds:g} s (its header said less); split it", param="file"
        )
    if data.shape[0] == 0:
        raise InvalidRequestError(f"{name} holds no audio samples", param="data")
    wave = data.mean(axis=1)  # downmix: the mean of the channels
    return resample(wave, int(rate), sample_rate), rate != sample_rate or data.shape[1] != 1


def read_audio(
    source: str | Path | bytes, sample_rate: int, *, max_seconds: float | None = None
) -> np.ndarray:
    """A mono float32 waveform at ``sample_rate``: stereo is averaged, other rates resampled."""
    return decode_audio(source, sample_rate, max_seconds=max_seconds)[0]


#: OpenAI's speech response formats -> (libsndfile format, subtype, media type); pcm is raw.
ENCODINGS = {
    "wav": ("WAV", "PCM_16", "audio/wav"),
    "flac": ("FLAC", "PCM_16", "audio/flac"),
    "mp3": ("MP3", "MPEG_LAYER_III", "audio/mpeg"),
    "opus": ("OGG", "OPUS", "audio/ogg"),
    "pcm": (None, None, "audio/pcm"),
}


def wav_stream_header(sample_rate: int) -> bytes:
    """A 16-bit mono WAV header for a stream of unknown length: the RIFF and data sizes are left at
    0xFFFFFFFF, as streaming servers do, and players read until the data ends."""
    import struct

    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 0xFFFFFFFF)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + (b"data" + struct.pack("<I", 0xFFFFFFFF))
    )


def encode_audio(samples: np.ndarray, sample_rate: int, fmt: str, *, comment: str | None = None) -> bytes:
    """Mono float32 samples as a file of ``fmt`` (``pcm``: raw 16-bit little-endian samples);
    ``comment`` (provenance) goes into the file's metadata where the format has it (FLAC, Ogg)."""
    import soundfile

    if fmt not in ENCODINGS:
        raise InvalidRequestError(
            f"response_format must be one of {', '.join(ENCODINGS)}, got {fmt!r}", param="response_format"
        )
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    if fmt == "pcm":
        return pcm.tobytes()
    kind, subtype, _ = ENCODINGS[fmt]
    rate = sample_rate if fmt != "opus" else 48000  # Opus runs at 48 kHz
    data = samples if rate == sample_rate else resample(np.asarray(samples, np.float32), sample_rate, rate)
    buffer = io.BytesIO()
    with soundfile.SoundFile(buffer, "w", samplerate=rate, channels=1, format=kind, subtype=subtype) as f:
        if comment and fmt in ("flac", "opus"):
            f.comment = comment
        f.write(np.asarray(data, dtype=np.float32))
    return buffer.getvalue()
