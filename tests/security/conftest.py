"""Servers to attack: an open loopback one, and one with keys of every role (two users)."""

from __future__ import annotations

import pytest

from genlab.server.app import ServerConfig, create_app
from genlab.storage import Store

from ..server.conftest import LiveServer


@pytest.fixture(scope="module")
def server(registry, gemma, tmp_path_factory):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('open') / 'genlab.db'}")
    with LiveServer(create_app(registry, store, ServerConfig(open_access=True))) as live:
        yield live


@pytest.fixture(scope="module")
def keyed(registry, gemma, tmp_path_factory):
    """Keys required: two users, a reviewer and an admin (``live.keys``)."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('keyed') / 'genlab.db'}")
    keys = {
        role: store.create_key(role, role.rstrip("2"))[0] for role in ("user", "user2", "reviewer", "admin")
    }
    with LiveServer(create_app(registry, store, ServerConfig(open_access=False))) as live:
        live.keys = keys
        live.store = store
        yield live
