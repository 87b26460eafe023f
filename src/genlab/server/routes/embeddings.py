"""OpenAI's ``POST /v1/embeddings``: texts to vectors (float or base64), in batches, with usage."""

from __future__ import annotations

import base64
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from genlab.core import InvalidRequestError
from genlab.server.deps import CallerDep, StateDep
from genlab.server.responses import cancellable, held

router = APIRouter(prefix="/v1", tags=["embeddings"])


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=100)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, le=4096)
    user: str | None = None


def texts_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if value and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidRequestError(
        "input must be a string or a list of strings; token arrays are not accepted (genlab tokenises itself)",
        param="input",
    )


def vector(v: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as OpenAI sends it
        return base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in v]


@router.post("/embeddings")
async def embeddings(body: EmbeddingRequest, http: Request, state: StateDep, who: CallerDep) -> Any:
    texts = texts_of(body.input)
    vectors, tokens, record_ids, review = await cancellable(
        http,
        lambda cancel: state.pipeline.embed(
            body.model,
            texts,
            endpoint="embeddings",
            caller=who,
            raw={"model": body.model, "inputs": len(texts), "encoding_format": body.encoding_format},
            dimensions=body.dimensions,
            cancel=cancel,
        ),
    )
    if review is not None:
        return held(review)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": vector(v, body.encoding_format)}
            for i, v in enumerate(vectors)
        ],
        "model": body.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "genlab": {"generation_ids": record_ids},
    }
