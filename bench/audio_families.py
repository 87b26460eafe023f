"""GAN vs VAE vs diffusion on spoken digits: cost and quality, next to the floor and the codec's ceiling.

Reported:
  codec      real held-out clips re-synthesised by espeak-ng -> mel -> Griffin-Lim -> waveform:
             spectral convergence at 8, 32 and 64 iterations, decoding seconds per second of
             audio, and the shipped classifier's accuracy on the round-tripped clips (the ceiling
             for any generated sound, since every generated clip goes through the same vocoder);
  training   seconds per 1,000 optimiser steps (batch 64, the `small` presets, 32x32 spectrograms)
             over a fixed budget of steps;
  quality    per trained model (<family>-spoken-digits, shipped or in GENLAB_HOME): seconds of
             compute per second of generated audio (sampling + Griffin-Lim), FID and KID in the
             shipped classifier's feature space, the Inception-style score and class accuracy of
             the generated *sound* (spectrogram -> waveform -> spectrogram), next to the real-data
             floor (training vs held-out clips) and the round-trip ceiling.
  Goal: the shipped model's class accuracy >= 80% under the shipped classifier.
Writes spectrogram grids to docs/images/<family>-spoken-digits.png, example WAVs to docs/audio/,
prints a table and writes bench/results/audio_families.json.

    python bench/audio_families.py [--samples 500] [--train-steps 100] [--clips 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "audio_families.json"
IMAGES = ROOT / "docs" / "images"
AUDIO = ROOT / "docs" / "audio"
FAMILIES = ("gan", "vae", "diffusion")


def codec_round_trip(clips: int) -> dict:
    """Held-out clips synthesised afresh, through the codec and back."""
    from genlab.codecs.audio import MelCodec, spectral_convergence
    from genlab.data.audio import clip_plan, english_voices, is_val_variant, synthesise, voice_variants
    from genlab.evaluation.classifier import load_classifier

    codec = MelCodec()
    plan = [c for c in clip_plan(english_voices(), voice_variants(), seed=0) if is_val_variant(c.variant)]
    step = max(1, len(plan) // clips)
    plan = plan[::step][:clips]
    waves = np.stack([synthesise(c, codec) for c in plan])
    labels = torch.tensor([c.digit for c in plan])
    mels = codec.encode(waves)
    classifier, _ = load_classifier("spoken-digits")
    out: dict = {"clips": len(plan), "real_class_accuracy": _accuracy(classifier, mels, labels)}
    for iterations in (8, 32, 64):
        started = time.perf_counter()
        back = codec.decode(mels, iterations=iterations)
        seconds = time.perf_counter() - started
        sc = [spectral_convergence(w, b.numpy(), codec) for w, b in zip(waves, back, strict=True)]
        out[f"gl{iterations}"] = {
            "spectral_convergence": round(float(np.mean(sc)), 4),
            "decode_seconds_per_audio_second": round(seconds / (len(plan) * codec.seconds), 5),
            "round_trip_class_accuracy": _accuracy(classifier, codec.encode(back), labels),
        }
    return out


def _accuracy(classifier, mels: torch.Tensor, labels: torch.Tensor) -> float:
    return round(float((classifier.predict(mels) == labels).float().mean()), 4)


def training_speed(steps: int, families: tuple[str, ...]) -> dict[str, dict]:
    from genlab.core.settings import Settings
    from genlab.evaluation.classifier import fid_scorer
    from genlab.training.image import train_image_model

    out = {}
    with tempfile.TemporaryDirectory() as home:
        datasets = Path(home) / "datasets"
        real = Path(os.environ.get("GENLAB_HOME", Path.home() / ".genlab")) / "datasets"
        if real.is_dir():  # reuse the synthesised clips instead of timing espeak-ng
            datasets.symlink_to(real, target_is_directory=True)
        for family in families:
            result = train_image_model(
                family,
                "spoken-digits",
                preset_name="small",
                steps=steps,
                settings=Settings(home=Path(home)),
                progress=False,
                modality="audio",
                overrides={"eval_every": steps * 10, "warmup_steps": 0},
                gan_scorer=fid_scorer,
            )
            out[family] = {
                "seconds_per_1000_steps": round(1000 * result.seconds / steps, 1),
                "clips_per_second": round(result.items_per_second, 1),
            }
    return out


def examples(model, name: str, options: dict) -> None:
    """A spectrogram grid (one row per digit) and one WAV per digit."""
    from PIL import Image

    from genlab.codecs.image import image_grid, to_uint8

    per_class = 8
    labels = [c for c in range(len(model.classes)) for _ in range(per_class)]
    mels = model.sample(labels, list(range(len(labels))), **options)
    pictures = to_uint8(mels.flip(2))[:, 0].numpy()  # low frequencies at the bottom
    Image.fromarray(image_grid(list(pictures), columns=per_class, scale=3)).save(IMAGES / f"{name}.png")
    AUDIO.mkdir(parents=True, exist_ok=True)
    for a in model.generate(None, n=len(model.classes), seed=0, **options):
        a.save(AUDIO / f"{name}-{a.label}.wav")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--train-steps", type=int, default=100)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("GENLAB_THREADS", "2")))
    console = Console()

    from genlab.core import ModelNotFoundError
    from genlab.evaluation.models import evaluate_image_model
    from genlab.families.build import published_module
    from genlab.families.nets import count_parameters
    from genlab.registry import Registry

    console.print(f"[dim]codec round trip on {args.clips} held-out clips[/]")
    codec = codec_round_trip(args.clips)
    speed = {} if args.skip_training else training_speed(args.train_steps, FAMILIES)
    registry = Registry()
    IMAGES.mkdir(parents=True, exist_ok=True)
    families: dict[str, dict] = {}
    for family in FAMILIES:
        name = f"{family}-spoken-digits"
        try:
            model = registry.load(name)
        except ModelNotFoundError:
            families[family] = {"model": None, **speed.get(family, {})}
            continue
        options = model.options({})
        console.print(f"[dim]{family}: {args.samples} clips {options or ''}[/]")
        metrics = evaluate_image_model(name, samples=args.samples, write_card=False)
        families[family] = {
            "model": name,
            "parameters": count_parameters(published_module(model.model)),
            **speed.get(family, {}),
            **metrics,
        }
        examples(model, name, options)
    trained = [f for f in families.values() if f.get("model")]
    best = max(trained, key=lambda f: f.get("class_accuracy", 0)) if trained else None
    goals = {
        "best_model": best["model"] if best else None,
        "best_class_accuracy": best.get("class_accuracy") if best else None,
        "class_accuracy_goal_met": bool(best and best.get("class_accuracy", 0) >= 0.8),
    }

    ct = Table(title="codec: real clip -> mel -> Griffin-Lim -> waveform")
    for col in ("iterations", "spectral conv.", "s / audio s", "class acc"):
        ct.add_column(col, justify="right")
    for it in (8, 32, 64):
        c = codec[f"gl{it}"]
        ct.add_row(str(it), str(c["spectral_convergence"]), str(c["decode_seconds_per_audio_second"]),
                   str(c["round_trip_class_accuracy"]))  # fmt: skip
    ct.add_row("(no round trip)", "", "", str(codec["real_class_accuracy"]))
    console.print(ct)
    table = Table(title="audio families on spoken digits (32x32 log-mel, 1 s at 16 kHz)")
    for col in ("family", "params", "s / 1k steps", "s / audio s", "FID", "KID", "IS", "class acc"):
        table.add_column(col, justify="right")
    for family, f in families.items():
        table.add_row(
            family,
            f"{f['parameters']:,}" if "parameters" in f else "-",
            str(f.get("seconds_per_1000_steps", "-")),
            str(f.get("seconds_per_audio_second", "not trained")),
            *(str(f.get(k, "-")) for k in ("fid", "kid", "inception_score", "class_accuracy")),
        )
    if best:
        for label, ref in (("real floor", best["floor"]), ("round-trip ceiling", best["ceiling"])):
            table.add_row(label, "", "", "", *(str(ref.get(k, "-")) for k in ("fid", "kid", "inception_score",
                                                                             "class_accuracy")))  # fmt: skip
    console.print(table)
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
                "codec": codec,
                "families": families,
                "goals": goals,
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"wrote {RESULTS}, grids in {IMAGES} and clips in {AUDIO}")


if __name__ == "__main__":
    main()
