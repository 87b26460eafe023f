"""`genlab demo`: the main job until the studio server exists: the embedded model's card and a
completion streamed from it."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer
from rich.panel import Panel

from genlab.cli.console import console, human_count
from genlab.registry import default_registry

DEMO_PROMPT = "Generative AI is wider than large language models. Besides transformers, it includes"


def demo(
    model: Annotated[str, typer.Option("--model", "-m", help="The model to demonstrate.")] = "gemma-3-270m",
    prompt: Annotated[str, typer.Option(help="The text to continue.")] = DEMO_PROMPT,
    max_tokens: Annotated[int, typer.Option(help="Most tokens to generate.")] = 96,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Show the embedded model's card and stream a completion from it, fully offline."""
    registry = default_registry()
    with console.status(f"loading {model} ..."):
        started = time.perf_counter()
        generator = registry.load(model)
        load_s = time.perf_counter() - started
    card = generator.card
    console.print(
        Panel.fit(
            f"[bold]{card.name}[/]  {card.family} / {card.modality} / {card.backend}\n"
            f"{human_count(card.parameters)} parameters, context {card.context_length}, loaded in {load_s:.1f}s\n"
            f"[dim]{card.description}[/]\n"
            f"training data: {card.training_data}\nlicence: {card.licence}",
            title="model card",
        )
    )
    console.print(prompt, style="bold", end="", markup=False, highlight=False)
    started = time.perf_counter()
    tokens = 0
    for chunk in generator.stream(prompt, max_tokens=max_tokens, seed=seed, temperature=0.7):
        tokens += chunk.completion_tokens
        sys.stdout.write(chunk.text)
        sys.stdout.flush()
    elapsed = time.perf_counter() - started
    console.print(f"\n[dim]{tokens} tokens in {elapsed:.2f}s ({tokens / max(elapsed, 1e-9):.1f} tokens/s)[/]")
