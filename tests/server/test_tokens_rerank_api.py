"""llama-server's and vLLM's tokenizer routes and the Cohere/Jina rerank route against a live
server: ids round-trip through /tokenize and /detokenize, /tokenizer_info carries what
lm-evaluation-harness's remote tokenizer reads, and rerank orders documents by meaning."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import EMBEDDED


def post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=60)


@pytest.mark.parametrize("prefix", ["", "/v1"])
def test_tokenize_and_detokenize_round_trip(server, prefix):
    text = "The quick brown fox jumps over the lazy dog."
    plain = post(server, f"{prefix}/tokenize", {"content": text}).json()
    assert plain["count"] == len(plain["tokens"]) > 3 and all(isinstance(t, int) for t in plain["tokens"])
    back = post(server, f"{prefix}/detokenize", {"tokens": plain["tokens"]}).json()
    assert back["content"] == back["prompt"] and back["content"].strip() == text
    pieces = post(server, f"{prefix}/tokenize", {"content": text, "with_pieces": True}).json()["tokens"]
    assert [p["id"] for p in pieces] == plain["tokens"] and "".join(
        p["piece"] for p in pieces
    ).strip() == text


def test_the_special_tokens_follow_each_servers_default(server):
    """llama-server adds no BOS unless asked (add_special); vLLM adds it unless told not to."""
    llama = post(server, "/tokenize", {"content": "hi"}).json()["tokens"]
    vllm = post(server, "/tokenize", {"prompt": "hi"}).json()["tokens"]
    asked = post(server, "/tokenize", {"content": "hi", "add_special": True}).json()["tokens"]
    assert vllm == asked and len(asked) == len(llama) + 1 and asked[1:] == llama


def test_tokenizer_info_and_props(server):
    info = httpx.get(f"{server.url}/tokenizer_info", timeout=30).json()
    assert info["eos_token"] and info["model_max_length"] > 0 and info["vocab_size"] > 1000
    assert "chat_template" in info
    props = httpx.get(f"{server.url}/props", params={"model": EMBEDDED}, timeout=30).json()
    assert props["default_generation_settings"]["n_ctx"] == info["model_max_length"]
    assert httpx.get(f"{server.url}/v1/health", timeout=30).json()["status"] == "ok"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/detokenize", {"tokens": [10**9]}, "tokens"),
        ("/detokenize", {"tokens": [-1]}, "tokens"),
        ("/tokenize", {"content": "hi", "model": "all-minilm-l6-v2"}, "model"),
        ("/v1/rerank", {"query": "q", "documents": ["d"] * 1001}, "documents"),
        ("/v1/rerank", {"query": "q", "documents": []}, "documents"),
        ("/v1/rerank", {"query": "q", "documents": ["d"], "model": EMBEDDED}, "model"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(server, path, body, param):
    r = post(server, path, body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param or param in error["message"], error


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank"])
def test_rerank_orders_by_meaning(server, path):
    documents = ["The cat sat on the mat.", "Stock markets fell sharply today.", "A kitten naps on a rug."]
    body = {"model": "all-minilm-l6-v2", "query": "a small cat sleeping", "documents": documents, "top_n": 2}
    out = post(server, path, body).json()
    results = out["results"]
    assert len(results) == 2 and {r["index"] for r in results} <= {0, 2}
    assert results[0]["relevance_score"] >= results[1]["relevance_score"]
    assert out["usage"]["total_tokens"] > 0 and out["genlab"]["generation_ids"]
    with_text = post(server, path, {**body, "return_documents": True, "top_n": None}).json()["results"]
    assert len(with_text) == 3 and with_text[-1]["index"] == 1
    assert with_text[0]["document"]["text"] == documents[with_text[0]["index"]]
