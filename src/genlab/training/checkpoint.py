"""Checkpoints and published models, written so that a kill at any moment leaves a loadable state.

Both use the same commit protocol: write a complete new directory under a temporary name, fsync
its files, rename it into place (atomic), then atomically rewrite the small JSON pointer that names
it (``latest.json`` for checkpoints, ``config.json`` for a published model). Readers follow the
pointer, so they see the old state or the new one, never a half-written one. Old directories are
removed only after the pointer moved.

Everything is safetensors or JSON: optimiser state is flattened into tensors plus JSON metadata.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from genlab.core import InvalidRequestError, ModelCard, ModelLoadError
from genlab.core.io import atomic_write_json, fsync_dir, sha256_file, swap_directory


def save_tensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path), metadata=metadata)
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def commit_directory(parent: Path, name: str, write: Any) -> Path:
    """Create ``parent/name`` atomically: ``write(tmp_dir)`` fills a temporary directory first."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write(tmp)
    fsync_dir(tmp)
    target = parent / name
    swap_directory(tmp, target)  # never a moment without a complete target
    return target


def prune(parent: Path, keep: set[str]) -> None:
    """Remove committed siblings not in ``keep`` and temporaries left by killed writers."""
    if not parent.is_dir():
        return
    for child in parent.iterdir():
        if child.is_dir() and child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)


# -- optimiser state as safetensors ------------------------------------------------------------------
def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"state.{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": json.dumps(sd["param_groups"]), "scalars": json.dumps(scalars)}


def load_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        state: dict[int, dict[str, Any]] = {}
        for key in f.keys():  # noqa: SIM118 - safe_open is not iterable
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = f.get_tensor(key)
    for idx, values in json.loads(meta["scalars"]).items():
        state.setdefault(int(idx), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})


# -- training checkpoints -----------------------------------------------------------------------------
def save_checkpoint(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
    extra: dict[str, dict[str, torch.Tensor]] | None = None,
) -> Path:
    """``optimizers`` maps file names (``optimizer.safetensors``, ...) to optimisers; ``extra`` maps
    file names to further tensors to keep (EMA weights)."""
    checkpoints = run_dir / "checkpoints"
    name = f"step-{step:07d}"

    def write(tmp: Path) -> None:
        save_tensors(tmp / "model.safetensors", model.state_dict())
        for filename, optimizer in optimizers.items():
            tensors, meta = optimizer_tensors(optimizer)
            save_tensors(tmp / filename, tensors, meta)
        for filename, tensors in (extra or {}).items():
            save_tensors(tmp / filename, tensors)
        full = {**state, "step": step, "model_sha256": sha256_file(tmp / "model.safetensors")}
        atomic_write_json(tmp / "state.json", full)

    commit_directory(checkpoints, name, write)
    atomic_write_json(checkpoints / "latest.json", {"checkpoint": name, "step": step})
    prune(checkpoints, keep={name})
    return checkpoints / name


def load_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The latest committed checkpoint and its state; a clear error if there is none or it is corrupt."""
    pointer = run_dir / "checkpoints" / "latest.json"
    if not pointer.is_file():
        raise InvalidRequestError(
            f"nothing to resume: {run_dir} has no checkpoint", hint="train without --resume"
        )
    name = json.loads(pointer.read_text("utf-8"))["checkpoint"]
    directory = run_dir / "checkpoints" / name
    try:
        state = json.loads((directory / "state.json").read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"checkpoint {directory} is unreadable: {e}") from None
    if sha256_file(directory / "model.safetensors") != state.get("model_sha256"):
        raise ModelLoadError(
            f"checkpoint {directory} is corrupt: model.safetensors does not match its checksum"
        )
    return directory, state


# -- the model directory of a training run ------------------------------------------------------------
def claim_model_dir(model_dir: Path, name: str, *, resume: bool, rank: int) -> None:
    """Check that a run may write ``model_dir``: new unless resuming, present when resuming.

    A directory left by a run killed before its first checkpoint (no config.json, no checkpoint)
    is removed, so the run simply starts afresh. Only rank 0 removes or refuses; under torchrun the
    other ranks call this after rank 0 has prepared the directory.
    """
    from genlab.core import ModelExistsError

    abandoned = (
        not (model_dir / "config.json").exists() and not (model_dir / "checkpoints" / "latest.json").exists()
    )
    if model_dir.exists() and abandoned and not resume and rank == 0:
        shutil.rmtree(model_dir)
    if model_dir.exists() and not resume and rank == 0:
        raise ModelExistsError(
            f"a model named {name!r} already exists",
            hint="pick another --name, or add --resume to continue it",
        )
    if resume and not model_dir.exists():
        raise InvalidRequestError(
            f"nothing to resume: no model named {name!r}", hint="train without --resume"
        )


# -- published models ---------------------------------------------------------------------------------
def publish_model(
    model_dir: Path,
    model: torch.nn.Module,
    config: dict[str, Any],
    card: ModelCard,
    step: int,
    *,
    write: Any = None,
    weights: str = "model.safetensors",
) -> None:
    """Make this model the published one: snapshot, then card and config (config.json is the commit).

    ``write(tmp_dir)`` fills the snapshot (default: the state dict, rotary tables left out, as
    ``model.safetensors``); ``weights`` names the file inside it whose sha256 the card records,
    unless ``write`` returns that name itself (a family's snapshot writer does).
    """
    name = f"step-{step:07d}"

    def default_write(tmp: Path) -> None:
        save_tensors(
            tmp / "model.safetensors",
            {k: v for k, v in model.state_dict().items() if not k.startswith("rope_")},
        )

    named: list[str | None] = []
    commit_directory(model_dir / "snapshots", name, lambda tmp: named.append((write or default_write)(tmp)))
    weights = named[0] or weights
    weights_path = f"snapshots/{name}/{weights}"
    digest = sha256_file(model_dir / weights_path)
    card.metrics = {**card.metrics, "weights_sha256": digest}
    atomic_write_json(model_dir / "snapshots" / name / "card.json", card.to_dict())
    atomic_write_json(
        model_dir / "config.json",
        {**config, "weights": weights_path, "weights_sha256": digest, "card": f"snapshots/{name}/card.json"},
    )
    prune(model_dir / "snapshots", keep={name})
