"""The FastAPI application: OpenAI-compatible routes over the registry, plus the studio pages.

    uvicorn --factory genlab.server.app:app_from_env      (what `genlab serve` runs)

Every generation goes: auth -> rate limit -> validation (GenerationRequest.validate) -> the
model's bounded queue -> the Generator in a worker thread -> a generation record in storage.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

import genlab
from genlab.core import GenerationRequest, Generator, SamplingParams, TextChunk
from genlab.core.io import sha256_bytes
from genlab.registry import Registry
from genlab.safety.guardrails import Vault
from genlab.safety.policy import Flags, Guard, GuardBlocked, Policy, StreamGuard
from genlab.server import chat as chat_template
from genlab.server import errors
from genlab.server.apps import install as install_app_routes
from genlab.server.errors import APIError
from genlab.server.review import Holds
from genlab.server.review import install as install_review_routes
from genlab.server.runtime import Admission, Metrics, ModelQueue, RateLimiter, iterate_in_thread
from genlab.server.schemas import (
    ChatRequest,
    CompletionRequest,
    ImageRequest,
    ModerationRequest,
    SpeechRequest,
)
from genlab.settings import Settings
from genlab.storage import Store
from genlab.storage.db import KeyInfo

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
DEFAULT_CHAT_MAX_TOKENS = 256
MODERATION_CATEGORIES = (
    "prompt_injection",
    "secret",
    "pii",
    "profanity",
    "invisible_text",
    "banned_substring",
)


@dataclass
class ServerConfig:
    open_access: bool = False  # no keys needed (only ever on loopback with no keys created)
    queue_limit: int = 8  # per model: running + waiting
    max_body_bytes: int = 1_000_000
    policy: str = "default"  # guardrail policy (a shipped name or a YAML path) run on every generation


class State:
    def __init__(self, registry: Registry, store: Store, config: ServerConfig) -> None:
        self.registry = registry
        self.store = store
        self.config = config
        self.metrics = Metrics()
        self.limiter = RateLimiter()
        self.guard = Guard(Policy.load(config.policy))
        self._queues: dict[str, ModelQueue] = {}
        self._lock = threading.Lock()
        self.outputs = registry.settings.outputs_dir / "images"  # served images, named by content hash

    def queue(self, model: str) -> ModelQueue:
        with self._lock:
            if model not in self._queues:
                self._queues[model] = ModelQueue(model, self.config.queue_limit, self.metrics)
            return self._queues[model]

    def load(self, name: str) -> Generator:
        generator = self.registry.load(name)
        self.metrics.loaded.set(len(self.registry.loaded()))
        return generator


def create_app(
    registry: Registry | None = None, store: Store | None = None, config: ServerConfig | None = None
) -> FastAPI:
    registry = registry or Registry()
    store = store or Store(settings=registry.settings)
    state = State(registry, store, config or ServerConfig())

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        await asyncio.to_thread(store.close)

    app = FastAPI(
        title="genlab",
        version=genlab.__version__,
        description="OpenAI-compatible API of genlab",
        lifespan=lifespan,
    )
    app.state.genlab = state
    errors.install(app)
    holds = Holds(state)

    # -- middleware: body size, metrics -------------------------------------------------------------
    @app.middleware("http")
    async def guard_and_measure(request: Request, call_next):
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > state.config.max_body_bytes):
            response: Response = JSONResponse(
                errors.error_body(
                    f"request body over {state.config.max_body_bytes} bytes",
                    "invalid_request_error",
                    code="body_too_large",
                ),
                status_code=413,
            )
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        state.metrics.requests.labels(path, str(response.status_code)).inc()
        state.metrics.latency.labels(path).observe(time.perf_counter() - started)
        return response

    # -- auth ---------------------------------------------------------------------------------------
    def authenticate(request: Request) -> KeyInfo | None:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not token:
            if state.config.open_access:
                return None
            raise APIError(401, "missing API key: send `Authorization: Bearer <key>` (create one with `genlab keys create`)",
                           type_="invalid_request_error", code="invalid_api_key")  # fmt: skip
        key = state.store.verify_key(token)
        if key is None and state.config.open_access:
            return None  # an open server ignores keys it does not know (OpenAI clients always send one)
        if key is None:
            raise APIError(
                401, "invalid or revoked API key", type_="invalid_request_error", code="invalid_api_key"
            )
        state.limiter.check(key.id, key.rate_limit_per_minute)
        return key

    async def auth(request: Request) -> KeyInfo | None:
        return await run_in_threadpool(authenticate, request)

    # -- plain routes -------------------------------------------------------------------------------
    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": genlab.__version__, "loaded_models": registry.loaded()}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def model_object(entry) -> dict[str, Any]:
        card = entry.card
        return {
            "id": entry.name, "object": "model", "created": 0, "owned_by": "genlab",
            "family": card.family, "modality": card.modality, "backend": card.backend,
            "parameters": card.parameters, "context_length": card.context_length,
            **({"classes": entry.config.get("classes", [])} if entry.kind in ("image", "audio") else {}),
        }  # fmt: skip

    @app.get("/v1/models")
    async def list_models(_: KeyInfo | None = Depends(auth)) -> dict[str, Any]:
        entries = await run_in_threadpool(registry.list)
        return {"object": "list", "data": [model_object(e) for e in entries]}

    @app.get("/v1/models/{model_id}")
    async def get_model(model_id: str, _: KeyInfo | None = Depends(auth)) -> dict[str, Any]:
        entry = await run_in_threadpool(registry.get, model_id)
        return {**model_object(entry), "card": entry.card.to_dict()}

    @app.get("/v1/genlab/generations/{record_id}")
    async def get_generation(record_id: str, _: KeyInfo | None = Depends(auth)) -> dict[str, Any]:
        record = await released_record(record_id)
        if record is None:
            raise APIError(404, f"no generation {record_id!r}", type_="not_found_error", code="not_found")
        return record

    async def released_record(record_id: str) -> dict[str, Any] | None:
        """A generation record, or 403 while it is held for review (its content is not released)."""
        record = await run_in_threadpool(store.get_generation, record_id)
        if record is not None and record["status"] == "held":
            raise APIError(403, f"{record_id} is held for human review; GET /v1/reviews/{{id}} releases it once approved",
                           type_="permission_error", code="held_for_review")  # fmt: skip
        return record

    # -- generation ---------------------------------------------------------------------------------
    def text_model(name: str) -> Generator:
        generator = state.load(name)
        if generator.card.modality not in ("text", "code"):
            raise APIError(400, f"model {name!r} makes {generator.card.modality}, not text", type_="invalid_request_error",
                           code="wrong_modality")  # fmt: skip
        return generator

    def sampling(body, *, max_tokens: int, extra_stop: tuple[str, ...] = (), logprobs: int | None = None,
                 json_schema: dict | None = None) -> SamplingParams:  # fmt: skip
        if body.presence_penalty or body.frequency_penalty:
            raise APIError(400, "presence_penalty and frequency_penalty are not supported; use repeat_penalty",
                           type_="invalid_request_error", code="unsupported_parameter")  # fmt: skip
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        return SamplingParams(
            max_tokens=max_tokens, temperature=body.temperature, top_p=body.top_p, top_k=body.top_k,
            min_p=body.min_p, repeat_penalty=body.repeat_penalty, stop=tuple(stop) + extra_stop,
            logprobs=logprobs, json_schema=json_schema,
        )  # fmt: skip

    def guard_input(prompt: str, flags: Flags | None = None) -> str:
        """Run the input policy; a block is a 400 naming the category, redactions change the prompt."""
        result = state.guard.check_input(prompt, Vault())
        if result.blocked:
            state.metrics.rejected.labels(f"guardrail_{result.blocking_category()}").inc()
            raise GuardBlocked(result, "request")
        if flags is not None:
            flags.add(result, "input")
        return result.text

    def guard_output(text: str, prompt: str, flags: Flags | None = None) -> tuple[str, str | None]:
        """Run the output policy on a finished text: (text to return, finish_reason override)."""
        result = state.guard.check_output(text, prompt=prompt, vault=Vault())
        if flags is not None:
            flags.add(result, "output")
        if result.blocked:
            return "", "content_filter"
        return result.text, None

    async def generate_queued(
        generator: Generator, request: GenerationRequest, **kwargs: Any
    ) -> tuple[list, float]:
        """Generate through the model's queue (a full queue is a 429): (artifacts, latency in ms)."""
        queue = state.queue(generator.card.name)
        queue.admit()
        started = time.perf_counter()
        try:
            artifacts = await run_in_threadpool(generator.generate, request, **kwargs)
        finally:
            queue.release()
        return artifacts, (time.perf_counter() - started) * 1000

    async def run_generation(generator: Generator, request: GenerationRequest, key: KeyInfo | None, endpoint: str,
                             raw: dict[str, Any], flags: Flags | None = None) -> list:  # fmt: skip
        artifacts, latency = await generate_queued(generator, request)
        record_ids, released = [], []
        for a in artifacts:
            text, reason = await run_in_threadpool(guard_output, a.text, request.prompt or "", flags)
            if text != a.text or reason:  # what is released is what is hashed and recorded
                provenance = dataclasses.replace(a.provenance, sha256=sha256_bytes(text.encode("utf-8")))
                a = dataclasses.replace(
                    a, text=text, finish_reason=reason or a.finish_reason, provenance=provenance
                )
            released.append(a)
            state.metrics.tokens.labels(generator.card.name, "prompt").inc(a.prompt_tokens)
            state.metrics.tokens.labels(generator.card.name, "completion").inc(a.completion_tokens)
            record_ids.append(await run_in_threadpool(
                store.record_generation, key_id=key.id if key else None, endpoint=endpoint, model=generator.card.name,
                request=raw, output_text=a.text, artifact_sha256=a.sha256, prompt_tokens=a.prompt_tokens,
                completion_tokens=a.completion_tokens, latency_ms=latency,
            ))  # fmt: skip
        return list(zip(released, record_ids, strict=True))

    def open_stream(generator: Generator, request: GenerationRequest) -> Admission:
        """Admit to the model's queue and validate, before the response starts: a full queue is a
        real 429 and a bad request a real 400, not an error in the middle of a 200 stream."""
        queue = state.queue(generator.card.name)
        queue.admit()
        try:
            return Admission(queue, generator.stream(request))
        except BaseException:
            queue.release()
            raise

    async def stream_generation(http: Request, generator: Generator, admission: Admission, request: GenerationRequest,
                                key: KeyInfo | None, endpoint: str, raw: dict[str, Any]) -> AsyncIterator[TextChunk]:  # fmt: skip
        """Yield an admitted stream's chunks; a disconnected client cancels the generation."""
        iterator = admission.iterator
        cancelled = threading.Event()
        started = time.perf_counter()
        seen = {"texts": {}, "prompt_tokens": 0, "completion_tokens": 0, "finished": 0}

        def guarded():  # the output policy, applied as the text grows (in the worker thread)
            guards: dict[int, StreamGuard] = {}
            for chunk in iterator:
                g = guards.setdefault(chunk.index, StreamGuard(state.guard, request.prompt or ""))
                if chunk.finish_reason is None:
                    text = g.push(chunk.text)
                    if text:
                        yield dataclasses.replace(chunk, text=text)
                    if not g.blocked:
                        continue
                tail = g.finish() if not g.blocked else ""
                if tail:
                    yield TextChunk(text=tail, index=chunk.index)
                if g.blocked:
                    state.metrics.rejected.labels("guardrail_output").inc()
                    yield dataclasses.replace(chunk, text="", finish_reason="content_filter")
                    return  # stop generating: closing the iterator ends llama.cpp's loop
                yield chunk

        def tracked():  # runs in the worker thread, so the record below sees every chunk produced
            for chunk in guarded():
                seen["texts"].setdefault(chunk.index, []).append(chunk.text)
                if chunk.finish_reason is not None:
                    seen["prompt_tokens"] = chunk.prompt_tokens
                    seen["completion_tokens"] += chunk.completion_tokens
                    seen["finished"] += 1
                yield chunk

        def on_done() -> None:  # in the worker thread, once generation has really stopped
            admission.release()
            name = generator.card.name
            state.metrics.tokens.labels(name, "prompt").inc(seen["prompt_tokens"])
            state.metrics.tokens.labels(name, "completion").inc(seen["completion_tokens"])
            try:
                store.record_generation(
                    key_id=key.id if key else None, endpoint=endpoint, model=name, request=raw,
                    output_text="".join(seen["texts"].get(0, [])), prompt_tokens=seen["prompt_tokens"],
                    completion_tokens=seen["completion_tokens"], latency_ms=(time.perf_counter() - started) * 1000,
                    status="ok" if seen["finished"] == request.n else "cancelled",
                )  # fmt: skip
            except Exception:
                errors.log.exception("could not record a streamed generation")

        first = True
        stream = iterate_in_thread(tracked, cancelled, on_done=on_done)
        try:
            async for chunk in stream:
                if first:
                    first = False
                    state.metrics.ttft.labels(generator.card.name).observe(time.perf_counter() - started)
                yield chunk
                if await http.is_disconnected():
                    break
        finally:
            cancelled.set()
            await stream.aclose()

    def sse(events: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            try:
                async for event in events:
                    yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()
            except errors.GenlabError as e:  # after the first byte the status is sent: report in-band
                yield f"data: {json.dumps(errors.error_body(str(e), e.error_type))}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, http: Request, key: KeyInfo | None = Depends(auth)):
        if body.echo or body.suffix is not None:
            raise APIError(
                400,
                "echo and suffix are not supported",
                type_="invalid_request_error",
                code="unsupported_parameter",
            )
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not 1 <= len(prompts) <= 16:
            raise APIError(
                400,
                "prompt must be a string or a list of 1-16 strings",
                type_="invalid_request_error",
                code="invalid_prompt",
            )
        generator = await run_in_threadpool(text_model, body.model)
        if body.stream:
            holds.refuse_stream("completions")
        flags = Flags()
        prompts = [
            await run_in_threadpool(guard_input, p, flags) if isinstance(p, str) else p for p in prompts
        ]
        params = sampling(body, max_tokens=body.max_tokens or 16, logprobs=body.logprobs)
        requests = [
            GenerationRequest(prompt=p, model=body.model, n=body.n, seed=body.seed, params=params).validate()
            for p in prompts
        ]
        raw = body.model_dump(exclude_none=True)
        cid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        base = {"id": cid, "object": "text_completion", "created": created, "model": body.model}
        if not body.stream:
            choices, usage, record_ids = [], {"prompt_tokens": 0, "completion_tokens": 0}, []
            for i, request in enumerate(requests):
                for j, (a, rid) in enumerate(
                    await run_generation(generator, request, key, "completions", raw, flags)
                ):
                    record_ids.append(rid)
                    choices.append({"text": a.text, "index": i * body.n + j, "logprobs": completion_logprobs(a.logprobs),
                                    "finish_reason": a.finish_reason})  # fmt: skip
                    usage["prompt_tokens"] += a.prompt_tokens if j == 0 else 0
                    usage["completion_tokens"] += a.completion_tokens
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            response = {**base, "choices": choices, "usage": usage}
            held = await holds.hold(endpoint="completions", model=generator.card.name, modality=generator.card.modality,
                                    request={**raw, "prompt": prompts[0] if len(prompts) == 1 else prompts},
                                    response=response, artifact={"text": choices[0]["text"]}, flags=flags, key=key,
                                    http=http, record_ids=record_ids)  # fmt: skip
            return held or response

        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        admissions: list[Admission] = []
        try:
            for request in requests:
                admissions.append(open_stream(generator, request))
        except BaseException:
            for a in admissions:
                a.release()
            raise

        async def events() -> AsyncIterator[dict[str, Any]]:
            usage = {"prompt_tokens": 0, "completion_tokens": 0}
            for i, (request, admission) in enumerate(zip(requests, admissions, strict=True)):
                async for c in stream_generation(
                    http, generator, admission, request, key, "completions", raw
                ):
                    if c.finish_reason is not None:
                        usage["prompt_tokens"] += c.prompt_tokens if c.index == 0 else 0
                        usage["completion_tokens"] += c.completion_tokens
                    if c.text or c.finish_reason:
                        yield {**base,
                               "choices": [{"text": c.text, "index": i * body.n + c.index,
                                            "logprobs": completion_logprobs(c.logprobs), "finish_reason": c.finish_reason}]}  # fmt: skip
            if include_usage:
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                yield {**base, "choices": [], "usage": usage}

        return sse(events())

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, http: Request, key: KeyInfo | None = Depends(auth)):
        prompt = chat_template.render(body.messages)
        schema = None
        if body.response_format is not None and body.response_format.type == "json_object":
            schema = {"type": "object"}
        elif body.response_format is not None and body.response_format.type == "json_schema":
            if body.response_format.json_schema is None:
                raise APIError(400, "response_format json_schema needs a json_schema object", type_="invalid_request_error",
                               code="invalid_response_format")  # fmt: skip
            schema = body.response_format.json_schema.schema_ or {"type": "object"}
        generator = await run_in_threadpool(text_model, body.model)
        if body.stream:
            holds.refuse_stream("chat.completions")
        flags = Flags()
        prompt = await run_in_threadpool(guard_input, prompt, flags)
        max_tokens = body.max_completion_tokens or body.max_tokens or DEFAULT_CHAT_MAX_TOKENS
        logprobs = (body.top_logprobs or 0) if body.logprobs else None
        params = sampling(body, max_tokens=max_tokens, extra_stop=() if schema else chat_template.STOP, logprobs=logprobs,
                          json_schema=schema)  # fmt: skip
        request = GenerationRequest(
            prompt=prompt, model=body.model, n=body.n, seed=body.seed, params=params
        ).validate()
        raw = body.model_dump(exclude_none=True, by_alias=True)
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not body.stream:
            results = await run_generation(generator, request, key, "chat.completions", raw, flags)
            choices = [{"index": j, "message": {"role": "assistant", "content": a.text.strip() if not schema else a.text},
                        "logprobs": chat_logprobs(a.logprobs) if body.logprobs else None, "finish_reason": a.finish_reason}
                       for j, (a, _) in enumerate(results)]  # fmt: skip
            prompt_tokens = results[0][0].prompt_tokens
            completion_tokens = sum(a.completion_tokens for a, _ in results)
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            response = {"id": cid, "object": "chat.completion", "created": created, "model": body.model,
                        "choices": choices, "usage": usage, "genlab": {"generation_ids": [r for _, r in results]}}  # fmt: skip
            held = await holds.hold(endpoint="chat.completions", model=generator.card.name,
                                    modality=generator.card.modality, request={**raw, "prompt": prompt},
                                    response=response, artifact={"text": choices[0]["message"]["content"]}, flags=flags,
                                    key=key, http=http, record_ids=[r for _, r in results])  # fmt: skip
            return held or response

        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        admission = open_stream(generator, request)

        async def events() -> AsyncIterator[dict[str, Any]]:
            base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": body.model}
            started: set[int] = set()
            usage = {"prompt_tokens": 0, "completion_tokens": 0}
            async for c in stream_generation(
                http, generator, admission, request, key, "chat.completions", raw
            ):
                if c.index not in started:
                    started.add(c.index)
                    yield {**base, "choices": [{"index": c.index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                                "finish_reason": None}]}  # fmt: skip
                if c.finish_reason is not None:
                    usage["prompt_tokens"] = c.prompt_tokens
                    usage["completion_tokens"] += c.completion_tokens
                    yield {
                        **base,
                        "choices": [
                            {
                                "index": c.index,
                                "delta": {},
                                "logprobs": None,
                                "finish_reason": c.finish_reason,
                            }
                        ],
                    }
                elif c.text:
                    yield {**base, "choices": [{"index": c.index, "delta": {"content": c.text},
                                                "logprobs": chat_logprobs(c.logprobs) if body.logprobs else None,
                                                "finish_reason": None}]}  # fmt: skip
            if include_usage:
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                yield {**base, "choices": [], "usage": usage}

        return sse(events())

    @app.post("/v1/moderations")
    async def moderations(body: ModerationRequest, _: KeyInfo | None = Depends(auth)) -> dict[str, Any]:
        inputs = [body.input] if isinstance(body.input, str) else body.input
        results = []
        for text in inputs:
            scanned = await run_in_threadpool(state.guard.scan_all, text)
            scores: dict[str, float] = dict.fromkeys(MODERATION_CATEGORIES, 0.0)
            for f in scanned.findings:
                key = "pii" if f.scanner in ("pii", "pii_leakage") else f.category
                scores[key] = max(scores.get(key, 0.0), f.score)
            results.append({
                "flagged": bool(scanned.findings),
                "categories": {k: v > 0 for k, v in scores.items()},
                "category_scores": scores,
                "genlab": {"decision": scanned.decision, "findings": [f.to_dict() for f in scanned.findings]},
            })  # fmt: skip
        return {
            "id": f"modr-{uuid.uuid4().hex}",
            "model": f"genlab-guard/{state.guard.policy.name}",
            "results": results,
        }

    @app.post("/v1/images/generations")
    async def images(
        body: ImageRequest, http: Request, key: KeyInfo | None = Depends(auth)
    ) -> dict[str, Any]:
        """OpenAI's images API over the GAN, VAE and diffusion families: the prompt names a class."""
        generator = await run_in_threadpool(state.load, body.model)
        if generator.card.modality != "image":
            raise APIError(400, f"model {body.model!r} makes {generator.card.modality}, not images",
                           type_="invalid_request_error", code="wrong_modality")  # fmt: skip
        flags = Flags()
        prompt = await run_in_threadpool(guard_input, body.prompt, flags) if body.prompt.strip() else None
        side = generator.model.config.size
        if body.size is not None and body.size != f"{side}x{side}":
            raise APIError(400, f"model {body.model!r} draws {side}x{side} images; size {body.size!r} is not "
                           "available", type_="invalid_request_error", code="invalid_size")  # fmt: skip
        request = GenerationRequest(
            prompt=prompt, model=body.model, n=body.n, seed=body.seed,
            params=SamplingParams(extra={"steps": body.steps, "sampler": body.sampler, "guidance": body.guidance}),
        ).validate(needs_prompt=False)  # fmt: skip
        artifacts, latency = await generate_queued(generator, request)
        raw = body.model_dump(exclude_none=True)
        rule = holds.rule("images", flags)
        data, paths = [], []
        for a in artifacts:
            path = await run_in_threadpool(a.save, state.outputs / f"{a.sha256[:32]}.png")
            paths.append(path)
            record_id = await run_in_threadpool(
                store.record_generation, key_id=key.id if key else None, endpoint="images", model=generator.card.name,
                request=raw, output_text=a.label, artifact_path=str(path), artifact_sha256=a.sha256, latency_ms=latency,
                status="held" if rule else "ok",
            )  # fmt: skip
            item: dict[str, Any] = {
                "revised_prompt": a.label,
                "genlab_id": record_id,
                "seed": a.provenance.seed,
            }
            if body.response_format == "b64_json" or rule:  # a held image is released inline, never by URL
                item["b64_json"] = base64.b64encode(a.to_bytes()).decode("ascii")
            else:
                item["url"] = f"/v1/genlab/generations/{record_id}/content"
            data.append(item)
        response = {"created": int(time.time()), "data": data}
        if rule:
            a = artifacts[0]
            return await holds.hold(endpoint="images", model=generator.card.name, modality="image", request=raw,
                                    response=response, artifact={"path": str(paths[0]), "sha256": a.sha256,
                                                                 "label": a.label, "count": len(artifacts)},
                                    flags=flags, key=key, http=http, rule=rule)  # fmt: skip
        return response

    @app.post("/v1/audio/speech")
    async def speech(body: SpeechRequest, http: Request, key: KeyInfo | None = Depends(auth)) -> Response:
        """OpenAI's speech API over audio GAN, VAE and diffusion models: ``input`` names the class to say.

        The response is the WAV itself (provenance in its LIST/INFO chunk); headers carry the
        generation id and seed so a client can fetch it again or cite it.
        """
        generator = await run_in_threadpool(state.load, body.model)
        if generator.card.modality != "audio":
            raise APIError(400, f"model {body.model!r} makes {generator.card.modality}, not audio",
                           type_="invalid_request_error", code="wrong_modality")  # fmt: skip
        seed = body.seed
        if seed is None and body.voice:  # a named voice is a fixed seed: "alloy" always sounds the same
            seed = zlib.crc32(body.voice.encode("utf-8"))
        flags = Flags()
        prompt = await run_in_threadpool(guard_input, body.input, flags)
        request = GenerationRequest(
            prompt=prompt, model=body.model, n=1, seed=seed,
            params=SamplingParams(extra={"steps": body.steps, "sampler": body.sampler, "guidance": body.guidance}),
        ).validate(needs_prompt=False)  # fmt: skip
        artifacts, latency = await generate_queued(generator, request, iterations=body.iterations)
        a = artifacts[0]
        path = await run_in_threadpool(a.save, state.outputs / f"{a.sha256[:32]}.wav")
        rule = holds.rule("audio", flags)
        raw = body.model_dump(exclude_none=True)
        record_id = await run_in_threadpool(
            store.record_generation, key_id=key.id if key else None, endpoint="audio", model=generator.card.name,
            request=raw, output_text=a.label, artifact_path=str(path), artifact_sha256=a.sha256, latency_ms=latency,
            status="held" if rule else "ok",
        )  # fmt: skip
        headers = {
            "x-genlab-id": record_id,
            "x-genlab-seed": str(a.provenance.seed),
            "x-genlab-class": a.label or "",
        }
        if rule:
            response = {"b64_wav": base64.b64encode(a.to_bytes()).decode("ascii"), "genlab_id": record_id,
                        "seed": a.provenance.seed, "class": a.label}  # fmt: skip
            return await holds.hold(endpoint="audio", model=generator.card.name, modality="audio", request=raw,
                                    response=response, artifact={"path": str(path), "sha256": a.sha256, "label": a.label},
                                    flags=flags, key=key, http=http, rule=rule)  # fmt: skip
        return Response(a.to_bytes(), media_type="audio/wav", headers=headers)

    @app.get("/v1/genlab/generations/{record_id}/content")
    async def generation_content(record_id: str, _: KeyInfo | None = Depends(auth)) -> Response:
        record = await released_record(record_id)
        if record is None or not record.get("artifact_path"):
            raise APIError(
                404, f"no stored artifact for {record_id!r}", type_="not_found_error", code="not_found"
            )
        path = Path(record["artifact_path"])
        if not path.is_file():
            raise APIError(410, f"the artifact of {record_id!r} is no longer on disk", type_="not_found_error",
                           code="gone")  # fmt: skip
        media = {".png": "image/png", ".wav": "audio/wav"}.get(
            path.suffix.lower(), "application/octet-stream"
        )
        return Response(path.read_bytes(), media_type=media)

    # -- studio pages ------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    async def studio(request: Request):
        return TEMPLATES.TemplateResponse(
            request, "playground.html", {"version": genlab.__version__, "open": state.config.open_access}
        )

    @app.get("/studio/images", response_class=HTMLResponse)
    async def studio_images(request: Request):
        return TEMPLATES.TemplateResponse(request, "images.html", {"version": genlab.__version__})

    @app.get("/studio/audio", response_class=HTMLResponse)
    async def studio_audio(request: Request):
        return TEMPLATES.TemplateResponse(request, "audio.html", {"version": genlab.__version__})

    @app.get("/v1/genlab/audits")
    async def list_audits(model: str | None = None, _: KeyInfo | None = Depends(auth)) -> dict[str, Any]:
        audits = await run_in_threadpool(store.list_audits, model)
        return {"object": "list", "data": [{k: v for k, v in a.items() if k != "path"} for a in audits]}

    @app.get("/v1/genlab/audits/{audit_id}/{name}")
    async def audit_file(audit_id: str, name: str, _: KeyInfo | None = Depends(auth)) -> Response:
        """A bias audit's report.html, report.json or plots (only files of that audit's folder)."""
        audits = {a["id"]: a for a in await run_in_threadpool(store.list_audits, None, 1000)}
        media = {".html": "text/html", ".json": "application/json", ".png": "image/png"}
        path = Path(audits[audit_id]["path"]) / name if audit_id in audits else None
        if (
            path is None
            or "/" in name
            or name.startswith(".")
            or path.suffix not in media
            or not path.is_file()
        ):
            raise APIError(
                404, f"no file {name!r} in audit {audit_id!r}", type_="not_found_error", code="not_found"
            )
        return Response(path.read_bytes(), media_type=media[path.suffix])

    @app.get("/studio/audits", response_class=HTMLResponse)
    async def studio_audits(request: Request):
        return TEMPLATES.TemplateResponse(request, "audits.html", {"version": genlab.__version__})

    @app.get("/studio/compare", response_class=HTMLResponse)
    async def studio_compare(request: Request):
        """The latest `genlab compare` report (its figures are of built-in data and models only)."""
        from genlab.evaluation.compare import latest_report

        if await run_in_threadpool(latest_report, registry.settings) is None:
            return TEMPLATES.TemplateResponse(request, "compare.html", {"version": genlab.__version__})
        return RedirectResponse("/studio/compare/report.html")

    @app.get("/studio/compare/{name:path}")
    async def studio_compare_file(name: str) -> Response:
        from genlab.evaluation.compare import latest_report

        latest = await run_in_threadpool(latest_report, registry.settings)
        media = {".html": "text/html", ".json": "application/json", ".png": "image/png", ".wav": "audio/wav"}
        path = (latest / name).resolve() if latest is not None else None
        if (
            path is None
            or not path.is_relative_to(latest.resolve())
            or path.suffix not in media
            or not path.is_file()
        ):
            raise APIError(404, f"no file {name!r} in the latest compare report", type_="not_found_error",
                           code="not_found")  # fmt: skip
        return Response(path.read_bytes(), media_type=media[path.suffix])

    @app.get("/studio/reviews", response_class=HTMLResponse)
    async def studio_reviews(request: Request):
        return TEMPLATES.TemplateResponse(request, "reviews.html", {"version": genlab.__version__})

    @app.get("/studio/reviews/{item_id}", response_class=HTMLResponse)
    async def studio_review(request: Request, item_id: str):
        return TEMPLATES.TemplateResponse(
            request, "review.html", {"version": genlab.__version__, "item_id": item_id}
        )

    @app.get("/studio/models", response_class=HTMLResponse)
    async def studio_models(request: Request):
        return TEMPLATES.TemplateResponse(request, "models.html", {"version": genlab.__version__})

    @app.get("/studio/generations/{record_id}", response_class=HTMLResponse)
    async def studio_generation(request: Request, record_id: str):
        return TEMPLATES.TemplateResponse(
            request, "generation.html", {"version": genlab.__version__, "record_id": record_id}
        )

    install_review_routes(app, state, auth)
    install_app_routes(app, state, auth, TEMPLATES)
    return app


def completion_logprobs(tokens: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """genlab's per-token logprobs -> OpenAI completions' parallel lists."""
    if tokens is None:
        return None
    offsets, pos = [], 0
    for t in tokens:
        offsets.append(pos)
        pos += len(t["token"])
    return {
        "tokens": [t["token"] for t in tokens],
        "token_logprobs": [t["logprob"] for t in tokens],
        "top_logprobs": [t["top_logprobs"] for t in tokens],
        "text_offset": offsets,
    }


def chat_logprobs(tokens: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    if tokens is None:
        return None
    return {
        "content": [
            {"token": t["token"], "logprob": t["logprob"], "bytes": list(t["token"].encode()),
             "top_logprobs": [{"token": k, "logprob": v, "bytes": list(k.encode())} for k, v in t["top_logprobs"].items()]}
            for t in tokens
        ]
    }  # fmt: skip


def app_from_env() -> FastAPI:
    """The app `genlab serve` runs (a factory, so `--workers N` processes each build their own)."""
    import os

    config = ServerConfig(
        open_access=os.environ.get("GENLAB_OPEN_ACCESS") == "1",
        queue_limit=int(os.environ.get("GENLAB_QUEUE_LIMIT", "8")),
        policy=os.environ.get("GENLAB_POLICY", "default"),
    )
    return create_app(Registry(Settings.from_env()), config=config)
