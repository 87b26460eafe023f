"""`genlab mcp`: genlab's generators as MCP tools, over stdio (an MCP client starts it) or
streamable HTTP on loopback (``genlab.mcp``)."""

from __future__ import annotations

import os
from typing import Annotated, Literal

import typer

from genlab.cli.console import err_console
from genlab.cli.generate import CLI, cli_pipeline
from genlab.cli.serve import is_loopback
from genlab.core import InvalidRequestError
from genlab.pipeline import Caller


def key_caller(variable: str) -> Caller:
    """The caller an API key names (read from an environment variable, never the command line)."""
    from genlab.storage import Store

    token = os.environ.get(variable, "")
    store = Store()
    key = store.verify_key(token) if token else None
    store.close()
    if key is None:
        raise InvalidRequestError(f"${variable} holds no active genlab API key", param="--key-env")
    return Caller(key_id=key.id, actor=f"{key.name}#{key.id}", may_run_code=False)


def mcp(
    transport: Annotated[
        str, typer.Option(help="stdio (an MCP client starts genlab mcp) or http (streamable HTTP at /mcp).")
    ] = "stdio",
    host: Annotated[str, typer.Option(help="Address for http: loopback only.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for http.")] = 8765,
    policy: Annotated[
        str, typer.Option(help="Guardrail policy for every call: a shipped name or a YAML path.")
    ] = "default",
    key_env: Annotated[
        str | None,
        typer.Option(
            help="An environment variable holding an API key: every call runs under its name and role."
        ),
    ] = None,
) -> None:
    """Serve genlab's generators (text, image, speech, transcription, moderation, embeddings) as
    MCP tools, each call through the guardrails, the review rule and the records.

    Example (an MCP client's config): {"command": "genlab", "args": ["mcp"]}
    """
    from genlab.mcp import mcp_server

    if transport not in ("stdio", "http"):
        raise InvalidRequestError(
            f"--transport must be stdio or http, got {transport!r}", param="--transport"
        )
    if transport == "http" and not is_loopback(host):
        raise InvalidRequestError(
            f"genlab mcp serves loopback only (every call runs as one caller), not {host}", param="--host"
        )
    caller = key_caller(key_env) if key_env else CLI
    server = mcp_server(cli_pipeline(policy), caller)
    if transport == "stdio":
        server.run("stdio")  # stdout is the protocol's: nothing else is printed there
        return
    err_console.print(f"genlab MCP tools at http://{host}:{port}/mcp")
    kind: Literal["streamable-http"] = "streamable-http"
    server.run(kind, host=host, port=port)
