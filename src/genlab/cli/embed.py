"""`genlab embed`: sentence embeddings from the terminal, and how close the texts are to each other."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from genlab.cli.console import console, print_json
from genlab.cli.generate import CLI, cli_pipeline
from genlab.core import InvalidRequestError


def embed(
    texts: Annotated[
        list[str] | None, typer.Argument(help="Texts to embed ('-' reads one per line from stdin).")
    ] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="An embedding model.")] = "all-minilm-l6-v2",
    dimensions: Annotated[
        int | None, typer.Option(help="Keep the first N dimensions (renormalised).")
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print the vectors as JSON (OpenAI's shape).")
    ] = False,
) -> None:
    """Embed texts as unit vectors; with two or more, show their cosine similarities.

    Example: genlab embed "How do I reset my password?" "I forgot my login" "Best pizza in town"
    """
    if not texts:
        raise InvalidRequestError('give one or more texts: genlab embed "first text" "second text"')
    if texts == ["-"]:
        texts = [line.strip() for line in sys.stdin if line.strip()]
    pipeline = cli_pipeline()
    vectors, tokens, _, review = pipeline.embed(
        model,
        texts,
        endpoint="cli.embed",
        caller=CLI,
        raw={"model": model, "inputs": len(texts)},
        dimensions=dimensions,
    )
    pipeline.store.close()
    if review is not None:
        raise InvalidRequestError(f"the policy holds these embeddings for review ({review['id']})")
    if json_:
        data = [
            {"object": "embedding", "index": i, "embedding": [float(x) for x in v]}
            for i, v in enumerate(vectors)
        ]
        print_json(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )
        return
    console.print(
        f"{len(texts)} text(s) -> {vectors.shape[1]}-dimensional unit vectors ({model}, {tokens} tokens)"
    )
    if len(texts) < 2:
        console.print("first values: " + ", ".join(f"{x:+.4f}" for x in vectors[0][:8]) + " ...")
        return
    similarity = vectors @ vectors.T
    table = Table(title="cosine similarity", show_lines=False)
    table.add_column("")
    for i in range(len(texts)):
        table.add_column(str(i + 1), justify="right")
    for i, text in enumerate(texts):
        short = text if len(text) <= 40 else text[:37] + "..."
        table.add_row(f"{i + 1}. {short}", *(f"{similarity[i, j]:.2f}" for j in range(len(texts))))
    console.print(table)
