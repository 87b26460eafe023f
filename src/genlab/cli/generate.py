"""`genlab generate`: make artifacts from a model. `text` streams tokens to the terminal."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from genlab.cli.console import Steps, console, err_console, print_json
from genlab.core import GenerationRequest, InvalidRequestError, SamplingParams
from genlab.core.generator import ImageMaker, Voice
from genlab.core.request import parse_json_schema
from genlab.pipeline import TEXT, Caller, Pipeline, ReviewRequired, default_pipeline
from genlab.registry import default_registry

app = typer.Typer(
    help="Generate text, code, images, audio or video from a registered model.", no_args_is_help=True
)

DEFAULTS = SamplingParams()
CLI = Caller(actor="cli")


def cli_pipeline(policy: str = "default") -> Pipeline:
    """The gate for the CLI's generations: the policy, and records and reviews in GENLAB_HOME's database."""
    return default_pipeline(policy)


def _read_arg_or_file(value: str | None, what: str) -> str | None:
    """`--json-schema` and `--grammar` take inline text or @path (or a path that exists)."""
    if value is None:
        return None
    path = Path(value[1:] if value.startswith("@") else value)
    if value.startswith("@") or (len(value) < 4096 and "\n" not in value and path.suffix and path.is_file()):
        if not path.is_file():
            raise InvalidRequestError(f"the {what} file {path} does not exist")
        return path.read_text("utf-8")
    return value


@app.command()
def text(
    prompt: Annotated[str, typer.Argument(help="The text to continue; '-' reads it from standard input.")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model name (see `genlab models`).")
    ] = "gemma-3-270m",
    max_tokens: Annotated[int, typer.Option(help="Most tokens to generate.")] = DEFAULTS.max_tokens,
    temperature: Annotated[
        float, typer.Option(help="Sampling temperature; 0 = greedy.")
    ] = DEFAULTS.temperature,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = DEFAULTS.top_p,
    top_k: Annotated[int, typer.Option(help="Keep the k most likely tokens; 0 = off.")] = DEFAULTS.top_k,
    min_p: Annotated[
        float, typer.Option(help="Drop tokens below min_p x the top token's probability.")
    ] = DEFAULTS.min_p,
    repeat_penalty: Annotated[
        float, typer.Option(help="Penalty for repeating recent tokens; 1 = off.")
    ] = DEFAULTS.repeat_penalty,
    seed: Annotated[int | None, typer.Option(help="Random seed, for reproducible output.")] = None,
    stop: Annotated[list[str] | None, typer.Option(help="Stop at this text (repeatable).")] = None,
    n: Annotated[int, typer.Option("--n", "-n", help="How many completions.")] = 1,
    logprobs: Annotated[
        int | None, typer.Option(help="Return the top-N log-probabilities per token (with --json).")
    ] = None,
    json_schema: Annotated[
        str | None,
        typer.Option(
            "--json-schema", help="Constrain output to JSON matching this schema (inline or @file)."
        ),
    ] = None,
    grammar: Annotated[
        str | None, typer.Option(help="Constrain output to this GBNF or Lark grammar (inline or @file).")
    ] = None,
    regex: Annotated[
        str | None, typer.Option(help="Constrain output to match this regular expression.")
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print the artifacts (text and provenance) as JSON.")
    ] = False,
    save: Annotated[
        Path | None, typer.Option(help="Also save each artifact (.txt + provenance, or .json) here.")
    ] = None,
    policy: Annotated[str, typer.Option(help="Guardrail policy: a shipped name or a YAML path.")] = "default",
) -> None:
    """Continue a prompt with a language model, streaming tokens as they come.

    Example: genlab generate text "The three laws of robotics are" --max-tokens 64 --seed 1
    """
    if prompt == "-":
        prompt = sys.stdin.read()
    schema_text = _read_arg_or_file(json_schema, "JSON schema")
    request = GenerationRequest(
        prompt=prompt,
        model=model,
        n=n,
        seed=seed,
        params=SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            min_p=min_p,
            repeat_penalty=repeat_penalty,
            stop=tuple(stop or ()),
            logprobs=logprobs,
            json_schema=parse_json_schema(schema_text) if schema_text is not None else None,
            grammar=_read_arg_or_file(grammar, "grammar"),
            regex=regex,
        ),
    ).validate()
    pipeline = cli_pipeline(policy)
    generator = pipeline.check(model, TEXT)
    if json_ or save is not None or not generator.supports_streaming:
        with Steps(f"{n} completions with {model}", enabled=n > 1) as step:
            released = pipeline.generate(
                request,
                endpoint="cli.generate.text",
                caller=CLI,
                progress=lambda d, t: step.count(d, t, "choice"),
            )
        if released.held:
            report_held(released.review)
            return
        for a in released.artifacts if save is not None else []:
            saved = a.save(save if save.is_dir() or n == 1 else save.with_stem(f"{save.stem}-{a.sha256[:8]}"))
            err_console.print(f"[dim]saved {saved}[/]")
        if json_:
            print_json([a.to_dict() for a in released.artifacts])
        else:
            for a in released.artifacts:
                console.print(a.text, markup=False, highlight=False)
        cut_json(request, [a.finish_reason for a in released.artifacts])
        return
    try:
        stream = pipeline.stream(request, endpoint="cli.generate.text", caller=CLI)
    except ReviewRequired:  # the review rule could hold it: generate whole, then hold or print it
        released = pipeline.generate(request, endpoint="cli.generate.text", caller=CLI)
        if released.held:
            report_held(released.review)
            return
        for a in released.artifacts:
            console.print(a.text, markup=False, highlight=False)
        return
    stream_to_terminal(stream, prompt, n)


def stream_to_terminal(stream, prompt: str, n: int) -> None:
    """Write a pipeline stream's tokens as they come (with the prompt and a rate on a terminal)."""
    started = time.perf_counter()
    tokens, finishes = 0, []
    interactive = sys.stdout.isatty()
    if interactive:
        console.print(prompt, style="dim", end="", markup=False, highlight=False)
    for chunk in stream:
        if chunk.finish_reason is not None:
            tokens += chunk.completion_tokens
            finishes.append(chunk.finish_reason)
            sys.stdout.write("\n" if n > 1 and chunk.index < n - 1 else "")
            continue
        sys.stdout.write(chunk.text)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
    elapsed = time.perf_counter() - started
    if interactive:
        err_console.print(
            f"[dim]{tokens} tokens in {elapsed:.2f}s ({tokens / max(elapsed, 1e-9):.1f} tokens/s)[/]"
        )
    cut_json(stream.request, finishes)


def cut_json(request: GenerationRequest, finishes: list[str | None]) -> None:
    """JSON mode whose object the token limit cut: the text printed is a prefix, not JSON. Say so
    (and exit non-zero) rather than hand a script something that does not parse."""
    if request.params.json_schema is not None and "length" in finishes:
        raise InvalidRequestError(
            f"the JSON object was cut at --max-tokens {request.params.max_tokens} before it closed",
            param="max_tokens",
            hint="raise --max-tokens, or bound the schema (maxLength, maxItems, enum)",
        )


def report_held(review: dict) -> None:
    err_console.print(
        f"held for human review as [bold]{review['id']}[/] ({review['rule']}); "
        f"a reviewer releases it with `genlab review show {review['id']}`"
    )


def _family_request(model, prompt, n, seed, steps, sampler, guidance) -> GenerationRequest:
    """The request of `generate audio` and `generate video` (the diffusion options ride in ``extra``)."""
    from genlab.generators.image import family_request

    options = {"steps": steps, "sampler": sampler, "guidance": guidance}
    return family_request(model, prompt, n=n, seed=seed, options=options)


def _load_for(model: str, modality: str):
    """A model that makes this modality from a request (a voice speaks free text), or one line
    naming the command that fits."""
    generator = default_registry().load(model)
    if modality == "audio" and isinstance(generator, Voice):
        return generator
    if not isinstance(generator, ImageMaker) or generator.card.modality != modality:
        kind = generator.card.modality
        raise InvalidRequestError(
            f"{model} is a {generator.card.family} {kind} model, not an {modality} model",
            hint=f"use `genlab generate {kind if kind != 'code' else 'text'}`",
        )
    return generator


def made(request: GenerationRequest, modality: str, doing: str, json_: bool, **options) -> list | None:
    """The artifacts of one `generate image|audio|video` request through the gate, the model's
    steps shown as a bar (none with --json); None when it was held for review (said so)."""
    from rich.progress import BarColumn, Progress

    with Progress(
        doing,
        BarColumn(),
        "{task.completed}/{task.total} steps",
        console=err_console,
        transient=True,
        disable=json_,
    ) as bar:
        task = bar.add_task("d", total=None)
        released = cli_pipeline().generate(
            request,
            endpoint=f"cli.generate.{modality}",
            modalities=(modality,),
            caller=CLI,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            **options,
        )
    if released.held:
        report_held(released.review)
        return None
    return released.artifacts


def save_clips(artifacts: list, target: Path, json_: bool) -> None:
    """Each clip (audio or video) to ``target``, or NAME-1, NAME-2 ... when there are several;
    one line per clip, or their paths and provenance as JSON."""
    many = len(artifacts) > 1
    paths = [
        target.with_name(f"{target.stem}-{i + 1}{target.suffix}") if many else target
        for i in range(len(artifacts))
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    for a, path in zip(artifacts, paths, strict=True):
        a.save(path)
    if json_:
        clips = [
            {"path": str(p), "label": a.label, "provenance": a.provenance.to_dict()}
            for a, p in zip(artifacts, paths, strict=True)
        ]
        print_json({"clips": clips})
        return
    for a, path in zip(artifacts, paths, strict=True):
        console.print(f"{a.label or 'clip'} ({a.duration_s:.1f} s, seed {a.provenance.seed}) -> {path}")


# the options `generate image`, `audio` and `video` share, declared once
Clips = Annotated[int, typer.Option("--n", "-n", help="How many clips (up to 16 per request).")]
SampleSteps = Annotated[int | None, typer.Option(help="Diffusion: sampling steps (default 50).")]
Sampler = Annotated[str | None, typer.Option(help="Diffusion: ddpm, ddim (default) or dpm++.")]
Guidance = Annotated[float | None, typer.Option(help="Classifier-free guidance scale (default 1).")]
ClipSeed = Annotated[int | None, typer.Option(help="Seed of the first clip; clip i uses seed + i.")]
ClipsJson = Annotated[bool, typer.Option("--json", help="Print each clip's path and provenance as JSON.")]


@app.command()
def image(
    model: Annotated[
        str, typer.Option("--model", "-m", help="A GAN, VAE or diffusion model (see `genlab models`).")
    ],
    prompt: Annotated[
        str | None,
        typer.Option(
            help='The class to draw: "7", "seven", "letter A", a folder name. Omit to cycle through classes.'
        ),
    ] = None,
    n: Annotated[int, typer.Option("--n", "-n", help="How many images (up to 16 per request).")] = 16,
    out: Annotated[
        Path | None,
        typer.Option(help="Write the images as one grid PNG here (default: GENLAB_HOME/outputs/)."),
    ] = None,
    save: Annotated[
        Path | None,
        typer.Option(help="Also save each image as its own PNG (with provenance) in this folder."),
    ] = None,
    steps: SampleSteps = None,
    sampler: Sampler = None,
    guidance: Annotated[
        float | None,
        typer.Option(
            help="Diffusion: classifier-free guidance scale (default 1 = plain conditional; 0 = unconditional; >1 sharper)."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the first image; image i uses seed + i.")] = None,
    negative_prompt: Annotated[
        str | None, typer.Option(help="Text-to-image pipelines: what the image should not show.")
    ] = None,
    size: Annotated[
        str | None, typer.Option(help="Text-to-image pipelines: WIDTHxHEIGHT (default: the pipeline's own).")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Text-to-image pipelines: ddim, dpm++, euler, euler_a, pndm or lms.")
    ] = None,
    scale: Annotated[int | None, typer.Option(help="Enlarge the grid by this integer factor.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print each image's provenance as JSON.")] = False,
) -> None:
    """Draw images as a grid PNG: what a prompt describes with a text-to-image pipeline (added or
    pulled), or a class with a GAN, a VAE or a diffusion model trained in genlab.

    Example: genlab generate image --model diffusion-digits --prompt "7" -n 16 --out grid.png
    Example: genlab generate image --model sd-turbo --prompt "a red bicycle" -n 1 --steps 2 --guidance 0
    """

    from genlab.core.io import atomic_write_bytes

    generator = _load_for(model, "image")
    options = {"size": size, "negative_prompt": negative_prompt, "scheduler": scheduler}
    options |= {"steps": steps, "sampler": sampler, "guidance": guidance}
    request = generator.image_request(prompt, model=model, n=n, seed=seed, options=options)
    if scale is not None and scale < 1:
        raise InvalidRequestError(f"scale must be at least 1, got {scale}", param="scale")
    target = out or default_registry().settings.outputs_dir / f"{model}-{int(time.time())}.png"
    if target.suffix.lower() != ".png":
        raise InvalidRequestError(f"--out must name a .png file, got {target}", param="out")
    artifacts = made(request, "image", "drawing", json_)
    if artifacts is None:
        return
    size = artifacts[0].pixels.shape[0]
    scale = scale or max(1, 128 // size)
    from genlab.safety.provenance import grid_png

    atomic_write_bytes(target, grid_png(artifacts, scale))
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        for a in artifacts:
            a.save(save / f"{model}-{a.label or 'x'}-{a.provenance.seed}.png")
    if json_:
        print_json(
            {
                "grid": str(target),
                "images": [{"label": a.label, "provenance": a.provenance.to_dict()} for a in artifacts],
            }
        )
    else:
        labels = sorted({a.label for a in artifacts if a.label is not None})
        what = f" of {', '.join(labels)}" if labels else ""
        console.print(f"{len(artifacts)} images{what} -> {target}")


@app.command()
def audio(
    model: Annotated[
        str, typer.Option("--model", "-m", help="A GAN, VAE or diffusion audio model (see `genlab models`).")
    ],
    prompt: Annotated[
        str | None,
        typer.Option(help='What to say: "7", "seven", "say seven", or a class folder\'s name.'),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="The .wav to write (default: GENLAB_HOME/outputs/); with -n > 1, NAME-1.wav, NAME-2.wav ..."
        ),
    ] = None,
    n: Clips = 1,
    steps: SampleSteps = None,
    sampler: Sampler = None,
    guidance: Guidance = None,
    iterations: Annotated[
        int | None, typer.Option(help="Griffin-Lim iterations, spectrogram -> waveform (default 32).")
    ] = None,
    seed: ClipSeed = None,
    json_: ClipsJson = False,
) -> None:
    """Speak free text with a voice (piper-joe), or a digit (any class the model learnt) with a
    GAN, VAE or diffusion model, as a WAV with provenance inside.

    Example: genlab generate audio --model piper-joe --prompt "Your order has shipped." --out order.wav
    Example: genlab generate audio --model diffusion-spoken-digits --prompt "say seven" --out seven.wav
    """
    request = _family_request(model, prompt, n, seed, steps, sampler, guidance)
    target = out or default_registry().settings.outputs_dir / f"{model}-{int(time.time())}.wav"
    if target.suffix.lower() != ".wav":
        raise InvalidRequestError(f"--out must name a .wav file, got {target}", param="out")
    if target.is_dir():
        raise InvalidRequestError(f"--out {target} is a folder; name a .wav file", param="out")
    voice = isinstance(_load_for(model, "audio"), Voice)
    artifacts = made(request, "audio", "speaking", json_, **({} if voice else {"iterations": iterations}))
    if artifacts is not None:
        save_clips(artifacts, target, json_)


@app.command()
def video(
    prompt: Annotated[
        str | None,
        typer.Argument(help='What moves how: "a 7 moving left, fast"; what it leaves out is drawn per clip.'),
    ] = None,
    model: Annotated[
        str, typer.Option("--model", "-m", help="A video model (see `genlab models`).")
    ] = "video-diffusion-moving-digits",
    out: Annotated[
        Path | None,
        typer.Option(
            help="The .mp4, .gif or .webm to write (default: GENLAB_HOME/outputs/); -n > 1: NAME-1.mp4 ..."
        ),
    ] = None,
    n: Clips = 1,
    steps: SampleSteps = None,
    sampler: Sampler = None,
    guidance: Guidance = None,
    seed: ClipSeed = None,
    json_: ClipsJson = False,
) -> None:
    """Make short clips with a video model trained in genlab, provenance inside the file.

    Example: genlab generate video "a 3 moving up, slow" --out clip.mp4
    """

    from genlab.core.video import VIDEO_SUFFIXES

    target = out or default_registry().settings.outputs_dir / f"{model}-{int(time.time())}.mp4"
    if target.suffix.lower() not in VIDEO_SUFFIXES or target.is_dir():
        raise InvalidRequestError(f"--out must name a .mp4, .gif or .webm file, got {target}", param="out")
    request = _family_request(model, prompt, n, seed, steps, sampler, guidance)
    _load_for(model, "video")
    artifacts = made(request, "video", "denoising", json_)
    if artifacts is not None:
        save_clips(artifacts, target, json_)
