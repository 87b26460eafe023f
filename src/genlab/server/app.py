"""The FastAPI application: a short assembly of routers over one ``State``.

    uvicorn --factory genlab.server.app:app_from_env      (what `genlab serve --workers N` runs)

Every generation route hands its requests to the pipeline (``genlab.pipeline``), the one gate:
check -> input policy -> queue -> generate/stream -> output policy -> provenance -> review -> record.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

import genlab
from genlab.core.settings import Settings
from genlab.registry import Registry
from genlab.server import errors
from genlab.server.errors import APIError
from genlab.server.routes import (
    apps,
    audits,
    completions,
    embeddings,
    health,
    mcp,
    media,
    models,
    moderations,
    ollama,
    ollama_models,
    rerank,
    responses,
    reviews,
    studio,
    tokens,
    videos,
)
from genlab.server.state import ServerConfig, State
from genlab.server.templating import API_CSP
from genlab.storage import Store

__all__ = ["ServerConfig", "app_from_env", "create_app"]
ROUTERS = (
    health,
    models,
    completions,
    responses,
    embeddings,
    media,
    videos,
    moderations,
    ollama,
    ollama_models,
    tokens,
    rerank,
    reviews,
    audits,
    apps,
    studio,
)


async def sweep_overdue_reviews(state: State) -> None:
    """Expire review items past their due time (they are never released), every few seconds."""
    while True:
        with contextlib.suppress(Exception):  # a database hiccup must not end the sweep
            await asyncio.to_thread(state.reviews.expire_overdue)
        await asyncio.sleep(state.config.review_sweep_seconds)


def create_app(
    registry: Registry | None = None, store: Store | None = None, config: ServerConfig | None = None
) -> FastAPI:
    registry = registry or Registry()
    state = State(registry, store or Store(settings=registry.settings), config or ServerConfig())

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        sweep = asyncio.create_task(sweep_overdue_reviews(state))
        warm = asyncio.create_task(asyncio.to_thread(state.pipeline.warm_guard))  # not on the first request
        names = asyncio.create_task(asyncio.to_thread(state.pipeline.policy.warm))  # the PII name model too
        async with tools.session_manager.run():  # the MCP sessions of /mcp
            yield
        sweep.cancel()
        warm.cancel()
        names.cancel()
        await asyncio.to_thread(state.store.close)

    app = FastAPI(
        title="genlab",
        version=genlab.__version__,
        description="OpenAI-compatible API of genlab",
        lifespan=lifespan,
    )
    app.state.genlab = state
    errors.install(app)
    app.add_middleware(Observed, state=state)
    app.add_middleware(
        BodyLimit, limit=state.config.max_body_bytes, upload_limit=state.config.max_upload_bytes
    )
    app.add_middleware(LoopbackOnly, state=state)
    for module in ROUTERS:
        app.include_router(module.router)
    tools = mcp.install(app, state)
    return app


class BodyLimit:
    """Refuse a body over the limit as it arrives (413), whether it declares its length or comes
    chunked: the app never holds more than the limit of one request."""

    UPLOADS = frozenset(
        {"/v1/audio/transcriptions", "/v1/audio/translations"}
    )  # audio files: the upload limit

    def __init__(self, app, limit: int, upload_limit: int | None = None) -> None:
        self.app, self.body_limit, self.upload_limit = app, limit, upload_limit or limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if scope["path"] in self.UPLOADS else self.body_limit
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            response = JSONResponse(too_large(limit), status_code=413)
            await response(scope, receive, send)
            return
        received, exceeded = 0, False

        async def counted():
            nonlocal received, exceeded
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                exceeded = True  # stop reading: the app sees an error, the client our 413
                raise APIError(
                    413, "request body too large", type_="invalid_request_error", code="body_too_large"
                )
            return message

        async def answer(message) -> None:
            if not exceeded:
                await send(message)
            elif message["type"] == "http.response.start":  # whatever the app made of it, the answer is 413
                await JSONResponse(too_large(limit), status_code=413)(scope, receive, send)

        await self.app(scope, counted, answer)


LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def hostname(value: str) -> str:
    """The host of a Host header or an Origin (no scheme, port or IPv6 brackets), lower-cased."""
    value = value.split("://", 1)[-1].split("/", 1)[0]
    if value.startswith("["):
        return value[1 : value.find("]")].lower()
    return value.rsplit(":", 1)[0].lower() if value.count(":") == 1 else value.lower()


class LoopbackOnly:
    """While the server is open (no keys), it answers only loopback names, and no foreign web page:
    a page on another site cannot reach it through DNS rebinding (its Host is the attacker's name)
    or a cross-site request (its Origin is the attacker's site)."""

    def __init__(self, app, state: State) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not self.state.open_access():
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = hostname(headers.get(b"host", b"").decode("latin-1"))
        origin = headers.get(b"origin", b"").decode("latin-1")
        if host not in LOOPBACK_NAMES:
            message, status = (
                f"an open server answers loopback names only, not {host!r}; create a key to serve others",
                421,
            )
        elif origin and hostname(origin) not in LOOPBACK_NAMES:  # "null" (sandboxed frames) too
            message, status = "requests from other sites' pages are refused by an open server", 403
        else:
            await self.app(scope, receive, send)
            return
        body = errors.error_body(message, "permission_error", code="host_not_allowed")
        await JSONResponse(body, status_code=status)(scope, receive, send)


SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class Observed:
    """Every response: counted and timed by route (Prometheus), and given the security headers: no
    MIME sniffing, no framing, no referrer; API answers allow nothing to run (pages and reports set
    their own Content-Security-Policy). Plain ASGI, so a route still sees its client disconnect."""

    def __init__(self, app, state: State) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), {"code": 500}

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                if b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", API_CSP.encode()))
                message = {**message, "headers": headers + extra}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.state.metrics.requests.labels(path, str(status["code"])).inc()
            self.state.metrics.latency.labels(path).observe(time.perf_counter() - started)


def too_large(limit: int) -> dict:
    return errors.error_body(
        f"request body over {limit} bytes", "invalid_request_error", code="body_too_large"
    )


def app_from_env() -> FastAPI:
    """The app `genlab serve --workers N` runs: each worker process builds its own from the settings."""
    settings = Settings.from_env()
    return create_app(Registry(settings), config=ServerConfig.from_settings(settings))
