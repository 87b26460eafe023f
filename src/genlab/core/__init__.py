"""Core types shared by every room: artifacts, requests, the Generator protocol, cards, errors, settings.

Room ``core``: may import nothing of genlab (only the standard library and third-party packages)."""

from genlab.core.artifacts import (
    Artifact,
    AudioArtifact,
    ImageArtifact,
    Provenance,
    TextArtifact,
    VideoArtifact,
    load_artifact,
)
from genlab.core.card import ModelCard
from genlab.core.errors import (
    BackendError,
    ContextLengthError,
    GenlabError,
    IntegrityError,
    InvalidRequestError,
    ModelExistsError,
    ModelLoadError,
    ModelNotFoundError,
    UnsafePathError,
    UnsupportedError,
)
from genlab.core.generator import Generator, TextChunk
from genlab.core.request import GenerationRequest, SamplingParams, as_request

__all__ = [
    "Artifact",
    "AudioArtifact",
    "BackendError",
    "ContextLengthError",
    "GenerationRequest",
    "Generator",
    "GenlabError",
    "ImageArtifact",
    "IntegrityError",
    "InvalidRequestError",
    "ModelCard",
    "ModelExistsError",
    "ModelLoadError",
    "ModelNotFoundError",
    "Provenance",
    "SamplingParams",
    "TextArtifact",
    "TextChunk",
    "UnsafePathError",
    "UnsupportedError",
    "VideoArtifact",
    "as_request",
    "load_artifact",
]
