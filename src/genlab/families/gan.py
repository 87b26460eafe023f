"""A class-conditional DCGAN with a projection discriminator.

The game (Goodfellow et al., 2014): a generator G maps noise z ~ N(0, I) (and a class y) to an
image; a discriminator D scores images as real or generated. They are trained in turns, each step
one discriminator update then one generator update (the Trainer's two *phases*).

Objective, default **hinge** (Lim & Ye, 2017; Miyato et al., 2018):

    L_D = E_x[ max(0, 1 - D(x, y)) ] + E_z[ max(0, 1 + D(G(z, y), y)) ]
    L_G = -E_z[ D(G(z, y), y) ]

kept stable by **spectral normalisation** of every discriminator layer (Miyato et al., 2018: each
weight is divided by its largest singular value, so D is 1-Lipschitz per layer).

Option **wgan-gp** (Gulrajani et al., 2017): the Wasserstein critic without spectral norm,

    L_D = E_z[ D(G(z)) ] - E_x[ D(x) ] + λ E_x̂[ (‖∇_x̂ D(x̂)‖₂ - 1)² ],   x̂ = εx + (1-ε)G(z)
    L_G = -E_z[ D(G(z)) ]

Conditioning: G concatenates a learned class embedding to z; D is a **projection discriminator**
(Miyato & Koyama, 2018): D(x, y) = ψ(φ(x)) + embed(y) · φ(x), the inner product of the class
embedding with D's features.

Architecture: DCGAN (Radford et al., 2016): a linear layer to a (size/4)² map, two upsampling
stages, tanh output; D mirrors it with strided convolutions. The Trainer keeps an EMA of G
(Karras et al., 2018; Yazıcı et al., 2019), which is what samples and evaluation use. Two
time-scale learning rates, D faster than G (Heusel et al., 2017), with Adam β = (0, 0.9).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from genlab.core import InvalidRequestError
from genlab.families.nets import ImageShape, initial_noise, up_block
from genlab.families.spec import FamilySpec, PhaseSpec, Preset

OBJECTIVES = ("hinge", "wgan-gp")


@dataclass
class GANConfig(ImageShape):
    z_dim: int = 64
    width: int = 64
    objective: str = "hinge"
    gp_weight: float = 10.0

    def check(self) -> None:
        super().check()
        if self.objective not in OBJECTIVES:
            raise InvalidRequestError(
                f"unknown GAN objective {self.objective!r}; expected {', '.join(OBJECTIVES)}"
            )


class Generator(nn.Module):
    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w, s0 = cfg.width, cfg.size // 4
        self.embed = nn.Embedding(cfg.num_classes, cfg.z_dim) if cfg.num_classes else None
        z_in = cfg.z_dim * (2 if cfg.num_classes else 1)
        self.fc = nn.Linear(z_in, 2 * w * s0 * s0)
        self.net = nn.Sequential(
            nn.Unflatten(1, (2 * w, s0, s0)),
            nn.GroupNorm(8, 2 * w),
            nn.SiLU(),
            up_block(2 * w, w),
            up_block(w, w // 2),
            nn.Conv2d(w // 2, cfg.channels, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)  # conditioning by concatenation
        return self.net(self.fc(z))


class Discriminator(nn.Module):
    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        sn = spectral_norm if cfg.objective == "hinge" else (lambda m: m)
        w = cfg.width
        act = nn.LeakyReLU(0.2)
        self.features = nn.Sequential(
            sn(nn.Conv2d(cfg.channels, w // 2, 3, padding=1)),
            act,
            sn(nn.Conv2d(w // 2, w, 4, stride=2, padding=1)),
            act,
            sn(nn.Conv2d(w, 2 * w, 4, stride=2, padding=1)),
            act,
            sn(nn.Conv2d(2 * w, 2 * w, 3, padding=1)),
            act,
        )
        self.out = sn(nn.Linear(2 * w, 1))
        self.embed = sn(nn.Embedding(cfg.num_classes, 2 * w)) if cfg.num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x).sum(dim=(2, 3))  # global sum pooling: φ(x)
        score = self.out(h).squeeze(1)  # ψ(φ(x))
        if self.embed is not None:
            score = score + (self.embed(y) * h).sum(dim=1)  # + embed(y)·φ(x): the projection
        return score


class GAN(nn.Module):
    family = "gan"

    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        cfg.check()
        self.config = cfg
        self.generator = Generator(cfg)
        self.discriminator = Discriminator(cfg)

    def _fake(self, batch_size: int, y: torch.Tensor | None) -> torch.Tensor:
        z = torch.randn(batch_size, self.config.z_dim)
        return self.generator(z, y)

    def loss(self, batch, phase: str = "generator") -> torch.Tensor:
        x, y = batch
        d = self.discriminator
        if phase == "discriminator":
            with torch.no_grad():
                fake = self._fake(len(x), y)
            real_score, fake_score = d(x, y), d(fake, y)
            if self.config.objective == "hinge":
                return torch.relu(1 - real_score).mean() + torch.relu(1 + fake_score).mean()
            return (
                fake_score.mean()
                - real_score.mean()
                + self.config.gp_weight * self._gradient_penalty(x, fake, y)
            )
        if phase == "generator":
            return -d(self._fake(len(x), y), y).mean()
        raise ValueError(f"unknown GAN phase {phase!r}")

    def _gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor, y) -> torch.Tensor:
        eps = torch.rand(len(real), 1, 1, 1)
        mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.discriminator(mixed, y).sum(), mixed, create_graph=True)
        return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()

    @torch.no_grad()
    def sample(
        self, labels: torch.Tensor | None, generators: list[torch.Generator], **_: object
    ) -> torch.Tensor:
        """One forward pass of G: z from each image's own generator."""
        z = initial_noise(generators, (self.config.z_dim,))
        return self.generator(z, labels).clamp(-1, 1)

    @torch.no_grad()
    def evaluate(self, val_x: torch.Tensor, val_y: torch.Tensor | None, generator: torch.Generator) -> dict:
        """A GAN has no likelihood: its held-out signal is the critic's gap between real and generated."""
        y = val_y
        z = torch.randn(len(val_x), self.config.z_dim, generator=generator)
        fake = self.generator(z, y)
        real_score = self.discriminator(val_x, y).mean()
        fake_score = self.discriminator(fake, y).mean()
        return {
            "d_real": float(real_score),
            "d_fake": float(fake_score),
            "d_gap": float(real_score - fake_score),
        }


# Adam with the GAN recipe's constants: no warm-up or decay, no weight decay, EMA of G for sampling.
_TRAIN = {
    "lr": 2e-4,
    "min_lr": 2e-4,
    "warmup_steps": 0,
    "weight_decay": 0.0,
    "grad_clip": 0.0,
    "ema_decay": 0.999,
}
PRESETS = {
    "tiny": Preset(
        {"z_dim": 32, "width": 32},
        {**_TRAIN, "steps": 60, "batch_size": 16, "eval_every": 30},
        "seconds: for tests",
    ),
    "small": Preset(
        {"z_dim": 64, "width": 64},
        {**_TRAIN, "steps": 4000, "batch_size": 64, "eval_every": 500},
        "minutes on a laptop CPU",
    ),
    "base": Preset(
        {"z_dim": 128, "width": 128},
        {**_TRAIN, "steps": 20000, "batch_size": 64, "eval_every": 1000},
        "an hour or more on a CPU",
    ),
}

SPEC = FamilySpec(
    name="gan",
    title="GAN (DCGAN, hinge loss, spectral norm)",
    kind="DCGAN generator",
    explain="A generator and a discriminator play a two-player game; the generator maps noise to a sample in "
    "one forward pass. The fastest sampler and often the sharpest, but no likelihood, and it can "
    "drop modes (low recall).",
    module=GAN,
    config=GANConfig,
    modalities=("image", "audio"),
    colour="#e8590c",
    presets=PRESETS,
    # Two time-scale update rule: D learns 2x faster than G; Adam β = (0, 0.9) (Heusel et al. 2017).
    phases=(PhaseSpec("discriminator", 2.0, (0.0, 0.9)), PhaseSpec("generator", 1.0, (0.0, 0.9))),
    selected_by="sample_score",  # no likelihood: checkpoints are chosen by the FID of their samples
    generating="generator",
    source="src/genlab/families/gan.py",
)
