"""The sample-quality metrics behave as their papers define them, and the shipped classifiers are good judges."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.data.images import load_digits
from genlab.evaluation.classifier import FeatureSpace, evaluate_samples, load_classifier
from genlab.evaluation.metrics import fid, kid, precision_recall

from ..conftest import binomial_floor


def _gauss(n: int, d: int = 8, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def test_fid_is_near_zero_for_one_distribution_and_grows_with_the_gap():
    a, b = _gauss(2000), _gauss(2000, seed=1)
    assert fid(a, a) == pytest.approx(0.0, abs=1e-6)
    near, far = fid(a, b), fid(a, _gauss(2000, shift=1.0, seed=1))
    assert near < 0.1 and far == pytest.approx(8.0, rel=0.1)  # ‖Δμ‖² = 8 · 1²


def test_kid_is_unbiased_near_zero_and_positive_for_different_distributions():
    same = kid(_gauss(400), _gauss(400, seed=1))
    different = kid(_gauss(400), _gauss(400, shift=1.0, seed=1))
    assert abs(same) < 0.05 and different > 0.5


def test_precision_and_recall_separate_fidelity_from_coverage():
    real = _gauss(500)
    p, r = precision_recall(real, _gauss(500, seed=1))
    assert p > 0.75 and r > 0.75  # k = 3 balls cover most, not all, of a same-distribution sample
    collapsed = np.repeat(real[:1], 500, axis=0) + 1e-3 * _gauss(500, seed=2)  # one mode, on the manifold
    p, r = precision_recall(real, collapsed)
    assert p > 0.9 and r < 0.1
    p, r = precision_recall(real, _gauss(500, shift=10.0, seed=3))  # off the manifold
    assert p == 0.0 and r == 0.0


def test_shipped_digits_classifier_is_accurate_and_its_floor_is_small():
    loaded = load_classifier("digits")
    assert loaded is not None
    classifier, card = loaded
    assert card.metrics["val_accuracy"] >= 0.97
    data = load_digits()
    assert float((classifier.predict(data.val) == data.val_labels).float().mean()) >= 0.97
    space = FeatureSpace("digits")
    real = evaluate_samples(data.train[:300], data.train_labels[:300], data, space)
    noise = evaluate_samples(
        torch.rand(300, 1, 16, 16) * 2 - 1, data.train_labels[:300], data, space, floor=False
    )
    assert real["class_accuracy"] > 0.95 and real["fid"] < noise["fid"] / 10
    assert noise["class_accuracy"] < 0.3 and noise["precision"] < real["precision"]


def test_glyphs_classifier_is_shipped_with_its_accuracy():
    loaded = load_classifier("glyphs")
    assert loaded is not None and loaded[1].metrics["val_accuracy"] >= 0.85


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("gan-digits", {}),
        ("vae-digits", {}),
        ("diffusion-digits", {"steps": 20, "sampler": "ddim"}),
        ("diffusion-digits", {"steps": 20, "sampler": "dpm++"}),
    ],
)
def test_shipped_image_models_draw_the_class_they_are_asked_for(registry, model, options):
    """The shipped conditional models keep the >= 90% class accuracy their cards and benchmark report."""
    generator = registry.load(model)
    labels = [i % 10 for i in range(100)]
    images = generator.sample(labels, list(range(1000, 1100)), **generator.options(options))
    classifier, _ = load_classifier("digits")
    accuracy = float((classifier.predict(images) == torch.tensor(labels)).float().mean())
    card = generator.card.metrics["eval"]["class_accuracy"]
    assert card >= 0.9  # what the card and the benchmark report
    assert accuracy >= binomial_floor(card, len(labels)), (accuracy, card)


def test_spoken_digits_classifier_is_shipped_with_its_accuracy():
    loaded = load_classifier("spoken-digits")
    assert loaded is not None and loaded[1].metrics["val_accuracy"] >= 0.95 and loaded[1].modality == "audio"


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gan-spoken-digits", "vae-spoken-digits"])
def test_shipped_audio_models_say_the_digit_they_are_asked_for(registry, model):
    """What a listener gets (spectrogram -> Griffin-Lim -> waveform), judged by the shipped classifier: >= 80%."""
    generator = registry.load(model)
    labels = [i % 10 for i in range(100)]
    heard = generator.codec.round_trip(generator.sample(labels, list(range(500, 600))))
    classifier, _ = load_classifier("spoken-digits")
    accuracy = float((classifier.predict(heard) == torch.tensor(labels)).float().mean())
    card = generator.card.metrics["eval"]["class_accuracy"]
    assert card >= 0.8
    assert accuracy >= binomial_floor(card, len(labels)), (accuracy, card)
