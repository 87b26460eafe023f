"""GenerationRequest: one request shape for every family and modality.

The CLI, the HTTP server and the Python API all build a ``GenerationRequest``; ``validate()`` is
the one place its ranges are checked, so every entry point rejects the same bad input with the
same message.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from genlab.core.errors import InvalidRequestError

MAX_N = 16


@dataclass(frozen=True)
class SamplingParams:
    """Decoding settings. Families ignore what does not apply to them (a GAN has no top_k).

    Defaults follow llama.cpp's own sampler defaults, except ``max_tokens``, kept short so that
    an unbounded base model does not ramble for the whole context.
    """

    max_tokens: int = 128
    temperature: float = 0.8  # 0 = greedy (argmax)
    top_p: float = 0.95  # nucleus sampling: keep the smallest set with this much probability
    top_k: int = 40  # keep the k most likely tokens; 0 = off
    min_p: float = 0.05  # drop tokens below min_p * p(most likely token)
    repeat_penalty: float = 1.1  # >1 discourages repeating recent tokens; 1 = off
    stop: tuple[str, ...] = ()
    logprobs: int | None = None  # return the top-N log-probabilities of each generated token
    json_schema: dict[str, Any] | None = None  # constrain the output to JSON matching this schema
    grammar: str | None = None  # constrain the output to this GBNF (or Lark) grammar
    regex: str | None = None  # constrain the output to match this regular expression
    logit_bias: dict[int, float] | None = None  # token id -> added to its logit (-100 bans, 100 forces)
    extra: dict[str, Any] = field(default_factory=dict)  # family-specific (steps, guidance, ...)

    def validate(self) -> SamplingParams:
        if not isinstance(self.max_tokens, int) or self.max_tokens <= 0:
            raise InvalidRequestError(
                f"max_tokens must be a positive integer, got {self.max_tokens!r}", param="max_tokens"
            )
        if not self.temperature >= 0:
            raise InvalidRequestError(
                f"temperature must be >= 0 (0 = greedy), got {self.temperature!r}", param="temperature"
            )
        if not 0 < self.top_p <= 1:
            raise InvalidRequestError(f"top_p must be in (0, 1], got {self.top_p!r}", param="top_p")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise InvalidRequestError(
                f"top_k must be an integer >= 0 (0 = off), got {self.top_k!r}", param="top_k"
            )
        if not 0 <= self.min_p <= 1:
            raise InvalidRequestError(f"min_p must be in [0, 1], got {self.min_p!r}", param="min_p")
        if not self.repeat_penalty > 0:
            raise InvalidRequestError(
                f"repeat_penalty must be > 0 (1 = off), got {self.repeat_penalty!r}", param="repeat_penalty"
            )
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise InvalidRequestError("stop sequences must be non-empty strings", param="stop")
        if len(self.stop) > 8:
            raise InvalidRequestError(f"at most 8 stop sequences, got {len(self.stop)}", param="stop")
        if self.logprobs is not None and not (isinstance(self.logprobs, int) and 0 <= self.logprobs <= 20):
            raise InvalidRequestError(
                f"logprobs must be an integer in [0, 20], got {self.logprobs!r}", param="logprobs"
            )
        if self.logit_bias is not None and not (
            isinstance(self.logit_bias, dict)
            and len(self.logit_bias) <= 300
            and all(isinstance(k, int) and k >= 0 and -100 <= v <= 100 for k, v in self.logit_bias.items())
        ):
            raise InvalidRequestError(
                "logit_bias maps at most 300 token ids (integers >= 0) to biases in [-100, 100]",
                param="logit_bias",
            )
        given = [k for k in ("json_schema", "grammar", "regex") if getattr(self, k) is not None]
        if len(given) > 1:
            raise InvalidRequestError(
                f"give one constraint ({' or '.join(given)}), not {len(given)}", param=given[-1]
            )
        if self.json_schema is not None and not isinstance(self.json_schema, dict):
            raise InvalidRequestError("json_schema must be a JSON object", param="json_schema")
        if self.grammar is not None and not (isinstance(self.grammar, str) and self.grammar.strip()):
            raise InvalidRequestError("grammar must be a non-empty GBNF string", param="grammar")
        if self.regex is not None and not (isinstance(self.regex, str) and self.regex):
            raise InvalidRequestError("regex must be a non-empty string", param="regex")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return {k: v for k, v in d.items() if v not in (None, {}, [])}


@dataclass(frozen=True)
class InputField:
    """One text of a request that the model will read, and where the request holds it: ``where``
    is its path as the caller sent it (``messages.2.content``, ``tools.0.function.description``,
    ``input.3.tool_calls.0.function.arguments.city``, ``instructions.content``), which a finding and
    a refusal name. ``instructions``: the caller's own system or developer text, which the input
    policy reads for secrets, PII and control tokens but does not judge for intent."""

    where: str
    text: str
    instructions: bool = False


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate: a prompt (text, code) or a condition (a class for images and audio)."""

    prompt: str | None = None
    model: str | None = None
    condition: str | None = None
    n: int = 1
    seed: int | None = None
    app: str | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    # Every field people wrote that ``prompt`` was rendered from (a chat's messages, tool calls and
    # results, tool definitions), when the prompt also holds text they did not write (a chat
    # template's control tokens): the input policy reads these, not the template around them.
    fields: tuple[InputField, ...] = ()

    def validate(self, *, needs_prompt: bool = True) -> GenerationRequest:
        if needs_prompt and (not isinstance(self.prompt, str) or not self.prompt.strip()):
            raise InvalidRequestError("the prompt is empty; give some text to continue", param="prompt")
        if not isinstance(self.n, int) or not 1 <= self.n <= MAX_N:
            raise InvalidRequestError(f"n must be an integer in [1, {MAX_N}], got {self.n!r}", param="n")
        if self.seed is not None and not (isinstance(self.seed, int) and 0 <= self.seed < 2**32):
            raise InvalidRequestError(
                f"seed must be an integer in [0, 2**32), got {self.seed!r}", param="seed"
            )
        self.params.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if v is not None and k not in ("params", "fields")}
        d["params"] = self.params.to_dict()
        return d

    def input_fields(self) -> tuple[InputField, ...]:
        """What the input policy reads: the fields the prompt was rendered from, or else the prompt
        itself (a completion's prompt is all the caller's own)."""
        if self.fields:
            return self.fields
        if isinstance(self.prompt, str) and self.prompt.strip():
            return (InputField("prompt", self.prompt),)
        return ()

    def choice_seeds(self) -> list[int]:
        """One seed per choice: seed, seed+1, ... so that choice i can be reproduced on its own.

        Without a seed, a random one is drawn; it is recorded in each artifact's provenance.
        """
        base = self.seed if self.seed is not None else random.SystemRandom().randrange(2**31)
        return [(base + i) % 2**32 for i in range(self.n)]

    def with_params(self, **changes: Any) -> GenerationRequest:
        return replace(self, params=replace(self.params, **changes))


_REQUEST_FIELDS = {"model", "condition", "n", "seed", "app"}
_PARAM_FIELDS = set(SamplingParams.__dataclass_fields__)


def as_request(request: GenerationRequest | str, **kwargs: Any) -> GenerationRequest:
    """Accept a request or a bare prompt plus keyword settings (the Python API's convenience).

    ``as_request("Once upon", max_tokens=20, seed=1)`` == ``GenerationRequest(prompt="Once upon",
    seed=1, params=SamplingParams(max_tokens=20))``. Unknown keywords are an error, not ignored.
    """
    unknown = set(kwargs) - _REQUEST_FIELDS - _PARAM_FIELDS - {"prompt"}
    if unknown:
        accepted = ", ".join(sorted(_REQUEST_FIELDS | _PARAM_FIELDS))
        raise InvalidRequestError(f"unknown setting(s) {', '.join(sorted(unknown))}; accepted: {accepted}")
    top = {k: v for k, v in kwargs.items() if k in _REQUEST_FIELDS or k == "prompt"}
    params = {k: v for k, v in kwargs.items() if k in _PARAM_FIELDS}
    if "stop" in params:
        stop = params["stop"]
        params["stop"] = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if isinstance(request, GenerationRequest):
        req = replace(request, **top)
        return replace(req, params=replace(req.params, **params)) if params else req
    if not isinstance(request, str) and request is not None:
        raise InvalidRequestError(
            f"expected a prompt string or a GenerationRequest, got {type(request).__name__}"
        )
    return GenerationRequest(prompt=request, **top, params=SamplingParams(**params))


def parse_json_schema(text: str) -> dict[str, Any]:
    """Parse a JSON schema given as text, with a clear error for malformed input."""
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidRequestError(
            f"the JSON schema is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}",
            param="json_schema",
        ) from None
    if not isinstance(schema, dict):
        raise InvalidRequestError("the JSON schema must be a JSON object", param="json_schema")
    return schema
