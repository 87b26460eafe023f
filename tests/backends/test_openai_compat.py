"""The remote backend against a real OpenAI-compatible server on loopback: llama.cpp's own server
(llama-cpp-python[server]) serving the embedded Gemma GGUF in a subprocess."""

import shlex
import socket
import subprocess
import sys
import time

import httpx
import pytest

from genlab.core import BackendError, InvalidRequestError, ModelLoadError, TextArtifact
from genlab.registry import Registry

API_KEY = "sk-test-remote-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def remote_server(gemma_gguf):
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            *shlex.split("-m llama_cpp.server --model"),
            str(gemma_gguf),
            *shlex.split("--model_alias gemma-remote --host 127.0.0.1 --port"),
            str(port),
            *shlex.split("--n_ctx 1024 --api_key"),
            API_KEY,
            "--verbose",
            "False",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(
                f"{url}/v1/models", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=2
            ).is_success:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError("llama.cpp server did not start in 120 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture()
def remote(fresh_registry: Registry, remote_server, monkeypatch):
    monkeypatch.setenv("REMOTE_TEST_KEY", API_KEY)
    fresh_registry.add_openai("remote", f"{remote_server}/v1", "gemma-remote", api_key_env="REMOTE_TEST_KEY")
    return fresh_registry.load("remote")


def test_registry_entry_and_card(fresh_registry, remote_server):
    entry = fresh_registry.add_openai("r1", f"{remote_server}/v1/", "gemma-remote")
    assert entry.config["url"] == remote_server  # normalised: no /v1, no trailing slash
    assert entry.card.backend == "openai_compat"
    assert (
        entry.card.reproduce
        == f"genlab models add r1 --openai-url {remote_server}/v1 --remote-model gemma-remote"
    )


def test_remote_generate_matches_local_llama_cpp(remote, gemma):
    a = remote.generate("The capital of France is", max_tokens=8, temperature=0)[0]
    assert isinstance(a, TextArtifact)
    assert a.text == gemma.generate("The capital of France is", max_tokens=8, temperature=0)[0].text
    assert a.completion_tokens == 8 and a.prompt_tokens > 0 and a.finish_reason == "length"
    assert a.provenance.model == "remote" and a.provenance.parameters["remote_model"] == "gemma-remote"


def test_remote_stream_yields_pieces_that_add_up(remote):
    chunks = list(remote.stream("Once upon a time", max_tokens=12, seed=4, temperature=0))
    assert len(chunks) > 3
    text = "".join(c.text for c in chunks)
    # llama.cpp's server reuses its KV cache across requests, so greedy text can differ between
    # calls by a token; what a client relies on is that pieces arrive in order and add up.
    assert len(text) > 12 and all(c.text for c in chunks[:-1])
    assert chunks[-1].finish_reason == "length" and chunks[-1].text == ""


def test_remote_stop_and_n(remote):
    arts = remote.generate("1, 2, 3, 4,", max_tokens=30, temperature=0, stop=[" 7"], n=2, seed=1)
    assert len(arts) == 2 and [a.provenance.seed for a in arts] == [1, 2]
    assert all(" 7" not in a.text and "6" in a.text for a in arts)


def test_remote_validation_happens_before_the_network(remote):
    with pytest.raises(InvalidRequestError, match="temperature"):
        remote.generate("x", temperature=-1)


def test_missing_api_key_env_is_a_clear_error(fresh_registry, remote_server, monkeypatch):
    monkeypatch.delenv("ABSENT_KEY_VAR", raising=False)
    fresh_registry.add_openai("needs-key", remote_server, "gemma-remote", api_key_env="ABSENT_KEY_VAR")
    with pytest.raises(ModelLoadError, match=r"\$ABSENT_KEY_VAR"):
        fresh_registry.load("needs-key")


def test_wrong_api_key_is_reported_as_refused(fresh_registry, remote_server, monkeypatch):
    monkeypatch.setenv("WRONG_KEY", "sk-wrong")
    fresh_registry.add_openai("wrong-key", remote_server, "gemma-remote", api_key_env="WRONG_KEY")
    with pytest.raises(InvalidRequestError, match="401"):
        fresh_registry.load("wrong-key").generate("hello", max_tokens=2)
    with pytest.raises(InvalidRequestError, match="401"):
        list(fresh_registry.load("wrong-key").stream("hello", max_tokens=2))


def test_server_down_is_a_backend_error(fresh_registry):
    fresh_registry.add_openai("down", f"http://127.0.0.1:{_free_port()}", "m")
    with pytest.raises(BackendError, match="cannot reach"):
        fresh_registry.load("down").generate("hello", max_tokens=2)


@pytest.mark.parametrize("url", ["ftp://x", "not a url", "http://"])
def test_bad_url_is_refused(fresh_registry, url):
    with pytest.raises(InvalidRequestError, match="not an http"):
        fresh_registry.add_openai("bad", url, "m")


def test_an_industry_recipe_runs_on_a_remote_model(remote):
    """The recipes take any text model: here the remote one (no GBNF grammar is sent to it)."""
    from genlab.apps import get_recipe, run_recipe

    data = {"brief": "a free class on fixing a flat tyre", "profile": "northwind-bikes", "variants": 2}
    result = run_recipe(get_recipe("marketing-copy"), data, generator=remote, seed=1)
    assert result.model == "remote" and result.calls == 1
    assert [v["rank"] for v in result.output["variants"]] == [1, 2]
    assert all(v["text"] for v in result.output["variants"])


def test_logit_bias_is_forwarded_to_the_remote_server(remote, gemma):
    star = gemma.tokenize(" *", add_bos=False)[-1]
    a = remote.generate("Once", max_tokens=3, seed=1, logit_bias={star: 100.0})[0]
    assert a.text == gemma.detokenize([star] * 3)
