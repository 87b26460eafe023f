"""Training transformer language models on text and code: presets, the task, publishing.

    genlab train text --data shakespeare --codec char --preset small

writes ``GENLAB_HOME/models/<name>/``: the codec file, ``data_manifest.json``, the best model so
far under ``snapshots/`` (published through ``config.json`` and ``card.json``, atomically), and
resumable checkpoints under ``checkpoints/``.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from typing import Any

import torch

from genlab.codecs.text import CharCodec, load_codec, train_codec
from genlab.core import InvalidRequestError, ModelCard
from genlab.core.settings import Settings
from genlab.data.text import TextCorpus, load_corpus, save_manifest
from genlab.families.transformer import GPT, TransformerConfig
from genlab.registry import trainable_name
from genlab.training.checkpoint import claim_model_dir, publish_model
from genlab.training.trainer import TrainConfig, Trainer, TrainResult, barrier, distributed_rank, mix_seed


@dataclass(frozen=True)
class Preset:
    model: dict[str, Any]
    train: dict[str, Any]
    description: str


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 64},
        {"steps": 300, "batch_size": 8, "lr": 2e-3, "min_lr": 2e-4, "warmup_steps": 20, "eval_every": 100},
        "seconds on a CPU: for tests and smoke runs",
    ),
    "small": Preset(
        {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0},
        {"steps": 2000, "batch_size": 12, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 100, "eval_every": 250},
        "nanoGPT's CPU recipe (README, 'I only have a macbook'): minutes on a laptop",
    ),
    "base": Preset(
        {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "dropout": 0.2},
        {"steps": 5000, "batch_size": 64, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 100, "eval_every": 250},
        "nanoGPT's shakespeare-char GPU config: hours on a CPU, minutes on a GPU",
    ),
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise InvalidRequestError(
            f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}", param="preset"
        )
    return PRESETS[name]


class TextTask:
    """Next-token prediction on a token stream: documents joined by end-of-text tokens."""

    def __init__(self, model: GPT, codec, corpus: TextCorpus, on_best=None) -> None:
        self.model = model
        self.on_best = on_best  # called with (model, metrics, step) on a new best validation loss
        self.codec = codec
        self.block = model.config.block_size
        self.train_ids = self._encode(corpus.train)
        self.val_ids = self._encode(corpus.val)
        for split, ids in (("training", self.train_ids), ("validation", self.val_ids)):
            if len(ids) <= self.block + 1:
                raise InvalidRequestError(
                    f"the {split} text is {len(ids)} tokens, not longer than the block size {self.block}",
                    hint="give more text or a preset with a smaller block size",
                )
        val_text = "\n\n".join(d.text for d in corpus.val)
        # Units for bits per character (char codec) or per byte (BPE): tokens per unit of val text.
        self.unit = "char" if isinstance(codec, CharCodec) else "byte"
        units = len(val_text) if self.unit == "char" else len(val_text.encode("utf-8"))
        self.tokens_per_unit = len(self.val_ids) / max(1, units)

    def _encode(self, docs) -> torch.Tensor:
        ids: list[int] = []
        for d in docs:
            ids.extend(self.codec.encode(d.text))
            ids.append(self.codec.eot_id)
        return torch.tensor(ids, dtype=torch.long)

    def batch(self, split: str, generator: torch.Generator, batch_size: int):
        data = self.train_ids if split == "train" else self.val_ids
        starts = torch.randint(len(data) - self.block - 1, (batch_size,), generator=generator)
        x = torch.stack([data[i : i + self.block] for i in starts])  # (B, T)
        y = torch.stack([data[i + 1 : i + 1 + self.block] for i in starts])  # (B, T), shifted by one
        return x, y

    def loss(self, model, batch) -> torch.Tensor:
        x, y = batch
        return model(x, y)[1]

    @torch.no_grad()
    def evaluate(self, model, batches: int, seed: int) -> dict[str, float]:
        was_training = model.training
        model.eval()
        generator = torch.Generator().manual_seed(mix_seed(seed, 424242))  # the same val batches every time
        losses = [float(self.loss(model, self.batch("val", generator, 16))) for _ in range(batches)]
        model.train(was_training)
        val_loss = sum(losses) / len(losses)
        bits = val_loss / math.log(2) * self.tokens_per_unit  # nats/token -> bits/token -> bits/unit
        return {"val_loss": val_loss, f"bits_per_{self.unit}": bits, "perplexity": math.exp(val_loss)}

    def items_per_batch(self, batch_size: int) -> int:
        return batch_size * self.block

    def architecture(self) -> dict[str, Any]:
        return {
            "family": "transformer",
            "codec": self.codec.kind,
            "vocab_size": self.codec.vocab_size,
            **self.model.config.to_dict(),
        }

    def publish(self, model, metrics: dict[str, float], step: int) -> None:
        if self.on_best is not None:
            self.on_best(model, metrics, step)


def train_text_model(
    name: str,
    data: str,
    *,
    codec: str = "char",
    preset_name: str = "tiny",
    steps: int | None = None,
    vocab_size: int = 2048,
    resume: bool = False,
    seed: int = 1337,
    settings: Settings | None = None,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
) -> TrainResult:
    settings = settings or Settings.from_env()
    trainable_name(name)
    chosen = preset(preset_name)
    model_dir = settings.models_dir / name
    rank, world = distributed_rank()
    if rank > 0:  # under torchrun, rank 0 checks and prepares the directory; the others wait for it
        barrier()
    claim_model_dir(model_dir, name, resume=resume, rank=rank)
    corpus = load_corpus(data, settings, seed=0)
    if resume:
        text_codec = load_codec(model_dir)
        if text_codec.kind != codec:
            raise InvalidRequestError(f"{name!r} was trained with the {text_codec.kind} codec, not {codec}")
    else:
        text_codec = train_codec(codec, [d.text for d in corpus.train], vocab_size=vocab_size)
    train_cfg = TrainConfig(
        **{**chosen.train, "seed": seed, **({"steps": steps} if steps else {}), **(overrides or {})}
    )
    torch.manual_seed(seed)
    arch = TransformerConfig(vocab_size=text_codec.vocab_size, **chosen.model)
    model = GPT(arch)
    task = TextTask(model, text_codec, corpus)  # on_best is set below, once the card can be written
    if not resume and rank == 0:
        model_dir.mkdir(parents=True)
        text_codec.save(model_dir)
        save_manifest(corpus, model_dir)
    if rank == 0 and world > 1:
        barrier()

    command = [
        "genlab",
        "train",
        "text",
        "--data",
        data,
        "--codec",
        codec,
        "--preset",
        preset_name,
        "--name",
        name,
    ]
    command += ["--steps", str(train_cfg.steps), "--seed", str(seed)]
    if codec == "bpe":
        command += ["--vocab-size", str(vocab_size)]
    modality = corpus.modality

    def publish(m, metrics: dict[str, float], step: int) -> None:
        card = ModelCard(
            name=name,
            family="transformer",
            modality=modality,
            backend="torch",
            description=(
                f"A {arch.n_layer}-layer, {arch.n_head}-head, {arch.n_embd}-wide decoder-only transformer "
                f"({arch.positions} positions, {codec} codec, context {arch.block_size}) trained in genlab on {corpus.name}."
            ),
            parameters=model.num_parameters(),
            training_data=f"{corpus.name}: {corpus.source}; {len(corpus.train)} documents for training, "
            f"{len(corpus.val)} held out (see data_manifest.json)",
            licence="the training data's licence applies to samples; genlab's code is Apache-2.0",
            metrics={
                **{k: round(v, 4) for k, v in metrics.items()},
                "step": step,
                "train_tokens": len(task.train_ids),
            },
            reproduce=shlex.join(command),
            context_length=arch.block_size,
            source=str(model_dir),
        )
        config = {
            "kind": "transformer",
            "codec": codec,
            "model": arch.to_dict(),
            "train": train_cfg.to_dict(),
            "data": data,
        }
        publish_model(model_dir, m, config, card, step)

    task.on_best = publish
    trainer = Trainer(task, train_cfg, model_dir, resume=resume, progress=progress)
    return trainer.fit()
