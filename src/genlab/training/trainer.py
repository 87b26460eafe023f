"""The Trainer: one loop for every family.

A family plugs in through a ``TrainingTask``: the module to train, how to draw a batch, the loss
of a batch, how to evaluate, and what to do with a new best model. The Trainer owns everything
else: AdamW with decoupled weight decay, linear warm-up then cosine decay, gradient accumulation
and clipping, evaluation every N steps, best-validation publishing, checkpoints that survive a
kill, exact resume, a Rich progress bar, and DDP when launched by ``torchrun`` (gloo on CPU).

Determinism: every random draw of step ``s`` on rank ``r`` comes from generators seeded with
(seed, rank, s), so a run resumed from a checkpoint makes exactly the same updates as one that was
never interrupted, and needs no RNG state from the checkpoint beyond the step.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import nn

from genlab.core import InvalidRequestError
from genlab.training.checkpoint import load_checkpoint, load_optimizer, save_checkpoint


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_size: int = 12
    grad_accum: int = 1  # micro-batches per optimiser step
    lr: float = 1e-3
    min_lr: float = 1e-4  # cosine decays to this (nanoGPT: lr / 10)
    warmup_steps: int = 100
    weight_decay: float = 0.1  # on matrices only, not on norms or biases
    beta1: float = 0.9
    beta2: float = 0.99  # nanoGPT's choice for small models with few tokens per step
    grad_clip: float = 1.0  # 0 = off
    eval_every: int = 250
    eval_batches: int = 20
    seed: int = 1337

    def validate(self) -> TrainConfig:
        for name in ("steps", "batch_size", "grad_accum", "eval_every", "eval_batches"):
            if getattr(self, name) <= 0:
                raise InvalidRequestError(f"{name} must be positive, got {getattr(self, name)}", param=name)
        if not 0 < self.min_lr <= self.lr:
            raise InvalidRequestError(f"need 0 < min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to lr, then cosine decay to min_lr at the last step (Loshchilov & Hutter, 2017)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.lr - cfg.min_lr)


class TrainingTask(Protocol):
    """What a family gives the Trainer."""

    model: nn.Module

    def batch(self, split: str, generator: torch.Generator, batch_size: int) -> Any: ...

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor: ...

    def evaluate(self, model: nn.Module, batches: int, seed: int) -> dict[str, float]:
        """Validation metrics; must include ``val_loss`` (lower is better)."""
        ...

    def items_per_batch(self, batch_size: int) -> int:
        """Tokens (or samples) per batch, for the throughput figure."""
        ...

    def publish(self, model: nn.Module, metrics: dict[str, float], step: int) -> None:
        """A new best validation loss: make this model the published one."""
        ...

    def architecture(self) -> dict[str, Any]:
        """Identifies the architecture; resuming a checkpoint of another one is refused."""
        ...


@dataclass
class TrainResult:
    step: int
    best_val_loss: float
    best_metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0  # wall time, evaluation and checkpoints included
    items_per_second: float = 0.0  # training throughput, evaluation and checkpoints excluded
    peak_rss_mb: float = 0.0


def distributed_rank() -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun (gloo works on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def mix_seed(*parts: int) -> int:
    """One reproducible 63-bit seed from several integers (seed, rank, step, ...)."""
    seed = 0
    for p in parts:
        seed = (seed * 1_000_003 + p) % (2**63 - 1)
    return seed


def _seeded(*parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(mix_seed(*parts))


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Trainer:
    def __init__(
        self,
        task: TrainingTask,
        config: TrainConfig,
        run_dir: Path,
        *,
        resume: bool = False,
        progress: bool = True,
    ):
        self.task = task
        self.cfg = config.validate()
        self.run_dir = Path(run_dir)
        self.rank, self.world = distributed_rank()
        self.progress = progress and self.rank == 0
        model = task.model
        decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.cfg.lr,
            betas=(self.cfg.beta1, self.cfg.beta2),
        )
        self.step = 0
        self.best_val_loss = math.inf
        self.best_metrics: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        if resume:
            self._resume()
        self.ddp_model = (
            nn.parallel.DistributedDataParallel(model) if self.world > 1 else model
        )  # gradients are all-reduced (averaged) across ranks in backward

    def _state(self) -> dict[str, Any]:
        return {
            "architecture": self.task.architecture(),
            "train_config": self.cfg.to_dict(),
            "best_val_loss": self.best_val_loss,
            "best_metrics": self.best_metrics,
            "history": self.history,
            "world_size": self.world,
        }

    def _resume(self) -> None:
        from genlab.families.lm import load_weights

        directory, state = load_checkpoint(self.run_dir)
        if state.get("architecture") != self.task.architecture():
            raise InvalidRequestError(
                f"the checkpoint in {self.run_dir} was trained with another architecture "
                f"({state.get('architecture')}); resume with the same preset and codec"
            )
        load_weights(self.task.model, directory / "model.safetensors")
        load_optimizer(self.optimizer, directory / "optimizer.safetensors")
        self.step = int(state["step"])
        self.best_val_loss = float(state.get("best_val_loss", math.inf))
        self.best_metrics = state.get("best_metrics", {})
        self.history = state.get("history", [])

    def _evaluate_and_checkpoint(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.rank == 0:
            metrics = self.task.evaluate(self.task.model, self.cfg.eval_batches, self.cfg.seed)
            metrics = {"step": self.step, **metrics}
            self.history.append(metrics)
            if metrics["val_loss"] < self.best_val_loss:
                self.best_val_loss = metrics["val_loss"]
                self.best_metrics = metrics
                self.task.publish(self.task.model, metrics, self.step)
            save_checkpoint(self.run_dir, self.step, self.task.model, self.optimizer, self._state())
        if self.world > 1:
            dist.barrier()
        return metrics

    def fit(self) -> TrainResult:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        cfg = self.cfg
        model = self.ddp_model
        model.train()
        started = time.perf_counter()
        first_step = self.step
        items = 0
        eval_seconds = 0.0  # evaluation and checkpoints: not counted in the training throughput
        loss_value = float("nan")
        columns = [
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "loss {task.fields[loss]:.4f}  val {task.fields[val]:.4f}  {task.fields[speed]:.0f} tok/s"
            ),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, disable=not self.progress, transient=False) as bar:
            task_id = bar.add_task(
                "train",
                total=cfg.steps,
                completed=self.step,
                loss=math.nan,
                val=self.best_val_loss,
                speed=0.0,
            )
            while self.step < cfg.steps:
                lr = learning_rate(self.step, cfg)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                torch.manual_seed(mix_seed(cfg.seed, self.rank, self.step, 7))  # dropout
                total = 0.0
                for micro in range(cfg.grad_accum):
                    batch = self.task.batch(
                        "train", _seeded(cfg.seed, self.rank, self.step, micro), cfg.batch_size
                    )
                    sync = micro == cfg.grad_accum - 1 or self.world == 1
                    ctx = model.no_sync() if not sync else contextlib.nullcontext()
                    with ctx:
                        loss = self.task.loss(model, batch) / cfg.grad_accum
                        loss.backward()
                    total += float(loss.detach())
                    items += self.task.items_per_batch(cfg.batch_size) * self.world
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                loss_value = total
                elapsed = time.perf_counter() - started
                if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                    eval_started = time.perf_counter()
                    metrics = self._evaluate_and_checkpoint()
                    eval_seconds += time.perf_counter() - eval_started
                    model.train()
                    if metrics:
                        bar.update(task_id, val=metrics["val_loss"])
                speed = items / max(elapsed - eval_seconds, 1e-9)
                bar.update(task_id, completed=self.step, loss=loss_value, speed=speed)
        seconds = time.perf_counter() - started
        return TrainResult(
            step=self.step,
            best_val_loss=self.best_val_loss,
            best_metrics=self.best_metrics,
            history=self.history,
            seconds=seconds,
            items_per_second=items / max(seconds - eval_seconds, 1e-9) if self.step > first_step else 0.0,
            peak_rss_mb=_peak_rss_mb(),
        )
