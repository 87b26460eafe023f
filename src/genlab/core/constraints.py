"""Constrained decoding: each step's allowed-token mask from llguidance, for every text backend.

A request's constraint (a JSON Schema, ``json_object``, a regular expression or a grammar) is
compiled once into an llguidance grammar (:func:`compile_constraint`, which refuses what cannot be
enforced with a clear 400 before any work starts). A model's vocabulary becomes an
``llguidance.LLTokenizer`` once per model (:func:`tokenizer_from_pieces`, :func:`tokenizer_from_json`;
llama.cpp's backend builds it from the GGUF's vocabulary). Each generation then holds a
:class:`Constrained`: before sampling, :meth:`Constrained.mask` sets every token the grammar does
not allow to ``-inf``; after sampling, :meth:`Constrained.advance` moves the matcher on. llguidance
computes a mask over a 262k-token vocabulary in well under a millisecond, so constrained decoding
runs at nearly the speed of free decoding (``bench/structured.py``).

When the structure is complete the mask allows only end-of-text, so a finished object ends the
generation with ``finish_reason: "stop"``; ``max_tokens`` can still cut it (``"length"``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genlab.core.errors import InvalidRequestError

# Compact JSON (no free whitespace): a base model cannot spin on spaces and newlines forever, and
# fewer tokens are spent. A schema may override it with llguidance's own "x-guidance" options.
JSON_OPTIONS = {"whitespace_flexible": False}
ANY_OBJECT: dict[str, Any] = {"type": "object"}


@dataclass(frozen=True)
class Grammar:
    """A compiled constraint: llguidance's grammar text and what it came from (for errors)."""

    text: str
    kind: str  # "json_schema", "grammar" or "regex"
    param: str  # the request field to name in an error


def closed_objects(schema: Any) -> Any:
    """Objects that list ``properties`` accept only those unless the schema says otherwise.

    JSON Schema lets unnamed properties through by default; a model then pads its object with
    invented fields. Like OpenAI's structured outputs and llama.cpp's converter, genlab closes
    objects that declare their properties. The output still validates against the original schema.
    """
    if isinstance(schema, list):
        return [closed_objects(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed_objects(v) for k, v in schema.items()}
    for key in ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas"):
        if isinstance(schema.get(key), dict):
            out[key] = {name: closed_objects(sub) for name, sub in schema[key].items()}
    if "properties" in schema and "additionalProperties" not in schema and "patternProperties" not in schema:
        out["additionalProperties"] = False
    return out


def _check_json_schema(schema: Any) -> None:
    import jsonschema

    if not isinstance(schema, dict):
        raise InvalidRequestError("the JSON schema must be a JSON object", param="json_schema")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "the top level"
        raise InvalidRequestError(
            f"this is not a valid JSON Schema: {e.message} (at {where})", param="json_schema"
        ) from None


def compile_constraint(params: Any) -> Grammar | None:
    """The llguidance grammar of a request's ``json_schema``, ``regex`` or ``grammar`` (None if free).

    Raises InvalidRequestError (400) naming the field for a schema that is not JSON Schema, a
    keyword the engine cannot enforce (never silently ignored), an unsatisfiable schema (an empty
    enum), a regex or a grammar that does not compile, or one beyond the engine's limits.
    """
    from llguidance import LLMatcher, grammar_from

    if params.json_schema is not None:
        _check_json_schema(params.json_schema)
        text = LLMatcher.grammar_from_json_schema(
            json.dumps(closed_objects(params.json_schema)), defaults=JSON_OPTIONS
        )
        grammar = Grammar(text, "json_schema", "json_schema")
    elif getattr(params, "regex", None) is not None:
        grammar = Grammar(LLMatcher.grammar_from_regex(params.regex), "regex", "regex")
    elif params.grammar is not None:
        try:
            text = grammar_from("gbnf", params.grammar)  # GBNF (llama.cpp's) or Lark
        except ValueError as e:
            raise InvalidRequestError(
                f"the grammar does not compile: {_first_line(e)}; it needs a `root ::= ...` rule "
                "(GBNF, see llama.cpp's grammars/README.md) or a `start: ...` rule (Lark)",
                param="grammar",
            ) from None
        grammar = Grammar(text, "grammar", "grammar")
    else:
        return None
    is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar.text)
    if is_error:
        raise InvalidRequestError(_explain(grammar, messages[0]), param=grammar.param)
    return grammar


def _first_line(error: Any) -> str:
    return " ".join(str(error).split())[:300]


def _explain(grammar: Grammar, message: str) -> str:
    message = _first_line(message)
    if message.startswith("Unimplemented keys"):
        return (
            f"the JSON schema uses {message.split(':', 1)[1].strip()}, which constrained decoding "
            "cannot enforce; remove it (see docs/serving.md for what is supported)"
        )
    if message.startswith("Unsatisfiable schema"):
        return f"the JSON schema can never be satisfied (an empty enum, or contradictory keywords): {message}"
    what = {"json_schema": "the JSON schema", "regex": "the regular expression", "grammar": "the grammar"}
    return f"{what[grammar.kind]} cannot be used: {message}"


# -- vocabularies ----------------------------------------------------------------------------------
class _Pieces:
    """What llguidance's TokenizerWrapper needs: each token's bytes, end-of-text, and an encoder."""

    def __init__(self, pieces: Sequence[bytes], eos: int, encode: Callable[[str], list[int]]):
        self.tokens = list(pieces)
        self.eos_token_id = eos
        self.bos_token_id = None
        self.special_token_ids = [eos]
        self._encode = encode

    def __call__(self, text: str | bytes) -> list[int]:
        if isinstance(text, bytes):  # llguidance passes bytes to an encoder that accepts them
            text = text.decode("utf-8", errors="ignore")
        return self._encode(text)


def tokenizer_from_pieces(pieces: Sequence[bytes], eos: int, encode: Callable[[str], list[int]]):
    """An LLTokenizer for a vocabulary given as each token's bytes (a character codec)."""
    from llguidance import LLTokenizer, TokenizerWrapper

    pieces = [b"\xff" + p if i == eos else p for i, p in enumerate(pieces)]  # llguidance's special mark
    return LLTokenizer(TokenizerWrapper(_Pieces(pieces, eos, encode)))


def tokenizer_from_json(tokenizer_json: str, *, n_vocab: int, eos: int):
    """An LLTokenizer from a Hugging Face ``tokenizer.json`` (a BPE codec)."""
    from llguidance import LLTokenizer

    return LLTokenizer(tokenizer_json, n_vocab=n_vocab, eos_token=eos)


# -- one generation --------------------------------------------------------------------------------
class Constrained:
    """One generation's matcher. Not thread-safe: one per choice, used by the thread that samples."""

    def __init__(self, tokenizer: Any, grammar: Grammar):
        from llguidance import LLMatcher

        self._matcher = LLMatcher(tokenizer, grammar.text, log_level=0)
        self._grammar = grammar
        self.n_vocab = tokenizer.vocab_size
        self.eos = tokenizer.eos_token
        if self._matcher.is_error():
            raise InvalidRequestError(_explain(grammar, self._matcher.get_error()), param=grammar.param)
        self.allowed()  # a vocabulary that cannot even start the structure is refused up front

    def allowed(self) -> np.ndarray:
        """A boolean array over the vocabulary: the tokens the grammar allows next."""
        bits = np.frombuffer(self._matcher.compute_bitmask(), dtype=np.uint8)
        allowed = np.unpackbits(bits, bitorder="little")[: self.n_vocab].view(bool)
        if self._matcher.is_error() or not allowed.any():
            raise InvalidRequestError(
                f"this model's vocabulary cannot write what the {self._grammar.kind.replace('_', ' ')} "
                "requires next (a character or token it never learned); use a model with a wider "
                "vocabulary (a byte-level BPE model or a GGUF)",
                param=self._grammar.param,
            )
        return allowed

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """``logits`` (one row over the vocabulary) with every disallowed token set to -inf."""
        allowed = self.allowed()
        out = np.full(logits.shape, -np.inf, dtype=logits.dtype)
        n = min(len(allowed), logits.shape[-1])
        np.copyto(out[..., :n], logits[..., :n], where=allowed[:n])
        return out

    def advance(self, token: int) -> None:
        if not self._matcher.consume_token(int(token)):
            raise InvalidRequestError(
                f"the sampled token {token} does not fit the {self._grammar.kind}: "
                f"{_first_line(self._matcher.get_error())}",
                param=self._grammar.param,
            )

    @property
    def done(self) -> bool:
        """Whether the structure is complete (only end-of-text may follow)."""
        return self._matcher.is_stopped() or self._matcher.is_accepting()
