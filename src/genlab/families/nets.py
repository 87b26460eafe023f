"""Blocks the image families share, and the small contract they all follow.

Every image family is an ``nn.Module`` with:
- ``config`` (a dataclass with ``channels``, ``size``, ``num_classes``; 0 classes = unconditional),
- ``loss(batch)`` -> scalar tensor (the GAN takes a ``phase`` too: its two players),
- ``sample(labels, generators, **options)`` -> images in [-1, 1], shape (N, C, H, W), one
  ``torch.Generator`` per image so that image i is reproducible on its own,
- ``evaluate(val_x, val_y, generator)`` -> validation metrics with ``val_loss``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from genlab.core import InvalidRequestError


@dataclass
class ImageShape:
    channels: int = 1
    size: int = 16
    num_classes: int = 0  # 0 = unconditional

    def check(self) -> None:
        if self.size % 4 or self.size < 8:
            raise InvalidRequestError(
                f"image size must be a multiple of 4 and at least 8, got {self.size}", param="size"
            )
        if self.channels not in (1, 3):
            raise InvalidRequestError(f"images must have 1 or 3 channels, got {self.channels}")

    def to_dict(self) -> dict:
        return asdict(self)


def groups(channels: int) -> int:
    """GroupNorm groups: 8 where the width allows it (Wu & He, 2018)."""
    for g in (8, 4, 2):
        if channels % g == 0:
            return g
    return 1


def up_block(cin: int, cout: int) -> nn.Sequential:
    """Nearest-neighbour x2 upsampling, then a 3x3 convolution (no checkerboard artefacts: Odena et al. 2016)."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.GroupNorm(groups(cout), cout),
        nn.SiLU(),
    )


def conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(groups(cout), cout), nn.SiLU())


def down_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.GroupNorm(groups(cout), cout), nn.SiLU()
    )


def initial_noise(
    generators: list[torch.Generator], shape: tuple[int, ...], device: torch.device | str = "cpu"
) -> torch.Tensor:
    """One noise tensor per image, each from its own generator: batching never changes an image."""
    return torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)


def one_hot(labels: torch.Tensor | None, num_classes: int, batch: int) -> torch.Tensor:
    if num_classes == 0:
        return torch.zeros(batch, 0)
    assert labels is not None
    return nn.functional.one_hot(labels, num_classes).float()


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
