"""What eval harnesses and code tools ask of the text routes (#36): logprobs one per token, streamed
or not; the prompt's own logprobs (``echo``, ``max_tokens: 0``); token-array prompts; ``suffix``.
Driven by the official `openai` client against the live server."""

import httpx
import openai
import pytest

EMBEDDED = "gemma-3-270m"
CHAT = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused-on-an-open-server", max_retries=0)


def test_streamed_completion_logprobs_are_one_per_token_in_the_chunk_that_carries_it(client):
    ask = {"model": EMBEDDED, "prompt": "The history of Rome", "max_tokens": 40, "seed": 4, "logprobs": 3}
    whole = client.completions.create(**ask).choices[0]
    entries, text = [], ""
    for chunk in client.completions.create(**ask, stream=True):
        for c in chunk.choices:
            lp = c.logprobs
            tokens = lp.tokens if lp is not None else []
            assert "".join(tokens) == c.text  # the chunk's own tokens, no other's
            if lp is not None:
                assert len(lp.top_logprobs) == len(tokens) and all(len(t) <= 3 for t in lp.top_logprobs)
                entries += list(zip(tokens, lp.token_logprobs, strict=True))
            text += c.text
    assert text == whole.text
    assert len(entries) == len(whole.logprobs.tokens) == 40
    assert [t for t, _ in entries] == whole.logprobs.tokens
    assert all(v <= 0 for _, v in entries)


def test_streamed_chat_logprobs_match_the_whole_answer(client):
    ask = {
        "model": CHAT,
        "messages": [{"role": "user", "content": "Tell me about the sea."}],
        "max_tokens": 30,
        "seed": 2,
        "logprobs": True,
        "top_logprobs": 2,
    }
    whole = client.chat.completions.create(**ask).choices[0]
    entries, text = [], ""
    for chunk in client.chat.completions.create(**ask, stream=True):
        for c in chunk.choices:
            content = c.logprobs.content if c.logprobs is not None else []
            if c.delta.content:
                assert "".join(e.token for e in content) == c.delta.content
            assert all(len(e.top_logprobs) <= 2 and e.bytes == list(e.token.encode()) for e in content)
            entries += [e.token for e in content]
            text += c.delta.content or ""
    assert "".join(entries) == text
    assert entries == [e.token for e in whole.logprobs.content]
    assert text.strip() == whole.message.content


@pytest.mark.parametrize(("field", "value"), [("echo", True), ("suffix", "return x")])
def test_what_is_not_served_yet_is_a_400_naming_the_field(server, field, value):
    body = {"model": EMBEDDED, "prompt": "def f(x):", "max_tokens": 4, field: value}
    r = httpx.post(f"{server.url}/v1/completions", json=body, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text
    if field == "suffix":
        assert EMBEDDED in r.json()["error"]["message"]
