"""Sentence embeddings with the `openai` client: OpenAI's shape (float and base64, batches, usage,
dimensions), meaning-aware vectors, the input policy, and the CLI and Python faces."""

import base64
import json

import httpx
import numpy as np
import openai
import pytest

from tests.conftest import assert_clean_error, genlab_cli


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused-on-an-open-server", max_retries=0)


def test_embeddings_in_openais_shape(client):
    texts = ["How do I reset my password?", "I forgot my login details.", "The best pizza in town."]
    r = client.embeddings.create(model="text-embedding-3-small", input=texts)
    vectors = np.array([d.embedding for d in r.data])
    assert vectors.shape == (3, 384) and [d.index for d in r.data] == [0, 1, 2]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert r.usage.prompt_tokens == r.usage.total_tokens > 3 * 3
    similarity = vectors @ vectors.T
    assert (
        similarity[0, 1] > similarity[0, 2] + 0.2 and similarity[0, 1] > similarity[1, 2] + 0.2
    )  # meaning, not words
    encoded = client.embeddings.create(model="all-minilm-l6-v2", input=texts[0], encoding_format="base64")
    decoded = np.frombuffer(base64.b64decode(encoded.data[0].embedding), "<f4")
    assert np.allclose(decoded, vectors[0], atol=1e-5)  # the same vector, as little-endian float32
    short = client.embeddings.create(model="all-minilm-l6-v2", input=texts[0], dimensions=64)
    assert len(short.data[0].embedding) == 64 and abs(np.linalg.norm(short.data[0].embedding) - 1) < 1e-4


def test_raw_base64_is_little_endian_float32(server):
    r = httpx.post(
        f"{server.url}/v1/embeddings",
        json={"model": "all-minilm-l6-v2", "input": "hi", "encoding_format": "base64"},
    )
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    assert len(raw) == 384 * 4 and abs(np.linalg.norm(np.frombuffer(raw, "<f4")) - 1) < 1e-4


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"model": "all-minilm-l6-v2", "input": [[1, 2, 3]]}, 400, "token arrays"),
        ({"model": "all-minilm-l6-v2", "input": ["ok", "  "]}, 400, "non-empty"),
        ({"model": "all-minilm-l6-v2", "input": "x", "dimensions": 999}, 400, "dimensions"),
        ({"model": "gemma-3-270m", "input": "x"}, 400, "embeddings"),
        ({"model": "nope", "input": "x"}, 404, "unknown model"),
        (
            {
                "model": "all-minilm-l6-v2",
                "input": "my key is sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd",
            },
            400,
            "secret",
        ),
    ],
)
def test_bad_embedding_requests(server, body, status, needle):
    r = httpx.post(f"{server.url}/v1/embeddings", json=body, timeout=60)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"].lower()


def test_the_cli_and_python_faces(tmp_path):
    out = genlab_cli("embed", "a cat sat on the mat", "a kitten rested on the rug", "--json", home=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)["data"]
    assert len(data) == 2 and len(data[0]["embedding"]) == 384
    table = genlab_cli("embed", "a cat sat on the mat", "a kitten rested on the rug", home=tmp_path)
    assert "cosine similarity" in table.stdout
    assert_clean_error(genlab_cli("embed", home=tmp_path), "give one or more texts")
    import genlab

    vectors = genlab.embed(["hello world", "hi there"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
