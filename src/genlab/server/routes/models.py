"""``GET /v1/models`` and ``GET /v1/models/{id}``: the registry, in OpenAI's model objects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from genlab.server.deps import KeyDep, StateDep

router = APIRouter(prefix="/v1/models", tags=["models"])


def model_object(entry) -> dict[str, Any]:
    card = entry.card
    media = {"classes": entry.config.get("classes", [])} if entry.kind in ("image", "audio", "video") else {}
    return {
        "id": entry.name,
        "object": "model",
        "created": 0,
        "owned_by": "genlab",
        "family": card.family,
        "modality": card.modality,
        "backend": card.backend,
        "parameters": card.parameters,
        "context_length": card.context_length,
        "builtin": card.builtin,  # genlab: shipped with genlab (the studio offers these first)
        **media,
    }


@router.get("")
async def list_models(state: StateDep, _: KeyDep) -> dict[str, Any]:
    entries = await run_in_threadpool(state.registry.list)
    return {"object": "list", "data": [model_object(e) for e in entries]}


@router.get("/{model_id}")
async def get_model(model_id: str, state: StateDep, _: KeyDep) -> dict[str, Any]:
    entry = await run_in_threadpool(state.registry.get, model_id)
    card = entry.card.to_dict()
    if card["modality"] in ("text", "code") and not card.get("chat"):
        from genlab.core.chat import TRANSCRIPT

        card["chat"] = TRANSCRIPT.describe()  # a model trained in genlab, or a remote one
    return {**model_object(entry), "card": card}
