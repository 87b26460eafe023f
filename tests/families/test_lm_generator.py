"""A trained transformer behind the Generator protocol, and its GGUF export run by llama.cpp."""

import json

import jsonschema
import pytest

from genlab.core import Generator, InvalidRequestError, UnsupportedError
from genlab.training.gguf_export import export_gguf


@pytest.fixture(scope="module")
def lm(registry, trained_bpe):
    return registry.load(trained_bpe)


def test_trained_model_is_a_streaming_generator(lm):
    assert isinstance(lm, Generator) and lm.supports_streaming
    assert (
        lm.card.family == "transformer"
        and lm.card.backend == "torch"
        and lm.card.metrics["bits_per_byte"] > 0
    )
    a = lm.generate("KING: the", max_tokens=20, seed=4)[0]
    assert a.text == lm.generate("KING: the", max_tokens=20, seed=4)[0].text
    chunks = list(lm.stream("KING: the", max_tokens=20, seed=4))
    assert "".join(c.text for c in chunks) == a.text
    assert chunks[-1].finish_reason in ("stop", "length") and chunks[-1].completion_tokens <= 20
    assert a.provenance.model == "plays-bpe" and a.provenance.parameters["backend"] == "torch"


def test_stop_sequences_and_n(lm):
    arts = lm.generate("QUEEN:", max_tokens=60, seed=1, n=3, stop=["\n"])
    assert [a.provenance.seed for a in arts] == [1, 2, 3]
    for a in arts:
        assert "\n" not in a.text
    streamed = "".join(
        c.text for c in lm.stream("QUEEN:", max_tokens=60, seed=1, stop=["\n"]) if c.index == 0
    )
    assert streamed == arts[0].text


def test_logit_bias_forces_a_token_and_names_one_outside_the_vocabulary(lm):
    token = lm.codec.encode("e")[-1]
    a = lm.generate("KING: the", max_tokens=4, seed=2, temperature=1.0, logit_bias={token: 100.0})[0]
    assert a.text == lm.codec.decode([token] * 4)
    with pytest.raises(InvalidRequestError, match="outside the vocabulary"):
        lm.generate("KING", max_tokens=2, logit_bias={lm.codec.vocab_size: 1.0})


def test_trained_bpe_model_writes_valid_json_through_the_same_engine(lm):
    """The tiny model never saw JSON; the constraint engine still makes every output parse and validate."""
    schema = {
        "type": "object",
        "properties": {"who": {"enum": ["KING", "QUEEN"]}, "line": {"type": "string", "maxLength": 8}},
        "required": ["who", "line"],
    }
    for seed in range(3):
        a = lm.generate("KING:", max_tokens=40, seed=seed, json_schema=schema)[0]
        assert a.finish_reason == "stop", a.text
        jsonschema.validate(json.loads(a.text), schema)
    streamed = "".join(c.text for c in lm.stream("KING:", max_tokens=40, seed=0, json_schema=schema))
    assert streamed == lm.generate("KING:", max_tokens=40, seed=0, json_schema=schema)[0].text
    a = lm.generate("x", max_tokens=10, seed=1, regex="(yes|no)")[0]
    assert a.text in ("yes", "no") and a.finish_reason == "stop"
    with pytest.raises(InvalidRequestError, match="uniqueItems"):
        lm.generate("x", json_schema={"type": "array", "uniqueItems": True})
    with pytest.raises(InvalidRequestError, match="temperature"):
        lm.generate("x", temperature=-2)


def test_a_char_model_is_refused_what_its_vocabulary_cannot_write(lm):
    from genlab.codecs.text import CharCodec
    from genlab.families.transformer import GPT, TransformerConfig
    from genlab.generators.lm import TransformerLM

    codec = CharCodec(sorted(set("abc yesno")))
    model = GPT(TransformerConfig(vocab_size=codec.vocab_size, block_size=16, n_layer=1, n_head=1, n_embd=8))
    char_lm = TransformerLM(lm.card, model, codec)
    for seed in range(3):
        assert char_lm.generate("a", max_tokens=5, seed=seed, regex="(yes|no)")[0].text in ("yes", "no")
    with pytest.raises(InvalidRequestError, match="vocabulary cannot write"):
        char_lm.generate("a", json_schema={"type": "object"})  # it has no "{"


def test_gguf_export_runs_in_llama_cpp_with_identical_greedy_tokens(registry, trained_bpe, lm, tmp_path):
    path = export_gguf(registry, trained_bpe, tmp_path / "plays.gguf")
    registry.add_gguf("plays-gguf", path)
    cpp = registry.load("plays-gguf")
    prompt = "KING: the noble lord"
    ours = lm.codec.encode(prompt)
    assert cpp.tokenize(prompt, add_bos=False) == ours  # same tokenizer
    torch_tokens = list(lm.model.sample_tokens(ours, 32, temperature=0))
    llama = cpp._llm  # the llama.cpp context, driven token by token for an exact comparison
    llama.reset()
    cpp_tokens = []
    for token in llama.generate(
        ours, temp=0.0, repeat_penalty=1.0, top_k=1, top_p=1.0, min_p=0.0, reset=True
    ):
        cpp_tokens.append(token)
        if len(cpp_tokens) == 32:
            break
    assert cpp_tokens == torch_tokens
    assert len(set(torch_tokens)) > 3  # a real sentence, not one token repeated


def test_char_models_do_not_export(registry, tmp_path, corpus_dir):
    from genlab.training.text import train_text_model

    train_text_model(
        "plays-char", str(corpus_dir), codec="char", steps=10, settings=registry.settings, progress=False
    )
    with pytest.raises(UnsupportedError, match="byte-level BPE"):
        export_gguf(registry, "plays-char", tmp_path / "x.gguf")
    with pytest.raises(UnsupportedError, match="not a transformer trained in genlab"):
        export_gguf(registry, "gemma-3-270m", tmp_path / "x.gguf")


def test_an_exported_gguf_carries_the_chat_template_genlab_adds(registry, trained_bpe, tmp_path):
    from genlab.core.chat import CHAT_TEMPLATES, render

    path = export_gguf(
        registry, trained_bpe, tmp_path / "chatty.gguf", chat_template=CHAT_TEMPLATES["chatml"]
    )
    registry.add_gguf("plays-chat", path)
    cpp = registry.load("plays-chat")
    assert cpp.chat_format.source == "gguf" and "own chat template" in cpp.card.chat
    prompt, _ = render([{"role": "user", "content": "KING: speak"}], cpp.chat_format)
    assert prompt == "<|im_start|>user\nKING: speak<|im_end|>\n<|im_start|>assistant\n"
    assert cpp.generate(prompt, max_tokens=8, seed=1)[0].completion_tokens >= 1
    plain = registry.load(trained_bpe)
    assert getattr(plain, "chat_format", None) is None  # genlab's own transformer: the transcript
