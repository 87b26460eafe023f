"""A family declared in one place is trained, sampled, evaluated and served by every other room.

The toy family below (a per-class Gaussian over pixels: a mean image and a log-scale per class,
trained by maximum likelihood) lives only in this file. One ``register_family`` call, and
``genlab train image``, ``genlab generate image``, ``genlab eval image``, the images API and
``genlab compare``'s cells all take it, with nothing else changed."""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from genlab.cli.main import main
from genlab.core import InvalidRequestError
from genlab.core.settings import Settings
from genlab.families.nets import ImageShape, initial_noise, one_hot
from genlab.families.spec import _FAMILIES, FamilySpec, Preset, family_spec, register_family
from genlab.registry import Registry
from genlab.server.app import ServerConfig, create_app
from genlab.storage import Store
from tests.conftest import seed_guard
from tests.server.conftest import LiveServer


@dataclass
class PixelGaussianConfig(ImageShape):
    pass


class PixelGaussian(nn.Module):
    """x | y ~ N(μ_y, diag σ_y²) per pixel: the simplest generative model of a class's images."""

    family = "pixel-gaussian"

    def __init__(self, cfg: PixelGaussianConfig) -> None:
        super().__init__()
        cfg.check()
        self.config = cfg
        k = max(cfg.num_classes, 1)
        self.mean = nn.Parameter(torch.zeros(k, cfg.channels, cfg.size, cfg.size))  # μ_y
        self.log_scale = nn.Parameter(torch.zeros(k, cfg.channels, cfg.size, cfg.size))  # log σ_y

    def _class(self, y: torch.Tensor | None, n: int) -> torch.Tensor:
        return (
            one_hot(y, self.config.num_classes, n).argmax(1)
            if self.config.num_classes
            else torch.zeros(n, dtype=torch.long)
        )

    def loss(self, batch) -> torch.Tensor:
        x, y = batch
        c = self._class(y, len(x))
        mu, log_s = self.mean[c], self.log_scale[c]
        # -log N(x; μ, σ²) = log σ + (x - μ)² / 2σ² + ½ log 2π, averaged over pixels
        return (log_s + (x - mu) ** 2 * torch.exp(-2 * log_s) / 2 + 0.5 * math.log(2 * math.pi)).mean()

    @torch.no_grad()
    def evaluate(self, val_x, val_y, generator) -> dict:
        return {"val_loss": float(self.loss((val_x, val_y)))}

    @torch.no_grad()
    def sample(self, labels, generators, temperature: float = 1.0, **_) -> torch.Tensor:
        c = self._class(labels, len(generators))
        eps = initial_noise(generators, tuple(self.mean.shape[1:]))
        return (self.mean[c] + temperature * torch.exp(self.log_scale[c]) * eps).clamp(-1, 1)


def _temperature(model, temperature: float = 1.0) -> dict:
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        raise InvalidRequestError(
            f"temperature must be a number in [0, 2], got {temperature!r}", param="temperature"
        )
    return {"temperature": float(temperature)}


TRAIN = {"lr": 5e-2, "min_lr": 5e-3, "warmup_steps": 0, "weight_decay": 0.0, "eval_every": 20}
SPEC = FamilySpec(
    name="pixel-gaussian",
    title="Per-pixel Gaussian (a toy)",
    kind="per-pixel Gaussian",
    explain="A mean image and a scale per class, fitted by maximum likelihood.",
    module=PixelGaussian,
    config=PixelGaussianConfig,
    modalities=("image",),
    presets={"tiny": Preset({}, {**TRAIN, "steps": 40, "batch_size": 32}, "seconds")},
    sampling={"temperature": 1.0},
    sample_options=_temperature,
)


@pytest.fixture
def toy_family():
    register_family(SPEC)
    yield SPEC
    _FAMILIES.pop(SPEC.name, None)


def genlab(*args: str, capsys) -> str:
    """The CLI, in this process (so it sees the family this test declared)."""
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out = capsys.readouterr()
    assert done.value.code == 0, out.err
    return out.out


def test_a_family_declared_once_trains_samples_evaluates_and_serves(
    toy_family, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("GENLAB_HOME", str(tmp_path))
    seed_guard(tmp_path)
    trained = json.loads(
        genlab(
            "train",
            "image",
            "--family",
            "pixel-gaussian",
            "--data",
            "digits",
            "--preset",
            "tiny",
            "--json",
            capsys=capsys,
        )
    )
    assert (
        trained["name"] == "pixel-gaussian-digits" and trained["best_val_loss"] < 0.92
    )  # ~ log σ + ½ log 2πe at σ = 1

    grid = tmp_path / "sevens.png"
    genlab(
        "generate",
        "image",
        "--model",
        "pixel-gaussian-digits",
        "--prompt",
        "7",
        "-n",
        "4",
        "--out",
        str(grid),
        capsys=capsys,
    )
    assert Image.open(grid).size[0] >= 16

    metrics = json.loads(
        genlab(
            "eval", "image", "--model", "pixel-gaussian-digits", "--samples", "100", "--json", capsys=capsys
        )
    )
    assert metrics["class_accuracy"] > 0.3  # class means are recognisable digits: far above chance (0.1)

    registry = Registry(Settings(home=tmp_path))
    store = Store(f"sqlite:///{tmp_path / 'served.db'}")
    with LiveServer(create_app(registry, store, ServerConfig(open_access=True))) as live:
        body = {
            "model": "pixel-gaussian-digits",
            "prompt": "3",
            "n": 2,
            "response_format": "b64_json",
            "temperature": 0.0,
        }
        r = httpx.post(f"{live.url}/v1/images/generations", json=body, timeout=60)
        assert r.status_code == 200, r.text
        a, b = (np.asarray(Image.open(io.BytesIO(base64.b64decode(d["b64_json"])))) for d in r.json()["data"])
        assert np.array_equal(a, b)  # temperature 0: the class mean, whatever the seed
        bad = httpx.post(f"{live.url}/v1/images/generations", json={**body, "steps": 10}, timeout=60)
        assert bad.status_code == 400 and "apply to diffusion" in bad.json()["error"]["message"]
        hot = httpx.post(f"{live.url}/v1/images/generations", json={**body, "temperature": 9}, timeout=60)
        assert hot.status_code == 400 and "temperature" in hot.json()["error"]["message"]

    from genlab.evaluation.compare import cells, explanations

    assert "pixel-gaussian-image" in {c.key for c in cells()}
    assert explanations()["pixel-gaussian"]["title"] == SPEC.title


def test_an_unknown_family_names_every_declared_one(toy_family):
    with pytest.raises(
        Exception, match="expected one of transformer, gan, vae, diffusion, video-diffusion, pixel-gaussian"
    ):
        family_spec("flow")
