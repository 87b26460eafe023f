"""Reviewers' decisions -> training data, in TRL's column names.

One decided review item of a recipe (a row of ``ReviewQueue.export``) gives:

| decision | SFT (prompt, completion) | DPO (prompt, chosen, rejected) | KTO (prompt, completion, label) |
|---|---|---|---|
| approve | the output | - | the output, true |
| edit | the edited output | edited over the original | edited, true; original, false |
| reject | - | - | the output, false |

The prompt is the one the model saw: the recipe records the distinct prompts it sent, after the
input policy's redactions (``RecipePassage.recorded_request``), so PII the input policy redacted
stays redacted. An item whose output came from several prompts (a quiz asks once per question) or
that recorded none (decided before prompts were recorded) is skipped and counted. Rows are
de-duplicated. ``write`` puts the three files and a manifest under
``GENLAB_HOME/datasets/tune/<recipe>/`` in one rename.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genlab.core import InvalidRequestError
from genlab.core.io import atomic_write_json
from genlab.core.settings import Settings

#: approved and edited outputs (SFT rows) a tune needs by default: fewer teach nothing but noise
MIN_DECISIONS = 8

#: dataset -> its columns, as TRL's trainers name them (SFTTrainer, DPOTrainer, KTOTrainer)
COLUMNS = {
    "sft": ("prompt", "completion"),
    "dpo": ("prompt", "chosen", "rejected"),
    "kto": ("prompt", "completion", "label"),
}


class NotEnoughDecisions(InvalidRequestError):
    """Too few review decisions to tune on."""


def item_hash(row: dict[str, Any]) -> str:
    """The sha256 of a decided item as exported (what the adapter's card lists it was trained on)."""
    return hashlib.sha256(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


@dataclass
class TuneData:
    """The datasets one recipe's decisions make, and what was left out and why."""

    recipe: str
    sft: list[dict[str, Any]] = field(default_factory=list)
    dpo: list[dict[str, Any]] = field(default_factory=list)
    kto: list[dict[str, Any]] = field(default_factory=list)
    items: list[str] = field(default_factory=list)  # item_hash of every decision used
    models: Counter[str] = field(default_factory=Counter)  # the models that made the outputs
    skipped: Counter[str] = field(default_factory=Counter)

    def counts(self) -> dict[str, int]:
        return {
            "decisions": len(self.items),
            "sft": len(self.sft),
            "dpo": len(self.dpo),
            "kto": len(self.kto),
        }

    def manifest(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "counts": self.counts(),
            "skipped": dict(self.skipped),
            "models": dict(self.models),
            "items_sha256": self.items,
            "columns": {k: list(v) for k, v in COLUMNS.items()},
        }

    def preview(self, n: int = 2, width: int = 120) -> dict[str, list[dict[str, Any]]]:
        """The first ``n`` rows of each dataset, long strings cut to their last ``width`` characters
        for a prompt (its end is what matters) and their first for the rest."""

        def cut(key: str, value: Any) -> Any:
            if not isinstance(value, str) or len(value) <= width:
                return value
            return "..." + value[-width:] if key == "prompt" else value[:width] + "..."

        return {
            kind: [{k: cut(k, v) for k, v in row.items()} for row in getattr(self, kind)[:n]]
            for kind in COLUMNS
        }

    def require(self, minimum: int = MIN_DECISIONS) -> None:
        """Refuse a tune on fewer than ``minimum`` SFT rows, saying how many more are needed."""
        have = len(self.sft)
        if have >= minimum:
            return
        if not self.items:
            raise NotEnoughDecisions(
                f"no usable review decisions for recipe {self.recipe!r} in this home"
                + (f" ({_skips(self.skipped)})" if self.skipped else ""),
                hint=f"run the recipe with review on and approve or edit at least {minimum} outputs",
            )
        raise NotEnoughDecisions(
            f"{have} approved or edited outputs of {self.recipe!r}; a tune needs at least {minimum} "
            f"(approve or edit {minimum - have} more)"
        )


def _skips(skipped: Counter[str]) -> str:
    return ", ".join(f"{n} {why}" for why, n in skipped.most_common())


def _unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(json.dumps(row, sort_keys=True), row)
    return list(seen.values())


def build(rows: list[dict[str, Any]], recipe: str) -> TuneData:
    """The SFT, DPO and KTO rows of ``recipe``'s decided items among ``rows`` (export rows)."""
    data = TuneData(recipe)
    for row in rows:
        if row.get("endpoint") != f"apps.{recipe}":
            continue
        prompts = row.get("model_prompts") or []
        output, edited = row.get("output"), row.get("edited_output")
        if row.get("modality") not in ("text", "code") or not isinstance(output, str):
            data.skipped["not text"] += 1
            continue
        if len(prompts) != 1:
            data.skipped["made from several prompts" if prompts else "without a recorded prompt"] += 1
            continue
        prompt, decision = prompts[0], row.get("decision")
        if decision == "approved":
            data.sft.append({"prompt": prompt, "completion": output})
            data.kto.append({"prompt": prompt, "completion": output, "label": True})
        elif decision == "edited" and isinstance(edited, str):
            data.sft.append({"prompt": prompt, "completion": edited})
            data.kto.append({"prompt": prompt, "completion": edited, "label": True})
            if edited != output:  # an edit that changed nothing is an approval, not a preference
                data.dpo.append({"prompt": prompt, "chosen": edited, "rejected": output})
                data.kto.append({"prompt": prompt, "completion": output, "label": False})
        elif decision == "rejected":
            data.kto.append({"prompt": prompt, "completion": output, "label": False})
        else:
            data.skipped[f"decided {decision}"] += 1
            continue
        data.items.append(item_hash(row))
        data.models[str(row.get("model"))] += 1
    data.sft, data.dpo, data.kto = _unique(data.sft), _unique(data.dpo), _unique(data.kto)
    return data


def dataset_dir(settings: Settings, recipe: str) -> Path:
    return settings.datasets_dir / "tune" / recipe


def write(data: TuneData, settings: Settings) -> Path:
    """``sft.jsonl``, ``dpo.jsonl``, ``kto.jsonl`` and ``manifest.json``, replacing an earlier
    dataset of the recipe in one rename (a reader sees the old files or the new, never a mix)."""
    from genlab.training.checkpoint import commit_directory

    def fill(tmp: Path) -> None:
        for kind in COLUMNS:
            lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in getattr(data, kind))
            (tmp / f"{kind}.jsonl").write_text(lines, "utf-8")
        atomic_write_json(tmp / "manifest.json", data.manifest())

    return commit_directory(dataset_dir(settings, data.recipe).parent, data.recipe, fill)


def read(settings: Settings, recipe: str) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """A written dataset: its manifest and rows; a clear error where ``tune data`` has not run."""
    directory = dataset_dir(settings, recipe)
    if not (directory / "manifest.json").is_file():
        raise InvalidRequestError(
            f"no tuning data for recipe {recipe!r} in this home",
            hint=f"make it first: genlab tune data --recipe {recipe}",
        )
    manifest = json.loads((directory / "manifest.json").read_text("utf-8"))
    rows = {
        kind: [json.loads(line) for line in (directory / f"{kind}.jsonl").read_text("utf-8").splitlines()]
        for kind in COLUMNS
    }
    return manifest, rows


def prepare(
    rows: list[dict[str, Any]],
    recipe: str,
    settings: Settings,
    *,
    minimum: int = MIN_DECISIONS,
    save: bool = True,
) -> dict[str, Any]:
    """What `genlab tune data` and ``POST /v1/genlab/tune/data`` answer: the counts, what was
    skipped, a preview, and (``save``) where the datasets were written. Refused, writing nothing,
    where there are fewer than ``minimum`` SFT rows."""
    data = build(rows, recipe)
    data.require(minimum)
    out = {**data.manifest(), "preview": data.preview()}
    del out["items_sha256"]
    if save:
        out["path"] = str(write(data, settings))
    return out
