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
from dataclasses import dataclass
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

FAMILIES = ("gan", "vae", "diffusion")


@dataclass(frozen=True)
class ImagePreset:
    model: dict[str, Any]
    train: dict[str, Any]
    description: str


_GAN_TRAIN = {
    "lr": 2e-4,
    "min_lr": 2e-4,
    "warmup_steps": 0,
    "weight_decay": 0.0,
    "grad_clip": 0.0,
    "ema_decay": 0.999,
}
PRESETS: dict[str, dict[str, ImagePreset]] = {
    "gan": {
        "tiny": ImagePreset(
            {"z_dim": 32, "width": 32},
            {**_GAN_TRAIN, "steps": 60, "batch_size": 16, "eval_every": 30},
            "seconds: for tests",
        ),
        "small": ImagePreset(
            {"z_dim": 64, "width": 64},
            {**_GAN_TRAIN, "steps": 4000, "batch_size": 64, "eval_every": 500},
            "minutes on a laptop CPU",
        ),
        "base": ImagePreset(
            {"z_dim": 128, "width": 128},
            {**_GAN_TRAIN, "steps": 20000, "batch_size": 64, "eval_every": 1000},
            "an hour or more on a CPU",
        ),
    },
    "vae": {
        "tiny": ImagePreset(
            {"z_dim": 8, "width": 32},
            {
                "steps": 60,
                "batch_size": 16,
                "lr": 2e-3,
                "min_lr": 2e-4,
                "warmup_steps": 10,
                "weight_decay": 0.0,
                "eval_every": 30,
            },
            "seconds: for tests",
        ),
        "small": ImagePreset(
            {"z_dim": 16, "width": 64},
            {
                "steps": 4000,
                "batch_size": 64,
                "lr": 2e-3,
                "min_lr": 1e-4,
                "warmup_steps": 100,
                "weight_decay": 0.0,
                "eval_every": 500,
            },
            "minutes on a laptop CPU",
        ),
        "base": ImagePreset(
            {"z_dim": 32, "width": 128},
            {
                "steps": 20000,
                "batch_size": 64,
                "lr": 1e-3,
                "min_lr": 1e-4,
                "warmup_steps": 200,
                "weight_decay": 0.0,
                "eval_every": 1000,
            },
            "an hour or more on a CPU",
        ),
    },
    "diffusion": {
        "tiny": ImagePreset(
            {"widths": [16, 32], "layers_per_block": 1, "attention": False},
            {
                "steps": 60,
                "batch_size": 16,
                "lr": 2e-3,
                "min_lr": 2e-4,
                "warmup_steps": 10,
                "weight_decay": 0.0,
                "ema_decay": 0.99,
                "eval_every": 30,
            },
            "seconds: for tests",
        ),
        "small": ImagePreset(
            {"widths": [32, 64, 64], "layers_per_block": 1, "attention": False},
            {
                "steps": 3500,
                "batch_size": 64,
                "lr": 1e-3,
                "min_lr": 5e-5,
                "warmup_steps": 200,
                "weight_decay": 0.0,
                "ema_decay": 0.999,
                "eval_every": 500,
            },
            "about 15 minutes on a laptop CPU",
        ),
        "base": ImagePreset(
            {"widths": [64, 128, 128], "layers_per_block": 2},
            {
                "steps": 30000,
                "batch_size": 128,
                "lr": 2e-4,
                "min_lr": 2e-5,
                "warmup_steps": 500,
                "weight_decay": 0.0,
                "ema_decay": 0.9995,
                "eval_every": 2000,
            },
            "hours on a CPU, minutes on a GPU",
        ),
    },
}
# Guidance 1 = the plain conditional model: on the small presets, whose unconditional branch sees only
# the 10% of label-dropped batches, guidance > 1 lowers both FID and class accuracy (measured in
# bench/image_families.py); bigger models usually gain from 1.5-3.
SAMPLING_DEFAULTS = {"diffusion": {"steps": 50, "sampler": "ddim", "guidance": 1.0}}
GAN_EVAL_SAMPLES = 512


def image_preset(family: str, name: str) -> ImagePreset:
    if family not in PRESETS:
        raise InvalidRequestError(
            f"unknown image family {family!r}; expected {', '.join(FAMILIES)}", param="family"
        )
    if name not in PRESETS[family]:
        raise InvalidRequestError(
            f"unknown preset {name!r}; expected one of {', '.join(PRESETS[family])}", param="preset"
        )
    return PRESETS[family][name]


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
        if self.model.family != "gan":
            return None
        # Two time-scale update rule: D learns 2x faster than G; Adam β = (0, 0.9) (Heusel et al. 2017).
        return [
            Phase("discriminator", self.model.discriminator, lr_scale=2.0, betas=(0.0, 0.9)),
            Phase("generator", self.model.generator, lr_scale=1.0, betas=(0.0, 0.9)),
        ]

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
        if model.family == "gan":
            metrics.update(self._gan_fid(model, seed))
        model.train(was_training)
        return metrics

    def _gan_fid(self, model, seed: int) -> dict[str, float]:
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

    builtin = (*BUILTIN_IMAGE_DATASETS, *BUILTIN_AUDIO_DATASETS)
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
    """Train a family on image data, or (``modality="audio"``) on audio clips as mel spectrograms.

    A GAN has no likelihood, so its checkpoints are chosen by a sample score (lower is better):
    ``gan_scorer(dataset_name, settings)`` makes it; pass ``genlab.evaluation.classifier.fid_scorer``
    (FID in the dataset's classifier space)."""
    settings = settings or Settings.from_env()
    if family == "gan" and gan_scorer is None:
        raise InvalidRequestError(
            "a GAN is validated by a sample score: pass gan_scorer=genlab.evaluation.classifier.fid_scorer",
            param="gan_scorer",
        )
    chosen = image_preset(family, preset_name)
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
        "channels": dataset.channels,
        "size": dataset.size,
        "num_classes": len(classes),
        **({"objective": objective} if objective and family == "gan" else {}),
    }
    train_cfg = TrainConfig(
        **{**chosen.train, "seed": seed, **({"steps": steps} if steps else {}), **(overrides or {})}
    )
    torch.manual_seed(seed)
    model = build_family(family, model_cfg)
    gan_score = gan_scorer(dataset.name, settings) if family == "gan" else None
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
        kind = {"gan": "DCGAN generator", "vae": "convolutional VAE", "diffusion": "DDPM UNet"}[family]
        shape = (
            f"{dataset.size}-band log-mel spectrograms of {dataset.codec['seconds']:g} s at "
            f"{dataset.codec['sample_rate']} Hz, voiced by Griffin-Lim"
            if audio
            else f"{dataset.size}x{dataset.size}, {dataset.channels} channel(s)"
        )
        card = ModelCard(
            name=name,
            family=family,
            modality=modality,
            backend="torch",
            description=f"A {'class-conditional ' if classes else ''}{kind} trained in genlab on "
            f"{dataset.name} ({shape}).",
            parameters=count_parameters(generating),
            training_data=f"{dataset.source}; {len(dataset.train)} training {'clips' if audio else 'images'}, "
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
            "sampling": SAMPLING_DEFAULTS.get(family, {}),
            **({"codec": dataset.codec} if audio else {}),
        }
        if family == "diffusion":  # the snapshot is a diffusers pipeline folder
            write, weights = m.save_pipeline, "unet/diffusion_pytorch_model.safetensors"
        else:
            write, weights = (
                (lambda tmp: save_tensors(tmp / "model.safetensors", generating.state_dict())),
                "model.safetensors",
            )
        publish_model(model_dir, generating, config, card, step, write=write, weights=weights)

    task.on_best = publish
    trainer = Trainer(task, train_cfg, model_dir, resume=resume, progress=progress)
    return trainer.fit()
