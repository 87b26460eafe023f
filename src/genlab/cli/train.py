"""`genlab train` and `genlab eval`: train models of every family and measure them."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from genlab.cli.console import console, print_json

train_app = typer.Typer(
    help="Train a model: `genlab train text --data shakespeare --codec char --preset small`.",
    no_args_is_help=True,
)
eval_app = typer.Typer(help="Evaluate a trained model on its held-out data.", no_args_is_help=True)


@train_app.command("text")
def train_text(
    data: Annotated[
        str, typer.Option(help="shakespeare, python, or a path to a text file or folder.")
    ] = "shakespeare",
    codec: Annotated[
        str, typer.Option(help="char (one token per character) or bpe (byte-level BPE).")
    ] = "char",
    preset: Annotated[
        str, typer.Option(help="tiny (seconds), small (nanoGPT's CPU recipe), base (hours on a CPU).")
    ] = "tiny",
    name: Annotated[str | None, typer.Option(help="Model name (default: <data>-<codec>).")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimiser steps (default: the preset's).")] = None,
    vocab_size: Annotated[int, typer.Option(help="BPE vocabulary size.")] = 2048,
    seed: Annotated[
        int, typer.Option(help="Seed for initialisation and batches: same seed, same model.")
    ] = 1337,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the model's last checkpoint.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train a transformer language model on text or code, on this CPU, with a live loss bar."""
    from pathlib import Path

    from genlab.training.text import train_text_model

    model_name = name or f"{Path(data).name if data not in ('shakespeare', 'python') else data}-{codec}"
    result = train_text_model(
        model_name,
        data,
        codec=codec,
        preset_name=preset,
        steps=steps,
        vocab_size=vocab_size,
        resume=resume,
        seed=seed,
        progress=not json_,
    )
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return
    _report(
        model_name,
        result,
        json_,
        f'genlab generate text --model {model_name} "ROMEO:"',
        rate_key="tokens_per_second",
    )


@train_app.command("image")
def train_image(
    family: Annotated[str, typer.Option(help="gan, vae or diffusion.")],
    data: Annotated[
        str, typer.Option(help="digits (16x16), digits8, glyphs (28x28), or an image folder.")
    ] = "digits",
    conditional: Annotated[
        bool,
        typer.Option(
            "--conditional/--unconditional", help="Condition on the class (a folder's sub-folders)."
        ),
    ] = True,
    preset: Annotated[
        str, typer.Option(help="tiny (seconds), small (minutes on a laptop), base (hours on a CPU).")
    ] = "small",
    name: Annotated[str | None, typer.Option(help="Model name (default: <family>-<data>).")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimiser steps (default: the preset's).")] = None,
    objective: Annotated[
        str | None, typer.Option(help="GAN objective: hinge (default, spectral norm) or wgan-gp.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for initialisation, batches and noise.")] = 0,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the model's last checkpoint.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train a GAN, a VAE or a diffusion model on images, on this CPU, with a live loss bar.

    Example: genlab train image --family diffusion --data digits --preset small
    """
    from genlab.training.image import default_name, train_image_model

    model_name = name or default_name(family, data)
    result = train_image_model(
        family,
        data,
        name=model_name,
        conditional=conditional,
        preset_name=preset,
        steps=steps,
        resume=resume,
        seed=seed,
        objective=objective,
        progress=not json_,
    )
    if os.environ.get("RANK", "0") != "0":
        return
    _report(model_name, result, json_, f'genlab generate image --model {model_name} --prompt "7" -n 16')


@train_app.command("classifier")
def train_classifier_cmd(
    data: Annotated[
        str, typer.Option(help="An image folder with one sub-folder per class (or digits, glyphs).")
    ],
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 2000,
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train the evaluation classifier for a dataset: FID features and the class-accuracy judge."""
    from genlab.data.images import load_image_dataset
    from genlab.evaluation.classifier import train_classifier
    from genlab.settings import Settings

    dataset = load_image_dataset(data)
    out = Settings.from_env().home / "classifiers" / dataset.name
    metrics = train_classifier(dataset, out, steps=steps, progress=not json_)
    if json_:
        print_json({"dataset": dataset.name, "path": str(out), **metrics})
    else:
        console.print(
            f"classifier for [bold]{dataset.name}[/]: held-out accuracy {metrics['val_accuracy']:.2%} ({out})"
        )


def _report(model_name: str, result, json_: bool, hint: str, rate_key: str = "items_per_second") -> None:
    """The end of a training run: a JSON summary, or the best metrics and what to try next."""
    summary = {
        "name": model_name,
        "steps": result.step,
        "best_val_loss": result.best_val_loss,
        "best_metrics": result.best_metrics,
        "seconds": round(result.seconds, 2),
        rate_key: round(result.items_per_second, 1),
        "peak_rss_mb": round(result.peak_rss_mb, 1),
    }
    if json_:
        print_json(summary)
    else:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.best_metrics.items() if k != "step")
        console.print(
            f"[bold]{model_name}[/]: best at step {result.best_metrics.get('step', '?')}: {metrics}"
        )
        console.print(f"try it: {hint}")


@eval_app.command("image")
def eval_image(
    model: Annotated[
        str, typer.Option("--model", "-m", help="A GAN, VAE or diffusion model trained in genlab.")
    ],
    samples: Annotated[int, typer.Option(help="Images to generate for the metrics.")] = 1000,
    steps: Annotated[int | None, typer.Option(help="Diffusion: sampling steps.")] = None,
    sampler: Annotated[str | None, typer.Option(help="Diffusion: ddpm, ddim or dpm++.")] = None,
    guidance: Annotated[float | None, typer.Option(help="Diffusion: classifier-free guidance scale.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the first sample.")] = 0,
    write_card: Annotated[
        bool, typer.Option("--write-card/--no-write-card", help="Record the metrics in the model card.")
    ] = True,
    json_: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """FID, KID, precision/recall and class accuracy against held-out images, next to the real-data floor."""
    from genlab.training.evaluate import evaluate_image_model

    metrics = evaluate_image_model(
        model,
        samples=samples,
        options={"steps": steps, "sampler": sampler, "guidance": guidance},
        seed=seed,
        write_card=write_card,
        progress=not json_,
    )
    if json_:
        print_json(metrics)
        return
    floor = metrics.get("floor", {})
    for k in ("fid", "kid", "precision", "recall", "class_accuracy", "bits_per_dim"):
        if k in metrics:
            ref = f"   (real-data floor {floor[k]})" if k in floor else ""
            console.print(f"{k:>16}  {metrics[k]}{ref}")
    console.print(
        f"[dim]{metrics['samples']} samples vs {metrics['real_images']} held-out images, "
        f"{metrics['feature_space']} features, {metrics['sampling_seconds']} s to sample[/]"
    )


@eval_app.command("text")
def eval_text(
    model: Annotated[str, typer.Option("--model", "-m", help="A transformer trained in genlab.")],
    batches: Annotated[int, typer.Option(help="Validation batches of 16 windows.")] = 50,
    json_: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Validation loss, bits per character (or byte) and perplexity on the model's held-out documents."""
    from genlab.training.evaluate import evaluate_text_model

    metrics = evaluate_text_model(model, batches=batches)
    if json_:
        print_json(metrics)
    else:
        for k, v in metrics.items():
            console.print(f"{k:>16}  {v}")


export_app = typer.Typer(
    help="Export a model trained in genlab to another engine's format.", no_args_is_help=True
)


@export_app.command("gguf")
def export_gguf_cmd(
    model: Annotated[str, typer.Argument(help="A BPE transformer trained in genlab.")],
    out: Annotated[
        str | None, typer.Option(help="Output .gguf path (default: GENLAB_HOME/exports/MODEL.gguf).")
    ] = None,
    register: Annotated[
        str | None, typer.Option(help="Also register the file as a llama.cpp model of this name.")
    ] = None,
) -> None:
    """Write a GGUF file that llama.cpp (and so genlab's llama.cpp backend) runs."""
    from pathlib import Path

    from genlab.backends.gguf_export import export_gguf
    from genlab.registry import default_registry

    registry = default_registry()
    path = export_gguf(registry, model, Path(out) if out else None)
    console.print(f"wrote {path}")
    if register:
        registry.add_gguf(register, path)
        console.print(f'registered [bold]{register}[/]: genlab generate text --model {register} "..."')
