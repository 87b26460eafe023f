"""Typed dependencies: a handler's signature says what it needs (the state, the key, a reviewer).

async def route(state: StateDep, key: KeyDep): ...
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from genlab.pipeline import Caller
from genlab.server import webhooks
from genlab.server.errors import APIError
from genlab.server.state import State
from genlab.storage.db import KEY_PREFIX, KeyInfo


def get_state(request: Request) -> State:
    return request.app.state.genlab


StateDep = Annotated[State, Depends(get_state)]


def _authenticate(state: State, header: str) -> KeyInfo | None:
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    open_access = state.open_access()
    if not token:
        if open_access:
            return None
        raise APIError(
            401,
            "missing API key: send `Authorization: Bearer <key>` (create one with `genlab keys create`)",
            type_="invalid_request_error",
            code="invalid_api_key",
        )
    key = state.store.verify_key(token)
    if key is None and open_access and not token.startswith(KEY_PREFIX):
        return None  # an open server ignores placeholders (OpenAI clients always send some key)
    if key is None:  # a genlab key that is unknown or revoked is refused, open server or not
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
    return (key is None and state.open_access()) or (key is not None and key.role in ("reviewer", "admin"))


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


async def require_admin(state: StateDep, key: KeyDep) -> str:
    """The admin's name for the audit log, or a 403: what changes the server's models (a pull)."""
    if not ((key is None and state.open_access()) or (key is not None and key.role == "admin")):
        raise APIError(
            403,
            "this needs the admin role: `genlab keys create --name NAME --role admin`",
            type_="permission_error",
            code="admin_role_required",
        )
    return actor(key)


AdminDep = Annotated[str, Depends(require_admin)]


def owns(state: State, key: KeyInfo | None, owner_key_id: int | None) -> bool:
    """Whether the caller may see what ``owner_key_id`` made: its owner, reviewers and admins, and
    the local user of an open loopback server. Others get a 404, as if it did not exist."""
    return is_reviewer(state, key) or (key is not None and key.id == owner_key_id)


async def caller(request: Request, key: KeyDep, state: StateDep) -> Caller:
    """Who asks for a generation: the key, its name for the audit log, the review webhook (checked
    against SSRF: public addresses only, unless the operator allows more)."""
    webhook = request.headers.get(webhooks.HEADER)
    if webhook:
        await run_in_threadpool(webhooks.resolve, webhook, state.config.webhook_allow)
    may_run_code = key is None or key.role in state.config.code_roles
    return Caller(
        key_id=key.id if key else None, actor=actor(key), webhook=webhook, may_run_code=may_run_code
    )


CallerDep = Annotated[Caller, Depends(caller)]
