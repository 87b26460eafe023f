"""Evaluate a trained text model on the held-out documents recorded in its manifest."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from genlab.core import UnsupportedError
from genlab.data.text import load_corpus
from genlab.registry import default_registry


def evaluate_text_model(name: str, *, batches: int = 50, seed: int = 0) -> dict[str, Any]:
    registry = default_registry()
    entry = registry.get(name)
    if entry.kind != "transformer":
        raise UnsupportedError(
            f"{name!r} is a {entry.card.backend} model; `genlab eval text` measures models trained in genlab"
        )
    from genlab.training.text import TextTask

    lm = registry.load(name)
    corpus = load_corpus(entry.config["data"], registry.settings, seed=0)
    task = TextTask(lm.model, lm.codec, corpus)
    metrics = task.evaluate(lm.model, batches, seed)
    return {
        "model": name,
        "data": entry.config["data"],
        "val_documents": len(corpus.val),
        **{k: round(v, 4) for k, v in metrics.items()},
    }


def transcribed_digit(text: str) -> int | None:
    """The digit a transcript says ("Seven.", "7", "seven!"), or None."""
    from genlab.codecs.image import DIGIT_WORDS

    words = re.findall(r"[a-z]+|\d", text.lower())
    for w in words:
        if w.isdigit():
            return int(w)
        if w in DIGIT_WORDS:
            return DIGIT_WORDS.index(w)
        if w in ("oh", "o"):
            return 0
    return None


DIGITS_PROMPT = "Counting: zero, one, two, three, four, five, six, seven, eight, nine."


def word_accuracy(waves, rate: int, digits: list[int], transcriber) -> float:
    """The share of clips whose first word whisper hears as the digit they should say (each
    clip padded with half a second of silence, and Whisper told it hears digits: a lone
    one-second word is otherwise often heard as nothing)."""
    from genlab.codecs.audio import resample
    from genlab.generators.transcriber import SAMPLE_RATE

    right = 0
    pad = np.zeros(SAMPLE_RATE // 2, np.float32)
    for wave, digit in zip(waves, digits, strict=True):
        clip = np.concatenate([pad, resample(np.asarray(wave, np.float32), rate, SAMPLE_RATE), pad])
        text = transcriber.transcribe(clip, prompt=DIGITS_PROMPT, max_new_tokens=6).text
        right += transcribed_digit(text) == digit
    return round(right / max(len(digits), 1), 4)


def intelligibility(spectrograms, labels, data, model, registry, clips: int) -> dict[str, Any]:
    """Word accuracy of the model's clips (after Griffin-Lim) next to the held-out real clips'
    through the same codec: what a listener, here Whisper, understands."""
    import torch

    transcriber = registry.load("whisper-tiny-en")
    n = min(clips, len(labels))
    digits = [int(model.classes[i]) for i in labels[:n]]
    rate = model.codec.sample_rate
    with torch.no_grad():
        made = model.codec.decode(spectrograms[:n]).numpy()
        m = min(n, len(data.val))
        real = model.codec.decode(data.val[:m]).numpy()
    real_digits = [int(model.classes[int(i)]) for i in data.val_labels[:m]]
    return {
        "word_accuracy": word_accuracy(made, rate, digits, transcriber),
        "word_accuracy_real": word_accuracy(real, rate, real_digits, transcriber),
        "word_judge": "whisper-tiny-en",
        "word_clips": n,
    }


def evaluate_image_model(
    name: str,
    *,
    samples: int = 1000,
    options: dict[str, Any] | None = None,
    seed: int = 0,
    write_card: bool = True,
    progress: Callable[[str], None] | None = None,
    iwae_k: int = 64,
    iwae_images: int = 200,
    modality: str | None = None,
    judge_clips: int = 20,
) -> dict[str, Any]:
    """Sample ``samples`` images (classes in turn) and measure them against the held-out images.

    FID, KID, precision and recall use the dataset classifier's features (pooled pixels when the
    dataset has none); class accuracy is the classifier's verdict on conditional samples. The
    real-data floor is the same metrics for training images vs held-out images. A VAE adds its
    IWAE negative log-likelihood bound in bits per dimension.
    """
    import time

    import torch

    from genlab.core import InvalidRequestError
    from genlab.data.datasets import load_image_dataset
    from genlab.evaluation.classifier import FeatureSpace, evaluate_samples

    registry = default_registry()
    entry = registry.get(name)
    if entry.kind not in ("image", "audio"):
        raise UnsupportedError(
            f"{name!r} is a {entry.card.family} {entry.card.modality} model; `genlab eval image` and "
            "`genlab eval audio` measure GAN, VAE and diffusion models trained in genlab"
        )
    if modality is not None and entry.kind != modality:
        raise UnsupportedError(
            f"{name!r} is an {entry.kind} model", hint=f"use `genlab eval {entry.kind} {name}`"
        )
    if samples < 10:
        raise InvalidRequestError(f"samples must be at least 10, got {samples}", param="samples")
    model = registry.load(name)
    opts = model.options({k: v for k, v in (options or {}).items() if v is not None})
    data = load_image_dataset(entry.config["data"], registry.settings)
    space = FeatureSpace(data.name, registry.settings)
    k = len(model.classes)
    labels = [i % k for i in range(samples)] if k else None
    seeds = [seed + i for i in range(samples)]
    chunks = []
    started = time.perf_counter()
    step = progress or (lambda _message: None)
    for i in range(0, samples, 250):
        step(f"sampling {i} of {samples}")
        chunk_labels = labels[i : i + 250] if labels is not None else None
        chunks.append(model.sample(chunk_labels, seeds[i : i + 250], **opts))
    step(f"scoring {samples} samples against the held-out set")
    images = torch.cat(chunks)
    if entry.kind == "audio":  # judge the sound a listener gets: spectrogram -> waveform -> spectrogram
        images = model.codec.round_trip(images)
    seconds = time.perf_counter() - started
    metrics = evaluate_samples(images, torch.tensor(labels) if labels is not None else None, data, space)
    metrics = {"model": name, "data": entry.config["data"], **metrics, **opts}
    metrics["sampling_seconds"] = round(seconds, 2)
    metrics["seconds_per_1000_images"] = round(seconds * 1000 / samples, 2)
    if entry.kind == "audio":
        metrics["seconds_per_audio_second"] = round(seconds / (samples * model.codec.seconds), 4)
    if entry.kind == "audio" and judge_clips and k and all(c.isdigit() for c in model.classes):
        step(f"transcribing {min(judge_clips, samples)} clips with whisper-tiny-en (the independent judge)")
        metrics.update(intelligibility(images, labels, data, model, registry, judge_clips))
    if model.family == "vae":
        step(f"IWAE likelihood bound (k={iwae_k})")
        torch.manual_seed(seed)
        n = min(iwae_images, len(data.val))
        y = data.val_labels[:n] if k else None
        metrics["bits_per_dim"] = round(model.model.iwae_bits_per_dim(data.val[:n], y, k=iwae_k), 4)
        metrics["iwae_k"] = iwae_k
    if write_card and entry.path is not None and "card" in entry.config:
        registry.record_metrics(name, "eval", {k2: v for k2, v in metrics.items() if k2 != "model"})
    return metrics
