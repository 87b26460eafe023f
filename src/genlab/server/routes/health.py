"""``GET /health`` and ``GET /v1/health`` (no key: a load balancer asks it) and ``GET /metrics`` (Prometheus; a key, as every
other route: its labels name the models loaded and the paths asked for)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import genlab
from genlab.server.deps import KeyDep, StateDep

router = APIRouter(tags=["health"])


@router.get("/health")
@router.get("/v1/health")  # llama-server's name for it
async def health(state: StateDep) -> dict[str, Any]:
    return {"status": "ok", "version": genlab.__version__, "loaded_models": state.registry.loaded()}


@router.get("/metrics")
async def metrics(state: StateDep, _: KeyDep) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
