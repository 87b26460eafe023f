"""Video diffusion on moving digits: what it costs on this CPU, and what a trained model makes.

Reported:
  training   seconds per 1,000 optimiser steps of the `tiny` and `small` presets' networks (batch
             as the preset, one torch thread: on a shared CPU two threads spin-wait each other);
  sampling   seconds per clip (8 frames, 32x32) at 20 and 50 DDIM steps, `small` network;
  quality    for a trained model (``--model NAME`` in GENLAB_HOME): per-frame class accuracy, temporal
             consistency, motion accuracy, speed error and per-frame FID, next to the real floor.
  Goals (issue 32): per-frame class accuracy >= 0.9, motion accuracy >= 0.9.
Prints a table and writes bench/results/video_families.json.

    OMP_NUM_THREADS=1 python bench/video_families.py [--steps 5] [--model video-diffusion-moving-digits]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from genlab.core.io import atomic_write_json

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "video_families.json"


def network(preset: str):
    from genlab.families.spec import family_spec
    from genlab.families.video_diffusion import VideoDiffusion, VideoDiffusionConfig

    chosen = family_spec("video-diffusion").presets[preset]
    model = VideoDiffusion(VideoDiffusionConfig(num_classes=80, **chosen.model))
    return model, chosen.train["batch_size"]


def training_cost(preset: str, steps: int) -> dict:
    from genlab.data.video import load_moving_digits

    data = load_moving_digits()
    model, batch = network(preset)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(steps + 1):  # the first step warms up and is not counted
        idx = torch.randint(len(data.train), (batch,), generator=g)
        started = time.perf_counter()
        loss = model.loss((data.train[idx], data.train_labels[idx]))
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        times.append(time.perf_counter() - started)
    per_step = sum(times[1:]) / steps
    parameters = sum(p.numel() for p in model.unet.parameters())
    return {
        "preset": preset,
        "batch": batch,
        "parameters": parameters,
        "seconds_per_1k_steps": round(per_step * 1000, 1),
    }


def sampling_cost(steps: int) -> dict:
    model, _ = network("small")
    model.eval()
    started = time.perf_counter()
    model.sample(torch.tensor([3, 17]), [torch.Generator().manual_seed(i) for i in range(2)], steps=steps)
    return {"ddim_steps": steps, "seconds_per_clip": round((time.perf_counter() - started) / 2, 3)}


def quality(name: str, samples: int) -> dict:
    from genlab.evaluation.video import evaluate_video_model

    return evaluate_video_model(name, samples=samples, options={"steps": 20}, write_card=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="optimiser steps timed per preset")
    parser.add_argument("--model", default=None, help="a trained video model to measure")
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch_threads": 1,
        },
        "training": [training_cost(p, args.steps) for p in ("tiny", "small")],
        "sampling": [sampling_cost(s) for s in (20, 50)],
    }
    if args.model:
        out["quality"] = quality(args.model, args.samples)
    console = Console()
    table = Table(title="video diffusion on moving-digits (8 frames, 32x32)")
    for column in ("what", "figure"):
        table.add_column(column)
    for t in out["training"]:
        table.add_row(
            f"train {t['preset']} ({t['parameters']:,} params, batch {t['batch']})",
            f"{t['seconds_per_1k_steps']} s / 1k steps",
        )
    for s in out["sampling"]:
        table.add_row(f"sample small, {s['ddim_steps']} DDIM steps", f"{s['seconds_per_clip']} s / clip")
    for k, v in (out.get("quality") or {}).items():
        if isinstance(v, float) and k in out["quality"].get("floor", {}):
            table.add_row(k, f"{v} (floor {out['quality']['floor'][k]})")
    console.print(table)
    atomic_write_json(RESULTS, out)


if __name__ == "__main__":
    main()
