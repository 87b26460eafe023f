"""The embedded Gemma through real llama.cpp: sampling settings, constraints, limits, threads."""

import json
import re
import threading

import jsonschema
import pytest

from genlab.core import (
    ContextLengthError,
    GenerationRequest,
    Generator,
    InvalidRequestError,
    SamplingParams,
    TextArtifact,
)
from genlab.core.io import sha256_bytes

PROMPT = "The quick brown fox"


def test_satisfies_the_generator_protocol(gemma):
    assert isinstance(gemma, Generator)
    assert gemma.supports_streaming
    assert gemma.card.parameters == 268_098_176


def test_same_seed_same_text_and_provenance(gemma):
    a = gemma.generate(PROMPT, max_tokens=16, seed=42)[0]
    b = gemma.generate(PROMPT, max_tokens=16, seed=42)[0]
    assert isinstance(a, TextArtifact)
    assert a.text == b.text and a.text.strip()
    p = a.provenance
    assert (p.model, p.family, p.modality, p.seed) == ("gemma-3-270m", "transformer", "text", 42)
    assert p.sha256 == sha256_bytes(a.text.encode())
    assert p.parameters["max_tokens"] == 16 and p.parameters["backend"] == "llamacpp"


def test_different_seeds_give_different_text(gemma):
    texts = {gemma.generate(PROMPT, max_tokens=24, seed=s, temperature=1.0)[0].text for s in range(4)}
    assert len(texts) > 1


def test_stream_yields_the_same_text_as_generate(gemma):
    chunks = list(gemma.stream(PROMPT, max_tokens=20, seed=5))
    last = chunks[-1]
    # it really streams, piece by piece: one chunk per token (a multi-byte character may hold a few)
    assert len(chunks) - 1 >= min(last.completion_tokens, 3)
    streamed = "".join(c.text for c in chunks)
    assert streamed == gemma.generate(PROMPT, max_tokens=20, seed=5)[0].text
    assert last.finish_reason in ("stop", "length") and last.text == ""
    assert last.prompt_tokens == gemma.count_tokens(PROMPT)


def test_max_tokens_bounds_the_output(gemma):
    a = gemma.generate("Count: 1, 2, 3,", max_tokens=5, seed=1, temperature=0)[0]
    assert a.finish_reason == "length" and a.completion_tokens == 5
    assert len(gemma.tokenize(a.text, add_bos=False)) <= 6


def test_greedy_is_deterministic_without_a_seed(gemma):
    a = gemma.generate(PROMPT, max_tokens=12, temperature=0)[0].text
    b = gemma.generate(PROMPT, max_tokens=12, temperature=0)[0].text
    assert a == b


def test_stop_sequence_ends_the_text_before_it(gemma):
    a = gemma.generate("1, 2, 3, 4,", max_tokens=40, temperature=0, stop=[" 7"])[0]
    assert " 7" not in a.text and a.finish_reason == "stop"
    assert "6" in a.text


def test_n_choices_have_consecutive_seeds(gemma):
    arts = gemma.generate(
        GenerationRequest(prompt=PROMPT, n=3, seed=100, params=SamplingParams(max_tokens=8))
    )
    assert [a.provenance.seed for a in arts] == [100, 101, 102]
    assert arts[1].text == gemma.generate(PROMPT, max_tokens=8, seed=101)[0].text


def test_json_schema_constrains_output(gemma):
    """Bounded strings and numbers: the object closes within max_tokens on any CPU, for any seed."""
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},  # value bounds are enforced too
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    for seed in (3, 4):
        a = gemma.generate("A person, as JSON:", max_tokens=60, seed=seed, json_schema=schema)[0]
        assert a.finish_reason == "stop"
        jsonschema.validate(json.loads(a.text), schema)


def test_nested_schema_with_arrays_and_enums_validates(gemma):
    """Sampled hot (temperature 1.5, no top-k) the model tries everything; every output validates."""
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 10},
            "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 3},
            "size": {"type": "object", "properties": {"w": {"type": "integer", "minimum": 1, "maximum": 9}}},
        },
        "required": ["title", "tags", "size"],
    }
    for seed in range(4):
        a = gemma.generate(
            "An item:", max_tokens=60, seed=seed, json_schema=schema, temperature=1.5, top_k=0, min_p=0.0
        )[0]
        assert a.finish_reason == "stop", a.text
        item = json.loads(a.text)
        jsonschema.validate(item, schema)
        assert set(item) <= {"title", "tags", "size"}  # objects that list properties are closed


def test_regex_constrains_output(gemma):
    for seed in range(3):
        a = gemma.generate(
            "Phone:", max_tokens=20, seed=seed, regex=r"\(\d{3}\) \d{3}-\d{4}", temperature=1.2
        )[0]
        assert re.fullmatch(r"\(\d{3}\) \d{3}-\d{4}", a.text) and a.finish_reason == "stop"


def test_gbnf_grammar_constrains_output(gemma):
    for seed in range(3):
        a = gemma.generate(
            "Is water wet? Answer:", max_tokens=4, seed=seed, grammar='root ::= " yes" | " no"'
        )[0]
        assert a.text in (" yes", " no")


def test_constrained_streams_logprobs_and_seeds_work_as_before(gemma):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    one = gemma.generate("Status:", max_tokens=20, seed=7, json_schema=schema, logprobs=2)[0]
    assert (
        one.text == gemma.generate("Status:", max_tokens=20, seed=7, json_schema=schema, logprobs=2)[0].text
    )
    assert json.loads(one.text)["ok"] in (True, False) and one.logprobs and len(one.logprobs) >= 3
    chunks = list(gemma.stream("Status:", max_tokens=20, seed=7, json_schema=schema))
    assert "".join(c.text for c in chunks) == one.text and chunks[-1].finish_reason == "stop"
    cut = gemma.generate("Status:", max_tokens=2, seed=7, json_schema=schema)[0]
    assert cut.finish_reason == "length" and cut.completion_tokens == 2


def test_malformed_grammar_and_schema_are_refused_cleanly(gemma):
    with pytest.raises(InvalidRequestError, match="grammar does not compile"):
        gemma.generate("x", grammar="root ::= (")
    with pytest.raises(InvalidRequestError, match="grammar does not compile"):
        gemma.generate("x", grammar='begin ::= "a"')  # no root rule
    with pytest.raises(InvalidRequestError, match="JSON schema cannot be used"):
        gemma.generate("x", json_schema={"$ref": "#/definitions/missing"})
    for bad, words in [
        ({"json_schema": {"type": "array", "uniqueItems": True}}, "uniqueItems"),  # not enforceable
        ({"json_schema": {"enum": []}}, "never be satisfied"),
        ({"json_schema": {"type": "nothing"}}, "not a valid JSON Schema"),
        ({"regex": "(("}, "regular expression cannot be used"),
    ]:
        with pytest.raises(InvalidRequestError, match=words):
            gemma.generate("x", **bad)
    assert gemma.generate("still works", max_tokens=2, seed=1)[0].completion_tokens == 2


def test_logprobs_are_returned_per_token(gemma):
    a = gemma.generate(PROMPT, max_tokens=6, seed=9, logprobs=3)[0]
    assert a.logprobs is not None and len(a.logprobs) >= 1
    assert "".join(t["token"] for t in a.logprobs) == a.text
    for t in a.logprobs:
        assert t["logprob"] <= 0 and 1 <= len(t["top_logprobs"]) <= 3
    plain = gemma.generate(PROMPT, max_tokens=6, seed=9)[0]
    assert plain.logprobs is None and plain.text == a.text


def test_prompt_longer_than_context_is_refused(gemma):
    long_prompt = "word " * (gemma.n_ctx + 10)
    with pytest.raises(ContextLengthError, match="do not fit the context of 4096"):
        gemma.generate(long_prompt, max_tokens=8)


def test_max_tokens_beyond_context_is_refused(gemma):
    with pytest.raises(ContextLengthError) as err:
        gemma.stream("hello", max_tokens=gemma.n_ctx)
    assert err.value.param == "max_tokens"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prompt": ""}, "prompt is empty"),
        ({"prompt": "x", "temperature": -1}, "temperature"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "x", "bogus": 1}, "unknown setting"),
    ],
)
def test_bad_requests_raise_typed_errors_before_any_work(gemma, kwargs, match):
    prompt = kwargs.pop("prompt")
    with pytest.raises(InvalidRequestError, match=match):
        gemma.generate(prompt, **kwargs)
    with pytest.raises(InvalidRequestError, match=match):
        gemma.stream(prompt, **kwargs)  # raised at the call, not at the first chunk


def test_threads_share_the_model_safely(gemma):
    seeds = [1, 2, 3, 4]
    expected = {s: gemma.generate(PROMPT, max_tokens=10, seed=s)[0].text for s in seeds}
    got: dict[int, str] = {}
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            if seed % 2:
                got[seed] = "".join(c.text for c in gemma.stream(PROMPT, max_tokens=10, seed=seed))
            else:
                got[seed] = gemma.generate(PROMPT, max_tokens=10, seed=seed)[0].text
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(s,)) for s in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert got == expected


def test_abandoned_stream_releases_the_model(gemma):
    stream = gemma.stream(PROMPT, max_tokens=50, seed=1)
    next(stream)
    stream.close()  # a client that went away
    assert gemma.generate(PROMPT, max_tokens=3, seed=1)[0].completion_tokens == 3


def test_a_small_model_decodes_on_one_thread_and_evaluates_prompts_on_every_core(gemma, registry):
    from genlab.backends.llamacpp import decode_threads
    from genlab.core.settings import Settings, physical_cores

    assert registry.settings.threads is None  # the default: chosen per model
    assert (gemma._llm.n_threads, gemma._llm.n_threads_batch) == (1, physical_cores())
    chosen = Settings(home=registry.settings.home, threads=3)
    assert decode_threads(gemma.model_path, chosen) == 3  # GENLAB_THREADS is obeyed as set


def test_logit_bias_bans_and_forces_tokens(gemma):
    greedy = gemma.generate(PROMPT, max_tokens=6, temperature=0)[0].text
    first = gemma.tokenize(greedy, add_bos=False)[0]
    banned = gemma.generate(PROMPT, max_tokens=6, temperature=0, logit_bias={first: -100.0})[0].text
    assert gemma.tokenize(banned, add_bos=False)[0] != first
    star = gemma.tokenize(" *", add_bos=False)[-1]
    forced = gemma.generate(PROMPT, max_tokens=3, temperature=1.0, seed=1, logit_bias={star: 100.0})[0]
    assert forced.text == gemma.detokenize([star] * 3)
    with pytest.raises(InvalidRequestError, match="outside the vocabulary") as err:
        gemma.generate(PROMPT, max_tokens=2, logit_bias={10**7: 1.0})
    assert err.value.param == "logit_bias"
    with pytest.raises(InvalidRequestError, match="logit_bias maps"):
        gemma.generate(PROMPT, max_tokens=2, logit_bias={1: 500.0})
