"""The invisible watermark: how loud it is, how often it is found after common edits, how often it lies.

Images: grids of 16 held-out digits at 8x (592x592, what `genlab generate image` writes) and of
16 glyphs at 4x; audio: held-out spoken digits re-synthesised by espeak-ng (1 s, 16 kHz).
Per edit: the detection rate on marked items (true positives) and on the same items unmarked
(false positives), and the mean detector statistic z (threshold 4). Distortion: PSNR (images) and
SNR (audio) of the mark. Timing: milliseconds to embed and to detect, per item.

    python bench/watermark.py [--items 40]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table
from scipy.signal import resample_poly

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "watermark.json"
KEY = bytes(range(32))


def jpeg(x: np.ndarray, quality: int = 75) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())))


def half(x: np.ndarray) -> np.ndarray:
    return np.asarray(
        Image.fromarray(x).resize((x.shape[1] // 2, x.shape[0] // 2), Image.Resampling.BILINEAR)
    )


def noise(x: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    return np.clip(x + np.random.default_rng(seed).normal(0, sigma, x.shape), 0, 255).astype(np.uint8)


IMAGE_EDITS = {
    "none": lambda x, i: x,
    "JPEG q75": lambda x, i: jpeg(x, 75),
    "JPEG q50": lambda x, i: jpeg(x, 50),
    "resize 0.5x": lambda x, i: half(x),
    "noise σ=5": lambda x, i: noise(x, 5, i),
    "noise σ=10": lambda x, i: noise(x, 10, i),
    "crop 10%": lambda x, i: x[: int(x.shape[0] * 0.9), : int(x.shape[1] * 0.9)],
}


def audio_noise(x: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    power = (x**2).mean() / 10 ** (snr_db / 10)
    return x + np.random.default_rng(seed).normal(0, np.sqrt(power), len(x))


AUDIO_EDITS = {
    "none": (lambda x, i: x, 16000),
    "resample 8 kHz": (lambda x, i: resample_poly(x, 1, 2), 8000),
    "resample 44.1 kHz": (lambda x, i: resample_poly(x, 441, 160), 44100),
    "noise 20 dB SNR": (lambda x, i: audio_noise(x, 20, i), 16000),
    "noise 10 dB SNR": (lambda x, i: audio_noise(x, 10, i), 16000),
    "gain 0.5": (lambda x, i: x * 0.5, 16000),
}


def image_items(n: int) -> list[np.ndarray]:
    from genlab.codecs.image import image_grid, to_uint8
    from genlab.core.settings import Settings
    from genlab.data.images import load_digits, load_glyphs

    digits = to_uint8(load_digits(16).val)[:, 0].numpy()
    glyphs = to_uint8(load_glyphs(Settings.from_env()).val)[:, 0].numpy()
    items = []
    for i in range(n):
        source, scale = (digits, 8) if i % 2 == 0 else (glyphs, 4)
        start = (i * 16) % (len(source) - 16)
        items.append(image_grid(list(source[start : start + 16]), scale=scale))
    return items


def audio_items(n: int) -> list[np.ndarray]:
    from genlab.codecs.audio import MelCodec
    from genlab.data.audio import clip_plan, english_voices, is_val_variant, synthesise, voice_variants

    plan = [c for c in clip_plan(english_voices(), voice_variants(), seed=0) if is_val_variant(c.variant)]
    step = max(1, len(plan) // n)
    return [synthesise(c, MelCodec()) for c in plan[::step][:n]]


def run(items, embed, detect, edits) -> dict:
    marked, distortion, embed_ms, detect_ms = [], [], [], []
    for x in items:
        started = time.perf_counter()
        m, _ = embed(x)
        embed_ms.append((time.perf_counter() - started) * 1000)
        marked.append(m)
        err = ((m.astype(np.float64) - x) ** 2).mean()
        distortion.append(err)
    out = {"embed_ms": round(float(np.mean(embed_ms)), 1)}
    for name, edit in edits.items():
        fn, rate = edit if isinstance(edit, tuple) else (edit, None)
        tp, fp, z_marked, z_clean = 0, 0, [], []
        for i, (x, m) in enumerate(zip(items, marked, strict=True)):
            started = time.perf_counter()
            d = detect(fn(m, i), rate)
            detect_ms.append((time.perf_counter() - started) * 1000)
            c = detect(fn(x, i), rate)
            tp += d.present
            fp += c.present
            z_marked.append(d.z or 0.0)
            z_clean.append(c.z or 0.0)
        out[name] = {
            "detection_rate": round(tp / len(items), 3),
            "false_positive_rate": round(fp / len(items), 3),
            "z_marked_mean": round(float(np.mean(z_marked)), 2),
            "z_marked_min": round(float(np.min(z_marked)), 2),
            "z_unmarked_mean": round(float(np.mean(z_clean)), 2),
            "z_unmarked_max": round(float(np.max(z_clean)), 2),
        }
    out["detect_ms"] = round(float(np.mean(detect_ms)), 1)
    out["_distortion_mse"] = distortion
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=40)
    args = parser.parse_args()
    console = Console()
    from genlab.safety.watermark import detect_audio, detect_image, embed_audio, embed_image

    console.print(f"[dim]images: {args.items} grids[/]")
    pictures = image_items(args.items)
    images = run(pictures, lambda x: embed_image(x, KEY), lambda x, _: detect_image(x, KEY), IMAGE_EDITS)
    mse = images.pop("_distortion_mse")
    images["psnr_db_mean"] = round(float(np.mean([10 * np.log10(255**2 / e) for e in mse])), 2)
    images["psnr_db_min"] = round(float(np.min([10 * np.log10(255**2 / e) for e in mse])), 2)
    console.print(f"[dim]audio: {args.items} clips[/]")
    clips = audio_items(args.items)
    audio = run(
        clips, lambda x: embed_audio(x, 16000, KEY), lambda x, rate: detect_audio(x, rate, KEY), AUDIO_EDITS
    )
    mse = audio.pop("_distortion_mse")
    snrs = [10 * np.log10((c**2).mean() / e) for c, e in zip(clips, mse, strict=True)]
    audio["snr_db_mean"] = round(float(np.mean(snrs)), 2)
    audio["snr_db_min"] = round(float(np.min(snrs)), 2)

    for title, res, edits, unit in (
        ("image watermark", images, IMAGE_EDITS, f"PSNR {images['psnr_db_mean']} dB"),
        ("audio watermark", audio, AUDIO_EDITS, f"SNR {audio['snr_db_mean']} dB"),
    ):
        table = Table(title=f"{title} ({unit}; embed {res['embed_ms']} ms, detect {res['detect_ms']} ms)")
        for col in (
            "edit",
            "detected (marked)",
            "false positives (unmarked)",
            "z marked mean/min",
            "z unmarked max",
        ):
            table.add_column(col, justify="right")
        for name in edits:
            r = res[name]
            table.add_row(name, f"{r['detection_rate']:.0%}", f"{r['false_positive_rate']:.0%}",
                          f"{r['z_marked_mean']} / {r['z_marked_min']}", str(r["z_unmarked_max"]))  # fmt: skip
        console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {"platform": platform.platform(), "python": sys.version.split()[0]},
                "args": vars(args),
                "threshold_z": 4.0,
                "images": images,
                "audio": audio,
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
