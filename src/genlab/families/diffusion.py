"""Denoising diffusion (DDPM) on a diffusers ``UNet2DModel``, with classifier-free guidance.

Forward process (Ho et al., 2020): a fixed Markov chain adds Gaussian noise over T = 1000 steps,

    q(x_t | x_0) = N( √ᾱ_t x_0, (1 - ᾱ_t) I ),   ᾱ_t = Π_{s≤t} (1 - β_s)

with the cosine schedule of Nichol & Dhariwal (2021) (better than linear for small images).

Training objective (Ho et al., 2020, eq. 14, "L_simple"): predict the noise,

    L = E_{x_0, t ~ U{1..T}, ε ~ N(0, I)} ‖ ε - ε_θ( √ᾱ_t x_0 + √(1 - ᾱ_t) ε, t, y ) ‖²

Classifier-free guidance (Ho & Salimans, 2021): during training the label is replaced by a "null"
class with probability p_uncond (0.1), so one network learns both ε_θ(x_t, t, y) and ε_θ(x_t, t, ∅).
At sampling time, guidance scale w mixes them:

    ε̃ = ε_θ(x_t, t, ∅) + w · ( ε_θ(x_t, t, y) - ε_θ(x_t, t, ∅) )

(w = 1: plain conditional; w > 1: sharper, more typical samples; w = 0: unconditional.)

Samplers: diffusers' schedulers over the same trained ε_θ:
- DDPM (Ho et al., 2020): ancestral sampling, stochastic, needs ~T steps;
- DDIM (Song et al., 2021): the deterministic (η = 0) non-Markovian sampler, good at 20-50 steps;
- DPM-Solver++ (Lu et al., 2022): a second-order multistep ODE solver, good at 10-20 steps.

The published snapshot is a plain diffusers ``DDPMPipeline`` folder (``unet/``, ``scheduler/``,
``model_index.json``), so a trained model also loads with ``DDPMPipeline.from_pretrained``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genlab.core import InvalidRequestError
from genlab.families.nets import ImageShape, initial_noise
from genlab.families.spec import FamilySpec, Preset

SAMPLERS = ("ddpm", "ddim", "dpm++")


@dataclass
class DiffusionConfig(ImageShape):
    widths: list[int] = field(default_factory=lambda: [32, 64, 64])
    layers_per_block: int = 1
    attention: bool = True  # self-attention at the two coarsest resolutions
    train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    p_uncond: float = 0.1  # label dropout for classifier-free guidance

    def unet_config(self) -> dict[str, Any]:
        n = len(self.widths)
        down = ["DownBlock2D"] + ["AttnDownBlock2D" if self.attention else "DownBlock2D"] * (n - 1)
        up = ["AttnUpBlock2D" if self.attention else "UpBlock2D"] * (n - 1) + ["UpBlock2D"]
        return {
            "sample_size": self.size,
            "in_channels": self.channels,
            "out_channels": self.channels,
            "block_out_channels": list(self.widths),
            "down_block_types": down,
            "up_block_types": up,
            "layers_per_block": self.layers_per_block,
            "norm_num_groups": 8,
            "attention_head_dim": 8,
            # one embedding per class plus the null class (index num_classes) for guidance
            "num_class_embeds": self.num_classes + 1 if self.num_classes else None,
        }

    def scheduler_config(self) -> dict[str, Any]:
        return {
            "num_train_timesteps": self.train_timesteps,
            "beta_schedule": self.beta_schedule,
            "prediction_type": "epsilon",
            "clip_sample": True,
        }


def sampling_options(
    steps: Any = 50, sampler: Any = "ddim", guidance: Any = 1.0, *, train_timesteps: int = 1000
) -> dict[str, Any]:
    """Check a request's sampling options: the one place their ranges are enforced."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise InvalidRequestError(f"steps must be a positive integer, got {steps!r}", param="steps")
    if steps > train_timesteps:
        raise InvalidRequestError(
            f"steps must be at most {train_timesteps} (the training timesteps), got {steps}", param="steps"
        )
    if isinstance(guidance, bool) or not isinstance(guidance, int | float) or not guidance >= 0:
        raise InvalidRequestError(f"guidance must be a number >= 0, got {guidance!r}", param="guidance")
    if sampler not in SAMPLERS:
        raise InvalidRequestError(
            f"unknown sampler {sampler!r}; expected {', '.join(SAMPLERS)}", param="sampler"
        )
    return {"steps": steps, "sampler": sampler, "guidance": float(guidance)}


def make_scheduler(name: str, config: dict[str, Any]):
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    if name == "ddpm":
        return DDPMScheduler.from_config(config)
    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "dpm++":
        # Dynamic thresholding (Saharia et al., 2022) keeps the predicted x_0 in [-1, 1], as DDPM and
        # DDIM do with clip_sample; without it the solver's first steps from the cosine schedule's
        # near-zero signal overshoot (measured on diffusion-digits: FID 8.4 -> 0.12 at 20 steps).
        return DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", solver_order=2, thresholding=True, sample_max_value=1.0
        )
    raise InvalidRequestError(f"unknown sampler {name!r}; expected {', '.join(SAMPLERS)}", param="sampler")


class Diffusion(nn.Module):
    family = "diffusion"

    def __init__(self, cfg: DiffusionConfig) -> None:
        from diffusers import DDPMScheduler, UNet2DModel

        super().__init__()
        cfg.check()
        if cfg.size % 2 ** (len(cfg.widths) - 1):
            raise InvalidRequestError(
                f"image size {cfg.size} does not halve {len(cfg.widths) - 1} times; use fewer UNet levels"
            )
        self.config = cfg
        self.unet = UNet2DModel(**cfg.unet_config())
        self.noise = DDPMScheduler.from_config(cfg.scheduler_config())  # the forward process q(x_t | x_0)

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.unet(x_t, t, class_labels=y if self.config.num_classes else None).sample

    def loss(self, batch) -> torch.Tensor:
        x0, y = batch
        t = torch.randint(0, self.config.train_timesteps, (len(x0),))
        noise = torch.randn_like(x0)
        x_t = self.noise.add_noise(x0, noise, t)
        if self.config.num_classes:
            drop = torch.rand(len(x0)) < self.config.p_uncond
            y = torch.where(drop, torch.full_like(y, self.config.num_classes), y)
        return nn.functional.mse_loss(self.eps(x_t, t, y), noise)

    @torch.no_grad()
    def sample(
        self,
        labels: torch.Tensor | None,
        generators: list[torch.Generator],
        *,
        steps: int = 50,
        sampler: str = "ddim",
        guidance: float = 1.0,
        on_step: Callable[[int, int], None] | None = None,
        **_: object,
    ) -> torch.Tensor:
        """x_0 from noise in ``steps`` steps of ``sampler``; ``on_step(done, steps)`` is called after
        each step (as diffusers' ``callback_on_step_end``) and may raise to stop the sampling."""
        sampling_options(steps, sampler, guidance, train_timesteps=self.config.train_timesteps)
        scheduler = make_scheduler(sampler, self.noise.config)
        scheduler.set_timesteps(steps)
        c = self.config
        x = initial_noise(generators, (c.channels, c.size, c.size)) * scheduler.init_noise_sigma
        guided = c.num_classes > 0 and guidance != 1.0
        for done, t in enumerate(scheduler.timesteps, 1):
            model_in = scheduler.scale_model_input(x, t)
            tt = torch.full((len(x),), int(t))
            if guided:
                null = torch.full_like(labels, c.num_classes)
                both = self.eps(
                    torch.cat([model_in, model_in]), torch.cat([tt, tt]), torch.cat([labels, null])
                )
                cond, uncond = both.chunk(2)
                eps = uncond + guidance * (cond - uncond)
            else:
                eps = self.eps(model_in, tt, labels)
            x = scheduler.step(eps, t, x, generator=generators).prev_sample
            if on_step is not None:
                on_step(done, len(scheduler.timesteps))
        return x.clamp(-1, 1)

    @torch.no_grad()
    def bits_per_dim(
        self, x0: torch.Tensor, y: torch.Tensor | None, *, samples: int = 8, seed: int = 0
    ) -> float:
        """An unbiased Monte-Carlo estimate of the variational bound on -log p(x_0), in bits per dim.

        Ho et al. (2020) eq. 5, with the reverse variances fixed to the posterior's β̃_t:
            L = L_T + Σ_{t=2..T} L_{t-1} + L_0
            L_T     = KL( q(x_T | x_0) ‖ N(0, I) )
            L_{t-1} = KL( q(x_{t-1} | x_t, x_0) ‖ p_θ(x_{t-1} | x_t) ) = ‖μ̃_t - μ_θ‖² / (2 β̃_t)
            L_0     = -log p_θ(x_0 | x_1), a Gaussian discretised to the 256 levels of [-1, 1]
        Σ_t is estimated by stratified sampling: t is split into ``samples`` equal strata and each image
        draws one t per stratum, weighted by the stratum's size (unbiased, far lower variance than
        uniform draws). x_0 are the pixels in [-1, 1], so the bound compares with the VAE's IWAE bound.
        """
        g = torch.Generator().manual_seed(seed)
        a_bar = self.noise.alphas_cumprod.double()
        alphas = self.noise.alphas.double()
        T, dims = len(a_bar), x0[0].numel()
        x0d = x0.double()

        def mean_eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.eps(x_t.float(), t, y).double()

        # L_T: KL of N(√ᾱ_T x_0, 1-ᾱ_T) from N(0, 1), per dimension
        m, v = a_bar[-1].sqrt() * x0d, 1 - a_bar[-1]
        total = 0.5 * (v + m**2 - 1 - torch.log(v)).flatten(1).sum(1)
        samples = max(1, min(samples, T - 1))
        edges = [1 + k * (T - 1) // samples for k in range(samples + 1)]  # strata of t = 1..T-1 (0-based t)
        for lo, hi in itertools.pairwise(edges):
            t = torch.randint(lo, hi, (len(x0),), generator=g)
            noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
            ab, ab_prev, a = (
                a_bar[t].view(-1, 1, 1, 1),
                a_bar[t - 1].view(-1, 1, 1, 1),
                alphas[t].view(-1, 1, 1, 1),
            )
            x_t = ab.sqrt() * x0d + (1 - ab).sqrt() * noise
            beta_tilde = (1 - ab_prev) / (1 - ab) * (1 - a)
            mu_tilde = (ab_prev.sqrt() * (1 - a) / (1 - ab)) * x0d + (
                a.sqrt() * (1 - ab_prev) / (1 - ab)
            ) * x_t
            mu_theta = (x_t - (1 - a) / (1 - ab).sqrt() * mean_eps(x_t, t)) / a.sqrt()
            total += (hi - lo) * ((mu_tilde - mu_theta) ** 2 / (2 * beta_tilde)).flatten(1).sum(1)
        # L_0: the decoder p(x_0 | x_1) = N(μ_θ(x_1), β_1), integrated over each pixel's bin of width 2/255
        t0 = torch.zeros(len(x0), dtype=torch.long)
        x1 = a_bar[0].sqrt() * x0d + (1 - a_bar[0]).sqrt() * torch.randn(
            x0.shape, generator=g, dtype=torch.float64
        )
        mu = (x1 - (1 - alphas[0]) / (1 - a_bar[0]).sqrt() * mean_eps(x1, t0)) / alphas[0].sqrt()
        normal = torch.distributions.Normal(mu, (1 - alphas[0]).sqrt())
        upper = torch.where(x0d > 0.999, torch.ones_like(x0d), normal.cdf(x0d + 1 / 255))
        lower = torch.where(x0d < -0.999, torch.zeros_like(x0d), normal.cdf(x0d - 1 / 255))
        total += -torch.log((upper - lower).clamp_min(1e-12)).flatten(1).sum(1)
        return float(total.mean() / (dims * math.log(2)))

    @torch.no_grad()
    def evaluate(self, val_x: torch.Tensor, val_y: torch.Tensor | None, generator: torch.Generator) -> dict:
        """The denoising loss on held-out images at fixed (t, ε): comparable across evaluations."""
        t = torch.randint(0, self.config.train_timesteps, (len(val_x),), generator=generator)
        noise = torch.randn(val_x.shape, generator=generator)
        losses = []
        for i in range(0, len(val_x), 256):
            sl = slice(i, i + 256)
            x_t = self.noise.add_noise(val_x[sl], noise[sl], t[sl])
            y = None if val_y is None else val_y[sl]
            losses.append(nn.functional.mse_loss(self.eps(x_t, t[sl], y), noise[sl], reduction="sum"))
        mse = float(sum(losses)) / noise.numel()
        return {"val_loss": mse, "val_eps_mse": mse, "val_eps_rmse": math.sqrt(mse)}

    def save_pipeline(self, directory: Path) -> None:
        """Write a diffusers ``DDPMPipeline`` folder (safetensors weights)."""
        from diffusers import DDPMPipeline, DDPMScheduler

        DDPMPipeline(unet=self.unet, scheduler=DDPMScheduler.from_config(self.noise.config)).save_pretrained(
            str(directory), safe_serialization=True
        )


PRESETS = {
    "tiny": Preset(
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
    "small": Preset(
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
    "base": Preset(
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
}


def _write_pipeline(model: Diffusion, generating: nn.Module, directory: Path, save) -> str:
    """A diffusion snapshot is a diffusers pipeline folder."""
    model.save_pipeline(directory)
    return "unet/diffusion_pytorch_model.safetensors"


SPEC = FamilySpec(
    name="diffusion",
    title="Diffusion (DDPM, cosine schedule, classifier-free guidance)",
    kind="DDPM UNet",
    explain="Learns to remove Gaussian noise step by step; samples by running the reverse chain (DDIM, 50 "
    "steps here). High quality and a variational likelihood bound, at tens of network passes "
    "per sample.",
    module=Diffusion,
    config=DiffusionConfig,
    modalities=("image", "audio"),
    colour="#c2255c",
    presets=PRESETS,
    generating="unet",
    # Guidance 1 = the plain conditional model: on the small presets, whose unconditional branch sees
    # only the 10% of label-dropped batches, guidance > 1 lowers both FID and class accuracy (measured
    # in bench/image_families.py); bigger models usually gain from 1.5-3.
    sampling={"steps": 50, "sampler": "ddim", "guidance": 1.0},
    sample_options=lambda model, **opts: sampling_options(
        **opts, train_timesteps=model.config.train_timesteps
    ),
    snapshot=_write_pipeline,
    source="src/genlab/families/diffusion.py",
)
