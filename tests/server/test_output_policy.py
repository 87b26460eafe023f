"""The output policy on streamed and non-streamed generations."""

import json

import httpx
import pytest

from genlab.server.app import ServerConfig, create_app
from genlab.storage import Store

from .conftest import LiveServer

POLICY = "output:\n  - scanner: banned_substrings\n    action: block\n    substrings: [' the ']\n"


@pytest.fixture(scope="module")
def strict_server(registry, gemma, tmp_path_factory):
    folder = tmp_path_factory.mktemp("policy")
    (folder / "strict.yaml").write_text(POLICY)
    store = Store(f"sqlite:///{folder / 'db.sqlite'}")
    config = ServerConfig(open_access=True, policy=str(folder / "strict.yaml"))
    with LiveServer(create_app(registry, store, config)) as live:
        yield live


def test_blocked_output_stops_the_stream_with_content_filter(strict_server):
    events = []
    with httpx.stream(
        "POST",
        f"{strict_server.url}/v1/completions",
        timeout=120,
        json={
            "model": "gemma-3-270m",
            "prompt": "Once upon a time, in the middle of the forest,",
            "max_tokens": 80,
            "seed": 1,
            "stream": True,
            "temperature": 0,
        },
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: {"):
                events.append(json.loads(line[6:]))
    text = "".join(c["text"] for e in events for c in e["choices"])
    finishes = [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]]
    assert finishes == ["content_filter"] and " the " not in text


def test_blocked_output_without_streaming(strict_server):
    r = httpx.post(
        f"{strict_server.url}/v1/completions",
        timeout=120,
        json={
            "model": "gemma-3-270m",
            "prompt": "Once upon a time, in the middle of the forest,",
            "max_tokens": 60,
            "seed": 1,
            "temperature": 0,
        },
    )
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "content_filter" and choice["text"] == ""


@pytest.fixture(scope="module")
def redacting_server(registry, gemma, tmp_path_factory):
    folder = tmp_path_factory.mktemp("redact")
    (folder / "redact.yaml").write_text(POLICY.replace("action: block", "action: redact"))
    store = Store(f"sqlite:///{folder / 'db.sqlite'}")
    with LiveServer(
        create_app(registry, store, ServerConfig(open_access=True, policy=str(folder / "redact.yaml")))
    ) as live:
        yield live


def test_redacted_output_is_what_is_returned_hashed_and_recorded(redacting_server):
    import hashlib

    r = httpx.post(
        f"{redacting_server.url}/v1/chat/completions",
        timeout=120,
        json={
            "model": "gemma-3-270m",
            "max_tokens": 60,
            "seed": 1,
            "temperature": 0,
            "messages": [{"role": "user", "content": "Tell me a story about the forest and the river."}],
        },
    )
    body = r.json()
    content = body["choices"][0]["message"]["content"]
    assert "<banned_substring_1>" in content and " the " not in content
    record = httpx.get(
        f"{redacting_server.url}/v1/genlab/generations/{body['genlab']['generation_ids'][0]}"
    ).json()
    assert record["output_text"].strip() == content
    assert record["artifact_sha256"] == hashlib.sha256(record["output_text"].encode()).hexdigest()
