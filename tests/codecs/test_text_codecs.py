import pytest

from genlab.codecs.text import BPECodec, CharCodec, load_codec, train_codec
from genlab.core import InvalidRequestError, ModelLoadError

TEXTS = ["To be, or not to be: that is the question.", "Whether 'tis nobler in the mind to suffer"]


def test_char_codec_roundtrip_and_save(tmp_path):
    codec = CharCodec.train(TEXTS)
    ids = codec.encode("to be")
    assert codec.decode(ids) == "to be" and 0 not in ids
    assert codec.vocab_size == len(set("".join(TEXTS))) + 1
    codec.save(tmp_path)
    assert load_codec(tmp_path).encode("to be") == ids


def test_char_codec_names_unseen_characters():
    with pytest.raises(InvalidRequestError, match="never saw in training: 'Z'"):
        CharCodec.train(TEXTS).encode("Zebra")


def test_bpe_codec_encodes_anything_and_saves_tokenizer_json(tmp_path):
    codec = BPECodec.train(TEXTS * 20, vocab_size=300)
    assert codec.vocab_size <= 300
    for text in ("the question", "naïve 🙂 Zebra", "def f(x):\n    return x"):
        assert codec.decode(codec.encode(text)) == text
    assert len(codec.encode("that is the question")) < len("that is the question")  # merges learned
    codec.save(tmp_path)
    assert (tmp_path / "tokenizer.json").is_file()
    assert load_codec(tmp_path).encode("the question") == codec.encode("the question")


def test_bad_codec_arguments():
    with pytest.raises(InvalidRequestError, match="unknown codec 'wordpiece'"):
        train_codec("wordpiece", TEXTS)
    with pytest.raises(InvalidRequestError, match="vocab_size"):
        BPECodec.train(TEXTS, vocab_size=10)
    with pytest.raises(InvalidRequestError, match="empty"):
        CharCodec.train([""])


def test_missing_codec_file(tmp_path):
    with pytest.raises(ModelLoadError, match=r"no codec\.json or tokenizer\.json"):
        load_codec(tmp_path)
