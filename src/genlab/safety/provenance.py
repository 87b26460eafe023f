"""Provenance: was a file made by genlab, by which model, and has its content changed since?

Every artifact carries its provenance inside the file where the format allows it (a PNG tEXt
chunk, a WAV LIST/INFO comment, the JSON of a text artifact) or beside it (``.txt`` sidecar). The
provenance records the content's sha256, so an edit after generation is detected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from genlab.core import InvalidRequestError, load_artifact


@dataclass
class Verification:
    path: str
    made_by_genlab: bool
    content_unchanged: bool | None
    provenance: dict[str, Any] | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify(path: str | Path) -> Verification:
    path = Path(path)
    if not path.is_file():
        raise InvalidRequestError(f"no such file: {path}")
    if path.suffix.lower() not in (".png", ".wav", ".json", ".txt"):
        raise InvalidRequestError(
            f"{path.name}: genlab writes .png, .wav, .json and .txt artifacts; cannot check {path.suffix or 'this file'}"
        )
    try:
        artifact = load_artifact(path)
    except InvalidRequestError as e:
        return Verification(str(path), False, None, None, f"no genlab provenance found ({e.message})")
    except Exception as e:  # unreadable or foreign file: not ours, and not a crash
        return Verification(
            str(path), False, None, None, f"not a readable genlab artifact ({type(e).__name__})"
        )
    p = artifact.provenance
    unchanged = artifact.content_sha256() == p.sha256
    detail = (
        f"made by genlab: model {p.model} ({p.family}, {p.modality}), seed {p.seed}, at {p.created_at}; "
        + ("content unchanged" if unchanged else "CONTENT CHANGED since it was generated")
    )
    return Verification(str(path), p.generator == "genlab", unchanged, p.to_dict(), detail)
