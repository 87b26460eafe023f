"""Ollama's API, spoken by the official ``ollama`` Python client against a live loopback server:
chat and generate (streamed as NDJSON and whole), embed, tags, show, ps, version and pull (from a
loopback Hub), Ollama's option names, and its error shape for what genlab cannot do."""

from __future__ import annotations

import json

import httpx
import ollama
import pytest

from genlab.server.app import ServerConfig, create_app
from genlab.storage import Store
from genlab.training.gguf_export import export_gguf
from tests.conftest import EMBEDDED
from tests.hub import hub_app
from tests.server.conftest import LiveServer

EMBEDDING = "all-minilm-l6-v2"
SHORT = {"num_predict": 8, "temperature": 0, "seed": 1}


@pytest.fixture(scope="module")
def client(server):
    return ollama.Client(host=server.url)


def test_chat_whole_and_streamed(client):
    messages = [{"role": "user", "content": "Say hello."}]
    whole = client.chat(model=f"{EMBEDDED}:latest", messages=messages, options=SHORT)
    assert whole.done and whole.done_reason in ("stop", "length")
    assert whole.message.role == "assistant" and isinstance(whole.message.content, str)
    assert whole.prompt_eval_count > 0 and 0 < whole.eval_count <= 8
    parts = list(client.chat(model=EMBEDDED, messages=messages, options=SHORT, stream=True))
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    assert parts[-1].eval_count <= 8 and parts[-1].total_duration > 0
    assert all(p.message.role == "assistant" for p in parts)


def test_generate_templated_and_raw(client):
    templated = client.generate(model=EMBEDDED, prompt="The sky is", options=SHORT)
    assert templated.done and isinstance(templated.response, str) and templated.eval_count <= 8
    lines = list(
        client.generate(model=EMBEDDED, prompt="Once upon a time", raw=True, options=SHORT, stream=True)
    )
    assert lines[-1].done and all(not p.done for p in lines[:-1])
    assert "".join(p.response for p in lines).strip() or lines[-1].done_reason == "stop"


def test_the_stream_is_ndjson_and_stream_is_the_default(server):
    body = {"model": EMBEDDED, "prompt": "One, two,", "options": SHORT}
    with httpx.stream("POST", f"{server.url}/api/generate", json=body, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        objects = [json.loads(line) for line in r.iter_lines() if line]
    assert len(objects) >= 2 and objects[-1]["done"] is True and objects[-1]["done_reason"]
    assert all(o["model"] == EMBEDDED and o["created_at"].endswith("Z") for o in objects)


def test_json_format_gives_json(client):
    answer = client.chat(
        model=EMBEDDED,
        messages=[{"role": "user", "content": "Give a JSON object with a key name."}],
        format={"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        options={"num_predict": 40, "temperature": 0},
    )
    if answer.done_reason == "stop":
        assert isinstance(json.loads(answer.message.content)["name"], str)


def test_an_empty_request_loads_the_model(client):
    loaded = client.generate(model=EMBEDDED)
    assert loaded.done and loaded.done_reason == "load"


def test_embed_and_the_legacy_embeddings(client):
    out = client.embed(model=EMBEDDING, input=["a cat", "a kitten", "a tax form"])
    vectors = out.embeddings
    assert len(vectors) == 3 and len(vectors[0]) == 384 and out.prompt_eval_count > 0
    cosine = [sum(a * b for a, b in zip(vectors[0], v, strict=True)) for v in vectors]
    assert cosine[1] > cosine[2]
    legacy = client.embeddings(model=EMBEDDING, prompt="a cat")
    assert len(legacy.embedding) == 384


def test_tags_show_ps_version(client):
    names = [m.model for m in client.list().models]
    assert f"{EMBEDDED}:latest" in names and f"{EMBEDDING}:latest" in names
    shown = client.show(f"{EMBEDDED}:latest")
    assert "completion" in shown.capabilities and shown.details.family
    assert shown.modelinfo["general.parameter_count"] > 0
    assert client.show(EMBEDDING).capabilities == ["embedding"]
    client.generate(model=EMBEDDED)  # loaded now, if no test loaded it before
    assert f"{EMBEDDED}:latest" in [m.model for m in client.ps().models]
    assert httpx.get(f"{client._client.base_url}/api/version").json()["version"]


@pytest.mark.parametrize(
    ("call", "needle", "status"),
    [
        (
            lambda c: c.chat(
                model=EMBEDDED, messages=[{"role": "user", "content": "hi"}], options={"mirostat": 2}
            ),
            "mirostat",
            400,
        ),
        (lambda c: c.generate(model=EMBEDDED, prompt="hi", options={"typical_p": 0.5}), "typical_p", 400),
        (lambda c: c.generate(model=EMBEDDED, prompt="hi", options={"num_ctx": 10**7}), "num_ctx", 400),
        (lambda c: c.generate(model=EMBEDDED, prompt="hi", options={"temperature": 9}), "temperature", 400),
        (lambda c: c.generate(model=EMBEDDED, prompt="hi", suffix="x"), "suffix", 400),
        (lambda c: c.generate(model="no-such-model", prompt="hi"), "no-such-model", 404),
        (lambda c: c.generate(model=EMBEDDING, prompt="hi"), "embedding", 400),
        (lambda c: c.embed(model=EMBEDDED, input="hi"), "embedding", 400),
        (lambda c: c.pull("llama3.2"), "hf.co/", 400),
    ],
)
def test_what_genlab_cannot_do_is_a_4xx_in_ollamas_shape(client, call, needle, status):
    with pytest.raises(ollama.ResponseError) as e:
        call(client)
    assert e.value.status_code == status
    assert isinstance(e.value.error, str) and needle in e.value.error


def test_the_runtime_options_and_off_values_are_accepted(client):
    options = {**SHORT, "num_thread": 2, "num_gpu": 0, "mirostat": 0, "num_ctx": 512, "num_predict": 4}
    assert client.generate(model=EMBEDDED, prompt="Hi", options=options).eval_count <= 4


def test_every_call_is_recorded(server, client):
    before = len(server.state.store.list_generations(limit=1000))
    client.chat(model=EMBEDDED, messages=[{"role": "user", "content": "Hi"}], options=SHORT)
    client.embed(model=EMBEDDING, input="hi")
    records = server.state.store.list_generations(limit=1000)
    assert len(records) == before + 2
    assert {r["endpoint"] for r in records[:2]} == {"chat.completions", "embeddings"}


@pytest.fixture()
def pull_server(fresh_registry, gemma, trained_bpe, registry, tmp_path, monkeypatch):
    """A server on a home of its own (a pull registers a model there) and a loopback Hub."""
    folder = tmp_path / "repo"
    folder.mkdir()
    export_gguf(registry, trained_bpe, folder / "Plays-Q4_K_M.gguf")
    with LiveServer(hub_app({"genlab/plays-GGUF": {p.name: p for p in folder.iterdir()}})) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        store = Store(f"sqlite:///{tmp_path / 'genlab.db'}")
        with LiveServer(create_app(fresh_registry, store, ServerConfig(open_access=True))) as live:
            yield live


def test_pull_streams_ollamas_statuses_and_registers_the_gguf(pull_server):
    client = ollama.Client(host=pull_server.url)
    statuses = [p.status for p in client.pull("hf.co/genlab/plays-GGUF:Q4_K_M", stream=True)]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert any(s.startswith("pulling genlab/plays-GGUF") for s in statuses)
    name = next(s.removeprefix("registered as ") for s in statuses if s.startswith("registered as "))
    assert f"{name}:latest" in [m.model for m in client.list().models]
    assert client.generate(model=name, prompt="KING:", raw=True, options=SHORT).done


WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.mark.parametrize("stream", [False, True])
def test_tools_in_ollamas_shape(client, stream):
    """An answer is text or calls of the offered tool with arguments as an object; a history with
    a call and its result (matched by tool_name) is accepted."""
    messages = [{"role": "user", "content": "What is the weather in Oslo?"}]
    options = {"num_predict": 40, "temperature": 0, "seed": 1}
    parts = client.chat(model=EMBEDDED, messages=messages, tools=[WEATHER], options=options, stream=stream)
    for part in [parts] if not stream else list(parts):
        for call in part.message.tool_calls or []:
            assert call.function.name == "weather" and isinstance(call.function.arguments, dict)
    history = [
        *messages,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Oslo"}}}],
        },
        {"role": "tool", "tool_name": "weather", "content": "12 C and rain"},
    ]
    answer = client.chat(model=EMBEDDED, messages=history, tools=[WEATHER], options=SHORT)
    assert answer.done
