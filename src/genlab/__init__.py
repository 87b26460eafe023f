"""genlab: a local-first generative AI workbench.

>>> import genlab
>>> m = genlab.load("gemma-3-270m")
>>> m.generate("The capital of France is", max_tokens=8, seed=1)[0].text
>>> for chunk in m.stream("Once upon a time", max_tokens=32):
...     print(chunk.text, end="")
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from genlab.core import (
    Artifact,
    AudioArtifact,
    GenerationRequest,
    Generator,
    GenlabError,
    ImageArtifact,
    ModelCard,
    SamplingParams,
    TextArtifact,
    TextChunk,
)
from genlab.registry import Registry, default_registry

try:
    __version__ = version("genlab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"


def load(name: str) -> Generator:
    """Load a registered model by name (built-in or under GENLAB_HOME/models); loaded once per process."""
    return default_registry().load(name)


def models() -> list[ModelCard]:
    """The cards of every registered model."""
    return [entry.card for entry in default_registry().list()]


__all__ = [
    "Artifact",
    "AudioArtifact",
    "GenerationRequest",
    "Generator",
    "GenlabError",
    "ImageArtifact",
    "ModelCard",
    "Registry",
    "SamplingParams",
    "TextArtifact",
    "TextChunk",
    "__version__",
    "default_registry",
    "load",
    "models",
]
