"""Video diffusion: DDPM over clips with a factorised space-time U-Net (Ho et al., 2022).

The noise process and the samplers are image diffusion's (``diffusion.py``): a clip x_0 of shape
(T, C, H, W) is noised as q(x_t | x_0) = N(√ᾱ_t x_0, (1 - ᾱ_t) I). The network predicts the
velocity v = √ᾱ_t ε - √(1 - ᾱ_t) x_0 (Salimans & Ho, 2022; VDM trains it so too), with the loss
E ‖v - v_θ(x_t, t, y)‖²: at high noise v ≈ -x_0, so the network sees the clip's layout (a black
canvas, one sprite) from the first steps, where ε-prediction's implied x_0 is ε's error divided by
√ᾱ_t (measured here: 200 steps of ε-prediction still sampled noise). What is new is the network.

Factorised space-time U-Net (Video Diffusion Models, Ho et al. 2022, §3): every spatial layer of
an image U-Net runs on each frame alone (frames folded into the batch: (B·T, C, H, W)), and after
each one a *temporal* layer mixes the frames at each pixel ((B·H·W, C, T)):
- a temporal convolution (kernel 3 over time) at the finest level,
- temporal self-attention over the T frames, with a learned position per frame, at the coarser
  levels, where a sprite's whole path fits in a few cells.
Each temporal layer ends in a zero-initialised projection, so at initialisation the network is an
image U-Net applied frame by frame, and training learns the motion on top (as Make-A-Video and
VDM's joint image-video training do).

Conditioning: the label is factorised (moving-digits: digit x direction x speed); each factor
has its own embedding, summed into the timestep embedding that every residual block adds. For
classifier-free guidance (Ho & Salimans, 2021) every factor is replaced by its "null" embedding
with probability p_uncond, and sampling mixes ε̃ = ε_θ(x_t, ∅) + w (ε_θ(x_t, y) - ε_θ(x_t, ∅)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from genlab.core import InvalidRequestError
from genlab.families.diffusion import make_scheduler, sampling_options
from genlab.families.nets import ImageShape, groups, initial_noise
from genlab.families.spec import FamilySpec, Preset


@dataclass
class VideoDiffusionConfig(ImageShape):
    size: int = 32
    frames: int = 8
    factors: list[int] = field(default_factory=lambda: [10, 4, 2])  # label factors' sizes; [] = one label
    widths: list[int] = field(default_factory=lambda: [32, 64, 64])
    patch: int = 2  # each frame enters as (patch x patch)-pixel cells (space-to-depth): 4x less compute
    temporal_attention: bool = True  # at every level but the finest (a temporal convolution there)
    heads: int = 4
    train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    p_uncond: float = 0.1  # label dropout for classifier-free guidance
    # what the network predicts: "v_prediction" (Salimans & Ho, 2022) or "epsilon" (image diffusion's)
    prediction: str = "v_prediction"

    def check(self) -> None:
        super().check()
        if not 2 <= self.frames <= 64:
            raise InvalidRequestError(f"frames must be from 2 to 64, got {self.frames}", param="frames")
        if self.size % (self.patch * 2 ** (len(self.widths) - 1)):
            raise InvalidRequestError(
                f"size {self.size} in {self.patch}-pixel patches does not halve {len(self.widths) - 1} times"
            )
        if self.prediction not in ("epsilon", "v_prediction"):
            raise InvalidRequestError(
                f"prediction must be epsilon or v_prediction, got {self.prediction!r}", param="prediction"
            )
        if self.num_classes and math.prod(self.factors or [self.num_classes]) != self.num_classes:
            raise InvalidRequestError(f"factors {self.factors} do not multiply to {self.num_classes} classes")

    @property
    def label_sizes(self) -> list[int]:
        return list(self.factors) if self.factors else [self.num_classes]

    def scheduler_config(self) -> dict:
        return {
            "num_train_timesteps": self.train_timesteps,
            "beta_schedule": self.beta_schedule,
            "prediction_type": self.prediction,
            "clip_sample": True,
        }


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of the timestep (Vaswani et al., 2017; as DDPM): (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """A spatial residual block on each frame, with the (timestep + label) embedding added."""

    def __init__(self, cin: int, cout: int, emb: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups(cin), cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, cout)
        self.norm2, self.conv2 = nn.GroupNorm(groups(cout), cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # x (B·T, C, H, W), emb (B·T, E)
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        h = h + self.emb(nn.functional.silu(emb))[:, :, None, None]
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return h + self.skip(x)


def to_time_major(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B·T, C, H, W) -> (B·H·W, T, C): each pixel's sequence of frames."""
    bt, c, h, w = x.shape
    return x.view(bt // frames, frames, c, h, w).permute(0, 3, 4, 1, 2).reshape(-1, frames, c)


def from_time_major(x: torch.Tensor, frames: int, h: int, w: int) -> torch.Tensor:
    """(B·H·W, T, C) -> (B·T, C, H, W)."""
    c = x.shape[-1]
    return x.view(-1, h, w, frames, c).permute(0, 3, 4, 1, 2).reshape(-1, c, h, w)


class TemporalConv(nn.Module):
    """x + Conv1d_T(SiLU(GN(x))) at each pixel, kernel 3 over time; zero-initialised output."""

    def __init__(self, channels: int, frames: int) -> None:
        super().__init__()
        self.frames = frames
        self.norm = nn.GroupNorm(groups(channels), channels)
        self.conv = nn.Conv1d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B·T, C, H, W)
        _, _, h, w = x.shape
        seq = to_time_major(nn.functional.silu(self.norm(x)), self.frames)  # (B·H·W, T, C)
        mixed = self.conv(seq.transpose(1, 2)).transpose(1, 2)  # Conv1d over T
        return x + from_time_major(mixed, self.frames, h, w)


class TemporalAttention(nn.Module):
    """x + Attention_T(LN(x) + position) at each pixel: every frame attends to every frame."""

    def __init__(self, channels: int, frames: int, heads: int) -> None:
        super().__init__()
        self.frames = frames
        self.norm = nn.LayerNorm(channels)
        self.position = nn.Parameter(torch.zeros(frames, channels))  # a learned position per frame
        self.attn = nn.MultiheadAttention(channels, heads if channels % heads == 0 else 1, batch_first=True)
        nn.init.zeros_(self.attn.out_proj.weight)
        nn.init.zeros_(self.attn.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B·T, C, H, W)
        _, _, h, w = x.shape
        seq = self.norm(to_time_major(x, self.frames)) + self.position  # (B·H·W, T, C)
        mixed, _ = self.attn(seq, seq, seq, need_weights=False)
        return x + from_time_major(mixed, self.frames, h, w)


class SpaceTimeUNet(nn.Module):
    """ε_θ(x_t, t, y) for clips (B, T, C, H, W): a U-Net of per-frame ResBlocks, each followed by a
    temporal layer; skip connections between the levels of equal resolution."""

    def __init__(self, cfg: VideoDiffusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w0, emb = cfg.widths[0], 4 * cfg.widths[0]
        self.time = nn.Sequential(nn.Linear(w0, emb), nn.SiLU(), nn.Linear(emb, emb))
        # one embedding table per label factor, plus its null entry (index = the factor's size)
        self.labels = (
            nn.ModuleList(nn.Embedding(n + 1, emb) for n in cfg.label_sizes) if cfg.num_classes else None
        )
        cells = cfg.channels * cfg.patch**2  # a patch's pixels become channels
        self.inp = nn.Conv2d(cells, w0, 3, padding=1)
        self.down, self.downsample, self.up, self.upsample = (nn.ModuleList() for _ in range(4))
        skips, prev = [], w0
        for i, w in enumerate(cfg.widths):
            self.down.append(nn.ModuleList([ResBlock(prev, w, emb), self.temporal(w, i)]))
            skips.append(w)
            self.downsample.append(
                nn.Conv2d(w, w, 3, stride=2, padding=1) if i < len(cfg.widths) - 1 else nn.Identity()
            )
            prev = w
        self.mid = nn.ModuleList(
            [ResBlock(prev, prev, emb), self.temporal(prev, len(cfg.widths)), ResBlock(prev, prev, emb)]
        )
        for i, w in reversed(list(enumerate(cfg.widths))):
            self.up.append(nn.ModuleList([ResBlock(prev + skips[i], w, emb), self.temporal(w, i)]))
            self.upsample.append(nn.Upsample(scale_factor=2, mode="nearest") if i > 0 else nn.Identity())
            prev = w
        self.out = nn.Sequential(nn.GroupNorm(groups(w0), w0), nn.SiLU(), nn.Conv2d(w0, cells, 3, padding=1))

    def temporal(self, channels: int, level: int) -> nn.Module:
        if self.cfg.temporal_attention and level > 0:
            return TemporalAttention(channels, self.cfg.frames, self.cfg.heads)
        return TemporalConv(channels, self.cfg.frames)

    def condition(self, t: torch.Tensor, y: torch.Tensor | None, drop: torch.Tensor | None) -> torch.Tensor:
        """The embedding e = MLP(sin(t)) + Σ_k E_k[y_k], y_k the label's factors (null where dropped)."""
        e = self.time(timestep_embedding(t, self.cfg.widths[0]))
        if self.labels is None or y is None:
            return e
        for k, (n, table) in enumerate(zip(self.cfg.label_sizes, self.labels, strict=True)):
            inner = math.prod(self.cfg.label_sizes[k + 1 :])
            y_k = (y // inner) % n  # mixed-radix digit k of the label
            if drop is not None:
                y_k = torch.where(drop, torch.full_like(y_k, n), y_k)
            e = e + table(y_k)
        return e

    def forward(self, x: torch.Tensor, t: torch.Tensor, y=None, drop=None) -> torch.Tensor:
        b, frames, c, h, w = x.shape
        e = self.condition(t, y, drop).repeat_interleave(frames, 0)  # (B·T, E)
        h_ = self.inp(nn.functional.pixel_unshuffle(x.reshape(b * frames, c, h, w), self.cfg.patch))
        skips = []
        for (res, temporal), down in zip(self.down, self.downsample, strict=True):
            h_ = temporal(res(h_, e))
            skips.append(h_)
            h_ = down(h_)
        h_ = self.mid[2](self.mid[1](self.mid[0](h_, e)), e)
        for (res, temporal), up in zip(self.up, self.upsample, strict=True):
            h_ = temporal(res(torch.cat([h_, skips.pop()], 1), e))
            h_ = up(h_)
        return nn.functional.pixel_shuffle(self.out(h_), self.cfg.patch).view(b, frames, c, h, w)


EVAL_CLIPS = 128  # held-out clips per evaluation (a clip is 8 frames: this is 1,024 frames)


class VideoDiffusion(nn.Module):
    family = "video-diffusion"

    def __init__(self, cfg: VideoDiffusionConfig) -> None:
        from diffusers import DDPMScheduler

        super().__init__()
        cfg.check()
        self.config = cfg
        self.unet = SpaceTimeUNet(cfg)
        self.noise = DDPMScheduler.from_config(cfg.scheduler_config())  # the forward process q(x_t | x_0)

    def eps(self, x_t, t, y, drop=None) -> torch.Tensor:
        return self.unet(x_t, t, y if self.config.num_classes else None, drop)

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network learns: ε, or v = √ᾱ_t ε - √(1-ᾱ_t) x_0 (Salimans & Ho, 2022, §4)."""
        return noise if self.config.prediction == "epsilon" else self.noise.get_velocity(x0, noise, t)

    def loss(self, batch) -> torch.Tensor:
        x0, y = batch  # (B, T, C, H, W), (B,)
        t = torch.randint(0, self.config.train_timesteps, (len(x0),))
        noise = torch.randn_like(x0)
        x_t = self.noise.add_noise(x0, noise, t)  # √ᾱ_t x_0 + √(1-ᾱ_t) ε
        drop = torch.rand(len(x0)) < self.config.p_uncond if self.config.num_classes else None
        return nn.functional.mse_loss(self.eps(x_t, t, y, drop), self.target(x0, noise, t))  # L_simple

    @torch.no_grad()
    def sample(
        self,
        labels: torch.Tensor | None,
        generators: list[torch.Generator],
        *,
        steps: int = 50,
        sampler: str = "ddim",
        guidance: float = 1.0,
        progress: Callable[[int, int], None] | None = None,
        **_: object,
    ) -> torch.Tensor:
        """Clips (N, T, C, H, W) in [-1, 1]; ``progress(step, steps)`` hears each denoising step."""
        sampling_options(steps, sampler, guidance, train_timesteps=self.config.train_timesteps)
        scheduler = make_scheduler(sampler, self.noise.config)
        scheduler.set_timesteps(steps)
        c = self.config
        x = initial_noise(generators, (c.frames, c.channels, c.size, c.size)) * scheduler.init_noise_sigma
        guided = c.num_classes > 0 and labels is not None and guidance != 1.0
        for i, t in enumerate(scheduler.timesteps):
            model_in = scheduler.scale_model_input(x, t)
            tt = torch.full((len(x),), int(t))
            if guided:  # ε̃ = ε(∅) + w (ε(y) - ε(∅))
                drop = torch.cat(
                    [torch.zeros(len(x), dtype=torch.bool), torch.ones(len(x), dtype=torch.bool)]
                )
                both = self.eps(
                    torch.cat([model_in, model_in]), torch.cat([tt, tt]), torch.cat([labels, labels]), drop
                )
                cond, uncond = both.chunk(2)
                eps = uncond + guidance * (cond - uncond)
            else:
                eps = self.eps(model_in, tt, labels)
            x = scheduler.step(eps, t, x, generator=generators).prev_sample
            if progress is not None:
                progress(i + 1, steps)
        return x.clamp(-1, 1)

    @torch.no_grad()
    def evaluate(self, val_x: torch.Tensor, val_y: torch.Tensor | None, generator: torch.Generator) -> dict:
        """The denoising loss on the first ``EVAL_CLIPS`` held-out clips at fixed (t, ε): comparable
        across evaluations, and a few seconds on a CPU."""
        val_x, val_y = val_x[:EVAL_CLIPS], None if val_y is None else val_y[:EVAL_CLIPS]
        t = torch.randint(0, self.config.train_timesteps, (len(val_x),), generator=generator)
        noise = torch.randn(val_x.shape, generator=generator)
        total = 0.0
        for i in range(0, len(val_x), 64):
            sl = slice(i, i + 64)
            x_t = self.noise.add_noise(val_x[sl], noise[sl], t[sl])
            y = None if val_y is None else val_y[sl]
            target = self.target(val_x[sl], noise[sl], t[sl])
            total += float(nn.functional.mse_loss(self.eps(x_t, t[sl], y), target, reduction="sum"))
        mse = total / noise.numel()
        return {"val_loss": mse}


def _train(steps: int, batch: int, lr: float, warmup: int, ema: float, every: int) -> dict:
    return {
        "steps": steps,
        "batch_size": batch,
        "lr": lr,
        "min_lr": lr / 10,
        "warmup_steps": warmup,
        "weight_decay": 0.0,
        "ema_decay": ema,
        "eval_every": every,
    }


PRESETS = {
    "tiny": Preset({"widths": [8, 16], "heads": 2}, _train(6, 2, 2e-3, 2, 0.9, 6), "seconds: for tests"),
    # ~1 s a step on one busy CPU core (bench/video_families.py measures it)
    "small": Preset(
        {"widths": [24, 48], "heads": 4},
        _train(600, 8, 2e-3, 50, 0.99, 200),
        "about 10 minutes on a CPU core",
    ),
    "base": Preset(
        {"widths": [64, 128, 128], "heads": 8},
        _train(30000, 32, 2e-4, 1000, 0.9995, 2000),
        "hours on a CPU, minutes on a GPU",
    ),
}

SPEC = FamilySpec(
    name="video-diffusion",
    title="Video diffusion (factorised space-time U-Net, Ho et al. 2022)",
    kind="space-time U-Net DDPM",
    explain="Image diffusion's noise process and samplers over whole clips: a U-Net whose spatial layers run "
    "on each frame and whose temporal convolutions and attention mix the frames at each pixel, "
    "conditioned on digit, direction and speed.",
    module=VideoDiffusion,
    config=VideoDiffusionConfig,
    modalities=("video",),
    colour="#5f3dc4",
    presets=PRESETS,
    generating="unet",
    sampling={"steps": 50, "sampler": "ddim", "guidance": 1.0},
    sample_options=lambda model, **opts: sampling_options(
        **opts, train_timesteps=model.config.train_timesteps
    ),
    source="src/genlab/families/video_diffusion.py",
)
