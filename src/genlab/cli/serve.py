"""`genlab serve` (the studio and the OpenAI-compatible API) and `genlab keys` (API keys)."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from typing import Annotated

import typer
from rich.table import Table

from genlab.cli.console import console, err_console, print_json
from genlab.core import GenlabError, InvalidRequestError
from genlab.core.settings import Settings, parse_list, parse_roles

keys_app = typer.Typer(help="Create, list and revoke API keys for `genlab serve`.", no_args_is_help=True)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind. Anything but loopback requires API keys.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (each loads its own models).")] = 1,
    queue_limit: Annotated[int, typer.Option(help="Requests per model running or waiting before 429.")] = 8,
    policy: Annotated[
        str, typer.Option(help="Guardrail policy for every request: a shipped name or a YAML path.")
    ] = "default",
    code_roles: Annotated[
        str, typer.Option(help="Key roles whose own code (tests, modules) the apps may run, in the sandbox.")
    ] = "reviewer,admin",
    webhook_allow: Annotated[
        str, typer.Option(help="Hosts or networks (CIDR) review webhooks may reach besides public addresses.")
    ] = "",
) -> None:
    """Start the studio (web UI) and the OpenAI-compatible API on one port."""
    from genlab.storage import Store

    if not 1 <= port <= 65535:
        raise InvalidRequestError(f"port must be in 1-65535, got {port}")
    if workers < 1 or queue_limit < 1:
        raise InvalidRequestError("--workers and --queue-limit must be at least 1")
    from genlab.safety.policy import Policy

    Policy.load(policy)  # a bad policy fails here, with its line, not in the worker
    store = Store()
    has_keys = store.has_active_keys()
    store.close()
    if not has_keys and not is_loopback(host):
        raise GenlabError(
            f"refusing to serve on {host} without API keys",
            hint="create one with `genlab keys create --name NAME`, or bind 127.0.0.1",
        )
    base = Settings.from_env()
    settings = dataclasses.replace(
        base,
        open_access=not has_keys,
        queue_limit=queue_limit,
        policy=policy,
        code_roles=parse_roles(code_roles, "--code-roles"),
        webhook_allow=parse_list(webhook_allow) or base.webhook_allow,
    )
    check_port_free(host, port)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    console.print(f"[bold]genlab studio[/] at {url}   (OpenAI-compatible API at {url}/v1)")
    if has_keys:
        console.print("API keys required: send `Authorization: Bearer <key>`")
    else:
        err_console.print(
            "[yellow]open access: no API keys exist, so anyone on this machine can use the server (loopback only)[/]"
        )
    run_server(settings, host=host, port=port, workers=workers)


def check_port_free(host: str, port: int) -> None:
    """One clear line, before the banner, when another program already listens on the port."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as e:
            raise GenlabError(
                f"cannot listen on {host}:{port}: {(e.strerror or str(e)).lower()}",
                hint=f"another program is using the port; pick another with --port {port + 1 if port < 65535 else 8000}",
            ) from None


def run_server(settings, *, host: str, port: int, workers: int) -> None:
    """One worker: the app is built here from the settings object. Several: uvicorn starts each
    worker process from an import string, so the settings reach them as their environment."""
    import uvicorn

    from genlab.registry import Registry
    from genlab.server.app import create_app
    from genlab.server.state import ServerConfig

    if workers == 1:
        app = create_app(Registry(settings), config=ServerConfig.from_settings(settings))
        uvicorn.run(app, host=host, port=port, log_level="warning")
        return
    os.environ.update(settings.to_env())  # inherited by the spawned workers (app_from_env reads them)
    uvicorn.run(
        "genlab.server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="What the key is for (shown in listings).")],
    role: Annotated[str, typer.Option(help="user, reviewer or admin.")] = "user",
    rate_limit: Annotated[int, typer.Option(help="Requests per minute.")] = 120,
    json_: Annotated[bool, typer.Option("--json", help="Print the key and its record as JSON.")] = False,
) -> None:
    """Create an API key. The key is printed once; only its hash is stored."""
    from genlab.storage import Store

    key, info = Store().create_key(name, role, rate_limit_per_minute=rate_limit)
    if json_:
        print_json({"key": key, **info.__dict__})
    else:
        console.print(
            f"created key {info.id} ({info.role}) for {info.name}:\n{key}\n[dim]store it now: it is not shown again[/]"
        )


@keys_app.command("list")
def list_(json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List API keys (their prefixes, never the keys)."""
    from genlab.storage import Store

    keys = Store().list_keys()
    if json_:
        print_json([k.__dict__ for k in keys])
        return
    table = Table("id", "name", "role", "prefix", "per minute", "created", "revoked")
    for k in keys:
        table.add_row(
            str(k.id),
            k.name,
            k.role,
            k.prefix + "…",
            str(k.rate_limit_per_minute),
            k.created_at[:19],
            "yes" if k.revoked else "",
        )
    console.print(table)


@keys_app.command("revoke")
def revoke(key_id: Annotated[int, typer.Argument(help="The key's id, from `genlab keys list`.")]) -> None:
    """Revoke an API key: requests with it are refused from now on."""
    from genlab.storage import Store

    info = Store().revoke_key(key_id)
    console.print(f"revoked key {info.id} ({info.name})")
