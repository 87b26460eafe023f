"""The one gate every generation passes, whichever face it comes from (HTTP, CLI, recipes, Python).

Room ``pipeline``: may import ``core``, ``registry``, ``safety`` and ``storage``; nothing below
``server`` and ``cli`` imports it but ``apps``.

A request passes eight stages, in this order, declared once (``STAGES``: a ``Stage`` per line);
``Pipeline.run(passage)`` runs them all, ``Pipeline.open(passage)`` those up to the start of a
stream and ``Pipeline.close`` the rest as it ends. A ``Passage`` per kind of work (text, images,
audio and video: ``GenerationPassage``; ``TextStreamPassage``, ``AudioStreamPassage``,
``EmbeddingPassage``, ``TranscriptionPassage``; a recipe's in ``apps.recipe``) supplies only what
differs:

    1. check       the request against the model: modality, image size      ``Passage.check``
    2. input       the input policy: block, redact, flag or warn             ``Passage.input``
    3. admit       the caps (items, schema bytes, audio seconds, pixels: a
                   400 before any work), then a slot in the model's bounded
                   queue (429 when full)                                    ``Passage.caps``, ``Queues``
    4. generate    the Generator, or its stream, under the ``Budget``        ``Passage.generate``
    5. output      the output policy on every string the caller receives    ``Passage.output``
    6. provenance  the hash of what is released and the fields recorded
                   (metadata and watermark of images and audio are the
                   artifact's own)                                           ``Passage.provenance``
    7. review      the policy's review rule: hold for a person, or release  ``Passage.hold``
    8. record      a generation record whose content equals the release,
                   and the review item of a held one                        ``Pipeline.record``

Streams pass the same stages; since a token sent cannot be taken back, stage 7 is decided before
the first token (``Pipeline.refuse_unreviewed_stream``, with stage 2): whenever the review rule
could hold this request, streaming is refused with a 400 that names the policy, and the client
asks again without ``stream``. A streamed request therefore never releases what the same request
unstreamed would hold. Embeddings run their input policy once admitted (the scans of up to 2,048
texts are the expense the queue bounds).

Every kind of work (text, images, speech, transcription, embeddings, recipes) runs under one
``Budget``: the server's deadline and the client's leaving, checked at each step the work reports
(a token, a denoising step, a sentence, a window of audio, a batch of texts); a request past it
ends with ``Cancelled`` (504) and frees its slot.

Key: ``Passage`` is one piece of work on its way through the stages; ``Gate`` its policy state
(the guard, redaction vault and findings); ``Caller`` is who asked; ``Released`` is what the
stages let out.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, cast

from genlab.core import (
    Artifact,
    AudioArtifact,
    GenerationRequest,
    Generator,
    GenlabError,
    ImageArtifact,
    InvalidRequestError,
    TextArtifact,
    TextChunk,
    VideoArtifact,
)
from genlab.core.generator import Embedder, ImageMaker, Transcriber, Voice, collect_text
from genlab.core.io import sha256_bytes
from genlab.registry import Registry, default_registry
from genlab.safety import appeals, judge, semantic
from genlab.safety.guardrails import Vault
from genlab.safety.policy import (
    Flags,
    Guard,
    GuardBlocked,
    Policy,
    StreamGuard,
    StreamLogprobs,
    redacted_prompt,
)
from genlab.safety.review import ReviewQueue
from genlab.storage import Store

TEXT = ("text", "code")
LABELLED = (ImageArtifact, AudioArtifact, VideoArtifact)  # artifacts that carry a class name
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
        then: Callable[[float, float], None] | None = None,
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
    progress: Callable[[float, float], None] | None = None,
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
                prompt = redacted_prompt(prompt or "", f, checked)
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
            # the tokens' logprobs would show what the policy redacted: withheld with it
            logprobs = None if blocked or text != artifact.text else artifact.logprobs
            return dataclasses.replace(
                artifact, text=text, finish_reason=reason, provenance=provenance, logprobs=logprobs
            )
        if isinstance(artifact, LABELLED) and artifact.label is not None:
            # a class name (from a folder name a user chose) is text too
            released, _ = self.output_text(artifact.label)
            if released != artifact.label:
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
        stages: Sequence[Stage] | None = None,
    ) -> None:
        self.registry = registry
        self.stages = list(stages if stages is not None else STAGES)  # the gate, in order
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
            stages=self.stages,
        )

    def gate(self) -> Gate:
        return Gate(self.guard, self.observer)

    # -- stage 1: check ----------------------------------------------------------------------------
    def check(
        self, model: str | Generator | None, modalities: tuple[str, ...], *, size: str | None = None
    ) -> Generator:
        """The model, loaded, if it makes one of ``modalities`` (and draws ``size`` images)."""
        if model is None:
            raise InvalidRequestError("the request names no model", param="model", hint="see `genlab models`")
        generator = self.registry.load(model) if isinstance(model, str) else model
        made = generator.card.modality
        if made not in modalities:
            wanted = " or ".join(NOUNS.get(m, m) for m in modalities)
            raise WrongModality(
                f"model {generator.card.name!r} makes {NOUNS.get(made, made)}, not {wanted}",
                param="model",
                hint=f"use a model that makes {wanted} (see `genlab models`)",
            )
        if size is not None and isinstance(generator, ImageMaker):
            generator.size(size)  # a 400 where it does not draw that size
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

    # -- the stages, in order ----------------------------------------------------------------------
    def run(self, passage: P) -> P:
        """Every stage of ``self.stages``, in order, for one piece of work; the slot is freed
        whatever happens. Each face builds its ``Passage`` and runs it here."""
        try:
            for stage in self.stages:
                stage.run(self, passage)
        finally:
            passage.free()
        return passage

    def open(self, passage: P) -> P:
        """The stages up to and including the start of the work (stage 4) now, so that a bad
        request, a refusal or a full queue is an error before anything is sent; the rest run in
        ``close``, as the stream ends."""
        for stage in self.stages[: self._work() + 1]:
            stage.run(self, passage)
        return passage

    def close(self, passage: Passage) -> None:
        """The stages after the work, for a stream that ended (read to its end, or left)."""
        passage.free()
        for stage in self.stages[self._work() + 1 :]:
            stage.run(self, passage)

    def _work(self) -> int:
        return next(i for i, s in enumerate(self.stages) if s.name == "generate")

    # -- stage 8: record (and submit what stage 7 held) ----------------------------------------------
    def record(self, passage: Passage) -> None:
        """Record each released output (held where stage 7's rule said so) and submit a held
        response to the review queue; the record ids and the review are left on the passage."""
        if self.store is None or self.reviews is None:  # library use: nothing to record or review
            return
        p, name = passage, passage.generator.card.name
        request = p.recorded_request()
        latency_ms = (time.perf_counter() - p.started) * 1000
        p.record_ids = [
            self.store.record_generation(
                key_id=p.caller.key_id,
                endpoint=p.endpoint,
                model=name,
                request=request,
                latency_ms=latency_ms,
                **{"status": "ok", **output, **({"status": "held"} if p.rule else {})},
            )
            for output in p.outputs
        ]
        if p.rule is None:
            return
        item = self.reviews.submit(
            endpoint=p.endpoint,
            model=name,
            modality=p.generator.card.modality,
            request=request,
            artifact=held_artifact(p.outputs, p.record_ids, p.respond(p.record_ids)),
            findings=p.gate.flags.findings,
            rule=p.rule,
            policy=self.policy.review,
            key_id=p.caller.key_id,
            webhook=p.caller.webhook,
            actor=p.caller.actor,
        )
        self.observer.rejected("held_for_review")
        p.review = {
            "id": item["id"],
            "rule": p.rule,
            "due_at": item["due_at"],
            "url": f"/v1/reviews/{item['id']}",
        }

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

    # -- the faces' entry points: each builds its passage and runs the stages ------------------------
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
        progress: Callable[[float, float], None] | None = None,
        **kwargs: Any,
    ) -> Released:
        """Every stage, for one or more requests to one model (one review decision over all).
        ``shape`` is how the face presents a text (chat strips it), applied before the output
        policy so that what is scanned, hashed, held and recorded is exactly what is released.
        ``progress(done, total)`` hears each finished text choice (a CLI shows "choice 2 of 3")."""
        passage = GenerationPassage(
            requests=requests if isinstance(requests, list) else [requests],
            modalities=modalities,
            size=size,
            shape=shape,
            progress=progress,
            respond_with=respond,
            options=kwargs,
            endpoint=endpoint,
            caller=caller,
            raw=raw,
            cancel=cancel,
        )
        return self.run(passage).finished()

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
        """Texts to vectors through the stages (``EmbeddingPassage``). Returns (vectors, tokens,
        record ids, the review when held: then the vectors must not be released)."""
        passage = EmbeddingPassage(
            model=model,
            texts=texts,
            dimensions=dimensions,
            endpoint=endpoint,
            caller=caller,
            raw=raw,
            cancel=cancel,
        )
        self.run(passage)
        return passage.vectors, passage.tokens, passage.record_ids, passage.review

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
        """Speech to text through the stages (``TranscriptionPassage``); ``audio`` may be a
        callable that decodes it, run once admitted. Returns (the transcript, what was released)."""
        passage = TranscriptionPassage(
            model=model,
            audio=audio,
            options=options,
            respond_with=respond,
            endpoint=endpoint,
            caller=caller,
            raw=raw,
            cancel=cancel,
        )
        self.run(passage)
        return passage.transcript, passage.finished()

    def stream(
        self,
        request: GenerationRequest,
        *,
        endpoint: str,
        caller: Caller = LOCAL,
        raw: dict[str, Any] | None = None,
    ) -> Stream:
        """Stages 1-4 now (``open``), the review rule decided before the first token; the rest as
        the stream is read."""
        passage = TextStreamPassage(request=request, endpoint=endpoint, caller=caller, raw=raw)
        return Stream(self, self.open(passage))

    def stream_audio(
        self,
        request: GenerationRequest,
        *,
        endpoint: str,
        caller: Caller = LOCAL,
        raw: dict[str, Any] | None = None,
    ) -> AudioStream:
        """A voice's audio as it is synthesised, through the same stages as ``stream``; the joined
        clip is released, stored and recorded (under the id the stream is given now) at its end."""
        passage = AudioStreamPassage(request=request, endpoint=endpoint, caller=caller, raw=raw)
        return AudioStream(self, self.open(passage))

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
        then: Callable[[float, float], None] | None = None,
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


# -- the stages, declared once -----------------------------------------------------------------------
@dataclass(eq=False, kw_only=True)
class Passage:
    """One piece of work on its way through the stages. A subclass per kind of work (text, a
    stream, embeddings, a transcript, a recipe ...) supplies only what differs: the model it
    checks, what its input policy reads, its work, what its output policy reads and what it
    records. The stages, and their order, are ``STAGES``'; what they leave is kept here."""

    endpoint: str
    caller: Caller = LOCAL
    raw: dict[str, Any] | None = None  # the request as recorded (default: ``recorded_request``)
    cancel: threading.Event | None = None
    streams: ClassVar[bool] = False  # stage 4 starts a stream; the stages after it run as it ends
    generator: Generator = field(init=False)  # 1.
    gate: Gate = field(init=False)  # 2. (its vault and findings)
    slot: Slot | None = field(default=None, init=False)  # 3.
    started: float = field(default=0.0, init=False)
    outputs: list[dict[str, Any]] = field(default_factory=list, init=False)  # 6. the records' fields
    rule: str | None = field(default=None, init=False)  # 7. why it is held, or None
    record_ids: list[str] = field(default_factory=list, init=False)  # 8.
    review: dict[str, Any] | None = field(default=None, init=False)  # 8. the review item, if held
    respond_with: Callable[[Released], dict[str, Any]] | None = None  # the face's response
    released: Released = field(init=False)  # 5., 6. what is let out (faces that release artifacts)

    def free(self) -> None:
        """Give the queue slot back (once; again is nothing)."""
        if self.slot is not None:
            self.slot.release()

    def check(self, pipe: Pipeline) -> Generator:
        raise NotImplementedError

    def input(self, pipe: Pipeline) -> None:
        """The input policy on what the model will read (``self.gate``); by default nothing."""

    def caps(self, pipe: Pipeline) -> None:
        """The caps on what the request asks for, checked before a slot is taken."""

    def generate(self, pipe: Pipeline) -> None:
        raise NotImplementedError

    def output(self, pipe: Pipeline) -> None:
        """The output policy on every string the caller receives."""

    def provenance(self, pipe: Pipeline) -> None:
        """The fields each released output is recorded with (``self.outputs``): text or file, hash."""

    def hold(self, pipe: Pipeline) -> str | None:
        """The review rule that holds this work, or None (nothing is held without a store)."""
        if pipe.store is None:
            return None
        return pipe.policy.review.hold(self.endpoint, self.gate.flags.flagged_by)

    def respond(self, record_ids: list[str]) -> dict[str, Any]:
        """The response a review item holds, to be released on approval (the face's own)."""
        if self.respond_with is None:
            return {}
        return self.respond_with(dataclasses.replace(self.released, record_ids=record_ids))

    def recorded_request(self) -> dict[str, Any]:
        return self.raw or {}

    def finished(self) -> Released:
        """What the stages let out, with its records and its review if held."""
        self.released.record_ids, self.released.review = self.record_ids, self.review
        return self.released


@dataclass(frozen=True)
class Stage:
    """One stage of the gate: its number in the key above, its name, and what it does."""

    number: int
    name: str
    run: Callable[[Pipeline, Passage], None]


def _check(pipe: Pipeline, p: Passage) -> None:
    p.generator = p.check(pipe)


def _input(pipe: Pipeline, p: Passage) -> None:
    p.gate = pipe.gate()
    p.input(pipe)


def _admit(pipe: Pipeline, p: Passage) -> None:
    p.caps(pipe)
    p.started = time.perf_counter()
    p.slot = pipe.admit(p.generator)


def _generate(pipe: Pipeline, p: Passage) -> None:
    try:
        p.generate(pipe)
    except BaseException:
        p.free()  # a refused stream frees its slot too
        raise
    if not p.streams:
        p.free()  # the work is done: the next request may start


def _review(pipe: Pipeline, p: Passage) -> None:
    p.rule = p.hold(pipe)


STAGES: tuple[Stage, ...] = (
    Stage(1, "check", _check),
    Stage(2, "input", _input),
    Stage(3, "admit", _admit),
    Stage(4, "generate", _generate),
    Stage(5, "output", lambda pipe, p: p.output(pipe)),
    Stage(6, "provenance", lambda pipe, p: p.provenance(pipe)),
    Stage(7, "review", _review),
    Stage(8, "record", lambda pipe, p: pipe.record(p)),
)
P = TypeVar("P", bound=Passage)


@dataclass(eq=False, kw_only=True)
class GenerationPassage(Passage):
    """Text, images, audio, video: one or more requests to one model, one review decision."""

    requests: list[GenerationRequest]
    modalities: tuple[str, ...] = TEXT
    size: str | None = None
    shape: Callable[[str], str] | None = None
    progress: Callable[[float, float], None] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # the generator's own (``iterations``)
    made: list[tuple[str | None, Artifact]] = field(default_factory=list, init=False)

    def check(self, pipe: Pipeline) -> Generator:
        generator = pipe.check(self.requests[0].model, self.modalities, size=self.size)
        pipe.check_budget(self.requests)
        return generator

    def input(self, pipe: Pipeline) -> None:
        self.requests = [self.gate.input_request(r) for r in self.requests]

    def generate(self, pipe: Pipeline) -> None:
        steps = self.progress if reports_progress(self.generator.generate) else None  # its own steps
        budget = pipe.budget(self.generator, self.cancel, steps)
        for request in self.requests:
            for a in produce(self.generator, request, budget, self.options, self.progress):
                if self.shape is not None and isinstance(a, TextArtifact):
                    a = dataclasses.replace(a, text=self.shape(a.text))
                self.made.append((request.prompt, a))

    def output(self, pipe: Pipeline) -> None:
        artifacts = [self.gate.release(a, prompt) for prompt, a in self.made]  # 5., and 6.'s hash
        self.released = Released(artifacts, [], self.gate.flags)

    def provenance(self, pipe: Pipeline) -> None:
        self.outputs = [pipe._record_fields(a) for a in self.released.artifacts]
        for a in self.released.artifacts:
            pipe.observer.tokens(
                self.generator.card.name, getattr(a, "prompt_tokens", 0), getattr(a, "completion_tokens", 0)
            )

    def recorded_request(self) -> dict[str, Any]:
        return self.raw or self.requests[0].to_dict()


@dataclass(eq=False, kw_only=True)
class EmbeddingPassage(Passage):
    """Texts to vectors: the count cap before the slot; the input policy on every text once
    admitted (the scans are the expense the queue bounds), under the deadline; the record keeps
    counts and the texts' hash, not the vectors."""

    model: str
    texts: list[str]
    dimensions: int | None = None
    vectors: Any = field(default=None, init=False)
    tokens: int = field(default=0, init=False)

    def check(self, pipe: Pipeline) -> Generator:
        return pipe.check(self.model, ("embedding",))

    def caps(self, pipe: Pipeline) -> None:
        pipe.caps.count("inputs", len(self.texts), pipe.caps.inputs, "input")

    def generate(self, pipe: Pipeline) -> None:
        budget = pipe.budget(self.generator, self.cancel)
        checked = []
        for i, text in enumerate(self.texts):  # stage 2's policy, text by text under the deadline
            budget.check(i, len(self.texts))
            checked.append(self.gate.input_text(text, f"input[{i}]") if text.strip() else text)
        self.texts = checked
        embedder = cast(Embedder, self.generator)  # stage 1 checked: it makes embeddings
        self.vectors = embedder.embed(self.texts, dimensions=self.dimensions, progress=budget.check)
        self.tokens = embedder.count_tokens(self.texts)

    def provenance(self, pipe: Pipeline) -> None:
        digest = sha256_bytes(json.dumps(self.texts, ensure_ascii=False).encode("utf-8"))
        self.outputs = [
            {
                "output_text": f"{len(self.texts)} embedding(s) of {self.vectors.shape[1]} dimensions",
                "artifact_sha256": digest,
                "prompt_tokens": self.tokens,
                "completion_tokens": 0,
            }
        ]

    def recorded_request(self) -> dict[str, Any]:
        return self.raw or {"model": self.model, "inputs": len(self.texts)}


@dataclass(eq=False, kw_only=True)
class TranscriptionPassage(Passage):
    """Speech to text: the audio is not text (its transcript is scanned on the way out, every
    segment too); decoded only once admitted (the caller checked the header's duration cap)."""

    model: str
    audio: Any  # samples, or a callable that decodes them
    options: dict[str, Any] = field(default_factory=dict)
    transcript: Any = field(default=None, init=False)

    def check(self, pipe: Pipeline) -> Generator:
        return pipe.check(self.model, ("transcription",))

    def generate(self, pipe: Pipeline) -> None:
        budget = pipe.budget(self.generator, self.cancel, self.options.pop("progress", None))
        samples = self.audio() if callable(self.audio) else self.audio
        budget.check()
        transcriber = cast(Transcriber, self.generator)  # stage 1 checked: it transcribes
        self.transcript = transcriber.transcribe(samples, progress=budget.check, **self.options)

    def output(self, pipe: Pipeline) -> None:
        self.transcript.text, blocked = self.gate.output_text(self.transcript.text)
        for segment in self.transcript.segments:
            segment["text"] = "" if blocked else self.gate.output_text(segment["text"])[0]

    def provenance(self, pipe: Pipeline) -> None:
        duration = round(self.transcript.duration, 3)
        artifact = TextArtifact.create(
            self.transcript.text,
            model=self.generator.card.name,
            family=self.generator.card.family,
            modality="text",
            seed=None,
            parameters={"task": self.options.get("task", "transcribe"), "duration": duration},
        )
        self.released = Released([artifact], [], self.gate.flags)
        self.outputs = [pipe._record_fields(artifact)]

    def recorded_request(self) -> dict[str, Any]:
        return self.raw or {"model": self.model}


@dataclass(eq=False, kw_only=True)
class StreamPassage(Passage):
    """A stream: since a piece sent cannot be taken back, stage 7 is decided with stage 2, before
    the first piece (``Pipeline.refuse_unreviewed_stream``), and never holds at the end."""

    request: GenerationRequest
    streams: ClassVar[bool] = True
    modalities: ClassVar[tuple[str, ...]] = TEXT
    source: Iterator[Any] = field(init=False)  # the generator's iterator
    ended: bool = field(default=False, init=False)  # read to its end (else: cancelled)

    def check(self, pipe: Pipeline) -> Generator:
        return pipe.check(self.request.model, self.modalities)

    def input(self, pipe: Pipeline) -> None:
        self.request = self.gate.input_request(self.request)
        pipe.refuse_unreviewed_stream(self.endpoint, self.gate)  # 7., decided now

    def hold(self, pipe: Pipeline) -> str | None:
        return None  # decided before the first piece


@dataclass(eq=False, kw_only=True)
class TextStreamPassage(StreamPassage):
    """A text stream: its output policy runs as the text grows (``Stream``); recorded per choice."""

    texts: dict[int, list[str]] = field(default_factory=dict, init=False)
    usage: dict[int, tuple[int, int]] = field(default_factory=dict, init=False)
    done: set[int] = field(default_factory=set, init=False)

    def check(self, pipe: Pipeline) -> Generator:
        generator = super().check(pipe)
        pipe.check_budget([self.request])
        return generator

    def generate(self, pipe: Pipeline) -> None:
        self.source = self.generator.stream(self.request)  # validates before the first chunk

    def provenance(self, pipe: Pipeline) -> None:
        self.outputs = []
        for index in range(self.request.n):
            text = "".join(self.texts.get(index, []))
            prompt_tokens, completion_tokens = self.usage.get(index, (0, 0))
            pipe.observer.tokens(self.generator.card.name, prompt_tokens, completion_tokens)
            self.outputs.append(
                {
                    "output_text": text,
                    "artifact_sha256": sha256_bytes(text.encode("utf-8")),
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "status": "ok" if index in self.done else "cancelled",
                }
            )

    def recorded_request(self) -> dict[str, Any]:
        return self.raw or self.request.to_dict()


@dataclass(eq=False, kw_only=True)
class AudioStreamPassage(StreamPassage):
    """A voice's float32 chunks as synthesised; the clip sent so far is released (its provenance
    and mark), stored and recorded at the end, under ``record_id``, known before the first chunk."""

    modalities: ClassVar[tuple[str, ...]] = ("audio",)
    record_id: str = field(default_factory=lambda: f"gen-{uuid.uuid4().hex}", init=False)
    sent: list[Any] = field(default_factory=list, init=False)
    marked: bool = field(default=False, init=False)
    clip: Artifact | None = field(default=None, init=False)

    def check(self, pipe: Pipeline) -> Generator:
        generator = super().check(pipe)
        if not isinstance(generator, Voice):
            raise InvalidRequestError(
                f"{generator.card.name} makes its clip whole and cannot stream; leave out stream_format",
                param="stream_format",
            )
        return generator

    def generate(self, pipe: Pipeline) -> None:
        self.source = cast(Voice, self.generator).stream_audio(self.request)  # checked: a voice

    def output(self, pipe: Pipeline) -> None:
        if self.sent:
            import numpy as np

            voice = cast(Voice, self.generator)
            made = voice.clip(self.request, np.concatenate(self.sent), self.marked)
            self.clip = self.gate.release(made, self.request.prompt)

    def provenance(self, pipe: Pipeline) -> None:
        if self.clip is not None:
            status = "ok" if self.ended else "cancelled"
            self.outputs = [{"id": self.record_id, "status": status, **pipe._record_fields(self.clip)}]


class Opened:
    """An admitted stream (stages 1-4 passed). Read it in one thread; reading it to its end, or
    closing it, frees the queue slot and runs the stages after the work (``Pipeline.close``)."""

    def __init__(self, pipeline: Pipeline, passage: StreamPassage) -> None:
        self.pipeline, self.passage = pipeline, passage
        # a stream nobody reads (the client left before the response started) still frees its slot
        weakref.finalize(self, passage.free)

    @property
    def request(self) -> GenerationRequest:
        return self.passage.request

    def __iter__(self) -> Iterator[Any]:
        p = self.passage
        p.started = time.perf_counter()
        budget = self.pipeline.budget(p.generator)
        try:
            for piece in self.pieces():  # 4., under the deadline
                budget.check()
                yield self.keep(piece)
            p.ended = True
        finally:
            close = getattr(p.source, "close", None)
            if close is not None:
                close()  # ends the engine's loop at the next piece
            self.pipeline.close(p)  # 5.-8.

    def pieces(self) -> Iterator[Any]:
        return iter(self.passage.source)

    def keep(self, piece: Any) -> Any:
        """What is sent of one piece, noted on the passage for the stages at the end."""
        return piece


class AudioStream(Opened):
    """An admitted stream of float32 audio chunks (``rate`` Hz, mono)."""

    passage: AudioStreamPassage

    @property
    def rate(self) -> int:
        return cast(Voice, self.passage.generator).sample_rate

    @property
    def record_id(self) -> str:
        return self.passage.record_id

    @property
    def seed(self) -> int:
        return self.passage.request.choice_seeds()[0]

    def keep(self, piece: tuple[Any, bool]) -> Any:
        chunk, marked = piece
        self.passage.sent.append(chunk)
        self.passage.marked = self.passage.marked or marked
        return chunk


class Stream(Opened):
    """An admitted, guarded stream of ``TextChunk``s, recorded choice by choice."""

    passage: TextStreamPassage

    def __init__(self, pipeline: Pipeline, passage: TextStreamPassage) -> None:
        super().__init__(pipeline, passage)
        self.first = True

    def keep(self, chunk: TextChunk) -> TextChunk:
        p = self.passage
        if self.first and chunk.text:
            self.first = False
            self.pipeline.observer.first_token(p.generator.card.name, time.perf_counter() - p.started)
        p.texts.setdefault(chunk.index, []).append(chunk.text)
        if chunk.finish_reason is not None:
            p.done.add(chunk.index)
            p.usage[chunk.index] = (chunk.prompt_tokens, chunk.completion_tokens)
        return chunk

    def pieces(self) -> Iterator[TextChunk]:
        """Stage 5 as the text grows: each choice's text through a ``StreamGuard``."""
        gate, guards = self.passage.gate, dict[int, StreamGuard]()
        ledgers: dict[int, StreamLogprobs] = {}  # the tokens' logprobs follow the text they carry
        asked = self.passage.request.params.logprobs is not None
        for chunk in self.passage.source:
            g = guards.setdefault(chunk.index, StreamGuard(gate.guard, self.passage.request.prompt or ""))
            ledger = ledgers.setdefault(chunk.index, StreamLogprobs(g))
            ledger.add(chunk.logprobs)
            if chunk.finish_reason is None:
                text, entries = ledger.piece(g.push(chunk.text)) if asked else (g.push(chunk.text), None)
                if text:
                    yield dataclasses.replace(chunk, text=text, logprobs=entries)
                if not g.blocked:
                    continue
            tail, rest = ledger.piece(g.finish() if not g.blocked else "", last=True)
            if tail or rest:
                yield TextChunk(text=tail, index=chunk.index, logprobs=rest if asked else None)
            if g.last is not None:
                gate.flags.add(g.last, "output")
            if g.blocked:
                self.pipeline.observer.rejected("guardrail_output")
                yield dataclasses.replace(chunk, text="", finish_reason="content_filter", logprobs=None)
                return
            yield dataclasses.replace(chunk, logprobs=None)


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
