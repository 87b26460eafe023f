"""Typed dependencies: a handler's signature says what it needs (the state, the key, a reviewer).

async def route(state: StateDep, key: KeyDep): ...
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from genlab.pipeline import Caller
from genlab.server.errors import APIError
from genlab.server.state import State
from genlab.storage.db import KeyInfo

WEBHOOK_HEADER = "x-genlab-review-webhook"


def get_state(request: Request) -> State:
    return request.app.state.genlab


StateDep = Annotated[State, Depends(get_state)]


def _authenticate(state: State, header: str) -> KeyInfo | None:
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token:
        if state.config.open_access:
            return None
        raise APIError(
            401,
            "missing API key: send `Authorization: Bearer <key>` (create one with `genlab keys create`)",
            type_="invalid_request_error",
            code="invalid_api_key",
        )
    key = state.store.verify_key(token)
    if key is None and state.config.open_access:
        return None  # an open server ignores keys it does not know (OpenAI clients always send one)
    if key is None:
        raise APIError(
            401, "invalid or revoked API key", type_="invalid_request_error", code="invalid_api_key"
        )
    state.limiter.check(key.id, key.rate_limit_per_minute)
    return key


async def authenticate(request: Request, state: StateDep) -> KeyInfo | None:
    """The caller's key (None: the local user of an open-access loopback server)."""
    return await run_in_threadpool(_authenticate, state, request.headers.get("authorization", ""))


KeyDep = Annotated[KeyInfo | None, Depends(authenticate)]


def actor(key: KeyInfo | None) -> str:
    return "local" if key is None else f"{key.name}#{key.id}"


def is_reviewer(state: State, key: KeyInfo | None) -> bool:
    return (key is None and state.config.open_access) or (
        key is not None and key.role in ("reviewer", "admin")
    )


async def require_reviewer(state: StateDep, key: KeyDep) -> str:
    """The reviewer's name for the audit log, or a 403."""
    if not is_reviewer(state, key):
        raise APIError(
            403,
            "this needs the reviewer role: `genlab keys create --name NAME --role reviewer`",
            type_="permission_error",
            code="reviewer_role_required",
        )
    return actor(key)


ReviewerDep = Annotated[str, Depends(require_reviewer)]


async def caller(request: Request, key: KeyDep) -> Caller:
    """Who asks for a generation: the key, its name for the audit log, the review webhook."""
    webhook = request.headers.get(WEBHOOK_HEADER)
    if webhook and not webhook.startswith(("http://", "https://")):
        raise APIError(
            400,
            f"{WEBHOOK_HEADER} must be an http(s) URL",
            type_="invalid_request_error",
            code="invalid_webhook",
        )
    return Caller(key_id=key.id if key else None, actor=actor(key), webhook=webhook)


CallerDep = Annotated[Caller, Depends(caller)]
