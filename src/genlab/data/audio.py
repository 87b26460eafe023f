"""Audio datasets, served to the families as log-mel spectrograms (see ``codecs/audio.py``).

- ``spoken-digits``: "zero" to "nine" spoken by espeak-ng (Debian's ``espeak-ng``) in each of its
  English accents (the ``gmw/`` voices: British, American, Scottish, Caribbean ...) combined with
  each of its voice variants (``espeak-ng --voices=variant``: male, female, whisper, klatt ...), at
  a random pitch and rate per clip; 16 kHz, trimmed of silence and centred in 1 s. The same seed
  gives the same clips. About one variant in five (chosen by a hash of its name) is held out for
  validation, so validation measures generalisation to voices the model never heard. The task is
  SC09's (the spoken digits of Speech Commands that WaveGAN, DiffWave and SaShiMi report on),
  with a synthetic speaker pool in place of recorded people.
- any folder of audio files (``--data PATH``): one sub-folder per class (or a flat folder for an
  unconditional model), resampled to 16 kHz and downmixed to mono as needed.

The spectrograms are cached under ``GENLAB_HOME/datasets``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genlab.codecs.audio import AUDIO_SUFFIXES, MelCodec, decode_audio, read_audio
from genlab.codecs.image import DIGIT_WORDS, from_uint8, to_uint8
from genlab.core import InvalidRequestError
from genlab.core.settings import Settings
from genlab.data.images import ImageDataset, _warn, class_files, folder_dataset

ESPEAK = "espeak-ng"
ESPEAK_HINT = "install Debian's espeak-ng: apt-get install espeak-ng"


@dataclass(frozen=True)
class Clip:
    """One spoken digit, enough to synthesise it again."""

    digit: int
    voice: str
    variant: str
    pitch: int
    rate: int

    def command(self) -> list[str]:
        return [
            ESPEAK,
            "-v",
            f"{self.voice}+{self.variant}",
            "-p",
            str(self.pitch),
            "-s",
            str(self.rate),
            "--stdout",
            DIGIT_WORDS[self.digit],
        ]


def _espeak() -> str:
    path = shutil.which(ESPEAK)
    if path is None:
        raise InvalidRequestError(
            "the spoken-digits dataset needs espeak-ng, which is not installed", hint=ESPEAK_HINT
        )
    return path


def _list(kind: str) -> list[tuple[str, str]]:
    """(language, file) rows of ``espeak-ng --voices=<kind>``."""
    out = subprocess.run([_espeak(), f"--voices={kind}"], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5:
            rows.append((parts[1], parts[4]))
    return rows


def english_voices() -> list[str]:
    """espeak-ng's own English accents; MBROLA voices (``mb/``) need a separate synthesiser and are left out."""
    return sorted({lang for lang, file in _list("en") if file.startswith("gmw/") and lang.startswith("en")})


def voice_variants() -> list[str]:
    return sorted({file.split("/", 1)[1] for _, file in _list("variant") if file.startswith("!v/")})


def is_val_variant(variant: str) -> bool:
    return int(hashlib.sha256(variant.encode()).hexdigest(), 16) % 5 == 0


def clip_plan(voices: list[str], variants: list[str], seed: int) -> list[Clip]:
    """Every digit in every accent x variant, each at its own pitch (25-75) and rate (130-200 wpm)."""
    clips = []
    for vi, voice in enumerate(voices):
        for wi, variant in enumerate(variants):
            rng = np.random.default_rng([seed, vi, wi])
            for digit in range(10):
                clips.append(
                    Clip(digit, voice, variant, int(rng.integers(25, 76)), int(rng.integers(130, 201)))
                )
    return clips


def synthesise(clip: Clip, codec: MelCodec) -> np.ndarray:
    """The clip's waveform at the codec's rate, trimmed and centred in the codec's length."""
    done = subprocess.run(clip.command(), capture_output=True, check=False, timeout=30)
    if done.returncode != 0 or not done.stdout:
        raise InvalidRequestError(
            f"espeak-ng failed on voice {clip.voice}+{clip.variant}: {done.stderr.decode(errors='replace').strip()}"
        )
    return codec.fit(read_audio(done.stdout, codec.sample_rate))


def load_spoken_digits(
    settings: Settings, *, seed: int = 0, variants: int | None = None, codec: MelCodec | None = None
) -> ImageDataset:
    """Synthesise (or read the cached) spoken digits; ``variants`` limits the voice variants used."""
    from rich.progress import Progress
    from safetensors.torch import load_file, save_file

    codec = codec or MelCodec()
    _espeak()
    voices = english_voices()
    all_variants = voice_variants()
    chosen = all_variants if variants is None else _spread(all_variants, variants)
    if not voices or len(chosen) < 2:
        raise InvalidRequestError("espeak-ng lists too few English voices or variants", hint=ESPEAK_HINT)
    plan = clip_plan(voices, chosen, seed)
    version = subprocess.run([_espeak(), "--version"], capture_output=True, text=True).stdout.strip()
    key = hashlib.sha256(repr((plan, codec.to_dict(), version)).encode()).hexdigest()[:16]
    cache = settings.datasets_dir / f"spoken-digits-{key}.safetensors"
    if cache.is_file():
        t = load_file(str(cache))
    else:
        mels = torch.empty(len(plan), 1, codec.n_mels, codec.frames, dtype=torch.uint8)
        with (
            Progress(transient=True) as bar,
            ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool,
        ):
            task = bar.add_task("synthesising spoken digits", total=len(plan))
            for start in range(0, len(plan), 256):
                chunk = plan[start : start + 256]
                waves = np.stack(list(pool.map(lambda c: synthesise(c, codec), chunk)))
                mels[start : start + len(chunk)] = to_uint8(codec.encode(waves))
                bar.advance(task, len(chunk))
        t = {
            "mels": mels,
            "labels": torch.tensor([c.digit for c in plan], dtype=torch.long),
            "is_val": torch.tensor([is_val_variant(c.variant) for c in plan]),
        }
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        save_file(t, str(tmp))
        tmp.replace(cache)
    x = from_uint8(t["mels"])
    val = t["is_val"].bool()
    if not val.any() or val.all():  # a tiny subset whose hash put every variant on one side
        val = torch.tensor([c.variant == chosen[-1] for c in plan])
    val_variants = sorted({c.variant for c, v in zip(plan, val.tolist(), strict=True) if v})
    return ImageDataset(
        name="spoken-digits",
        train=x[~val],
        val=x[val],
        train_labels=t["labels"][~val],
        val_labels=t["labels"][val],
        class_names=[str(i) for i in range(10)],
        source=f"the ten digit words spoken by espeak-ng ({version.split(' Data')[0]}) in {len(voices)} English "
        f"accents x {len(chosen)} voice variants, random pitch and rate, 16 kHz, 1 s",
        modality="audio",
        codec=codec.to_dict(),
        extra={
            "voices": voices,
            "variants_train": [v for v in chosen if v not in val_variants],
            "variants_val": val_variants,
            "seed": seed,
        },
    )


def _spread(items: list[str], k: int) -> list[str]:
    """``k`` items spread evenly through a sorted list (a subset that still mixes voice kinds)."""
    if k < 2:
        raise InvalidRequestError(f"need at least 2 voice variants, got {k}", param="variants")
    idx = np.linspace(0, len(items) - 1, min(k, len(items))).round().astype(int)
    return [items[i] for i in sorted(set(idx.tolist()))]


def load_audio_folder(path: Path, *, seed: int = 0, codec: MelCodec | None = None) -> ImageDataset:
    """One sub-folder per class (conditional) or a flat folder of clips (unconditional)."""
    codec = codec or MelCodec()
    path = Path(path).expanduser()
    class_names, files = class_files(path, AUDIO_SUFFIXES, "audio clips")
    waves, resampled = [], 0
    for _, f in files:
        wave, converted = decode_audio(f, codec.sample_rate)
        try:
            waves.append(codec.fit(wave))
        except InvalidRequestError:
            raise InvalidRequestError(f"{f} is silent: nothing to learn from it", param="data") from None
        resampled += converted
    if resampled:
        _warn(f"{path}: {resampled} clip(s) were not {codec.sample_rate} Hz mono; resampled and downmixed")
    x = torch.cat([codec.encode(np.stack(waves[i : i + 256])) for i in range(0, len(waves), 256)])
    x = from_uint8(to_uint8(x))  # 256 levels, like a cached dataset
    return folder_dataset(
        path,
        x,
        files,
        class_names,
        seed,
        source=f"audio folder {path} ({len(files)} clips, {len(class_names) or 'no'} classes)",
        modality="audio",
        codec=codec.to_dict(),
    )


def holds_audio(path: Path) -> bool:
    """Whether a folder (or its class sub-folders) holds audio clips rather than images."""
    files = [f for f in path.rglob("*") if f.is_file()]
    return any(f.suffix.lower() in AUDIO_SUFFIXES for f in files)
