"""``POST /v1/rerank`` and ``POST /rerank`` in the Cohere/Jina shape llama-server, LocalAI and vLLM
use: ``{"model", "query", "documents", "top_n"}`` -> ``{"results": [{"index", "relevance_score"}]}``.

Served by an embedding model as a bi-encoder: the query and each document are embedded (through
the gate, as ``/v1/embeddings``: every text scanned, the record, the review rule) and a document's
score is the cosine of its vector with the query's (the vectors are unit length: their dot
product). A cross-encoder reads the query and the document together and ranks better; genlab
ships none (no cross-encoder's weights are on PyPI as a package), so this is the fallback the
issue names, documented in docs/serving.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from genlab.generators.embedding import EMBED_CARD
from genlab.server.deps import CallerDep, StateDep
from genlab.server.responses import cancellable, held

router = APIRouter(tags=["rerank"])
MAX_DOCUMENTS = 1000  # Cohere's limit per request


class Document(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(default=EMBED_CARD.name, min_length=1, max_length=100)
    query: str = Field(min_length=1, max_length=100_000)
    documents: list[str | Document] = Field(min_length=1, max_length=MAX_DOCUMENTS)
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = False


def ranked(scores: np.ndarray, texts: list[str], body: RerankRequest) -> list[dict[str, Any]]:
    order = np.argsort(-scores, kind="stable")[: body.top_n or len(texts)]
    return [
        {
            "index": int(i),
            "relevance_score": float(scores[i]),
            **({"document": {"text": texts[i]}} if body.return_documents else {}),
        }
        for i in order
    ]


@router.post("/rerank")
@router.post("/v1/rerank")
async def rerank(body: RerankRequest, http: Request, state: StateDep, who: CallerDep) -> Any:
    texts = [d if isinstance(d, str) else d.text for d in body.documents]
    vectors, tokens, record_ids, review = await cancellable(
        http,
        lambda cancel: state.pipeline.embed(
            body.model,
            [body.query, *texts],
            endpoint="rerank",
            caller=who,
            raw={"model": body.model, "documents": len(texts), "top_n": body.top_n},
            cancel=cancel,
        ),
    )
    if review is not None:
        return held(review)
    scores = vectors[1:] @ vectors[0]  # cosine: unit vectors
    return {
        "id": record_ids[0] if record_ids else None,
        "model": body.model,
        "object": "list",
        "results": ranked(scores, texts, body),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "genlab": {"generation_ids": record_ids},
    }
