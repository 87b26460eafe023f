"""The one gate every generation passes, whichever face it comes from (HTTP, CLI, recipes, Python).

Room ``pipeline``: may import ``core``, ``registry``, ``safety`` and ``storage``; nothing below
``server`` and ``cli`` imports it but ``apps``.

A request passes eight stages, in this order; each is one small method named after it:

    1. check       the request against the model: modality, image size      ``Pipeline.check``
    2. input       the input policy: block, redact, flag or warn             ``Gate.input_text``
    3. admit       the caps (items, schema bytes, audio seconds, pixels: a
                   400 before any work), then a slot in the model's bounded
                   queue (429 when full)                                    ``Caps``, ``Pipeline.admit``
    4. generate    the Generator, or its stream                              ``Generator.generate``
    5. output      the output policy on every string the caller receives    ``Gate.release``
    6. provenance  the hash of what is released (metadata and watermark of
                   images and audio are the artifact's own)                  ``Gate.release``
    7. review      the policy's review rule: hold for a person, or release  ``Pipeline.finish``
    8. record      a generation record whose content equals the release     ``Pipeline.finish``

Streams pass the same stages; since a token sent cannot be taken back, stage 7 is decided before
the first token (``Pipeline.refuse_unreviewed_stream``): whenever the review rule could hold this
request, streaming is refused with a 400 that names the policy, and the client asks again without
``stream``. A streamed request therefore never releases what the same request unstreamed would hold.

Every kind of work (text, images, speech, transcription, embeddings, recipes) runs under one
``Budget``: the server's deadline and the client's leaving, checked at each step the work reports
(a token, a denoising step, a sentence, a window of audio, a batch of texts); a request past it
ends with ``Cancelled`` (504) and frees its slot.

Key: ``Gate`` is one request's passage (its policy, redaction vault and findings); ``Caller`` is
who asked; ``Released`` is what the stages let out.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from genlab.core import (
    Artifact,
    GenerationRequest,
    Generator,
    GenlabError,
    InvalidRequestError,
    TextArtifact,
    TextChunk,
)
from genlab.core.generator import collect_text
from genlab.core.io import sha256_bytes
from genlab.registry import Registry, default_registry
from genlab.safety import appeals, judge, semantic
from genlab.safety.guardrails import Vault
from genlab.safety.policy import Flags, Guard, GuardBlocked, Policy, StreamGuard, redacted_prompt
from genlab.safety.review import ReviewQueue
from genlab.storage import Store

TEXT = ("text", "code")
NOUNS = {
    "image": "images",
    "video": "videos",
    "transcription": "transcripts of speech",
    "embedding": "embeddings",
}  # "makes images, not text"


class QueueFull(GenlabError):
    """The model has as many requests running or waiting as its queue allows."""

    http_status = 429
    error_type = "rate_limit_error"
    code = "queue_full"
    exit_code = 6


class WrongModality(InvalidRequestError):
    """The model makes another modality than the face asks for."""

    code = "wrong_modality"


class OverBudget(InvalidRequestError):
    """One request asks for more tokens than the server allows a request."""

    code = "request_too_large"


class Cancelled(GenlabError):
    """The work stopped before it finished: the client left, or the deadline passed."""

    http_status = 504
    error_type = "timeout_error"
    code = "deadline_exceeded"


class OverCap(InvalidRequestError):
    """One request asks for more than a cap allows (items, schema bytes, audio seconds, pixels)."""

    code = "request_too_large"


@dataclass(frozen=True)
class Caps:
    """What one request may ask for, checked before any expensive work (decoding, scanning,
    template rendering, grammar compiling), each in microseconds from the request's own numbers:
    a request over a cap is a 400 that names it, before it takes a queue slot."""

    inputs: int = 2048  # embedding inputs per request (OpenAI's limit)
    moderation_inputs: int = 64  # texts one /v1/moderations request scans
    items: int = 256  # Responses input items (chat messages: 256, in their schema)
    tools: int = 64  # tools one request may offer the model
    schema_bytes: int = 65_536  # the tools' JSON Schemas and the response format's, as JSON
    audio_seconds: float = 600.0  # an upload's duration, read from its header before decoding
    audio_samples: int = 600 * 48_000 * 2  # frames x channels decoded (ten minutes of 48 kHz stereo)
    image_pixels: int = 16 * 512 * 512  # n x width x height of one image request

    def count(self, what: str, count: int, limit: int, param: str) -> None:
        """``count`` of ``what`` within ``limit``, or a 400."""
        if count > limit:
            raise OverCap(f"{count} {what} in one request; the limit is {limit}", param=param)

    def schemas(self, *schemas: Any) -> None:
        """The JSON Schemas a request brings (tools, a response format) within ``schema_bytes``."""
        size = sum(len(json.dumps(s, separators=(",", ":"))) for s in schemas if s is not None)
        if size > self.schema_bytes:
            raise OverCap(
                f"the request's JSON Schemas (tools and response format) are {size} bytes; the limit "
                f"is {self.schema_bytes}: grammars are compiled from them before the first token",
                param="tools",
            )

    def audio(self, seconds: float, samples: int) -> None:
        """An upload's length from its header (duration, frames x channels), before decoding."""
        if seconds > self.audio_seconds or samples > self.audio_samples:
            raise OverCap(
                f"the audio is {seconds:.0f} s ({samples} samples); the limit is "
                f"{self.audio_seconds:g} s and {self.audio_samples} samples: split it",
                param="file",
            )

    def pixels(self, n: int, width: int, height: int) -> None:
        self.count("pixels (n x width x height)", n * width * height, self.image_pixels, "size")


class Budget:
    """The time one request may work and whether its client still waits. ``check(done, total)``
    is the ``progress`` callback every kind of work reports its steps to (a token, a denoising
    step, a sentence, a window of audio, a batch of texts); it raises ``Cancelled`` once the
    deadline has passed or the client has left, and the work stops at that step."""

    def __init__(
        self,
        seconds: float | None,
        cancel: threading.Event | None = None,
        *,
        observer: Observer | None = None,
        model: str = "",
        then: Callable[[int, int], None] | None = None,
        late: str | None = None,
    ) -> None:
        self.seconds, self.cancel, self.then = seconds, cancel, then
        self.late = late  # what the work says when it runs late (a recipe names its own deadline)
        self.observer, self.model = observer or Observer(), model
        self.started = time.perf_counter()

    def expired(self) -> bool:
        return self.seconds is not None and time.perf_counter() - self.started > self.seconds

    def check(self, done: float = 0, total: float = 0) -> None:
        self.observer.step(self.model)
        if self.cancel is not None and self.cancel.is_set():
            self.observer.rejected("cancelled")
            raise Cancelled("the client left before the work finished")
        if self.expired():
            self.observer.rejected("deadline")
            raise Cancelled(self.late or f"the work ran past the server's deadline of {self.seconds:g} s")
        if self.then is not None:
            self.then(done, total)


def reports_progress(method: Callable[..., Any]) -> bool:
    """Whether a generator's method takes a ``progress(done, total)`` callback (checked per step)."""
    import inspect

    try:
        return "progress" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def produce(
    generator: Generator,
    request: GenerationRequest,
    budget: Budget,
    kwargs: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Artifact]:
    """Stage 4 of one request, under ``budget``. A model that reports its steps (images, speech)
    is given the budget as its ``progress``; a text model that streams is read token by token; so
    the work stops when the client leaves or the deadline passes. What it makes is its
    ``generate``'s. ``progress(done, total)`` hears each finished text choice."""
    kwargs = kwargs or {}
    budget.check()
    if reports_progress(generator.generate):
        return generator.generate(request, progress=budget.check, **kwargs)
    if not generator.supports_streaming or kwargs:
        return generator.generate(request, **kwargs)
    chunks: dict[int, list[TextChunk]] = {}
    stream = generator.stream(request)
    try:
        for chunk in stream:
            budget.check()
            chunks.setdefault(chunk.index, []).append(chunk)
            if progress is not None and chunk.finish_reason is not None:
                progress(chunk.index + 1, request.n)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # ends the engine's loop at the next token
    card = generator.card
    parameters = {**request.params.to_dict(), "backend": card.backend}
    keep = request.params.logprobs is not None
    return [
        collect_text(chunks[i], card, seed=seed, parameters=parameters, keep_logprobs=keep)
        for i, seed in enumerate(request.choice_seeds())
    ]


class ReviewRequired(InvalidRequestError):
    """A stream was asked for where the review rule could hold the generation."""

    code = "review_required"


@dataclass(frozen=True)
class Caller:
    """Who asked: the API key (None for the local user), a name for the audit log, a webhook, and
    whether their role may have code of their own run (a recipe declares when it would)."""

    key_id: int | None = None
    actor: str = "local"
    webhook: str | None = None
    may_run_code: bool = True  # the local user may; a key only in the server's code_roles


LOCAL = Caller()


class Observer:
    """What the pipeline reports as it works; the server counts it in Prometheus metrics."""

    def rejected(self, reason: str) -> None: ...

    def tokens(self, model: str, prompt: int, completion: int) -> None: ...

    def queue_depth(self, model: str, depth: int) -> None: ...

    def first_token(self, model: str, seconds: float) -> None: ...

    def step(self, model: str) -> None:
        """One step of work was checked against its budget (a token, a denoising step, ...)."""


class Queues:
    """Bounded admission per model. llama.cpp contexts are not thread-safe (the generator
    serialises requests on its lock); this bounds how many may wait, so a flood gets 429s, not an
    ever-growing backlog."""

    def __init__(self, limit: int, observer: Observer) -> None:
        self.limit, self.observer = limit, observer
        self._active: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, model: str) -> Slot:
        with self._lock:
            active = self._active.get(model, 0)
            if active >= self.limit:
                self.observer.rejected("queue_full")
                raise QueueFull(
                    f"model {model!r} has {active} requests in progress or waiting (limit {self.limit}); retry shortly"
                )
            self._active[model] = active + 1
            self.observer.queue_depth(model, active + 1)
        return Slot(self, model)

    def active(self, model: str) -> int:
        """Requests of ``model`` admitted and not finished."""
        with self._lock:
            return self._active.get(model, 0)

    def _release(self, model: str) -> None:
        with self._lock:
            self._active[model] = max(0, self._active.get(model, 0) - 1)
            self.observer.queue_depth(model, self._active[model])


class Slot:
    """One admitted request's place in its model's queue; released exactly once."""

    def __init__(self, queues: Queues, model: str) -> None:
        self._queues, self._model, self._released = queues, model, False
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._queues._release(self._model)

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class Gate:
    """One request's passage through the policy: the redaction vault and what was found."""

    guard: Guard
    observer: Observer
    vault: Vault = field(default_factory=Vault)
    flags: Flags = field(default_factory=Flags)

    # -- stage 2: input ---------------------------------------------------------------------------
    def input_text(
        self, text: str, where: str = "request", *, instructions: bool = False, field: str | None = None
    ) -> str:
        """The input policy: a block raises (a 400 naming the category, and ``field``, the request's
        field it was found in); redactions change the text. ``instructions``: the caller's own system
        message, read for secrets, PII and control tokens, not judged for intent."""
        result = self.guard.check_input(text, self.vault, instructions=instructions)
        if result.blocked:
            self.observer.rejected(f"guardrail_{result.blocking_category()}")
            raise GuardBlocked(result, where, param=field)
        self.flags.add(result, "input", field=field)
        return result.text

    def input_fields(self, fields: dict[str, str], where: str) -> dict[str, str]:
        """The input policy over several fields a person wrote (a recipe's input)."""
        return {
            name: self.input_text(text, f"{where} input {name!r}")
            for name, text in fields.items()
            if isinstance(text, str) and text.strip()
        }

    def input_request(self, request: GenerationRequest) -> GenerationRequest:
        """The input policy on every field of the request that the model will read
        (``GenerationRequest.input_fields``: the prompt, or each message, tool call, tool result and
        tool definition it was rendered from, never the chat template's own control tokens); a
        redaction in a field is made where the prompt shows it, or the request is refused."""
        prompt, read = request.prompt, set()
        for f in request.input_fields():
            if (f.text, f.instructions) in read:  # the same text, read the same way, once
                continue
            read.add((f.text, f.instructions))
            where = "request" if f.where == "prompt" else f"request's {f.where}"
            checked = self.input_text(f.text, where, instructions=f.instructions, field=f.where)
            if checked != f.text:
                prompt = redacted_prompt(prompt, f, checked)
        return dataclasses.replace(request, prompt=prompt)

    # -- stages 5 and 6: output and provenance ----------------------------------------------------
    def output_text(self, text: str, prompt: str | None = None) -> tuple[str, bool]:
        """The output policy on one string: (the text to release, whether it was blocked)."""
        if not text.strip():
            return text, False
        result = self.guard.check_output(text, prompt=prompt, vault=Vault())
        self.flags.add(result, "output")
        if result.blocked:
            self.observer.rejected("guardrail_output")
            return "", True
        return result.text, False

    def output_tree(self, value: Any) -> Any:
        """The output policy on every string inside a structured output (dicts, lists, strings)."""
        if isinstance(value, str):
            return self.output_text(value)[0]
        if isinstance(value, dict):
            return {k: self.output_tree(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.output_tree(v) for v in value]
        return value

    def release(self, artifact: Artifact, prompt: str | None) -> Artifact:
        """What the caller receives of one artifact: its strings through the output policy, and
        its provenance hash recomputed when they changed (the hash is of what is released)."""
        if isinstance(artifact, TextArtifact):
            text, blocked = self.output_text(artifact.text, prompt)
            digest = sha256_bytes(text.encode("utf-8"))
            if digest == artifact.sha256 and not blocked:
                return artifact
            provenance = dataclasses.replace(artifact.provenance, sha256=digest)
            reason = "content_filter" if blocked else artifact.finish_reason
            return dataclasses.replace(artifact, text=text, finish_reason=reason, provenance=provenance)
        label = getattr(artifact, "label", None)
        if isinstance(label, str):  # a class name (from a folder name a user chose) is text too
            released, _ = self.output_text(label)
            if released != label:
                return dataclasses.replace(artifact, label=released)
        return artifact


@dataclass
class Released:
    """What passed the gate: the artifacts as released, their records, the review if held."""

    artifacts: list[Artifact]
    record_ids: list[str]
    flags: Flags
    review: dict[str, Any] | None = None

    @property
    def held(self) -> bool:
        return self.review is not None


def held_artifact(
    outputs: list[dict[str, Any]], record_ids: list[str], response: dict[str, Any]
) -> dict[str, Any]:
    """What a review item holds: every output (a reviewer sees each choice and each image; an
    approval releases exactly these), the records they were stored as, the response to release.
    The first output's fields stay at the top for readers of one output."""
    held = []
    for output, record_id in zip(outputs, record_ids, strict=True):
        one: dict[str, Any] = {"record_id": record_id, "sha256": output.get("artifact_sha256")}
        if output.get("artifact_path"):
            one |= {"path": output["artifact_path"], "label": output.get("output_text")}
        else:
            one["text"] = output.get("output_text") or ""
        held.append(one)
    first = {k: v for k, v in held[0].items() if k != "record_id"} if held else {"text": ""}
    return {**first, "count": len(held), "outputs": held, "response": response}


def provide_guard_models(registry: Registry) -> None:
    """The models guardrails read with (the safety room loads none): the shipped embedding model's
    features for the learned guardrail (and the home's retrained weights, where ``genlab guard
    train`` wrote some), any registered chat model for an ``llm_judge``."""
    judge.use_models(registry.load)
    semantic.use_embedder(registry.guard_features)
    semantic.use_weights(registry.settings.guard_dir)


class Pipeline:
    """The gate: a policy, a store for records and reviews, per-model queues."""

    def __init__(
        self,
        registry: Registry,
        *,
        policy: Policy | str = "default",
        store: Store | None = None,
        queue_limit: int = 8,
        observer: Observer | None = None,
        queues: Queues | None = None,
        token_budget: int | None = None,
        deadline_s: float | None = None,
        offload_scans: bool = False,
        caps: Caps | None = None,
    ) -> None:
        self.registry = registry
        provide_guard_models(registry)
        self.offload_scans = offload_scans  # long texts scanned in worker processes (the server)
        self.guard = Guard(
            policy if isinstance(policy, Policy) else Policy.load(policy), offload=offload_scans
        )
        self.store = store
        self.reviews = ReviewQueue(store) if store is not None else None
        self.observer = observer or Observer()
        self.queues = queues or Queues(queue_limit, self.observer)
        self.outputs = registry.settings.outputs_dir
        self.token_budget = token_budget  # most tokens one request may ask for, over prompts and choices
        self.deadline_s = deadline_s  # most seconds one request may generate for
        self.caps = caps or Caps()  # what one request may ask for, checked before any work

    def warm_guard(self) -> None:
        """Load the learned guardrail's model (and build its int8 copy on a fresh home) now, so the
        first request does not wait for it; a failure here resurfaces, closed, on that request."""
        if any(r.scanner.name == "semantic" for r in self.policy.input):
            with contextlib.suppress(Exception):
                semantic.warm()

    @property
    def policy(self) -> Policy:
        return self.guard.policy

    def with_policy(self, policy: Policy | str) -> Pipeline:
        """The same store, queues and observer under another policy (a recipe's joined to this one)."""
        if policy is self.policy or (isinstance(policy, str) and policy == self.policy.name):
            return self
        return Pipeline(
            self.registry,
            policy=policy,
            store=self.store,
            observer=self.observer,
            queues=self.queues,
            token_budget=self.token_budget,
            deadline_s=self.deadline_s,
            offload_scans=self.offload_scans,
            caps=self.caps,
        )

    def gate(self) -> Gate:
        return Gate(self.guard, self.observer)

    # -- stage 1: check ----------------------------------------------------------------------------
    def check(
        self, model: str | Generator, modalities: tuple[str, ...], *, size: str | None = None
    ) -> Generator:
        """The model, loaded, if it makes one of ``modalities`` (and draws ``size`` images)."""
        generator = self.registry.load(model) if isinstance(model, str) else model
        made = generator.card.modality
        if made not in modalities:
            wanted = " or ".join(NOUNS.get(m, m) for m in modalities)
            raise WrongModality(
                f"model {generator.card.name!r} makes {NOUNS.get(made, made)}, not {wanted}",
                param="model",
                hint=f"use a model that makes {wanted} (see `genlab models`)",
            )
        side = getattr(getattr(getattr(generator, "model", None), "config", None), "size", None)
        if size is not None and side is not None and size != f"{side}x{side}":
            raise InvalidRequestError(
                f"model {generator.card.name!r} draws {side}x{side} images; size {size!r} is not available",
                param="size",
            )
        return generator

    # -- stage 3: admit ----------------------------------------------------------------------------
    def admit(self, generator: Generator) -> Slot:
        return self.queues.admit(generator.card.name)

    # -- stage 7 for streams, decided before the first token ---------------------------------------
    def could_hold(self, endpoint: str, gate: Gate) -> str | None:
        """Why the review rule could hold this request once its output is known, or None."""
        review = self.policy.review
        mode = review.endpoints.get(endpoint, review.mode)
        if mode == "always":
            return "every generation is held for review"
        if mode == "sample" and review.sample_rate > 0:
            return f"a share ({review.sample_rate:g}) of generations is held for review"
        if mode in ("flagged", "sample") and gate.flags.flagged_by:
            return "the prompt was flagged by " + ", ".join(sorted(set(gate.flags.flagged_by)))
        if mode in ("flagged", "sample") and any(r.action == "flag" for r in self.policy.output):
            return "an output rule flags generations for review"
        return None

    def refuse_unreviewed_stream(self, endpoint: str, gate: Gate) -> None:
        reason = self.could_hold(endpoint, gate)
        if reason is not None:
            self.observer.rejected("stream_needs_review")
            raise ReviewRequired(
                f"{endpoint} cannot stream under policy {self.policy.name!r}: {reason}, and a streamed "
                "token cannot be held; send stream: false (a held generation answers 202 and a review id)",
                param="stream",
            )

    # -- stages 7 and 8: review and record ---------------------------------------------------------
    def finish(
        self,
        *,
        endpoint: str,
        generator: Generator,
        gate: Gate,
        caller: Caller,
        raw: dict[str, Any],
        outputs: list[dict[str, Any]],
        respond: Callable[[list[str]], dict[str, Any]] | None,
        latency_ms: float,
    ) -> tuple[list[str], dict[str, Any] | None]:
        """Record each released output (held where the review rule says so) and submit a held
        response to the review queue: (record ids, the review or None)."""
        if self.store is None:  # library use (evaluation): nothing to record, nobody to review
            return [], None
        rule = self.policy.review.hold(endpoint, gate.flags.flagged_by)
        record_ids = [
            self.store.record_generation(
                key_id=caller.key_id,
                endpoint=endpoint,
                model=generator.card.name,
                request=raw,
                latency_ms=latency_ms,
                status="held" if rule else "ok",
                **output,
            )
            for output in outputs
        ]
        if rule is None:
            return record_ids, None
        response = respond(record_ids) if respond is not None else {}
        item = self.reviews.submit(
            endpoint=endpoint,
            model=generator.card.name,
            modality=generator.card.modality,
            request=raw,
            artifact=held_artifact(outputs, record_ids, response),
            findings=gate.flags.findings,
            rule=rule,
            policy=self.policy.review,
            key_id=caller.key_id,
            webhook=caller.webhook,
            actor=caller.actor,
        )
        self.observer.rejected("held_for_review")
        review = {
            "id": item["id"],
            "rule": rule,
            "due_at": item["due_at"],
            "url": f"/v1/reviews/{item['id']}",
        }
        return record_ids, review

    # -- stage 2's "no", sent to a person at the caller's asking --------------------------------------
    def appeal(
        self, blocked: GuardBlocked, *, endpoint: str, model: str, caller: Caller = LOCAL, raw: dict[str, Any]
    ) -> dict[str, Any]:
        """A request the input policy blocked, put in the review queue instead of refused (the
        caller sent ``"appeal": true``): the review, as ``finish`` gives a held one. The block
        stands (raised again) where nobody reviews (no store) or its category is not appealable."""
        if self.reviews is None or not appeals.appealable(blocked.category):
            raise blocked
        flags = Flags()
        flags.add(blocked.result, "input")  # what was redacted stays redacted for the reviewer
        item = appeals.submit(
            self.reviews,
            text=blocked.result.text,
            category=blocked.category,
            findings=flags.findings,
            message=str(blocked),
            endpoint=endpoint,
            model=model,
            request=raw,
            policy=self.policy.review,
            key_id=caller.key_id,
            webhook=caller.webhook,
            actor=caller.actor,
        )
        self.observer.rejected("appealed")
        return {
            "id": item["id"],
            "rule": item["rule"],
            "due_at": item["due_at"],
            "url": f"/v1/reviews/{item['id']}",
        }

    # -- the faces' entry points -------------------------------------------------------------------
    def generate(
        self,
        requests: GenerationRequest | list[GenerationRequest],
        *,
        endpoint: str,
        modalities: tuple[str, ...] = TEXT,
        caller: Caller = LOCAL,
        raw: dict[str, Any] | None = None,
        respond: Callable[[Released], dict[str, Any]] | None = None,
        size: str | None = None,
        shape: Callable[[str], str] | None = None,
        cancel: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None,
        **kwargs: Any,
    ) -> Released:
        """Every stage, for one or more requests to one model (one review decision over all).
        ``shape`` is how the face presents a text (chat strips it), applied before the output
        policy so that what is scanned, hashed, held and recorded is exactly what is released.
        ``progress(done, total)`` hears each finished text choice (a CLI shows "choice 2 of 3")."""
        requests = requests if isinstance(requests, list) else [requests]
        generator = self.check(requests[0].model, modalities, size=size)  # 1. check
        self.check_budget(requests)
        gate = self.gate()
        requests = [gate.input_request(r) for r in requests]  # 2. input
        started = time.perf_counter()
        artifacts: list[Artifact] = []
        steps = progress if reports_progress(generator.generate) else None  # a model's own steps
        with self.admit(generator):  # 3. admit
            budget = self.budget(generator, cancel, steps)
            for request in requests:  # 4. generate, under the deadline
                produced = produce(generator, request, budget, kwargs, progress)
                if shape is not None:
                    produced = [
                        dataclasses.replace(a, text=shape(a.text)) if isinstance(a, TextArtifact) else a
                        for a in produced
                    ]
                artifacts += [gate.release(a, request.prompt) for a in produced]  # 5., 6.
        latency = (time.perf_counter() - started) * 1000
        released = Released(artifacts, [], gate.flags)
        outputs = [self._record_fields(a) for a in artifacts]
        for a in artifacts:
            self.observer.tokens(
                generator.card.name, getattr(a, "prompt_tokens", 0), getattr(a, "completion_tokens", 0)
            )

        def response(record_ids: list[str]) -> dict[str, Any]:
            released.record_ids = record_ids
            return respond(released) if respond is not None else {}

        record_ids, review = self.finish(
            endpoint=endpoint,
            generator=generator,
            gate=gate,
            caller=caller,
            raw=raw or requests[0].to_dict(),
            outputs=outputs,
            respond=response,
            latency_ms=latency,
        )  # 7., 8.
        released.record_ids, released.review = record_ids, review
        return released

    def check_budget(self, requests: list[GenerationRequest]) -> None:
        """Prompts x choices x max_tokens within the budget, before any work starts."""
        asked = sum(r.n * r.params.max_tokens for r in requests)
        if self.token_budget is not None and asked > self.token_budget:
            raise OverBudget(
                f"this request asks for up to {asked} tokens (prompts x n x max_tokens); the limit is "
                f"{self.token_budget} per request",
                param="max_tokens",
            )

    def budget(
        self,
        generator: Generator,
        cancel: threading.Event | None = None,
        then: Callable[[int, int], None] | None = None,
    ) -> Budget:
        """The deadline and cancellation one request's work runs under (stage 4)."""
        return Budget(self.deadline_s, cancel, observer=self.observer, model=generator.card.name, then=then)

    def _record_fields(self, artifact: Artifact) -> dict[str, Any]:
        """What a record keeps of a released artifact: its text, or its stored file and hash."""
        if isinstance(artifact, TextArtifact):
            return {
                "output_text": artifact.text,
                "artifact_sha256": artifact.sha256,
                "prompt_tokens": artifact.prompt_tokens,
                "completion_tokens": artifact.completion_tokens,
            }
        path = artifact.save(self.outputs / artifact.modality / f"{artifact.sha256[:32]}{artifact.extension}")
        return {
            "output_text": getattr(artifact, "label", None),
            "artifact_path": str(path),
            "artifact_sha256": artifact.sha256,
        }

    def embed(
        self,
        model: str,
        texts: list[str],
        *,
        endpoint: str,
        caller: Caller = LOCAL,
        raw: dict[str, Any] | None = None,
        dimensions: int | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[Any, int, list[str], dict[str, Any] | None]:
        """Texts to vectors through the same stages: check (an embedding model), the input policy on
        every text (a block is a 400; a redaction is what gets embedded), its queue (the count cap
        and the slot come before the scans), the deadline and ``cancel`` at each text, the record
        (counts and the texts' hash, not the vectors), the review rule. Returns (vectors, tokens,
        record ids, the review when held: then the vectors must not be released)."""
        generator = self.check(model, ("embedding",))  # 1. check
        self.caps.count("inputs", len(texts), self.caps.inputs, "input")  # 3. the cap, before any scan
        gate = self.gate()
        started = time.perf_counter()
        with self.admit(generator):  # 3. admit: a slot before the scans, which are the expense
            budget = self.budget(generator, cancel)
            checked = []
            for i, text in enumerate(texts):  # 2. input, text by text under the deadline
                budget.check(i, len(texts))
                checked.append(gate.input_text(text, f"input[{i}]") if text.strip() else text)
            texts = checked
            vectors = generator.embed(texts, dimensions=dimensions, progress=budget.check)  # 4.
            tokens = generator.count_tokens(texts)
        digest = sha256_bytes(json.dumps(texts, ensure_ascii=False).encode("utf-8"))
        record = {
            "output_text": f"{len(texts)} embedding(s) of {vectors.shape[1]} dimensions",
            "artifact_sha256": digest,
            "prompt_tokens": tokens,
            "completion_tokens": 0,
        }
        record_ids, review = self.finish(
            endpoint=endpoint,
            generator=generator,
            gate=gate,
            caller=caller,
            raw=raw or {"model": model, "inputs": len(texts)},
            outputs=[record],
            respond=None,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        return vectors, tokens, record_ids, review

    def transcribe(
        self,
        model: str,
        audio: Any,
        *,
        endpoint: str,
        caller: Caller = LOCAL,
        raw: dict[str, Any] | None = None,
        respond: Callable[[Released], dict[str, Any]] | None = None,
        cancel: threading.Event | None = None,
        **options: Any,
    ) -> tuple[Any, Released]:
        """Speech to text through the same stages: check (a transcription model), admit (its
        queue), decode (``audio`` may be a callable that decodes it, run once admitted), transcribe
        under the deadline and ``cancel`` (checked at each window), the output policy on the transcript and on every segment, the record
        (and the review rule). Returns (the transcript, what was released)."""
        generator = self.check(model, ("transcription",))  # 1. check
        gate = self.gate()  # 2. input: the audio is not text; its transcript is scanned on the way out
        started = time.perf_counter()
        with self.admit(generator):  # 3. admit (the caller checked the header's duration cap)
            budget = self.budget(generator, cancel, options.pop("progress", None))
            samples = audio() if callable(audio) else audio  # decoded only once admitted
            budget.check()
            transcript = generator.transcribe(samples, progress=budget.check, **options)  # 4.
        transcript.text, blocked = gate.output_text(transcript.text)  # 5. output
        for segment in transcript.segments:
            segment["text"] = "" if blocked else gate.output_text(segment["text"])[0]
        artifact = TextArtifact.create(
            transcript.text,
            model=generator.card.name,
            family=generator.card.family,
            modality="text",
            seed=None,
            parameters={"task": options.get("task", "transcribe"), "duration": round(transcript.duration, 3)},
        )
        released = Released([artifact], [], gate.flags)
        record_ids, review = self.finish(
            endpoint=endpoint,
            generator=generator,
            gate=gate,
            caller=caller,
            raw=raw or {"model": model},
            outputs=[self._record_fields(artifact)],
            respond=(lambda ids: respond(dataclasses.replace(released, record_ids=ids))) if respond else None,
            latency_ms=(time.perf_counter() - started) * 1000,
        )  # 6., 7.
        released.record_ids, released.review = record_ids, review
        return transcript, released

    def stream(
        self,
        request: GenerationRequest,
        *,
        endpoint: str,
        caller: Caller = LOCAL,
        raw: dict[str, Any] | None = None,
    ) -> Stream:
        """Stages 1-3 now (so a bad request or a full queue is an error before any token), the
        review rule decided before the first token, and the rest as the stream is read."""
        generator = self.check(request.model, TEXT)  # 1. check
        self.check_budget([request])
        gate, request, slot, iterator = self._opened(generator, request, endpoint, generator.stream)
        return Stream(
            self, generator, gate, slot, iterator, request, endpoint, caller, raw or request.to_dict()
        )

    def _opened(self, generator: Generator, request: GenerationRequest, endpoint: str, start) -> tuple:
        """Stages 2, 7 (decided before anything is sent), 3 and the start of 4 for a stream:
        (gate, the request as the input policy left it, the queue slot, the generator's iterator);
        the slot is freed again if the generator refuses the request."""
        gate = self.gate()
        request = gate.input_request(request)  # 2. input
        self.refuse_unreviewed_stream(endpoint, gate)  # 7. decided now
        slot = self.admit(generator)  # 3. admit
        try:
            return gate, request, slot, start(request)  # 4. (validates before the first item)
        except BaseException:
            slot.release()
            raise

    def stream_audio(
        self,
        request: GenerationRequest,
        *,
        endpoint: str,
        caller: Caller = LOCAL,
        raw: dict[str, Any] | None = None,
    ) -> AudioStream:
        """A voice's audio as it is synthesised, through the same stages as ``stream``: checked,
        the input policy, the review rule decided before the first chunk, a queue slot; the joined
        clip is released, stored and recorded (under the id the stream is given now) at its end."""
        generator = self.check(request.model, ("audio",))  # 1. check
        if not callable(getattr(generator, "stream_audio", None)):
            raise InvalidRequestError(
                f"{generator.card.name} makes its clip whole and cannot stream; leave out stream_format",
                param="stream_format",
            )
        gate, request, slot, chunks = self._opened(generator, request, endpoint, generator.stream_audio)
        return AudioStream(self, generator, gate, slot, chunks, request, endpoint, caller, raw or {})


class AudioStream:
    """An admitted stream of float32 audio chunks (``rate`` Hz, mono). Reading it to the end, or
    closing it, frees the slot and records the clip released so far: stored as a file with its
    provenance and mark, under ``record_id``, known before the first chunk."""

    def __init__(
        self,
        pipeline: Pipeline,
        generator: Generator,
        gate: Gate,
        slot: Slot,
        chunks: Iterator[tuple[Any, bool]],
        request: GenerationRequest,
        endpoint: str,
        caller: Caller,
        raw: dict[str, Any],
    ) -> None:
        import uuid

        self.pipeline, self.generator, self.gate, self.slot = pipeline, generator, gate, slot
        self.chunks, self.request, self.endpoint, self.caller, self.raw = (
            chunks,
            request,
            endpoint,
            caller,
            raw,
        )
        self.rate: int = generator.sample_rate
        self.record_id = f"gen-{uuid.uuid4().hex}"
        self.seed = request.choice_seeds()[0]
        self.sent: list[Any] = []
        self.marked = False
        self.finished = False
        weakref.finalize(self, slot.release)

    def __iter__(self) -> Iterator[Any]:
        started = time.perf_counter()
        budget = self.pipeline.budget(self.generator)
        try:
            for chunk, marked in self.chunks:  # 4., under the deadline
                budget.check()
                self.sent.append(chunk)
                self.marked = self.marked or marked
                yield chunk
            self.finished = True
        finally:
            close = getattr(self.chunks, "close", None)
            if close is not None:
                close()
            self.slot.release()
            self._record((time.perf_counter() - started) * 1000)  # 5., 6., 8.

    def _record(self, latency_ms: float) -> None:
        if self.pipeline.store is None or not self.sent:
            return
        import numpy as np

        samples = np.concatenate(self.sent)
        artifact = self.gate.release(
            self.generator.clip(self.request, samples, self.marked), self.request.prompt
        )
        self.pipeline.store.record_generation(
            id=self.record_id,
            key_id=self.caller.key_id,
            endpoint=self.endpoint,
            model=self.generator.card.name,
            request=self.raw,
            latency_ms=latency_ms,
            status="ok" if self.finished else "cancelled",
            **self.pipeline._record_fields(artifact),
        )


class Stream:
    """An admitted, guarded stream of ``TextChunk``s. Read it in one thread; closing it (or reading
    it to the end) releases the queue slot and records what was released, choice by choice."""

    def __init__(
        self,
        pipeline: Pipeline,
        generator: Generator,
        gate: Gate,
        slot: Slot,
        iterator: Iterator[TextChunk],
        request: GenerationRequest,
        endpoint: str,
        caller: Caller,
        raw: dict[str, Any],
    ) -> None:
        self.pipeline, self.generator, self.gate, self.slot = pipeline, generator, gate, slot
        self.iterator, self.request = iterator, request
        self.endpoint, self.caller, self.raw = endpoint, caller, raw
        self.texts: dict[int, list[str]] = {}
        self.usage: dict[int, tuple[int, int]] = {}
        self.finished: set[int] = set()
        # a stream nobody reads (the client left before the response started) still frees its slot
        weakref.finalize(self, slot.release)

    def __iter__(self) -> Iterator[TextChunk]:
        started = time.perf_counter()
        first = True
        try:
            deadline = self.pipeline.deadline_s
            for chunk in self._guarded():  # 5. output, as the text grows
                if deadline is not None and time.perf_counter() - started > deadline:
                    raise Cancelled(f"the stream ran past the server's deadline of {deadline:g} s")
                if first and chunk.text:
                    first = False
                    self.pipeline.observer.first_token(
                        self.generator.card.name, time.perf_counter() - started
                    )
                self.texts.setdefault(chunk.index, []).append(chunk.text)
                if chunk.finish_reason is not None:
                    self.finished.add(chunk.index)
                    self.usage[chunk.index] = (chunk.prompt_tokens, chunk.completion_tokens)
                yield chunk
        finally:
            close = getattr(self.iterator, "close", None)
            if close is not None:
                close()  # ends llama.cpp's loop at the next token
            self.slot.release()
            self._record((time.perf_counter() - started) * 1000)  # 6., 8.

    def _guarded(self) -> Iterator[TextChunk]:
        guards: dict[int, StreamGuard] = {}
        for chunk in self.iterator:
            g = guards.setdefault(chunk.index, StreamGuard(self.gate.guard, self.request.prompt or ""))
            if chunk.finish_reason is None:
                text = g.push(chunk.text)
                if text:
                    yield dataclasses.replace(chunk, text=text)
                if not g.blocked:
                    continue
            tail = g.finish() if not g.blocked else ""
            if tail:
                yield TextChunk(text=tail, index=chunk.index)
            if g.last is not None:
                self.gate.flags.add(g.last, "output")
            if g.blocked:
                self.pipeline.observer.rejected("guardrail_output")
                yield dataclasses.replace(chunk, text="", finish_reason="content_filter")
                return
            yield chunk

    def _record(self, latency_ms: float) -> None:
        if self.pipeline.store is None:
            return
        name = self.generator.card.name
        for index in range(self.request.n):
            text = "".join(self.texts.get(index, []))
            prompt_tokens, completion_tokens = self.usage.get(index, (0, 0))
            self.pipeline.observer.tokens(name, prompt_tokens, completion_tokens)
            self.pipeline.store.record_generation(
                key_id=self.caller.key_id,
                endpoint=self.endpoint,
                model=name,
                request=self.raw,
                output_text=text,
                artifact_sha256=sha256_bytes(text.encode("utf-8")),
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                latency_ms=latency_ms,
                status="ok" if index in self.finished else "cancelled",
            )


# -- the composition root ------------------------------------------------------------------------------
_GATES: dict[tuple[Any, str], Pipeline] = {}
_GATES_LOCK = threading.Lock()


def default_pipeline(policy: str = "default") -> Pipeline:
    """The gate of this process's ``GENLAB_HOME``, for the faces that have no server (the CLI, the
    Python API): its registry, one Store (so Alembic runs once, and the store is closed at exit) and
    one set of queues, shared by a Pipeline per policy."""
    registry = default_registry()
    home = registry.settings.home
    with _GATES_LOCK:
        if (home, policy) not in _GATES:
            sibling = next((p for (h, _), p in _GATES.items() if h == home), None)
            if sibling is None:
                store = Store(settings=registry.settings)
                atexit.register(store.close)
                _GATES[home, policy] = Pipeline(registry, policy=policy, store=store)
            else:
                _GATES[home, policy] = sibling.with_policy(policy)
        return _GATES[home, policy]
