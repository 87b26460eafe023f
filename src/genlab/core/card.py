"""ModelCard: what a model is, what it was trained on, how good it is, and how to make it again."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genlab.core.errors import ModelLoadError
from genlab.core.io import atomic_write_json


@dataclass
class ModelCard:
    name: str
    family: str  # transformer | gan | vae | diffusion
    modality: str  # text | code | image | audio
    backend: str  # llamacpp | openai_compat | torch
    description: str = ""
    parameters: int | None = None  # parameter count; None when unknown (a remote model)
    training_data: str = ""
    licence: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    reproduce: str = ""  # the command that reproduces the model
    context_length: int | None = None
    source: str = ""  # where the weights come from (package, file, URL)
    builtin: bool = False
    chat: str = ""  # how its chats are rendered: its own chat template, or the plain transcript

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        missing = {"name", "family", "modality", "backend"} - set(known)
        if missing:
            raise ModelLoadError(f"model card lacks {', '.join(sorted(missing))}")
        return cls(**known)

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        try:
            data = json.loads(Path(path).read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ModelLoadError(f"cannot read model card {path}: {e}") from None
        return cls.from_dict(data)
