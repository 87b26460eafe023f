"""Text codecs: characters, or byte-level BPE trained with Hugging Face `tokenizers`.

A codec maps text to a list of integer token ids and back. Both codecs save themselves into a
model directory (`codec.json` for characters, `tokenizer.json` for BPE) and load from it, so a
trained model carries the exact vocabulary it was trained with.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from genlab.core import InvalidRequestError, ModelLoadError
from genlab.core.constraints import tokenizer_from_json, tokenizer_from_pieces
from genlab.core.io import atomic_write_text

CODECS = ("char", "bpe")
END_OF_TEXT = "<|endoftext|>"


class TextCodec(Protocol):
    kind: str

    @property
    def vocab_size(self) -> int: ...

    @property
    def eot_id(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def save(self, directory: Path) -> None: ...

    def lltokenizer(self) -> Any: ...


class CharCodec:
    """One token per character seen in training, plus end-of-text (id 0).

    Characters the training text never contained cannot be encoded; ``encode`` raises a clear
    error naming them rather than silently dropping text.
    """

    kind = "char"
    FILE = "codec.json"

    def __init__(self, chars: list[str]) -> None:
        self.chars = list(chars)
        self._itos = [END_OF_TEXT, *self.chars]
        self._stoi = {c: i for i, c in enumerate(self._itos)}

    @classmethod
    def train(cls, texts: Iterable[str]) -> CharCodec:
        chars: set[str] = set()
        for text in texts:
            chars.update(text)
        if not chars:
            raise InvalidRequestError("cannot build a character vocabulary from empty text")
        return cls(sorted(chars))

    @property
    def vocab_size(self) -> int:
        return len(self._itos)

    @property
    def eot_id(self) -> int:
        return 0

    def encode(self, text: str) -> list[int]:
        try:
            return [self._stoi[c] for c in text]
        except KeyError:
            unknown = sorted({c for c in text if c not in self._stoi})
            raise InvalidRequestError(
                f"the text has characters this model never saw in training: {''.join(unknown)[:20]!r}",
                param="prompt",
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self._itos[i] for i in ids if i != 0)

    def save(self, directory: Path) -> None:
        atomic_write_text(Path(directory) / self.FILE, json.dumps({"kind": "char", "chars": self.chars}))

    def lltokenizer(self):
        """This vocabulary for constrained decoding (llguidance)."""
        pieces = [t.encode("utf-8") for t in self._itos]
        return tokenizer_from_pieces(pieces, 0, lambda text: [self._stoi[c] for c in text if c in self._stoi])

    @classmethod
    def load(cls, directory: Path) -> CharCodec:
        data = json.loads((Path(directory) / cls.FILE).read_text("utf-8"))
        return cls(data["chars"])


class BPECodec:
    """Byte-level BPE (GPT-2's scheme): any text encodes, unknown characters included.

    The pre-tokenizer is GPT-2's regex split, so llama.cpp's "gpt-2" pre-tokenizer splits the same
    way when a model is exported to GGUF.
    """

    kind = "bpe"
    FILE = "tokenizer.json"

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self._eot = tokenizer.token_to_id(END_OF_TEXT)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 2048) -> BPECodec:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if vocab_size < 256 + 1 or vocab_size > 65536:
            raise InvalidRequestError(
                f"BPE vocab_size must be in [257, 65536], got {vocab_size}", param="vocab_size"
            )
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[END_OF_TEXT],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    @property
    def eot_id(self) -> int:
        return self._eot

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i != self._eot])

    def save(self, directory: Path) -> None:
        atomic_write_text(Path(directory) / self.FILE, self.tokenizer.to_str())

    def lltokenizer(self):
        """This vocabulary for constrained decoding (llguidance reads the tokenizer.json itself)."""
        return tokenizer_from_json(self.tokenizer.to_str(), n_vocab=self.vocab_size, eos=self._eot)

    @classmethod
    def load(cls, directory: Path) -> BPECodec:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(Path(directory) / cls.FILE)))


def train_codec(kind: str, texts: list[str], *, vocab_size: int = 2048) -> CharCodec | BPECodec:
    if kind == "char":
        return CharCodec.train(texts)
    if kind == "bpe":
        return BPECodec.train(texts, vocab_size=vocab_size)
    raise InvalidRequestError(f"unknown codec {kind!r}; expected one of {', '.join(CODECS)}", param="codec")


def load_codec(directory: Path) -> CharCodec | BPECodec:
    directory = Path(directory)
    if (directory / CharCodec.FILE).is_file():
        return CharCodec.load(directory)
    if (directory / BPECodec.FILE).is_file():
        return BPECodec.load(directory)
    raise ModelLoadError(f"{directory} has no codec.json or tokenizer.json")
