"""Attacks on the llama-server and Cohere routes: /v1/rerank is a door into the embedding gate
(a text /v1/embeddings refuses, as the query or any document, is refused, with nothing recorded);
token ids outside the vocabulary never reach llama.cpp (it would read past its table); none of
these routes answers without a key."""

from __future__ import annotations

import json

import httpx
import pytest

from genlab.server.app import ServerConfig, create_app
from genlab.storage import Store

from ..server.conftest import LiveServer
from .test_input_fields import ATTACKS


def post(live, path: str, body: dict, role: str = "user") -> httpx.Response:
    headers = {"authorization": f"Bearer {live.keys[role]}"}
    return httpx.post(f"{live.url}{path}", json=body, headers=headers, timeout=60)


@pytest.mark.parametrize("where", ["query", "document"])
def test_rerank_refuses_what_embeddings_refuses(keyed, where):
    attack = ATTACKS["harmful"]
    embeddings = post(keyed, "/v1/embeddings", {"model": "all-minilm-l6-v2", "input": attack})
    assert embeddings.status_code == 400, embeddings.text
    before = len(keyed.store.list_generations(limit=1000))
    query, documents = (attack, ["a cat"]) if where == "query" else ("cats", ["a cat", attack])
    r = post(keyed, "/v1/rerank", {"query": query, "documents": documents})
    assert r.status_code == 400 and r.json()["error"]["code"] == "content_policy_violation", r.text
    assert len(keyed.store.list_generations(limit=1000)) == before


@pytest.mark.parametrize("ids", [[2**31 - 1], [-5], [1, 2, 262_144 * 4]])
def test_token_ids_outside_the_vocabulary_are_refused(keyed, ids):
    r = post(keyed, "/detokenize", {"tokens": ids})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tokens", r.text
    assert post(keyed, "/detokenize", {"tokens": [1, 2]}).status_code == 200  # the server lives on


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/tokenize"),
        ("POST", "/detokenize"),
        ("GET", "/tokenizer_info"),
        ("GET", "/props"),
        ("POST", "/v1/rerank"),
        ("POST", "/rerank"),
    ],
)
def test_no_key_gets_nothing(keyed, method, path):
    r = httpx.request(method, f"{keyed.url}{path}", json={"content": "hi", "tokens": [1]}, timeout=30)
    assert r.status_code == 401, r.text


REDACTING = """
name: redacting
input:
  - scanner: pii
    action: warn
output:
  - scanner: pii
    action: redact
    entities: [EMAIL_ADDRESS]
"""
#: a prompt the base model answers by repeating the address
EMAIL_PROMPT = (
    "Contact: ana.lopez@example.com\nContact: ana.lopez@example.com\nContact: ana.lopez@example.com\nContact:"
)


@pytest.fixture(scope="module")
def redacting(registry, gemma, tmp_path_factory):
    folder = tmp_path_factory.mktemp("redacting")
    (folder / "redacting.yaml").write_text(REDACTING)
    store = Store(f"sqlite:///{folder / 'genlab.db'}")
    config = ServerConfig(open_access=True, policy=str(folder / "redacting.yaml"))
    with LiveServer(create_app(registry, store, config)) as live:
        yield live


@pytest.mark.parametrize("stream", [False, True])
def test_logprobs_never_show_what_the_output_policy_redacted(redacting, stream):
    body = {
        "model": "gemma-3-270m",
        "prompt": EMAIL_PROMPT,
        "max_tokens": 12,
        "temperature": 0,
        "logprobs": 5,
    }
    if not stream:
        r = httpx.post(f"{redacting.url}/v1/completions", json={**body}, timeout=120)
        assert r.status_code == 200, r.text
        text, raw = r.json()["choices"][0]["text"], r.text
    else:
        with httpx.stream(
            "POST", f"{redacting.url}/v1/completions", json={**body, "stream": True}, timeout=120
        ) as r:
            assert r.status_code == 200
            raw = "".join(r.iter_text())
        text = "".join(
            json.loads(line[6:])["choices"][0]["text"]
            for line in raw.splitlines()
            if line.startswith("data: {") and json.loads(line[6:])["choices"]
        )
    assert "lopez@" not in text and text.strip(), text  # the model wrote the address; it was redacted
    assert "lopez" not in raw and "example" not in raw  # not in a token, nor in an alternative
