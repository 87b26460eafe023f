"""Attacks through Ollama's API: it is a second door into the same gate, never a way around it.
A `user` or `reviewer` key cannot pull a model; no key gets nothing; a prompt the guard refuses on
/v1/chat/completions is refused on /api/chat and /api/generate too (in any message, streamed or
not, templated or raw), before any token and with nothing recorded; a review rule written for
chat.completions holds /api/chat's answers as well."""

from __future__ import annotations

import httpx
import ollama
import pytest

from tests.conftest import EMBEDDED

from ..server.conftest import reviewed  # noqa: F401  (the fixture: chat always held for review)
from .test_input_fields import ATTACKS


def client(live, role: str) -> ollama.Client:
    return ollama.Client(host=live.url, headers={"authorization": f"Bearer {live.keys[role]}"})


@pytest.mark.parametrize("role", ["user", "reviewer"])
def test_only_an_admin_may_pull(keyed, role):
    names = keyed.state.registry.names()
    with pytest.raises(ollama.ResponseError) as e:
        list(client(keyed, role).pull("hf.co/genlab/plays-GGUF:Q4_K_M", stream=True))
    assert e.value.status_code == 403 and "admin" in e.value.error
    assert keyed.state.registry.names() == names
    with pytest.raises(ollama.ResponseError) as e:  # an admin passes the role check (and no further here)
        client(keyed, "admin").pull("llama3.2")
    assert e.value.status_code == 400


def test_no_key_gets_nothing(keyed):
    for method, path in (
        ("GET", "/api/tags"),
        ("GET", "/api/ps"),
        ("POST", "/api/chat"),
        ("POST", "/api/pull"),
    ):
        r = httpx.request(method, f"{keyed.url}{path}", json={"model": EMBEDDED}, timeout=30)
        assert r.status_code == 401 and isinstance(r.json()["error"], str), (path, r.text)


def calls(city: str, result: str) -> list[dict]:
    """A conversation with a tool turn, in Ollama's shape and in OpenAI's (the call's id)."""
    ollama_call = {"function": {"name": "weather", "arguments": {"city": city}}}
    openai_call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "weather", "arguments": f'{{"city": "{city}"}}'},
    }
    return [
        [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "", "tool_calls": [ollama_call]},
            {"role": "tool", "tool_name": "weather", "content": result},
        ],
        [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "", "tool_calls": [openai_call]},
            {"role": "tool", "tool_call_id": "c1", "content": result},
        ],
    ]


def system(a: str) -> list[dict]:
    return [{"role": "system", "content": a}, {"role": "user", "content": "hi"}]


#: place -> (Ollama's route and body, OpenAI's route and body): the same text where the model reads it
PLACES = {
    "chat user": lambda a: (
        ("chat", {"messages": [{"role": "user", "content": a}]}),
        ("chat/completions", {"messages": [{"role": "user", "content": a}]}),
    ),
    "chat system": lambda a: (
        ("chat", {"messages": system(a)}),
        ("chat/completions", {"messages": system(a)}),
    ),
    "chat tool result": lambda a: (
        ("chat", {"messages": calls("Oslo", a)[0]}),
        ("chat/completions", {"messages": calls("Oslo", a)[1]}),
    ),
    "chat call arguments": lambda a: (
        ("chat", {"messages": calls(a, "sunny")[0]}),
        ("chat/completions", {"messages": calls(a, "sunny")[1]}),
    ),
    "generate prompt": lambda a: (
        ("generate", {"prompt": a}),
        ("chat/completions", {"messages": [{"role": "user", "content": a}]}),
    ),
    "generate system": lambda a: (
        ("generate", {"prompt": "hi", "system": a}),
        ("chat/completions", {"messages": system(a)}),
    ),
    "generate raw": lambda a: (("generate", {"prompt": a, "raw": True}), ("completions", {"prompt": a})),
}


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("attack", ["injection", "harmful", "forged_turn"])
def test_a_guarded_prompt_is_refused_through_ollamas_api(keyed, attack, place):
    """As /v1 refuses it, streamed or not, before any byte of a stream and with nothing recorded;
    a user's, a tool's or a call's text is always refused (a system message is the caller's own
    instruction: what the policy allows there, it allows on both doors)."""
    (route, body), (openai_route, openai_body) = PLACES[place](ATTACKS[attack])
    headers = {"authorization": f"Bearer {keyed.keys['user2']}"}
    before = len(keyed.store.list_generations(limit=1000))
    openai = httpx.post(
        f"{keyed.url}/v1/{openai_route}",
        json={**openai_body, "model": EMBEDDED, "max_tokens": 4},
        headers=headers,
        timeout=60,
    )
    assert openai.status_code == 400 or "system" in place, openai.text
    for stream in (False, True):
        body = {**body, "model": EMBEDDED, "stream": stream, "options": {"num_predict": 4}}
        r = httpx.post(f"{keyed.url}/api/{route}", json=body, headers=headers, timeout=60)
        assert r.status_code == openai.status_code, r.text  # a stream: refused before its 200
        if r.status_code == 400:
            assert isinstance(r.json()["error"], str) and r.json()["error"]
    if openai.status_code == 400:
        assert len(keyed.store.list_generations(limit=1000)) == before


def test_a_review_rule_for_chat_holds_ollamas_chat_too(reviewed):  # noqa: F811
    headers = {"authorization": f"Bearer {reviewed.keys['user']}"}
    body = {"model": EMBEDDED, "messages": [{"role": "user", "content": "Hi"}], "options": {"num_predict": 4}}
    whole = httpx.post(
        f"{reviewed.url}/api/chat", json={**body, "stream": False}, headers=headers, timeout=60
    )
    assert whole.status_code == 202 and whole.json()["object"] == "review", whole.text
    streamed = httpx.post(f"{reviewed.url}/api/chat", json=body, headers=headers, timeout=60)
    assert streamed.status_code == 400 and "stream" in streamed.json()["error"]
