"""Training the image families (GAN, VAE, diffusion) through the one Trainer.

    genlab train image --family diffusion --data digits --conditional --preset small

writes ``GENLAB_HOME/models/<name>/`` like a text model: ``data_manifest.json``, the best model so
far under ``snapshots/`` (published through ``config.json`` and ``card.json``), and resumable
checkpoints (model, one optimiser per phase, EMA) under ``checkpoints/``.

Which model is "best": the VAE's held-out negative ELBO, diffusion's held-out denoising loss, and
for the GAN (no likelihood) the FID of 512 EMA-generator samples against the held-out images, in
the dataset classifier's feature space.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from genlab.core import InvalidRequestError, ModelCard
from genlab.core.settings import Settings
from genlab.data.datasets import load_image_dataset
from genlab.data.images import (
    BUILTIN_AUDIO_DATASETS,
    BUILTIN_IMAGE_DATASETS,
    ImageDataset,
    save_image_manifest,
)
from genlab.families.build import build_family, published_module
from genlab.families.nets import count_parameters
from genlab.families.spec import Preset, family_spec
from genlab.registry import default_trained_name, trainable_name
from genlab.training.checkpoint import claim_model_dir, publish_model, save_tensors
from genlab.training.trainer import (
    Phase,
    TrainConfig,
    Trainer,
    TrainResult,
    barrier,
    distributed_rank,
    mix_seed,
)

GAN_EVAL_SAMPLES = 512


def image_preset(family: str, name: str, modality: str = "image") -> Preset:
    spec = family_spec(family, modality)
    if name not in spec.presets:
        raise InvalidRequestError(
            f"unknown preset {name!r}; expected one of {', '.join(spec.presets)}", param="preset"
        )
    return spec.presets[name]


GanScore = Callable[[torch.Tensor, torch.Tensor], float]  # (real images, samples) -> FID, lower is better


class ImageTask:
    """Batches of (images, labels) for any image family; the family supplies the loss."""

    unit = "img"

    def __init__(
        self, model: nn.Module, data: ImageDataset, on_best=None, gan_score: GanScore | None = None
    ) -> None:
        self.model = model
        self.data = data
        self.on_best = on_best
        self.conditional = model.config.num_classes > 0
        self.gan_score = gan_score

    def phases(self) -> list[Phase] | None:
        """The family's alternating optimisers, as it declares them (a GAN's D, then G)."""
        declared = family_spec(self.model.family).phases
        return [Phase(p.module, getattr(self.model, p.module), p.lr_scale, p.betas) for p in declared] or None

    def ema_module(self) -> nn.Module:
        return published_module(self.model)

    def batch(self, split: str, generator: torch.Generator, batch_size: int):
        x = self.data.train if split == "train" else self.data.val
        labels = self.data.train_labels if split == "train" else self.data.val_labels
        idx = torch.randint(len(x), (batch_size,), generator=generator)
        return x[idx], (labels[idx] if self.conditional and labels is not None else None)

    def loss(self, model, batch, phase: str | None = None) -> torch.Tensor:
        return model.loss(batch, phase) if phase is not None else model.loss(batch)

    @torch.no_grad()
    def evaluate(self, model, batches: int, seed: int) -> dict[str, float]:
        was_training = model.training
        model.eval()
        generator = torch.Generator().manual_seed(mix_seed(seed, 424242))
        g = torch.Generator().manual_seed(mix_seed(seed, 4243))
        idx = torch.randperm(len(self.data.val), generator=g)[:1024]
        val_x = self.data.val[idx]
        val_y = self.data.val_labels[idx] if self.conditional else None
        metrics = model.evaluate(val_x, val_y, generator)
        if family_spec(model.family).selected_by == "sample_score":
            metrics.update(self._sample_fid(model, seed))
        model.train(was_training)
        return metrics

    def _sample_fid(self, model, seed: int) -> dict[str, float]:
        """A family without a likelihood (a GAN) is validated by its samples' FID: lower is better."""
        n = GAN_EVAL_SAMPLES
        labels = torch.arange(n) % model.config.num_classes if self.conditional else None
        gens = [torch.Generator().manual_seed(mix_seed(seed, 777, i)) for i in range(n)]
        samples = model.sample(labels, gens)
        value = self.gan_score(self.data.val, samples)
        return {"val_loss": value, "fid": value}

    def items_per_batch(self, batch_size: int) -> int:
        return batch_size

    def architecture(self) -> dict[str, Any]:
        return {"family": self.model.family, **self.model.config.to_dict()}

    def publish(self, model, metrics: dict[str, float], step: int) -> None:
        if self.on_best is not None:
            self.on_best(model, metrics, step)


def default_name(family: str, data: str) -> str:
    from pathlib import Path

    from genlab.data.video import BUILTIN_VIDEO_DATASETS

    builtin = (*BUILTIN_IMAGE_DATASETS, *BUILTIN_AUDIO_DATASETS, *BUILTIN_VIDEO_DATASETS)
    return default_trained_name(f"{family}-{data if data in builtin else Path(data).name}")


def train_image_model(
    family: str,
    data: str,
    *,
    name: str | None = None,
    conditional: bool = True,
    preset_name: str = "tiny",
    steps: int | None = None,
    resume: bool = False,
    seed: int = 0,
    objective: str | None = None,
    settings: Settings | None = None,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
    modality: str = "image",
    gan_scorer: Callable[[str, Settings], GanScore] | None = None,
) -> TrainResult:
    """Train a family on image data, (``modality="audio"``) on audio clips as mel spectrograms, or
    (``modality="video"``) a video family on clips (N, T, C, H, W).

    A GAN has no likelihood, so its checkpoints are chosen by a sample score (lower is better):
    ``gan_scorer(dataset_name, settings)`` makes it; pass ``genlab.evaluation.classifier.fid_scorer``
    (FID in the dataset's classifier space)."""
    settings = settings or Settings.from_env()
    spec = family_spec(family, modality)
    by_samples = spec.selected_by == "sample_score"
    if by_samples and gan_scorer is None:
        raise InvalidRequestError(
            f"a {family} is validated by a sample score: pass gan_scorer=genlab.evaluation.classifier.fid_scorer",
            param="gan_scorer",
        )
    chosen = image_preset(family, preset_name, modality)
    if objective and family != "gan":
        raise InvalidRequestError("--objective applies to GANs only", param="objective")
    name = trainable_name(name or default_name(family, data))
    model_dir = settings.models_dir / name
    rank, world = distributed_rank()
    if rank > 0:
        barrier()
    claim_model_dir(model_dir, name, resume=resume, rank=rank)
    dataset = load_image_dataset(data, settings)
    if dataset.modality != modality:
        raise InvalidRequestError(
            f"{data} is {dataset.modality} data, not {modality}",
            hint=f"use `genlab train {dataset.modality}` for it",
            param="data",
        )
    audio = modality == "audio"
    if conditional and not dataset.conditional:
        raise InvalidRequestError(
            f"{data} has no classes (a flat folder), so it cannot train a conditional model",
            hint="add --unconditional, or put the images in one sub-folder per class",
        )
    classes = dataset.class_names if conditional else []
    model_cfg = {
        **chosen.model,
        **dataset.shape_config(),  # channels and size (a video's frames and label factors too)
        "num_classes": len(classes),
        **({"objective": objective} if objective and family == "gan" else {}),
    }
    train_cfg = TrainConfig(
        **{**chosen.train, "seed": seed, **({"steps": steps} if steps else {}), **(overrides or {})}
    )
    torch.manual_seed(seed)
    model = build_family(family, model_cfg)
    gan_score = gan_scorer(dataset.name, settings) if by_samples else None
    task = ImageTask(model, dataset, gan_score=gan_score)
    if not resume and rank == 0:
        model_dir.mkdir(parents=True)
        save_image_manifest(dataset, model_dir)
    if rank == 0 and world > 1:
        barrier()

    command = ["genlab", "train", modality, "--family", family, "--data", data]
    command += ["--conditional"] if conditional else []
    command += ["--preset", preset_name, "--name", name, "--steps", str(train_cfg.steps), "--seed", str(seed)]
    command += ["--objective", objective] if objective else []
    generating = published_module(model)

    def publish(m, metrics: dict[str, float], step: int) -> None:
        shape = (
            f"{dataset.size}-band log-mel spectrograms of {dataset.codec['seconds']:g} s at "
            f"{dataset.codec['sample_rate']} Hz, voiced by Griffin-Lim"
            if audio
            else f"{dataset.size}x{dataset.size}, {dataset.channels} channel(s)"
        )
        if modality == "video":
            shape = f"{model_cfg['frames']} frames of {shape} at {dataset.codec['fps']:g} fps"
        card = ModelCard(
            name=name,
            family=family,
            modality=modality,
            backend="torch",
            description=f"A {'class-conditional ' if classes else ''}{spec.kind} trained in genlab on "
            f"{dataset.name} ({shape}).",
            parameters=count_parameters(generating),
            training_data=f"{dataset.source}; {len(dataset.train)} training {'images' if modality == 'image' else 'clips'}, "
            f"{len(dataset.val)} held out "
            "(see data_manifest.json)",
            licence="the training data's licence applies to samples; genlab's code is Apache-2.0",
            metrics={**{k: round(v, 4) for k, v in metrics.items()}, "step": step},
            reproduce=shlex.join(command),
            source=str(model_dir),
        )
        config = {
            "kind": modality,
            "family": family,
            "model": model_cfg,
            "classes": classes,
            "data": data,
            "train": train_cfg.to_dict(),
            "sampling": spec.sampling,
            **({"codec": dataset.codec} if dataset.codec else {}),
        }

        def write(tmp) -> str:  # the family's snapshot; it names its weights file (a diffusers UNet's)
            return spec.snapshot(m, generating, tmp, save_tensors)

        publish_model(model_dir, generating, config, card, step, write=write)

    task.on_best = publish
    trainer = Trainer(task, train_cfg, model_dir, resume=resume, progress=progress)
    return trainer.fit()
