"""Generative AI vs LLMs, measured: every family on every modality it fits, side by side.

`genlab compare --budget small|full` fills a table of family x modality:

    transformer  x text (Shakespeare), code (Python)     trained here; bits per character
    pretrained LLM (Gemma 3 270M) x text                 the same held-out text, the same measure
    GAN, VAE, diffusion x image (digits), audio (spoken digits)
                                                         FID next to the real-data floor, class
                                                         accuracy, precision/recall, bits per dim

with parameters, training time, sampling time per item, memory, a plot of quality against
sampling time, sample galleries, audio players and text samples, and a short explanation of each
family. ``small`` evaluates the shipped models (trained earlier, their training time from their
cards) and trains the missing cells for 45 s each; ``full`` trains every cell from scratch for the
same 10 minutes of training time (the equal compute budget) and evaluates on more samples.

Each cell's result is written as it finishes (``GENLAB_HOME/reports/compare/<budget>/cells``): a
rerun keeps the finished cells and redoes the rest; a cell that fails is reported with its error,
not hidden.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from genlab.core import InvalidRequestError
from genlab.core.io import atomic_write_json
from genlab.core.settings import Settings


@dataclass(frozen=True)
class Budget:
    name: str
    train_seconds: float  # training time of every cell trained here (the equal compute budget)
    samples: int  # images or clips per image/audio evaluation
    text_chars: int  # held-out characters scored for bits per character
    text_samples: int  # samples per text model (timed, shown)
    likelihood_images: int  # held-out images for the VAE's and diffusion's bits per dimension
    strata: int  # diffusion's variational bound: strata of t
    use_shipped: bool  # evaluate the shipped models instead of training every cell


BUDGETS = {
    "small": Budget("small", 45.0, 200, 3000, 3, 64, 8, True),
    "full": Budget("full", 600.0, 1000, 20000, 5, 300, 16, False),
}


@dataclass(frozen=True)
class Cell:
    key: str
    family: str  # transformer | gan | vae | diffusion | pretrained
    modality: str  # text | code | image | audio
    data: str
    shipped: str | None = None


# Each modality's data set here, in the order the report shows them.
MODALITY_DATA = {"text": "shakespeare", "code": "python", "image": "digits", "audio": "spoken-digits"}
MODALITIES = tuple(MODALITY_DATA)
# The pretrained LLM beside the families trained here: the same held-out text, the same measure.
PRETRAINED = Cell("pretrained-text", "pretrained", "text", "shakespeare", "gemma-3-270m")
PRETRAINED_EXPLAIN = {
    "title": "Pretrained LLM (Gemma 3 270M, llama.cpp)",
    "code": "src/genlab/backends/llamacpp.py",
    "text": "The same family at scale: a transformer pretrained by Google on trillions of tokens, "
    "quantised to 4 bits, run by llama.cpp. It is the LLM subset of generative AI: "
    "language in, language out, far more parameters and data than anything trained here.",
    "colour": "#7048e8",
}
SHIPPED_AS = {"transformer-text": "shakespeare-char"}  # shipped under its recipe's name, not <family>-<data>


def cells() -> list[Cell]:
    """Every declared family on every modality it fits (``families/spec.py``), and the pretrained LLM;
    a cell whose model ships (``<family>-<data>``) is evaluated from it on the small budget."""
    from genlab.families.spec import families
    from genlab.registry import builtin_entries

    shipped = set(builtin_entries())
    out = []
    for modality, data in MODALITY_DATA.items():
        for spec in families(modality):
            key = f"{spec.name}-{modality}"
            name = SHIPPED_AS.get(key, f"{spec.name}-{data}")
            out.append(Cell(key, spec.name, modality, data, name if name in shipped else None))
        if modality == "text":
            out.append(PRETRAINED)
    return out


def explanations() -> dict[str, dict[str, str]]:
    """What each family is, in a paragraph, where its code is, and its colour in the plots."""
    from genlab.families.spec import families

    told = {
        s.name: {"title": s.title, "code": s.source, "text": s.explain, "colour": s.colour}
        for s in families()
    }
    return {**told, "pretrained": PRETRAINED_EXPLAIN}


class CompareError(InvalidRequestError):
    """A budget, modality or data problem, said before anything runs."""


def budget_for(name: str) -> Budget:
    if name not in BUDGETS:
        raise CompareError(f"unknown budget {name!r}; expected one of {', '.join(BUDGETS)}", param="budget")
    return BUDGETS[name]


def data_missing(modality: str) -> str | None:
    """Why a modality's data cannot be made here (with what to install), or None."""
    if modality == "audio" and shutil.which("espeak-ng") is None:
        return "the spoken-digits data needs espeak-ng: apt-get install espeak-ng"
    if modality == "image":
        try:
            import sklearn  # noqa: F401
        except ImportError:
            return "the digits data needs scikit-learn: pip install scikit-learn"
    return None


def report_dir(budget: str, settings: Settings | None = None) -> Path:
    return (settings or Settings.from_env()).reports_dir / "compare" / budget


def latest_report(settings: Settings | None = None) -> Path | None:
    pointer = (settings or Settings.from_env()).reports_dir / "compare" / "latest.json"
    if not pointer.is_file():
        return None
    path = Path(json.loads(pointer.read_text("utf-8"))["dir"])
    return path if (path / "report.json").is_file() else None


# -- one cell ------------------------------------------------------------------------------------------
def _trained(cell: Cell, budget: Budget, registry) -> tuple[str, dict[str, Any]]:
    """The model to evaluate for a cell: shipped (small budget) or trained here for the budget."""
    if cell.family == "pretrained" or (budget.use_shipped and cell.shipped):
        entry = registry.get(cell.shipped)
        metrics = entry.card.metrics or {}
        return cell.shipped, {
            "trained_here": False,
            "train_seconds": metrics.get("train_seconds"),  # not timed: None
            "train_steps": metrics.get("step"),
        }
    name = f"compare-{budget.name}-{cell.key}"
    if name in registry.names():
        card = registry.get(name).card
        return name, {"trained_here": True, **card.metrics.get("compare", {})}
    partial = registry.settings.models_dir / name
    if partial.exists():  # an interrupted run: this cell starts again
        shutil.rmtree(partial)
    overrides = {"max_seconds": budget.train_seconds, "eval_every": 100}
    started = time.perf_counter()
    if cell.family == "transformer":
        from genlab.training.text import train_text_model

        result = train_text_model(
            name,
            cell.data,
            codec="char",
            preset_name="small",
            steps=100_000,
            progress=False,
            overrides=overrides,
            settings=registry.settings,
        )
    else:
        from genlab.evaluation.classifier import fid_scorer
        from genlab.training.image import train_image_model

        result = train_image_model(
            cell.family,
            cell.data,
            name=name,
            preset_name="small",
            steps=100_000,
            progress=False,
            overrides=overrides,
            modality=cell.modality,
            settings=registry.settings,
            gan_scorer=fid_scorer,
        )
    info = {"train_seconds": round(time.perf_counter() - started, 1), "train_steps": result.step}
    registry.record_metrics(name, "compare", info)
    return name, {"trained_here": True, **info}


def _held_out_text(data: str, settings: Settings) -> str:
    from genlab.data.text import load_corpus

    corpus = load_corpus(data, settings, seed=0)
    return "\n".join(d.text for d in corpus.val)


def _distinct_2(texts: list[str]) -> float:
    """Share of distinct word bigrams among all bigrams of the samples (a standard diversity measure)."""
    grams = [tuple(w[i : i + 2]) for t in texts for w in [t.split()] for i in range(len(w) - 1)]
    return round(len(set(grams)) / len(grams), 4) if grams else 0.0


def _text_cell(cell: Cell, name: str, budget: Budget, registry, out: Path) -> dict[str, Any]:
    from genlab.core import GenerationRequest, SamplingParams
    from genlab.evaluation.models import evaluate_text_model

    generator = registry.load(name)
    held_out_all = _held_out_text(cell.data, registry.settings)  # read once: scored and counted below
    held_out = held_out_all[: budget.text_chars]
    if cell.family == "pretrained":
        bpc = generator.bits_per_char(held_out)
        weights_mb = generator.model_path.stat().st_size / 2**20
    else:
        bpc = evaluate_text_model(name, batches=20 if budget.use_shipped else 50)["bits_per_char"]
        weights_mb = (generator.card.parameters or 0) * 4 / 2**20
    prompt = {"text": "ROMEO:\n", "code": "def "}[cell.modality]
    request = GenerationRequest(
        prompt=prompt, n=budget.text_samples, seed=0, params=SamplingParams(max_tokens=120, temperature=0.8)
    ).validate()
    started = time.perf_counter()
    texts = [a.text for a in generator.generate(request)]
    per_item = (time.perf_counter() - started) / len(texts)
    # the unigram baseline: bits per character of a model that knows only character frequencies
    counts: dict[str, int] = {}
    for ch in held_out_all[:200_000]:
        counts[ch] = counts.get(ch, 0) + 1
    total = sum(counts.values())
    unigram = -sum(c / total * math.log2(c / total) for c in counts.values())
    return {
        "quality": {
            "metric": "bits per character",
            "value": round(bpc, 4),
            "floor": round(unigram, 4),
            "floor_label": "unigram baseline",
            "lower_is_better": True,
        },
        "likelihood": {"metric": "bits per character", "value": round(bpc, 4)},
        "diversity": {"metric": "distinct word bigrams", "value": _distinct_2(texts)},
        "sampling_seconds_per_item": round(per_item, 3),
        "item": "120 tokens",
        "weights_mb": round(weights_mb, 2),
        "samples": [prompt + t for t in texts],
        "prompt": prompt,
    }


def _media_cell(cell: Cell, name: str, budget: Budget, registry, out: Path) -> dict[str, Any]:
    import torch
    from PIL import Image

    from genlab.codecs.image import image_grid
    from genlab.data.datasets import load_image_dataset
    from genlab.evaluation.models import evaluate_image_model

    metrics = evaluate_image_model(
        name,
        samples=budget.samples,
        write_card=False,
        iwae_images=budget.likelihood_images,
        modality=cell.modality,
        judge_clips=10,  # whisper-tiny-en hears 10 clips of each audio model (and 10 real ones)
    )
    model = registry.load(name)
    likelihood = None
    if "bits_per_dim" in metrics:
        likelihood = {"metric": "bits per dimension (IWAE bound)", "value": metrics["bits_per_dim"]}
    elif model.family == "diffusion":
        data = load_image_dataset(cell.data, registry.settings)
        n = min(budget.likelihood_images, len(data.val))
        y = data.val_labels[:n] if model.classes else None
        bpd = model.model.bits_per_dim(data.val[:n], y, samples=budget.strata)
        likelihood = {"metric": "bits per dimension (variational bound)", "value": round(bpd, 4)}
    gallery = out / "gallery"
    gallery.mkdir(parents=True, exist_ok=True)
    k = len(model.classes) or 1
    files: list[str] = []
    if cell.modality == "image":  # four samples of every class, a class after another
        labels = [i % k for i in range(4 * k)] if model.classes else None
        with torch.no_grad():
            pixels = model.sample(labels, list(range(4 * k)), **model.options({}))
        tiles = [((p[0] + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy() for p in pixels]
        grid = image_grid(
            [t for _, t in sorted(enumerate(tiles), key=lambda it: (it[0] % k, it[0]))], columns=8, scale=4
        )
        Image.fromarray(grid).save(gallery / f"{cell.key}.png")
        files.append(f"gallery/{cell.key}.png")
    else:  # one watermarked clip per class for the first classes, as `genlab generate audio` writes them
        from genlab.core import GenerationRequest

        for c, label in enumerate((model.classes or [None])[:4]):
            clip = model.generate(GenerationRequest(prompt=label, seed=c))[0]
            path = clip.save(gallery / f"{cell.key}-{label or c}.wav")
            files.append(f"gallery/{path.name}")
    floor = metrics.get("floor", {})
    return {
        "quality": {
            "metric": "FID",
            "value": metrics["fid"],
            "floor": floor.get("fid"),
            "floor_label": "real data",
            "lower_is_better": True,
        },
        "class_accuracy": metrics.get("class_accuracy"),
        "class_accuracy_floor": floor.get("class_accuracy"),
        "word_accuracy": metrics.get("word_accuracy"),  # audio: what Whisper hears
        "word_accuracy_real": metrics.get("word_accuracy_real"),
        "precision": metrics.get("precision"),
        "likelihood": likelihood,
        "diversity": {"metric": "recall", "value": metrics.get("recall")},
        "sampling_seconds_per_item": round(metrics["sampling_seconds"] / metrics["samples"], 5),
        "item": "1 s clip" if cell.modality == "audio" else "image",
        "weights_mb": round((model.card.parameters or 0) * 4 / 2**20, 2),
        "gallery": files,
        "feature_space": metrics.get("feature_space"),
    }


def run_cell(cell: Cell, budget: Budget, out: Path, registry) -> dict[str, Any]:
    started = time.perf_counter()
    base = {"key": cell.key, "family": cell.family, "modality": cell.modality, "data": cell.data}
    missing = data_missing(cell.modality)
    if missing:
        return {**base, "status": "failed", "error": missing}
    try:
        name, training = _trained(cell, budget, registry)
        entry = registry.get(name)
        evaluate = _text_cell if cell.modality in ("text", "code") else _media_cell
        result = evaluate(cell, name, budget, registry, out)
        return {
            **base,
            "status": "ok",
            "model": name,
            "parameters": entry.card.parameters,
            **training,
            **result,
            "seconds": round(time.perf_counter() - started, 1),
        }
    except Exception as e:  # a failed family is reported, not hidden; the others go on
        return {
            **base,
            "status": "failed",
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(limit=4),
            "seconds": round(time.perf_counter() - started, 1),
        }


# -- the whole comparison ----------------------------------------------------------------------------
def run_compare(
    budget_name: str = "small",
    *,
    fresh: bool = False,
    modalities: list[str] | None = None,
    settings: Settings | None = None,
    on_cell: Callable[[Cell, dict[str, Any] | None], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) every cell, then write report.json and the plot (the HTML page renders from
    report.json through ``genlab.reports``)."""
    from genlab.registry import Registry

    budget = budget_for(budget_name)
    for m in modalities or ():
        if m not in MODALITIES:
            raise CompareError(
                f"unknown modality {m!r}; expected one of {', '.join(MODALITIES)}", param="modality"
            )
        missing = data_missing(m)
        if missing:
            raise CompareError(f"no {m} data: {missing}", param="modality")
    settings = settings or Settings.from_env()
    registry = Registry(settings)
    out = report_dir(budget.name, settings)
    cells_dir = out / "cells"
    if fresh and out.exists():
        shutil.rmtree(out)
    cells_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = []
    for cell in cells():
        if modalities and cell.modality not in modalities:
            continue
        path = cells_dir / f"{cell.key}.json"
        if path.is_file():
            done = json.loads(path.read_text("utf-8"))
            if done.get("status") == "ok":  # resumed: a finished cell is not run again
                results.append({**done, "resumed": True})
                continue
        if on_cell:
            on_cell(cell, None)
        result = run_cell(cell, budget, out, registry)
        atomic_write_json(path, result)
        results.append(result)
        if on_cell:
            on_cell(cell, result)
    report = {
        "budget": asdict(budget),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "cells": results,
        "explanations": explanations(),
    }
    atomic_write_json(out / "report.json", report)
    _plot(results, out / "quality-vs-speed.png")
    atomic_write_json(
        settings.reports_dir / "compare" / "latest.json", {"dir": str(out), "budget": budget.name}
    )
    report["dir"] = str(out)
    return report


def _plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if r["status"] == "ok"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = {k: v["colour"] for k, v in explanations().items()}
    for ax, kinds, title in (
        (axes[0], ("image", "audio"), "images and audio: FID (lower is better)"),
        (axes[1], ("text", "code"), "text and code: bits per character (lower is better)"),
    ):
        for r in (r for r in ok if r["modality"] in kinds):
            x, y = r["sampling_seconds_per_item"], r["quality"]["value"]
            ax.scatter(
                [x],
                [y],
                s=60,
                color=colours.get(r["family"], "k"),
                marker="o" if r["modality"] in ("image", "text") else "s",
            )
            ax.annotate(r["key"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xscale("log")
        if kinds[0] == "image":  # FIDs span orders of magnitude (a briefly trained model is far off)
            ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("sampling seconds per item (log)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
