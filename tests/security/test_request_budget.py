"""One request cannot buy unbounded work: a token budget per request, a deadline, and work that
stops when its client leaves, streamed or not."""

from __future__ import annotations

import time

import httpx
import pytest

from genlab.server.app import ServerConfig, create_app
from genlab.storage import Store

from ..server.conftest import LiveServer

EMBEDDED = "gemma-3-270m"
# Greedy counting goes on for hundreds of tokens on any CPU: a generation that outlasts the deadline
# and the client, not one that a sampled end-of-text might finish first.
LONG = {"model": EMBEDDED, "prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "max_tokens": 4000, "temperature": 0}


def test_a_request_over_the_token_budget_is_refused_before_any_work(server):
    body = {"model": EMBEDDED, "prompt": ["a"] * 16, "n": 16, "max_tokens": 32768}
    r = httpx.post(f"{server.url}/v1/completions", json=body, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "request_too_large"
    streamed = httpx.post(
        f"{server.url}/v1/chat/completions",
        timeout=30,
        json={
            "model": EMBEDDED,
            "messages": [{"role": "user", "content": "hi"}],
            "n": 16,
            "max_tokens": 32768,
            "stream": True,
        },
    )
    assert streamed.status_code == 400 and streamed.json()["error"]["code"] == "request_too_large"
    assert server.state.pipeline.queues.active(EMBEDDED) == 0


def test_a_non_streamed_generation_stops_when_its_client_leaves(server):
    queues = server.state.pipeline.queues
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{server.url}/v1/completions",
            timeout=httpx.Timeout(2.0, connect=5.0),
            json=LONG,
        )
    deadline = time.monotonic() + 20  # 4000 tokens would take minutes; a cancelled one frees its slot now
    while queues.active(EMBEDDED) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert queues.active(EMBEDDED) == 0


@pytest.fixture(scope="module")
def hurried(registry, gemma, tmp_path_factory):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('hurried') / 'genlab.db'}")
    config = ServerConfig(open_access=True, request_seconds=1.0)
    with LiveServer(create_app(registry, store, config)) as live:
        yield live


def test_a_generation_past_its_deadline_ends_with_a_clear_error(hurried):
    r = httpx.post(
        f"{hurried.url}/v1/completions",
        timeout=60,
        json=LONG,
    )
    assert r.status_code == 504 and r.json()["error"]["code"] == "deadline_exceeded"
    with httpx.stream(
        "POST",
        f"{hurried.url}/v1/completions",
        timeout=60,
        json={**LONG, "stream": True},
    ) as s:
        text = "".join(s.iter_text())
    assert "deadline" in text and text.rstrip().endswith("[DONE]")
    assert hurried.state.pipeline.queues.active(EMBEDDED) == 0
