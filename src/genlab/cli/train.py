"""`genlab train` and `genlab eval`: train models of every family and measure them."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Annotated

import typer

from genlab.cli.console import Steps, console, print_json

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
        str,
        typer.Option(
            help="small (nanoGPT's CPU recipe, minutes; the default, as for images and audio), "
            "tiny (a smoke test, under a minute on 2 cores), base (hours on a CPU)."
        ),
    ] = "small",
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
    from genlab.registry import default_trained_name
    from genlab.training.text import train_text_model

    model_name = name or default_trained_name(
        f"{Path(data).name if data not in ('shakespeare', 'python') else data}-{codec}"
    )
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
        f"genlab generate text --model {model_name} {shlex.quote(sample_prompt(data))}",
        rate_key="tokens_per_second",
    )


def sample_prompt(data: str) -> str:
    """A prompt in the training data's own style, for the "try it" hint: a play's speaker for
    Shakespeare, a `def` for Python, else the first words of the user's own text."""
    known = {"shakespeare": "ROMEO:", "python": "def fibonacci(n):"}
    if data in known:
        return known[data]
    path = Path(data).expanduser()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files[:20]:
        try:
            with file.open(encoding="utf-8", errors="ignore") as f:
                for line in f:
                    if line.strip():
                        return " ".join(line.split()[:4])
        except OSError:
            continue
    return "The"


_Family = Annotated[str, typer.Option(help="gan, vae or diffusion.")]
_Conditional = Annotated[
    bool,
    typer.Option("--conditional/--unconditional", help="Condition on the class (a folder's sub-folders)."),
]
_Preset = Annotated[
    str,
    typer.Option(
        help="small (minutes on a laptop; the default), tiny (a smoke test), base (hours on a CPU)."
    ),
]
_Name = Annotated[str | None, typer.Option(help="Model name (default: <family>-<data>).")]
_Steps = Annotated[int | None, typer.Option(help="Optimiser steps (default: the preset's).")]
_Objective = Annotated[
    str | None, typer.Option(help="GAN objective: hinge (default, spectral norm) or wgan-gp.")
]
_Seed = Annotated[int, typer.Option(help="Seed for initialisation, batches and noise.")]
_Resume = Annotated[bool, typer.Option("--resume", help="Continue from the model's last checkpoint.")]
_Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _train_family(modality: str, family: str, data: str, name: str | None, json_: bool, **kwargs) -> None:
    from genlab.training.image import default_name, train_image_model

    model_name = name or default_name(family, data)
    from genlab.evaluation.classifier import fid_scorer

    result = train_image_model(
        family, data, name=model_name, progress=not json_, modality=modality, gan_scorer=fid_scorer, **kwargs
    )
    if os.environ.get("RANK", "0") != "0":
        return
    try_it = {
        "image": f'genlab generate image --model {model_name} --prompt "7" -n 16',
        "audio": f'genlab generate audio --model {model_name} --prompt "say seven" --out seven.wav',
        "video": f'genlab generate video "a 7 moving left, fast" --model {model_name} --out seven.mp4',
    }[modality]
    _report(model_name, result, json_, try_it)


def _command(group: typer.Typer, name: str, command, doc: str, param: str, option) -> None:
    """One command per modality from a closure: its help, and the option that differs (a closure
    variable cannot name its own help)."""
    command.__doc__ = doc
    command.__annotations__[param] = Annotated[str, option]
    group.command(name)(command)


def _register_train(modality: str, data_help: str, default_data: str, doc: str) -> None:
    """`genlab train image` and `genlab train audio`: the same families and options, other data."""

    def train_family(
        family: _Family,
        data: str = default_data,  # its help is set below (a closure variable, not a module name)
        conditional: _Conditional = True,
        preset: _Preset = "small",
        name: _Name = None,
        steps: _Steps = None,
        objective: _Objective = None,
        seed: _Seed = 0,
        resume: _Resume = False,
        json_: _Json = False,
    ) -> None:
        _train_family(
            modality,
            family,
            data,
            name,
            json_,
            conditional=conditional,
            preset_name=preset,
            steps=steps,
            resume=resume,
            seed=seed,
            objective=objective,
        )

    _command(train_app, modality, train_family, doc, "data", typer.Option(help=data_help))


_register_train(
    "image",
    "digits (16x16), digits8, glyphs (28x28), or an image folder.",
    "digits",
    """Train a GAN, a VAE or a diffusion model on images, on this CPU, with a live loss bar.

    Example: genlab train image --family diffusion --data digits --preset small
    """,
)
_register_train(
    "audio",
    "spoken-digits (espeak-ng's voices saying zero..nine), or a folder of WAV files, one sub-folder per class.",
    "spoken-digits",
    """Train a GAN, a VAE or a diffusion model on sound, as 32x32 log-mel spectrograms of 1 s clips.

    The family code is the image families' own; Griffin-Lim turns generated spectrograms into sound.
    Example: genlab train audio --family diffusion --data spoken-digits --preset small
    """,
)

_register_train(
    "video",
    "moving-digits (handwritten digits moving on a 32x32 canvas, 8 frames at 8 fps).",
    "moving-digits",
    """Train a video family on clips, conditioned on digit, direction and speed.

    Example: genlab train video --family video-diffusion --data moving-digits --preset small
    """,
)


@train_app.command("classifier")
def train_classifier_cmd(
    data: Annotated[
        str, typer.Option(help="An image folder with one sub-folder per class (or digits, glyphs).")
    ],
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 2000,
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train the evaluation classifier for a dataset: FID features and the class-accuracy judge."""
    from genlab.core.settings import Settings
    from genlab.data.datasets import load_image_dataset
    from genlab.evaluation.classifier import train_classifier

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


_Samples = Annotated[int, typer.Option(help="Samples to generate for the metrics.")]
_SampleSteps = Annotated[int | None, typer.Option(help="Diffusion: sampling steps.")]
_Sampler = Annotated[str | None, typer.Option(help="Diffusion: ddpm, ddim or dpm++.")]
_Guidance = Annotated[float | None, typer.Option(help="Diffusion: classifier-free guidance scale.")]
_FirstSeed = Annotated[int, typer.Option(help="Seed of the first sample.")]
_WriteCard = Annotated[
    bool, typer.Option("--write-card/--no-write-card", help="Record the metrics in the model card.")
]


def _eval_family(modality: str, model: str, json_: bool, **kwargs) -> None:
    from genlab.evaluation.models import evaluate_image_model

    steps, sampler, guidance = kwargs.pop("steps"), kwargs.pop("sampler"), kwargs.pop("guidance")
    with Steps(f"evaluating {model}", enabled=not json_) as step:
        metrics = evaluate_image_model(
            model,
            options={"steps": steps, "sampler": sampler, "guidance": guidance},
            progress=step,
            modality=modality,
            **kwargs,
        )
    if json_:
        print_json(metrics)
        return
    floor, ceiling = metrics.get("floor", {}), metrics.get("ceiling", {})
    if "word_accuracy" in metrics:  # what whisper-tiny-en hears, next to real clips through the codec
        floor = {**floor, "word_accuracy": metrics["word_accuracy_real"]}
    for k in (
        "fid",
        "kid",
        "precision",
        "recall",
        "inception_score",
        "class_accuracy",
        "word_accuracy",
        "bits_per_dim",
    ):
        if k in metrics:
            ref = f"   (real-data floor {floor[k]})" if k in floor else ""
            ref += f"   (round-trip ceiling {ceiling[k]})" if k in ceiling else ""
            console.print(f"{k:>16}  {metrics[k]}{ref}")
    what = "clips" if modality == "audio" else "images"
    console.print(
        f"[dim]{metrics['samples']} samples vs {metrics['real_images']} held-out {what}, "
        f"{metrics['feature_space']} features, {metrics['sampling_seconds']} s to sample[/]"
    )


def _register_eval(modality: str, model_help: str, doc: str) -> None:
    def eval_family(
        model: str,  # its help is set below
        samples: _Samples = 1000,
        steps: _SampleSteps = None,
        sampler: _Sampler = None,
        guidance: _Guidance = None,
        seed: _FirstSeed = 0,
        write_card: _WriteCard = True,
        json_: _Json = False,
    ) -> None:
        _eval_family(
            modality,
            model,
            json_,
            samples=samples,
            steps=steps,
            sampler=sampler,
            guidance=guidance,
            seed=seed,
            write_card=write_card,
        )

    _command(eval_app, modality, eval_family, doc, "model", typer.Option("--model", "-m", help=model_help))


_register_eval(
    "image",
    "A GAN, VAE or diffusion model trained in genlab.",
    "FID, KID, precision/recall and class accuracy against held-out images, next to the real-data floor.",
)
_register_eval(
    "audio",
    "A GAN, VAE or diffusion audio model trained in genlab.",
    """FID, Inception score and class accuracy of generated sound (after Griffin-Lim), with the
    real-data floor and the codec's round-trip ceiling.""",
)


@eval_app.command("video")
def eval_video(
    model: Annotated[str, typer.Option("--model", "-m", help="A video model trained in genlab.")],
    samples: Annotated[int, typer.Option(help="Clips to generate for the metrics.")] = 80,
    steps: _SampleSteps = None,
    sampler: _Sampler = None,
    guidance: _Guidance = None,
    seed: _FirstSeed = 0,
    write_card: _WriteCard = True,
    json_: _Json = False,
) -> None:
    """Per-frame class accuracy and FID, temporal consistency and motion accuracy (direction and
    speed from the sprite's centre-of-mass track), next to held-out real clips (the floor)."""
    from genlab.evaluation.video import evaluate_video_model

    with Steps(f"evaluating {model}", enabled=not json_) as step:
        options = {"steps": steps, "sampler": sampler, "guidance": guidance}
        metrics = evaluate_video_model(
            model, samples=samples, options=options, seed=seed, write_card=write_card, progress=step
        )
    if json_:
        print_json(metrics)
        return
    floor = metrics.get("floor", {})
    for k, v in metrics.items():
        if k in floor:
            console.print(f"{k:>22}  {v}   (real-data floor {floor[k]})")
    console.print(f"[dim]{metrics['samples']} clips, {metrics['seconds_per_clip']} s a clip[/]")


@eval_app.command("text")
def eval_text(
    model: Annotated[str, typer.Option("--model", "-m", help="A transformer trained in genlab.")],
    batches: Annotated[int, typer.Option(help="Validation batches of 16 windows.")] = 50,
    json_: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Validation loss, bits per character (or byte) and perplexity on the model's held-out documents."""
    from genlab.evaluation.models import evaluate_text_model

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
    chat_template: Annotated[
        str | None,
        typer.Option(
            "--chat-template", help="Put a chat template in the file: chatml, llama-3, gemma or a Jinja file."
        ),
    ] = None,
) -> None:
    """Write a GGUF file that llama.cpp (and so genlab's llama.cpp backend) runs."""
    from genlab.cli.models import _chat_template
    from genlab.registry import default_registry
    from genlab.training.gguf_export import export_gguf

    registry = default_registry()
    template = _chat_template(chat_template) if chat_template is not None else None
    path = export_gguf(registry, model, Path(out) if out else None, chat_template=template)
    console.print(f"wrote {path}")
    if register:
        registry.add_gguf(register, path)
        console.print(f'registered [bold]{register}[/]: genlab generate text --model {register} "..."')
