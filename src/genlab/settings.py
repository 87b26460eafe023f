"""Where genlab keeps its state. Everything genlab writes lives under ``GENLAB_HOME``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path

    @classmethod
    def from_env(cls) -> Settings:
        """Read ``GENLAB_HOME`` (default ``~/.genlab``) each time: no hidden global state."""
        home = os.environ.get("GENLAB_HOME") or str(Path.home() / ".genlab")
        return cls(home=Path(home).expanduser().resolve())

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def outputs_dir(self) -> Path:
        return self.home / "outputs"
