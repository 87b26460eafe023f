"""Attacks through `genlab mcp`: its tools are a door into the one gate. A guarded prompt is the
tool's error in every tool that reads text, with nothing generated or recorded; a key's calls run
and are recorded under that key; a key that is not active starts nothing; HTTP serves loopback
only (every call runs as one caller)."""

from __future__ import annotations

import anyio
import pytest

from genlab.core.settings import Settings
from genlab.storage import Store
from tests.conftest import assert_clean_error, genlab_cli

from ..test_mcp import call_all, calls_on, text_of
from .test_input_fields import ATTACKS

pytestmark = pytest.mark.slow


def test_guarded_text_is_refused_in_every_tool_and_calls_run_under_the_key(session_home):
    store = Store(settings=Settings(home=session_home))
    token, key = store.create_key("mcp-user", "user")
    before = len(store.list_generations(limit=1000))
    harmful, injection = ATTACKS["harmful"], ATTACKS["injection"]
    calls = [
        ("generate_text", {"prompt": harmful, "max_tokens": 4}),
        ("generate_text", {"prompt": "hi", "system": ATTACKS["forged_turn"], "max_tokens": 4}),
        ("embed", {"texts": ["a cat", harmful]}),
        ("speak", {"text": harmful}),
        ("generate_text", {"prompt": injection, "max_tokens": 4}),
        ("generate_text", {"prompt": "Say hi.", "max_tokens": 4}),
    ]
    try:  # the session's home has no active key otherwise (an open `genlab serve` in other tests)
        _, results = call_all(
            session_home, calls, ("--key-env", "GENLAB_TEST_KEY"), {"GENLAB_TEST_KEY": token}
        )
    finally:
        store.revoke_key(key.id)
    *refused, allowed = results
    for (name, _), result in zip(calls, refused, strict=False):
        assert result.is_error and text_of(result), (name, text_of(result))
    assert not allowed.is_error
    made = store.list_generations(limit=1000)[: len(store.list_generations(limit=1000)) - before]
    assert len(made) == 1 and made[0]["key_id"] == key.id and made[0]["request"]["api"] == "mcp"


def test_a_key_that_is_not_active_starts_nothing(tmp_path):
    proc = genlab_cli(
        "mcp", "--key-env", "GENLAB_TEST_KEY", home=tmp_path, env={"GENLAB_TEST_KEY": "gl-forged"}
    )
    assert_clean_error(proc, "GENLAB_TEST_KEY")


def test_http_serves_loopback_only(tmp_path):
    proc = genlab_cli("mcp", "--transport", "http", "--host", "0.0.0.0", home=tmp_path)
    assert_clean_error(proc, "loopback")


def keyed_transport(live, role: str):
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    client = httpx2.AsyncClient(headers={"authorization": f"Bearer {live.keys[role]}"}, timeout=120)
    return streamable_http_client(f"{live.url}/mcp", http_client=client)


def test_the_servers_mcp_needs_a_key_and_runs_each_call_as_it(keyed):
    import httpx

    bare = httpx.post(
        f"{keyed.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30
    )
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "invalid_api_key"
    before = len(keyed.store.list_generations(limit=1000))
    calls = [("embed", {"texts": [ATTACKS["harmful"]]}), ("embed", {"texts": ["a cat"]})]
    _, (refused, allowed) = anyio.run(calls_on, keyed_transport(keyed, "user2"), calls)
    assert refused.is_error and not allowed.is_error
    made = keyed.store.list_generations(limit=1000)[: len(keyed.store.list_generations(limit=1000)) - before]
    user2 = next(k for k in keyed.store.list_keys() if k.name == "user2")
    assert len(made) == 1 and made[0]["key_id"] == user2.id
