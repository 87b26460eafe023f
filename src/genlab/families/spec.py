"""A family declares itself once: ``FamilySpec``, registered here, read by every other room.

Training (presets, optimiser phases, how the best checkpoint is chosen, the snapshot it writes),
the generators (sampling options and their defaults, the module that generates), the CLI's help
and ``genlab compare`` (cells, explanations, colours) all read a family's declaration instead of
naming it. A new family is one module in ``families/`` and one ``register_family`` call:

    register_family(FamilySpec(name="toy", module=Toy, config=ToyConfig, modalities=("image",), ...))

The built-in families (transformer, GAN, VAE, diffusion, and video diffusion over clips) each declare
their ``SPEC`` beside their code; ``_catalog`` reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from genlab.core import InvalidRequestError, ModelLoadError


@dataclass(frozen=True)
class Preset:
    model: dict[str, Any]  # the family config's fields
    train: dict[str, Any]  # TrainConfig's fields
    description: str  # how long it takes, for --help


@dataclass(frozen=True)
class PhaseSpec:
    """One optimiser of a family that alternates several (a GAN's discriminator, then its generator)."""

    module: str  # the attribute of the family's module that this optimiser updates
    lr_scale: float = 1.0
    betas: tuple[float, float] = (0.9, 0.95)


def _write_weights(model: nn.Module, generating: nn.Module, directory: Any, save: Callable) -> str:
    """The default snapshot: the generating module's weights as one safetensors file."""
    save(directory / "model.safetensors", generating.state_dict())
    return "model.safetensors"


@dataclass(frozen=True)
class FamilySpec:
    name: str  # as on the command line and in every card: "diffusion"
    title: str  # a heading: "Diffusion (DDPM, cosine schedule, classifier-free guidance)"
    kind: str  # what a trained card calls it: "DDPM UNet"
    explain: str  # what the family is, in a paragraph (compare's report)
    module: type[nn.Module] | None  # built from ``config``; None where another room builds it
    config: type | None
    modalities: tuple[str, ...]  # which codecs' tensors it fits: "image", "audio", "video", "text", "code"
    colour: str = "#495057"  # in compare's plots
    presets: dict[str, Preset] = field(default_factory=dict)  # tiny, small, base
    phases: tuple[PhaseSpec, ...] = ()  # several optimisers (a GAN); () = one over every parameter
    selected_by: str = "val_loss"  # "sample_score": no likelihood, the best checkpoint by FID (a GAN)
    generating: str | None = None  # the submodule that samples ("generator", "unet"); None = all of it
    sampling: dict[str, Any] = field(default_factory=dict)  # sampling options' defaults, in config.json
    # checks a request's sampling options (with the model's config) -> the options the sampler takes
    sample_options: Callable[..., dict[str, Any]] | None = None
    # writes a snapshot folder -> the weights' path in it; default: model.safetensors
    snapshot: Callable[..., str] = _write_weights
    source: str = ""  # where its code is, for readers of the compare report

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(self.sampling)

    def build(self, config: dict[str, Any]) -> nn.Module:
        if self.module is None or self.config is None:
            raise InvalidRequestError(f"the {self.name} family is not built from a config here")
        try:
            return self.module(self.config(**config))
        except TypeError as e:
            raise ModelLoadError(f"not a {self.name} configuration: {e}") from None

    def published(self, model: nn.Module) -> nn.Module:
        """The part that generates: what a snapshot saves and a generator loads."""
        return getattr(model, self.generating) if self.generating else model

    def options(self, model: nn.Module, given: dict[str, Any], *, name: str = "this model") -> dict[str, Any]:
        """A request's sampling options, checked: the defaults, overridden by what was given."""
        unknown = sorted(k for k, v in given.items() if v is not None and k not in self.sampling)
        if unknown:
            owners = [  # the families of this one's modalities that take them
                s.name
                for s in families()
                if set(unknown) & set(s.sampling) and set(s.modalities) & set(self.modalities)
            ]
            raise InvalidRequestError(
                f"{', '.join(unknown)} apply to {' and '.join(owners)} models; {name} is a {self.name}"
                if owners
                else f"unknown sampling option(s) {', '.join(unknown)}",
                param=unknown[0],
            )
        opts = {**self.sampling, **{k: v for k, v in given.items() if v is not None}}
        return self.sample_options(model, **opts) if self.sample_options else opts


_FAMILIES: dict[str, FamilySpec] = {}
_BUILTINS_READ: list[bool] = []  # [True] once the built-in families' modules have been read


def register_family(spec: FamilySpec) -> FamilySpec:
    """Declare a family; a second declaration of a name replaces the first (a test's toy family)."""
    _FAMILIES[spec.name] = spec
    return spec


def families(modality: str | None = None) -> list[FamilySpec]:
    """Every declared family, or those that fit ``modality``, in declaration order."""
    return [s for s in _catalog().values() if modality is None or modality in s.modalities]


def family_spec(name: str, modality: str | None = None) -> FamilySpec:
    spec = _catalog().get(name)
    if spec is None or (modality is not None and modality not in spec.modalities):
        names = ", ".join(s.name for s in families(modality)) or "none"
        what = f"{modality} family" if modality else "family"
        raise InvalidRequestError(f"unknown {what} {name!r}; expected one of {names}", param="family")
    return spec


def _catalog() -> dict[str, FamilySpec]:
    """The declarations, the built-in families' first. Each family module declares its ``SPEC``
    beside its code; they are read on first use, so that a family module can import this one."""
    if not _BUILTINS_READ:
        from genlab.families import diffusion, gan, transformer, vae, video_diffusion

        declared = dict(_FAMILIES)  # a family registered before first use keeps its place after them
        _FAMILIES.clear()
        _FAMILIES.update(
            {m.SPEC.name: m.SPEC for m in (transformer, gan, vae, diffusion, video_diffusion)} | declared
        )
        _BUILTINS_READ.append(True)
    return _FAMILIES
