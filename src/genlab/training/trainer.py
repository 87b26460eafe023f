"""The Trainer: one loop for every family.

A family plugs in through a ``TrainingTask``: the module to train, how to draw a batch, the loss
of a batch, how to evaluate, and what to do with a new best model. The Trainer owns everything
else: AdamW with decoupled weight decay, linear warm-up then cosine decay, gradient accumulation
and clipping, evaluation every N steps, best-validation publishing, checkpoints that survive a
kill, exact resume, a Rich progress bar, and DDP when launched by ``torchrun`` (gloo on CPU).

Two extensions serve the image families:
- *phases*: a task may split each step into several optimisation phases, each with its own
  parameters and AdamW state (a GAN's discriminator step, then its generator step). The task's
  ``loss(model, batch, phase)`` is called once per phase; gradients of one phase never leak into
  another's update.
- *EMA*: with ``ema_decay > 0`` the Trainer keeps an exponential moving average of the task's
  ``ema_module()`` (default: the whole model), checkpoints it, and evaluates and publishes with the
  averaged weights swapped in (Polyak averaging; Karras et al. 2018 for GANs, Ho et al. 2020 for
  diffusion).

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
    ema_decay: float = 0.0  # 0 = off; 0.999 is typical for GANs and diffusion
    eval_every: int = 250
    eval_batches: int = 20
    seed: int = 1337
    max_seconds: float = 0.0  # 0 = off; else stop, evaluated and checkpointed, after this much training time

    def validate(self) -> TrainConfig:
        for name in ("steps", "batch_size", "grad_accum", "eval_every", "eval_batches"):
            if getattr(self, name) <= 0:
                raise InvalidRequestError(f"{name} must be positive, got {getattr(self, name)}", param=name)
        if not 0 <= self.ema_decay < 1:
            raise InvalidRequestError(f"ema_decay must be in [0, 1), got {self.ema_decay}", param="ema_decay")
        if self.max_seconds < 0:
            raise InvalidRequestError(f"max_seconds must be >= 0 (0 = no limit), got {self.max_seconds}")
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
    """What a family gives the Trainer.

    Optional extras, looked up with ``hasattr``: ``phases() -> list[Phase] | None`` (several
    optimisation phases per step; ``loss`` then takes the phase name as a third argument),
    ``ema_module() -> nn.Module`` (what the EMA averages; default the whole model) and ``unit``
    (what ``items_per_batch`` counts, for the progress bar: "tok", "img").
    """

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


@dataclass(frozen=True)
class Phase:
    """One optimisation phase of a step: which parameters it updates and how.

    ``lr_scale`` multiplies the scheduled learning rate (two time-scale updates, Heusel et al.
    2017); ``betas`` and ``weight_decay`` override the config's for this phase's optimiser.
    """

    name: str
    module: nn.Module
    lr_scale: float = 1.0
    betas: tuple[float, float] | None = None
    weight_decay: float | None = None


def _adamw(module: nn.Module, cfg: TrainConfig, phase: Phase | None = None) -> torch.optim.Optimizer:
    decay = [p for p in module.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in module.parameters() if p.requires_grad and p.dim() < 2]
    wd = cfg.weight_decay if phase is None or phase.weight_decay is None else phase.weight_decay
    betas = (cfg.beta1, cfg.beta2) if phase is None or phase.betas is None else phase.betas
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=betas,
    )


class EMA:
    """Exponential moving average of a module's parameters and buffers.

    The decay warms up as min(decay, (1 + n) / (10 + n)) so early averages are not dominated by the
    random initialisation.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.module = module
        self.decay = decay
        self.updates = 0
        self.load({k: v.detach().clone() for k, v in module.state_dict().items()})

    def load(self, shadow: dict[str, torch.Tensor]) -> None:
        """Take these averages (a fresh copy, or a checkpoint's) and pair each with its live tensor."""
        self.shadow = shadow
        # state_dict() returns the live parameters and buffers, and load_state_dict copies into them
        # in place, so the pairs stay valid for the whole run: the per-step update walks a list.
        self._pairs = [(self.shadow[k], v) for k, v in self.module.state_dict().items()]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, live in self._pairs:
            if average.dtype.is_floating_point:
                average.mul_(d).add_(live.detach(), alpha=1 - d)
            else:
                average.copy_(live)

    @contextlib.contextmanager
    def applied(self):
        """Swap the averaged weights in for the duration of the block."""
        backup = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        self.module.load_state_dict(self.shadow)
        try:
            yield self.module
        finally:
            self.module.load_state_dict(backup)


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


def _optimizer_file(name: str) -> str:
    return "optimizer.safetensors" if name == "model" else f"optimizer-{name}.safetensors"


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
        phases = task.phases() if hasattr(task, "phases") else None
        self.phases: list[Phase] | None = list(phases) if phases else None
        if self.phases:
            self.optimizers = {p.name: _adamw(p.module, self.cfg, p) for p in self.phases}
        else:
            self.optimizers = {"model": _adamw(model, self.cfg)}
        self.optimizer = next(iter(self.optimizers.values()))
        ema_target = task.ema_module() if hasattr(task, "ema_module") else model
        self.ema = EMA(ema_target, self.cfg.ema_decay) if self.cfg.ema_decay > 0 else None
        self.step = 0
        self.best_val_loss = math.inf
        self.best_metrics: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        if resume:
            self._resume()
        # Gradients are all-reduced (averaged) across ranks: by DDP in backward for a single phase,
        # explicitly after each phase's backward otherwise.
        self.ddp_model = (
            nn.parallel.DistributedDataParallel(model) if self.world > 1 and not self.phases else model
        )

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
        from genlab.generators.lm import load_weights

        directory, state = load_checkpoint(self.run_dir)
        if state.get("architecture") != self.task.architecture():
            raise InvalidRequestError(
                f"the checkpoint in {self.run_dir} was trained with another architecture "
                f"({state.get('architecture')}); resume with the same preset and codec"
            )
        load_weights(self.task.model, directory / "model.safetensors")
        for name, optimizer in self.optimizers.items():
            load_optimizer(optimizer, directory / _optimizer_file(name))
        if self.ema is not None:
            if not (directory / "ema.safetensors").is_file():
                raise InvalidRequestError(f"the checkpoint in {self.run_dir} has no EMA weights to resume")
            from safetensors.torch import load_file

            self.ema.load(load_file(str(directory / "ema.safetensors")))
            self.ema.updates = int(state["step"])
        self.step = int(state["step"])
        self.best_val_loss = float(state.get("best_val_loss", math.inf))
        self.best_metrics = state.get("best_metrics", {})
        self.history = state.get("history", [])

    def _evaluate_and_checkpoint(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.rank == 0:
            averaged = self.ema.applied() if self.ema is not None else contextlib.nullcontext()
            with averaged:
                metrics = self.task.evaluate(self.task.model, self.cfg.eval_batches, self.cfg.seed)
                metrics = {"step": self.step, **metrics}
                self.history.append(metrics)
                if metrics["val_loss"] < self.best_val_loss:
                    self.best_val_loss = metrics["val_loss"]
                    self.best_metrics = metrics
                    self.task.publish(self.task.model, metrics, self.step)
            extra = {"ema.safetensors": self.ema.shadow} if self.ema is not None else {}
            optimizers = {_optimizer_file(n): o for n, o in self.optimizers.items()}
            save_checkpoint(self.run_dir, self.step, self.task.model, optimizers, self._state(), extra)
        if self.world > 1:
            dist.barrier()
        return metrics

    def _single_step(self, model: nn.Module, lr: float) -> float:
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total = 0.0
        for micro in range(cfg.grad_accum):
            batch = self.task.batch("train", _seeded(cfg.seed, self.rank, self.step, micro), cfg.batch_size)
            sync = micro == cfg.grad_accum - 1 or self.world == 1
            ctx = model.no_sync() if not sync else contextlib.nullcontext()
            with ctx:
                loss = self.task.loss(model, batch) / cfg.grad_accum
                loss.backward()
            total += float(loss.detach())
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    def _phased_step(self, model: nn.Module, lr: float) -> float:
        """Each phase in turn: zero all gradients, accumulate this phase's loss, update its parameters."""
        cfg = self.cfg
        total = 0.0
        assert self.phases is not None
        for index, phase in enumerate(self.phases):
            optimizer = self.optimizers[phase.name]
            for group in optimizer.param_groups:
                group["lr"] = lr * phase.lr_scale
            model.zero_grad(set_to_none=True)
            for micro in range(cfg.grad_accum):
                generator = _seeded(cfg.seed, self.rank, self.step, micro, index)
                batch = self.task.batch("train", generator, cfg.batch_size)
                loss = self.task.loss(model, batch, phase.name) / cfg.grad_accum
                loss.backward()
                if phase is self.phases[-1]:
                    total += float(loss.detach())
            params = [p for p in phase.module.parameters() if p.grad is not None]
            if self.world > 1:
                for p in params:
                    dist.all_reduce(p.grad)
                    p.grad /= self.world
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
        model.zero_grad(set_to_none=True)
        return total

    def _agree(self, flag: bool) -> bool:
        """Under DDP every rank must stop at the same step: stop when any rank says so."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

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
                "loss {task.fields[loss]:.4f}  val {task.fields[val]:.4f}  {task.fields[speed]:.0f} "
                + getattr(self.task, "unit", "tok")
                + "/s"
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
                torch.manual_seed(mix_seed(cfg.seed, self.rank, self.step, 7))  # dropout, noise
                loss_value = self._phased_step(model, lr) if self.phases else self._single_step(model, lr)
                items += self.task.items_per_batch(cfg.batch_size) * self.world * cfg.grad_accum
                if self.ema is not None:
                    self.ema.update()
                self.step += 1
                elapsed = time.perf_counter() - started
                # a time budget (equal compute for every family in `genlab compare`): training time only
                out_of_time = cfg.max_seconds > 0 and self._agree(elapsed - eval_seconds >= cfg.max_seconds)
                if self.step % cfg.eval_every == 0 or self.step == cfg.steps or out_of_time:
                    eval_started = time.perf_counter()
                    metrics = self._evaluate_and_checkpoint()
                    eval_seconds += time.perf_counter() - eval_started
                    model.train()
                    if metrics:
                        bar.update(task_id, val=metrics["val_loss"])
                speed = items / max(elapsed - eval_seconds, 1e-9)
                bar.update(task_id, completed=self.step, loss=loss_value, speed=speed)
                if out_of_time:
                    break
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
