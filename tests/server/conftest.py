"""A real genlab server on loopback (uvicorn in a background thread), shared by the server tests."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn

from genlab.server.app import ServerConfig, create_app
from genlab.storage import Store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, app) -> None:
        self.app = app
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    @property
    def state(self):
        return self.app.state.genlab


@pytest.fixture(scope="session")
def server(registry, gemma, tmp_path_factory):
    """Open access (loopback, no keys), the session's registry (models already loaded)."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('db') / 'genlab.db'}")
    with LiveServer(create_app(registry, store, ServerConfig(open_access=True, queue_limit=4))) as live:
        yield live


@pytest.fixture()
def keyed_server(registry, gemma, tmp_path):
    """Keys required; one key with a low rate limit."""
    store = Store(f"sqlite:///{tmp_path / 'keys.db'}")
    key, _ = store.create_key("tests", "user", rate_limit_per_minute=3)
    with LiveServer(create_app(registry, store, ServerConfig(open_access=False))) as live:
        live.key = key
        yield live


REVIEW_POLICY = """
name: reviewed
input:
  - scanner: pii
    action: flag
output:
  - scanner: pii_leakage
    action: warn
review:
  mode: flagged
  due_minutes: 60
  endpoints:
    chat.completions: always
    images: always
"""


@pytest.fixture(scope="module")
def reviewed(registry, gemma, tmp_path_factory):
    """Keys required (a user and two reviewers); chat and images always held, PII in a prompt flags it."""
    folder = tmp_path_factory.mktemp("review")
    (folder / "reviewed.yaml").write_text(REVIEW_POLICY)
    store = Store(f"sqlite:///{folder / 'genlab.db'}")
    user, _ = store.create_key("app", "user")
    reviewer, _ = store.create_key("ana", "reviewer")
    other, _ = store.create_key("ben", "reviewer")
    config = ServerConfig(
        open_access=False, policy=str(folder / "reviewed.yaml"), webhook_allow=("127.0.0.1",)
    )
    with LiveServer(create_app(registry, store, config)) as live:
        live.keys = {"user": user, "reviewer": reviewer, "other": other}
        yield live
