"""llama-server's and vLLM's tokenizer routes: ``POST /tokenize``, ``POST /detokenize``,
``GET /tokenizer_info`` (what lm-evaluation-harness's remote tokenizer reads) and ``GET /props``,
each also under ``/v1``. They answer for a llama.cpp model (``model``, by default the shipped
gemma-3-270m); nothing is generated, so they need a key but no pass through the gate.

Both servers' field names are accepted: the text is ``content`` (llama-server) or ``prompt``
(vLLM), and the answers carry both servers' keys.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

import genlab
from genlab.backends.llamacpp import EMBEDDED_CARD
from genlab.core import UnsupportedError
from genlab.pipeline import TEXT
from genlab.server.deps import KeyDep, StateDep

router = APIRouter(tags=["tokens"])
MAX_TOKENS_IN = 131_072  # ids one /detokenize may send (the body limit keeps them near this anyway)


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(default=EMBEDDED_CARD.name, min_length=1, max_length=100)
    content: str | None = None  # llama-server
    prompt: str | None = None  # vLLM, lm-evaluation-harness
    add_special: bool | None = None  # llama-server: the BOS token (default no)
    add_special_tokens: bool | None = None  # vLLM (default yes)
    with_pieces: bool = False


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(default=EMBEDDED_CARD.name, min_length=1, max_length=100)
    tokens: list[int] = Field(max_length=MAX_TOKENS_IN)


def adds_special(body: TokenizeRequest) -> bool:
    if body.add_special is not None:
        return body.add_special
    if body.add_special_tokens is not None:
        return body.add_special_tokens
    return body.prompt is not None  # vLLM adds them unless told not to; llama-server only if told


async def tokenizer(state, model: str):
    """The model, loaded, if it makes text and genlab can show its tokens (a llama.cpp model)."""
    generator = await run_in_threadpool(state.pipeline.check, model, TEXT)
    if not hasattr(generator, "detokenize"):
        raise UnsupportedError(
            f"{generator.card.name} has no tokenizer genlab can show: tokenize and detokenize "
            "answer for llama.cpp models (GGUF)"
        )
    return generator


@router.post("/tokenize")
@router.post("/v1/tokenize")
async def tokenize(body: TokenizeRequest, state: StateDep, _: KeyDep) -> dict[str, Any]:
    generator = await tokenizer(state, body.model)
    text = body.content if body.content is not None else (body.prompt or "")
    ids = await run_in_threadpool(generator.tokenize, text, add_bos=adds_special(body))
    if body.with_pieces:
        pieces = [await run_in_threadpool(generator.detokenize, [i]) for i in ids]
        tokens: list[Any] = [{"id": i, "piece": p} for i, p in zip(ids, pieces, strict=True)]
    else:
        tokens = ids
    return {"tokens": tokens, "count": len(ids), "max_model_len": generator.card.context_length}


@router.post("/detokenize")
@router.post("/v1/detokenize")
async def detokenize(body: DetokenizeRequest, state: StateDep, _: KeyDep) -> dict[str, str]:
    generator = await tokenizer(state, body.model)
    text = await run_in_threadpool(generator.detokenize, body.tokens)
    return {"content": text, "prompt": text}


def special(generator) -> dict[str, Any]:
    return {**generator.special_tokens(), "chat_template": generator.chat_format.template}


@router.get("/tokenizer_info")
@router.get("/v1/tokenizer_info")
async def tokenizer_info(state: StateDep, _: KeyDep, model: str = EMBEDDED_CARD.name) -> dict[str, Any]:
    generator = await tokenizer(state, model)
    return {
        **special(generator),
        "pad_token": generator.special_tokens()[
            "eos_token"
        ],  # llama.cpp pads with nothing; EOS, as HF often does
        "model_max_length": generator.card.context_length,
        "vocab_size": generator.vocab_size,
        "tokenizer_class": "llama.cpp",
    }


@router.get("/props")
@router.get("/v1/props")
async def props(state: StateDep, _: KeyDep, model: str = EMBEDDED_CARD.name) -> dict[str, Any]:
    """llama-server's properties where they map onto genlab: the model's context and chat template,
    its queue as the slots, genlab's version as the build."""
    generator = await tokenizer(state, model)
    return {
        "default_generation_settings": {"n_ctx": generator.card.context_length, "model": generator.card.name},
        "total_slots": state.config.queue_limit,
        "model_path": generator.card.name,
        **special(generator),
        "modalities": {"vision": False, "audio": False},
        "build_info": f"genlab {genlab.__version__}",
    }
