"""Build a family's network from its config, and the module a checkpoint publishes: both read the
family's declaration (``families/spec.py``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from genlab.families.spec import family_spec


def build_family(family: str, config: dict[str, Any], modality: str | None = None) -> nn.Module:
    return family_spec(family, modality).build(config)


def published_module(model: nn.Module) -> nn.Module:
    """The part of a family that generates: G for a GAN, the UNet for diffusion, all of a VAE."""
    return family_spec(model.family).published(model)
