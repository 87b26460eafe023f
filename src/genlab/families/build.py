"""Build a family's network from its config, and the module a checkpoint publishes."""

from __future__ import annotations

from typing import Any

from torch import nn

from genlab.core import InvalidRequestError, ModelLoadError


def build_family(family: str, config: dict[str, Any]) -> nn.Module:
    from genlab.families.diffusion import Diffusion, DiffusionConfig
    from genlab.families.gan import GAN, GANConfig
    from genlab.families.vae import VAE, VAEConfig

    builders = {"gan": (GAN, GANConfig), "vae": (VAE, VAEConfig), "diffusion": (Diffusion, DiffusionConfig)}
    if family not in builders:
        raise InvalidRequestError(
            f"unknown image family {family!r}; expected gan, vae or diffusion", param="family"
        )
    module, cfg = builders[family]
    try:
        return module(cfg(**config))
    except TypeError as e:
        raise ModelLoadError(f"not a {family} configuration: {e}") from None


def published_module(model: nn.Module) -> nn.Module:
    """The part of a family that generates: G for a GAN, the UNet for diffusion, all of a VAE."""
    return getattr(model, "generator", None) or getattr(model, "unet", None) or model
