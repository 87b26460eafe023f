"""Ollama's model API beside OpenAI's: ``GET /api/tags``, ``POST /api/show``, ``GET /api/ps``,
``POST /api/pull`` (genlab's own pull from the Hugging Face Hub, streamed as Ollama's status
lines; the admin role) and ``GET /api/version``.

Ollama's names carry a tag (``gemma-3-270m:latest``); genlab's have none, so ``:latest`` is dropped
on the way in and added on the way out. A pull names a GGUF repository as Ollama names one on the
Hub, ``hf.co/OWNER/REPO[:QUANT]``; the model is registered under genlab's name for its file, which
the stream's last status but one says.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

import genlab
from genlab.core import InvalidRequestError
from genlab.registry import ModelEntry
from genlab.server.deps import AdminDep, KeyDep, StateDep
from genlab.server.ollama import model_name, now
from genlab.server.responses import ndjson
from genlab.server.runtime import iterate_in_thread

router = APIRouter(prefix="/api", tags=["ollama"])
SERVED = ("text", "code", "embedding")  # what Ollama's API can ask of a model
KEPT_LOADED = "2318-01-01T00:00:00Z"  # Ollama's expiry for a model kept loaded (keep_alive -1)


class ShowRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=100)
    verbose: bool = False


class PullRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=300)
    insecure: bool = False
    stream: bool = True


def digest(entry: ModelEntry) -> str:
    """The file's sha256 where genlab has it, else a stable hash of the model's card."""
    return entry.config.get("sha256") or hashlib.sha256(repr(entry.card.to_dict()).encode()).hexdigest()


def size(entry: ModelEntry) -> int:
    path = entry.config.get("path")
    return Path(path).stat().st_size if path and Path(path).is_file() else 0


def parameter_size(count: int | None) -> str:
    if not count:
        return ""
    return f"{count / 1e9:.1f}B" if count >= 1e9 else f"{count / 1e6:.0f}M"


def details(entry: ModelEntry) -> dict[str, Any]:
    card = entry.card
    return {
        "parent_model": "",
        "format": "gguf" if entry.kind in ("gguf", "embedded-gguf") else card.backend,
        "family": card.family,
        "families": [card.family],
        "parameter_size": parameter_size(card.parameters),
        "quantization_level": "",
    }


def listed(entry: ModelEntry) -> dict[str, Any]:
    return {
        "name": f"{entry.name}:latest",
        "model": f"{entry.name}:latest",
        "modified_at": now(),
        "size": size(entry),
        "digest": digest(entry),
        "details": details(entry),
    }


def capabilities(entry: ModelEntry) -> list[str]:
    if entry.card.modality == "embedding":
        return ["embedding"]
    return ["completion"] + (["tools"] if entry.card.backend != "openai_compat" else [])


@router.get("/tags")
async def tags(state: StateDep, _: KeyDep) -> dict[str, Any]:
    entries = await run_in_threadpool(state.registry.list)
    return {"models": [listed(e) for e in entries if e.card.modality in SERVED]}


@router.post("/show")
async def show(body: ShowRequest, state: StateDep, _: KeyDep) -> dict[str, Any]:
    entry = await run_in_threadpool(state.registry.get, model_name(body.model))
    card = entry.card
    return {
        "license": card.licence,
        "modelfile": f"# genlab model {entry.name}: {card.description}\nFROM {entry.name}\n",
        "parameters": "",
        "template": entry.config.get("chat_template", ""),
        "details": details(entry),
        "model_info": {
            "general.architecture": card.family,
            "general.parameter_count": card.parameters or 0,
            f"{card.family}.context_length": card.context_length or 0,
            "genlab.backend": card.backend,
            "genlab.source": card.source,
        },
        "capabilities": capabilities(entry),
        "modified_at": now(),
    }


@router.get("/ps")
async def ps(state: StateDep, _: KeyDep) -> dict[str, Any]:
    entries = [await run_in_threadpool(state.registry.get, n) for n in state.registry.loaded()]
    return {
        "models": [
            {**listed(e), "expires_at": KEPT_LOADED, "size_vram": 0, "context_length": e.card.context_length}
            for e in entries
            if e.card.modality in SERVED
        ]
    }


@router.get("/version")
async def version() -> dict[str, str]:
    return {"version": genlab.__version__}


# -- pull --------------------------------------------------------------------------------------------
def hub_name(name: str) -> tuple[str, str | None]:
    """(repository, quantisation) of Ollama's name for a Hub GGUF: ``hf.co/OWNER/REPO[:QUANT]``."""
    for prefix in ("hf.co/", "huggingface.co/", "https://huggingface.co/"):
        name = name.removeprefix(prefix)
    repo, _, tag = name.partition(":")
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts):
        raise InvalidRequestError(
            f"genlab pulls GGUF files from the Hugging Face Hub, and {name!r} names no repository there: "
            "name one as hf.co/OWNER/REPO or hf.co/OWNER/REPO:QUANT (e.g. hf.co/bartowski/"
            "Llama-3.2-1B-Instruct-GGUF:Q4_K_M)",
            param="model",
        )
    return repo, (tag if tag and tag != "latest" else None)


def pull_lines(registry, repo: str, quant: str | None) -> Iterator[dict[str, Any]]:
    """Ollama's pull statuses, as genlab's pull (in a thread of its own) reports its download."""
    events: queue.Queue = queue.Queue()
    last = [0.0]

    def progress(done: int, total: int | None) -> None:
        if time.monotonic() - last[0] > 0.1 or done == total:  # a line a tenth of a second at most
            last[0] = time.monotonic()
            events.put(("progress", (done, total)))

    def work() -> None:
        try:
            events.put(("done", registry.pull(repo, quant=quant, progress=progress)))
        except BaseException as e:  # raised again in the stream, as its error line
            events.put(("error", e))

    threading.Thread(target=work, daemon=True, name="genlab-pull").start()
    yield {"status": "pulling manifest"}
    while True:
        kind, value = events.get()
        if kind == "error":
            raise value
        if kind == "done":
            break
        done, total = value
        yield {"status": f"pulling {repo}", "total": total or done, "completed": done}
    yield {"status": "verifying sha256 digest"}
    yield {"status": f"registered as {value.name}", "digest": f"sha256:{digest(value)}"}
    yield {"status": "success"}


@router.post("/pull")
async def pull(body: PullRequest, state: StateDep, _: AdminDep):
    repo, quant = hub_name(body.model)
    if not body.stream:
        await run_in_threadpool(state.registry.pull, repo, quant=quant)
        return {"status": "success"}
    return ndjson(iterate_in_thread(lambda: pull_lines(state.registry, repo, quant), threading.Event()))
