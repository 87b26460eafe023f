"""``/mcp``: genlab's MCP tools (``genlab.mcp``) over streamable HTTP on the server itself, each
call under the key of its own request, as every route: a request without a valid key (where the
server needs keys) is a 401 before the MCP session sees it, and each tool call is a pipeline call
as that key. Host and Origin are the server's to check (``app.LoopbackOnly`` while it is open),
so the MCP transport's own DNS-rebinding check, written for a loopback-only server, is off here.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from genlab.mcp import mcp_server
from genlab.pipeline import Caller
from genlab.server import errors
from genlab.server.deps import _authenticate, actor
from genlab.server.errors import APIError
from genlab.server.state import State

PATH = "/mcp"


def caller_of(state: State):
    """The caller of one tool call, from the headers of its HTTP request."""

    def of(headers: Mapping[str, str] | None) -> Caller:
        key = _authenticate(state, (headers or {}).get("authorization", ""))
        may_run_code = key is None or key.role in state.config.code_roles
        return Caller(key_id=key.id if key else None, actor=actor(key), may_run_code=may_run_code)

    return of


class Authenticated:
    """The MCP session manager behind the server's key check (401 in OpenAI's error shape)."""

    def __init__(self, state: State, server: MCPServer) -> None:
        self.state, self.server = state, server

    async def __call__(self, scope, receive, send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            await run_in_threadpool(_authenticate, self.state, headers.get("authorization", ""))
        except APIError as e:
            body = errors.error_body(e.message, e.type, None, e.code)
            await JSONResponse(body, status_code=e.status, headers=e.headers)(scope, receive, send)
            return
        await self.server.session_manager.handle_request(scope, receive, send)


def install(app: FastAPI, state: State) -> MCPServer:
    """Serve the tools at ``/mcp``; the caller runs ``server.session_manager.run()`` in the app's lifespan."""
    server = mcp_server(state.pipeline, caller_of(state))
    server.streamable_http_app(
        streamable_http_path=PATH,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )  # builds the session manager
    app.router.routes.append(Route(PATH, endpoint=Authenticated(state, server)))
    return server
