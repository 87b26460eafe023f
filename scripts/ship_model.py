"""Copy a model trained under GENLAB_HOME into the package, so it ships in genlab's wheel.

    genlab train text --data shakespeare --codec char --preset small --name shakespeare-char
    python scripts/ship_model.py shakespeare-char
    genlab train image --family diffusion --data digits --preset small
    python scripts/ship_model.py diffusion-digits
    genlab train audio --family vae --data spoken-digits --preset small --steps 3000
    python scripts/ship_model.py vae-spoken-digits

The published snapshot (weights, card; for diffusion the whole diffusers pipeline folder), the codec
and the data manifest are copied into src/genlab/shipped/NAME/ with a flat config.json;
checkpoints (optimiser state) are not shipped.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from genlab.core.io import atomic_write_json, sha256_file
from genlab.registry import Registry

TARGET = Path(__file__).resolve().parent.parent / "src" / "genlab" / "shipped"


def main(name: str) -> None:
    registry = Registry()
    entry = registry.get(name)
    if entry.kind not in ("transformer", "image", "audio", "video") or entry.path is None:
        sys.exit(f"error: {name!r} is not a model trained in genlab")
    out = TARGET / name
    shutil.rmtree(out, ignore_errors=True)
    config = dict(entry.config)
    snapshot = entry.path / Path(config["card"]).parent  # snapshots/step-N
    shutil.copytree(snapshot, out)
    weights = str(Path(config["weights"]).relative_to(Path(config["card"]).parent))
    for extra in ("codec.json", "tokenizer.json", "data_manifest.json"):
        if (entry.path / extra).is_file():
            shutil.copyfile(entry.path / extra, out / extra)
    card = entry.card
    card.source = f"shipped with genlab (src/genlab/shipped/{name})"
    card.save(out / "card.json")
    digest = sha256_file(out / weights)
    atomic_write_json(
        out / "config.json",
        {**config, "weights": weights, "card": "card.json", "weights_sha256": digest},
    )
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"shipped {name}: {size / 1e6:.1f} MB in {out}")


if __name__ == "__main__":
    main(sys.argv[1])
