"""genlab: a local-first generative AI workbench.

>>> import genlab
>>> m = genlab.load("gemma-3-270m")
>>> m.generate("The capital of France is", max_tokens=8, seed=1)[0].text
>>> for chunk in m.stream("Once upon a time", max_tokens=32):
...     print(chunk.text, end="")
>>> genlab.generate("The capital of France is", max_tokens=8).artifacts[0].text   # through the gate
"""

from __future__ import annotations

import os

# OpenMP threads (llama.cpp's and torch's) must sleep, not spin, while they wait for work: with the
# default active policy, a laptop's other programs (or a second model) make every thread burn its
# core spinning and generation slows by an order of magnitude. The runtime reads this once, when it
# first loads, so it is set here, before anything imports torch or llama.cpp; a user's own value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from importlib.metadata import PackageNotFoundError, version
from typing import Any

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


def generate(
    prompt: str | None,
    *,
    model: str = "gemma-3-270m",
    policy: str = "default",
    n: int = 1,
    seed: int | None = None,
    **params: Any,
):
    """Generate through the one gate, as the server and the CLI do: the input policy, the model's
    queue, the output policy, provenance, the review rule and a record in GENLAB_HOME's database.

    Returns a ``genlab.pipeline.Released``: ``.artifacts`` (what passed), ``.held`` and ``.review``
    when the policy holds it for a person. A blocked prompt raises ``GuardBlocked``. (``load(name)``
    gives the raw ``Generator``, with no guardrails: library use, evaluation, research.)
    """
    from genlab.pipeline import Caller, default_pipeline

    pipeline = default_pipeline(policy)
    registry = pipeline.registry
    request = GenerationRequest(prompt=prompt, model=model, n=n, seed=seed, params=SamplingParams(**params))
    modality = registry.get(model).card.modality
    request = request.validate(needs_prompt=modality in ("text", "code"))
    return pipeline.generate(
        request, endpoint="python", modalities=(modality,), caller=Caller(actor="python")
    )


def embed(
    texts: str | list[str],
    *,
    model: str = "all-minilm-l6-v2",
    policy: str = "default",
    dimensions: int | None = None,
):
    """Sentence embeddings through the one gate (the input policy, the queue, a record): a
    (len(texts), dimensions) float32 array of unit vectors; cosine similarity is their dot product."""
    from genlab.pipeline import Caller, default_pipeline

    pipeline = default_pipeline(policy)
    batch = [texts] if isinstance(texts, str) else list(texts)
    vectors, _, _, review = pipeline.embed(
        model, batch, endpoint="python", caller=Caller(actor="python"), dimensions=dimensions
    )
    if review is not None:
        raise RuntimeError(f"the policy holds these embeddings for review ({review['id']})")
    return vectors


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
    "embed",
    "generate",
    "load",
    "models",
]
