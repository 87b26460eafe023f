"""A small CNN classifier per dataset: the feature space for FID/KID/precision/recall and the judge of
conditional samples' class accuracy.

Trained once through the one Trainer and shipped in the package (``evaluation/classifiers/<data>``),
its held-out accuracy in its card:

    python scripts/ship_classifier.py digits

A user's own image folder gets one with ``genlab train classifier --data PATH`` (saved under
``GENLAB_HOME/classifiers/``). Its penultimate layer (128 features) plays the role Inception-v3's
pool features play for ImageNet-scale FID.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genlab.core import InvalidRequestError, ModelCard
from genlab.core.io import atomic_write_json, sha256_file
from genlab.core.settings import Settings
from genlab.data.images import ImageDataset
from genlab.families.nets import conv_block
from genlab.training.checkpoint import save_tensors
from genlab.training.trainer import TrainConfig, Trainer, mix_seed

SHIPPED_CLASSIFIERS = Path(__file__).parent / "classifiers"


@dataclass
class ClassifierConfig:
    channels: int = 1
    size: int = 16
    num_classes: int = 10
    width: int = 32
    features: int = 128

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Classifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.config = cfg
        w = cfg.width
        self.body = nn.Sequential(
            conv_block(cfg.channels, w),
            conv_block(w, w),
            nn.MaxPool2d(2),
            conv_block(w, 2 * w),
            conv_block(2 * w, 2 * w),
            nn.MaxPool2d(2),
            conv_block(2 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * w, cfg.features),
            nn.SiLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(cfg.features, cfg.num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch: int = 512) -> np.ndarray:
        self.eval()
        return torch.cat([self.body(x[i : i + batch]) for i in range(0, len(x), batch)]).numpy()

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
        self.eval()
        return torch.cat([self(x[i : i + batch]).softmax(1) for i in range(0, len(x), batch)])

    def predict(self, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
        return self.probabilities(x, batch).argmax(1)


def shift(x: torch.Tensor, generator: torch.Generator, pixels: int) -> torch.Tensor:
    """Random translations by up to ``pixels`` in each direction (background -1 fills the gap)."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (pixels,) * 4, value=-1.0)
    offsets = torch.randint(0, 2 * pixels + 1, (n, 2), generator=generator)
    return torch.stack(
        [padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets.tolist())]
    )


class ClassifierTask:
    unit = "img"

    def __init__(self, model: Classifier, data: ImageDataset) -> None:
        self.model = model
        self.data = data
        self.best: dict[str, float] = {}

    def batch(self, split: str, generator: torch.Generator, batch_size: int):
        x, y = (
            (self.data.train, self.data.train_labels)
            if split == "train"
            else (self.data.val, self.data.val_labels)
        )
        idx = torch.randint(len(x), (batch_size,), generator=generator)
        return shift(x[idx], generator, max(1, self.data.size // 14)), y[idx]

    def loss(self, model, batch) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(model(x), y, label_smoothing=0.05)

    @torch.no_grad()
    def evaluate(self, model, batches: int, seed: int) -> dict[str, float]:
        model.eval()
        logits = torch.cat([model(self.data.val[i : i + 512]) for i in range(0, len(self.data.val), 512)])
        model.train()
        loss = float(nn.functional.cross_entropy(logits, self.data.val_labels))
        acc = float((logits.argmax(1) == self.data.val_labels).float().mean())
        return {"val_loss": loss, "val_accuracy": acc}

    def items_per_batch(self, batch_size: int) -> int:
        return batch_size

    def publish(self, model, metrics, step) -> None:
        self.best = {"state": {k: v.clone() for k, v in model.state_dict().items()}, **metrics, "step": step}

    def architecture(self) -> dict[str, Any]:
        return {"family": "classifier", **self.model.config.to_dict()}


def train_classifier(
    data: ImageDataset, out_dir: Path, *, steps: int = 3000, seed: int = 0, progress: bool = True
) -> dict[str, float]:
    """Train, then write ``model.safetensors`` and ``card.json`` (with held-out accuracy) to ``out_dir``."""
    if not data.conditional or len(data.class_names) < 2:
        raise InvalidRequestError(
            "a classifier needs a labelled dataset (one sub-folder per class)", param="data"
        )
    torch.manual_seed(seed)
    cfg = ClassifierConfig(channels=data.channels, size=data.size, num_classes=len(data.class_names))
    model = Classifier(cfg)
    task = ClassifierTask(model, data)
    train = TrainConfig(
        steps=steps,
        batch_size=64,
        lr=2e-3,
        min_lr=1e-4,
        warmup_steps=100,
        weight_decay=0.05,
        eval_every=max(1, steps // 10),
        eval_batches=1,
        seed=seed,
    )
    run_dir = out_dir.parent / f".{out_dir.name}.run"
    result = Trainer(task, train, run_dir, progress=progress).fit()
    model.load_state_dict(task.best["state"])
    out_dir.mkdir(parents=True, exist_ok=True)
    save_tensors(out_dir / "model.safetensors", model.state_dict())
    metrics = {
        "val_accuracy": round(task.best["val_accuracy"], 4),
        "val_loss": round(task.best["val_loss"], 4),
    }
    card = ModelCard(
        name=f"classifier-{data.name}",
        family="classifier",
        modality=data.modality,
        backend="torch",
        description=f"A 5-layer CNN classifier of {data.name} ({len(data.class_names)} classes"
        + (", on log-mel spectrograms" if data.modality == "audio" else "")
        + "), the feature space for FID/KID/precision/recall and the judge of class accuracy.",
        parameters=sum(p.numel() for p in model.parameters()),
        training_data=f"{data.source}: {len(data.train)} training "
        f"{'clips' if data.modality == 'audio' else 'images'}, {len(data.val)} held out",
        metrics={**metrics, "steps": result.step, "seconds": round(result.seconds, 1)},
        reproduce=f"python scripts/ship_classifier.py {data.name}",
    )
    card.save(out_dir / "card.json")
    atomic_write_json(
        out_dir / "config.json",
        {
            "model": cfg.to_dict(),
            "classes": data.class_names,
            "weights_sha256": sha256_file(out_dir / "model.safetensors"),
        },
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    return metrics


def classifier_dir(dataset: str, settings: Settings | None = None) -> Path | None:
    for base in (SHIPPED_CLASSIFIERS, (settings or Settings.from_env()).home / "classifiers"):
        if (base / dataset / "config.json").is_file():
            return base / dataset
    return None


def load_classifier(dataset: str, settings: Settings | None = None) -> tuple[Classifier, ModelCard] | None:
    from genlab.generators.lm import load_weights

    directory = classifier_dir(dataset, settings)
    if directory is None:
        return None
    config = json.loads((directory / "config.json").read_text("utf-8"))
    model = Classifier(ClassifierConfig(**config["model"]))
    load_weights(model, directory / "model.safetensors", expected_sha256=config.get("weights_sha256"))
    return model.eval(), ModelCard.load(directory / "card.json")


# -- evaluating a generator ----------------------------------------------------------------------
def _pixel_features(x: torch.Tensor) -> np.ndarray:
    """Without a classifier: pixels pooled to at most 8x8 per channel (a weak but honest feature space)."""
    side = min(8, x.shape[2])
    return nn.functional.adaptive_avg_pool2d(x, side).flatten(1).numpy()


class FeatureSpace:
    """The dataset's classifier features, or pooled pixels when no classifier exists for it."""

    def __init__(self, dataset: str, settings: Settings | None = None) -> None:
        loaded = load_classifier(dataset, settings)
        self.classifier, self.card = loaded if loaded else (None, None)
        self.name = f"classifier-{dataset}" if self.classifier is not None else "pixels"

    def features(self, x: torch.Tensor) -> np.ndarray:
        return self.classifier.features(x) if self.classifier is not None else _pixel_features(x)


def fid_scorer(dataset: str, settings: Settings | None = None):
    """FID between held-out real images and samples, in the dataset's feature space: what a GAN's
    training is validated by (it has no likelihood). Passed to the trainer, which does not import
    evaluation."""
    from genlab.evaluation.metrics import fid

    space = FeatureSpace(dataset, settings)

    def score(real: torch.Tensor, samples: torch.Tensor) -> float:
        return fid(space.features(real), space.features(samples))

    return score


def judge(
    samples: torch.Tensor, labels: torch.Tensor | None, real_features: np.ndarray, space: FeatureSpace
) -> dict[str, Any]:
    """FID, KID, precision, recall; with a classifier the Inception-style score and class accuracy."""
    from genlab.evaluation.metrics import distribution_metrics, inception_score

    out: dict[str, Any] = {
        k: round(v, 4) for k, v in distribution_metrics(real_features, space.features(samples)).items()
    }
    if space.classifier is not None:
        probabilities = space.classifier.probabilities(samples)
        out["inception_score"] = round(inception_score(probabilities.numpy()), 4)
        if labels is not None:
            out["class_accuracy"] = round(float((probabilities.argmax(1) == labels).float().mean()), 4)
    return out


_CEILINGS: dict[tuple, dict[str, Any]] = {}


def evaluate_samples(
    samples: torch.Tensor,
    labels: torch.Tensor | None,
    data: ImageDataset,
    space: FeatureSpace,
    *,
    floor: bool = True,
) -> dict[str, Any]:
    """FID, KID, precision, recall (and class accuracy) of ``samples`` against the held-out images.

    ``floor``: the same for real training data, the best a generator can hope for. For audio also
    ``ceiling``: held-out clips after the codec's round trip, the best a generator's *sound* can be.
    """
    real = space.features(data.val)
    out = judge(samples, labels, real, space)
    if floor:
        g = torch.Generator().manual_seed(mix_seed(0, 99))
        idx = torch.randperm(len(data.train), generator=g)[: len(samples)]
        out["floor"] = judge(data.train[idx], None, real, space)
        if data.train_labels is not None and space.classifier is not None:
            predicted = space.classifier.predict(data.val)
            out["floor"]["class_accuracy"] = round(float((predicted == data.val_labels).float().mean()), 4)
    if data.modality == "audio":  # the ceiling: real clips through the codec's mel -> waveform -> mel
        key = (data.name, space.name, len(data.val))
        if key not in _CEILINGS:  # it depends on the data only: once per process
            from genlab.codecs.audio import MelCodec

            heard = MelCodec.from_dict(data.codec).round_trip(data.val)
            _CEILINGS[key] = judge(heard, data.val_labels, real, space)
        out["ceiling"] = _CEILINGS[key]
    out["feature_space"] = space.name
    out["samples"] = len(samples)
    out["real_images"] = len(data.val)
    return out
