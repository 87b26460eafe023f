"""GAN vs VAE vs diffusion on digits: cost and quality, side by side, with references from the same run.

Reported:
  training   parameters, seconds per 1,000 optimiser steps (batch 64, the `small` presets) measured
             over a fixed budget of steps, images per second;
  quality    for the shipped conditional models (gan-digits, vae-digits, diffusion-digits): seconds
             to sample 1,000 images, FID / KID / precision / recall in the shipped classifier's
             feature space and class accuracy, next to the real-data floor (training images vs the
             held-out images, same metrics);
  samplers   the shipped diffusion model with DDPM-1000, DDIM-50, DDIM-20 and DPM-Solver++-20:
             speed and FID (same seeds, so the same initial noise, for every sampler);
  guidance   DDIM-50 at classifier-free guidance 0, 1, 2 and 3. Goals: DDIM-50 >= 15x faster than DDPM-1000 with FID within 20% of it;
             every shipped model's class accuracy >= 90%.
Writes a sample grid per family to docs/images/ (one row per class), prints a table and writes
bench/results/image_families.json.

    python bench/image_families.py [--samples 1000] [--sampler-samples 300] [--train-steps 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "image_families.json"
IMAGES = ROOT / "docs" / "images"
FAMILIES = ("gan", "vae", "diffusion")


def training_speed(steps: int) -> dict[str, dict]:
    from genlab.core.settings import Settings
    from genlab.evaluation.classifier import fid_scorer
    from genlab.training.image import train_image_model

    out = {}
    with tempfile.TemporaryDirectory() as home:
        for family in FAMILIES:
            result = train_image_model(
                family,
                "digits",
                preset_name="small",
                steps=steps,
                settings=Settings(home=Path(home)),
                progress=False,
                overrides={"eval_every": steps * 10, "warmup_steps": 0},
                gan_scorer=fid_scorer,
            )
            out[family] = {
                "seconds_per_1000_steps": round(1000 * result.seconds / steps, 1),
                "images_per_second": round(result.items_per_second, 1),
            }
    return out


def quality(name: str, samples: int, **options) -> dict:
    """`genlab eval image` without touching the card: seeds 0..samples-1, classes in turn."""
    from genlab.evaluation.models import evaluate_image_model

    return evaluate_image_model(name, samples=samples, options=options, write_card=False)


def grid(model, path: Path, per_class: int = 8, **options) -> None:
    from PIL import Image

    from genlab.codecs.image import image_grid, to_uint8

    k = len(model.classes)
    labels = [c for c in range(k) for _ in range(per_class)]
    images = to_uint8(model.sample(labels, list(range(len(labels))), **options))[:, 0].numpy()
    Image.fromarray(image_grid(list(images), columns=per_class, scale=4)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--sampler-samples", type=int, default=300)
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("GENLAB_THREADS", "2")))
    console = Console()

    from genlab.families.build import published_module
    from genlab.families.nets import count_parameters
    from genlab.registry import Registry

    registry = Registry()
    speed = {} if args.skip_training else training_speed(args.train_steps)
    IMAGES.mkdir(parents=True, exist_ok=True)
    families: dict[str, dict] = {}
    for family in FAMILIES:
        model = registry.load(f"{family}-digits")
        options = model.options({})
        console.print(f"[dim]{family}: sampling {args.samples} images {options or ''}[/]")
        families[family] = {
            "model": f"{family}-digits",
            "parameters": count_parameters(published_module(model.model)),
            **speed.get(family, {}),
            **quality(f"{family}-digits", args.samples, **options),
            "options": options,
        }
        grid(model, IMAGES / f"{family}-digits.png", **options)

    samplers = {}
    for label, sampler, steps in (
        ("DDPM-1000", "ddpm", 1000),
        ("DDIM-50", "ddim", 50),
        ("DDIM-20", "ddim", 20),
        ("DPM-Solver++-20", "dpm++", 20),
    ):
        console.print(f"[dim]diffusion sampler {label}: {args.sampler_samples} images[/]")
        samplers[label] = quality(
            "diffusion-digits", args.sampler_samples, sampler=sampler, steps=steps, guidance=1.0
        )
    guidance = {}
    for scale in (0.0, 1.0, 2.0, 3.0):
        console.print(f"[dim]diffusion DDIM-50, guidance {scale}: {args.sampler_samples} images[/]")
        guidance[str(scale)] = quality(
            "diffusion-digits", args.sampler_samples, sampler="ddim", steps=50, guidance=scale
        )
    ddpm, ddim = samplers["DDPM-1000"], samplers["DDIM-50"]
    speedup = ddpm["seconds_per_1000_images"] / ddim["seconds_per_1000_images"]
    fid_ratio = ddim["fid"] / ddpm["fid"]
    goals = {
        "ddim50_speedup_vs_ddpm1000": round(speedup, 1),
        "ddim50_speedup_goal_met": speedup >= 15,
        "ddim50_fid_vs_ddpm1000": round(fid_ratio, 3),
        "ddim50_fid_goal_met": fid_ratio <= 1.2,
        "class_accuracy_goal_met": all(f.get("class_accuracy", 0) >= 0.9 for f in families.values()),
    }

    table = Table(title="image families on digits (16x16, 10 classes)")
    for col in (
        "family",
        "params",
        "s / 1k steps",
        "s / 1k images",
        "FID",
        "KID",
        "precision",
        "recall",
        "class acc",
    ):
        table.add_column(col, justify="right")
    floor = families["gan"]["floor"]
    for family, f in families.items():
        table.add_row(
            family,
            f"{f['parameters']:,}",
            str(f.get("seconds_per_1000_steps", "-")),
            str(f["seconds_per_1000_images"]),
            str(f["fid"]),
            str(f["kid"]),
            str(f["precision"]),
            str(f["recall"]),
            str(f.get("class_accuracy")),
        )
    table.add_row(
        "real floor",
        "",
        "",
        "",
        str(floor["fid"]),
        str(floor["kid"]),
        str(floor["precision"]),
        str(floor["recall"]),
        str(floor.get("class_accuracy")),
    )
    console.print(table)
    gt = Table(title="diffusion guidance (DDIM-50)")
    for col in ("guidance", "s / 1k images", "FID", "precision", "recall", "class acc"):
        gt.add_column(col, justify="right")
    for scale, g in guidance.items():
        gt.add_row(
            scale,
            str(g["seconds_per_1000_images"]),
            str(g["fid"]),
            str(g["precision"]),
            str(g["recall"]),
            str(g.get("class_accuracy")),
        )
    st = Table(title="diffusion samplers (guidance 1)")
    for col in ("sampler", "s / 1k images", "FID", "KID", "class acc"):
        st.add_column(col, justify="right")
    for label, s in samplers.items():
        st.add_row(
            label,
            str(s["seconds_per_1000_images"]),
            str(s["fid"]),
            str(s["kid"]),
            str(s.get("class_accuracy")),
        )
    console.print(st)
    console.print(gt)
    console.print(goals)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {
                    "platform": platform.platform(),
                    "python": sys.version.split()[0],
                    "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                },
                "args": vars(args),
                "families": families,
                "samplers": samplers,
                "guidance": guidance,
                "goals": goals,
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"wrote {RESULTS} and grids in {IMAGES}")


if __name__ == "__main__":
    main()
