"""Embedding speed: genlab's embedding model against sentence-transformers called directly.

The shipped all-MiniLM-L6-v2 embeds 512 sentences (batches of 32) through (a) genlab's model
object (registry -> EmbeddingModel) and (b) sentence-transformers' SentenceTransformer on the same
folder, interleaved (a b b a ...), 2 threads each. Goal: genlab >= 0.95x the direct rate. Prints a
table and writes bench/results/embeddings.json.

    python bench/embeddings.py [--runs 4]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "embeddings.json"
WORDS = [
    "the",
    "a",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "order",
    "shipped",
    "friday",
    "meeting",
    "room",
    "coffee",
    "report",
    "doctor",
    "train",
    "city",
]


def sentences(n: int, seed: int) -> list[str]:
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 24))) + "." for _ in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--sentences", type=int, default=512)
    args = parser.parse_args()
    import torch
    from sentence_transformers import SentenceTransformer

    from genlab.core.settings import Settings
    from genlab.generators.embedding import embedding_dir
    from genlab.registry import Registry

    settings = Settings.from_env()
    ours = Registry(settings).load("all-minilm-l6-v2")
    theirs = SentenceTransformer(str(embedding_dir(settings)), device="cpu")
    torch.set_num_threads(settings.threads_in_use)
    rates: dict[str, list[float]] = {"genlab": [], "sentence-transformers": []}
    for i in range(args.runs):
        batch = sentences(args.sentences, i)
        for name in (
            ("genlab", "sentence-transformers") if i % 2 == 0 else ("sentence-transformers", "genlab")
        ):
            started = time.perf_counter()
            if name == "genlab":
                ours.embed(batch, batch_size=32)
            else:
                theirs.encode(batch, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
            rates[name].append(len(batch) / (time.perf_counter() - started))
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = med["genlab"] / med["sentence-transformers"]
    table = Table(
        title=f"all-MiniLM-L6-v2, {args.sentences} sentences, batches of 32, {settings.threads_in_use} threads"
    )
    for col in ("engine", "sentences/s (median)", "runs", "vs direct"):
        table.add_column(col, justify="left" if col == "engine" else "right")
    for name, rate in med.items():
        table.add_row(
            name,
            f"{rate:.0f}",
            ", ".join(f"{r:.0f}" for r in rates[name]),
            f"{rate / med['sentence-transformers']:.3f}x",
        )
    Console().print(table)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {"platform": platform.platform(), "python": sys.version.split()[0]},
                "rates": rates,
                "median": med,
                "ratio": ratio,
                "goal_0_95x_met": ratio >= 0.95,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
