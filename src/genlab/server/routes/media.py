"""OpenAI's media routes over genlab's GAN, VAE and diffusion models, and the stored generations.

POST /v1/images/generations                  the prompt names a class ("7", "letter A")
POST /v1/audio/speech                        a voice speaks ``input`` (or a family model says its class);
                                             ``stream_format`` sends it as it is synthesised
POST /v1/audio/transcriptions                an uploaded audio file as text (json, text, srt, vtt, verbose_json)
POST /v1/audio/translations                  the same into English (a model that can translate)
GET  /v1/genlab/generations/{id}             a generation record (403 while held, or once not released)
GET  /v1/genlab/generations/{id}/content     its stored image or audio
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from genlab.codecs.audio import ENCODINGS, audio_info, encode_audio, read_audio, wav_stream_header
from genlab.core import GenerationRequest, InvalidRequestError
from genlab.core.generator import ImageMaker, Voice
from genlab.generators.image import family_request
from genlab.generators.transcriber import FORMATS, SAMPLE_RATE
from genlab.pipeline import Released
from genlab.server.deps import CallerDep, KeyDep, StateDep, owns
from genlab.server.errors import APIError
from genlab.server.responses import cancellable, chunks, held, sse
from genlab.server.schemas import ImageRequest, SpeechRequest
from genlab.server.state import State

router = APIRouter(prefix="/v1", tags=["media"])
MEDIA_TYPES = {".png": "image/png", ".wav": "audio/wav"}
UNRELEASED = ("rejected", "expired", "replaced")  # records a review decision keeps back


def options(body) -> dict[str, Any]:
    """The sampling options a media request carries, typed and declared (``FamilySpec.sampling``):
    the model's own request builder keeps the ones it takes."""
    typed = ("steps", "sampler", "guidance", "size", "negative_prompt", "scheduler")
    return {**(body.model_extra or {}), **{k: getattr(body, k, None) for k in typed}}


def images_response(body: ImageRequest, released: Released, inline: bool) -> dict[str, Any]:
    data = []
    for a, record_id in zip(released.artifacts, released.record_ids, strict=True):
        item: dict[str, Any] = {"revised_prompt": a.label, "genlab_id": record_id, "seed": a.provenance.seed}
        if body.response_format == "b64_json" or inline:  # a held image is released inline, never by URL
            item["b64_json"] = base64.b64encode(a.to_bytes()).decode("ascii")
        else:
            item["url"] = f"/v1/genlab/generations/{record_id}/content"
        data.append(item)
    return {"created": int(time.time()), "data": data}


@router.post("/images/generations")
async def images(http: Request, body: ImageRequest, state: StateDep, who: CallerDep) -> Any:
    """Drawn under the request's deadline, and stopped at the next step when the client leaves."""
    generator = await run_in_threadpool(state.pipeline.check, body.model, ("image",))
    if not isinstance(generator, ImageMaker):
        raise InvalidRequestError(f"{body.model} makes images but builds no image request", param="model")
    state.pipeline.caps.pixels(body.n, *generator.size(body.size))
    request = generator.image_request(
        body.prompt, model=body.model, n=body.n, seed=body.seed, options=options(body)
    )
    released = await cancellable(
        http,
        state.pipeline.generate,
        request,
        endpoint="images",
        modalities=("image",),
        caller=who,
        raw=body.model_dump(exclude_none=True),
        size=body.size,
        respond=lambda r: images_response(body, r, True),
    )
    return held(released.review) if released.held else images_response(body, released, False)


@router.post("/audio/speech")
async def speech(http: Request, body: SpeechRequest, state: StateDep, who: CallerDep) -> Any:
    """The audio itself, in ``response_format`` (provenance in WAV, FLAC and Opus metadata, the
    watermark in the samples); headers carry the generation id and seed. With ``stream_format`` a
    voice's audio is sent as it is synthesised (see ``speech_stream``)."""
    generator = await run_in_threadpool(state.pipeline.check, body.model, ("audio",))
    voice = isinstance(generator, Voice)  # speaks free text, at a speed
    seed = body.seed
    if seed is None and body.voice and not voice:  # a named voice is a fixed seed for a family model
        seed = zlib.crc32(body.voice.encode("utf-8"))
    if not voice and body.speed not in (None, 1.0):
        raise InvalidRequestError(f"{body.model} speaks at its own pace; speed must be 1", param="speed")
    request = family_request(body.model, body.input, seed=seed, options=options(body))
    if voice:
        request = request.with_params(extra={"speed": body.speed or 1.0})
    if body.stream_format is not None:
        return await speech_stream(http, body, request, state, who)

    def encoded(a) -> bytes:
        if body.response_format == "wav":
            return a.to_bytes()
        comment = json.dumps(a.provenance.to_dict(), sort_keys=True)
        return encode_audio(a.samples, a.sample_rate, body.response_format, comment=comment)

    def held_response(r: Released) -> dict[str, Any]:
        a = r.artifacts[0]
        return {
            f"b64_{body.response_format}": base64.b64encode(encoded(a)).decode("ascii"),
            "genlab_id": r.record_ids[0],
            "seed": a.provenance.seed,
            "class": a.label,
        }

    released = await cancellable(
        http,
        state.pipeline.generate,
        request,
        endpoint="audio",
        modalities=("audio",),
        caller=who,
        raw=body.model_dump(exclude_none=True),
        respond=held_response,
        **({} if voice else {"iterations": body.iterations}),
    )
    if released.held:
        return held(released.review)
    a = released.artifacts[0]
    headers = {
        "x-genlab-id": released.record_ids[0],
        "x-genlab-seed": str(a.provenance.seed),
        "x-genlab-class": (a.label or "") if not voice else "",
        "x-genlab-sample-rate": str(a.sample_rate),
    }
    content = await run_in_threadpool(encoded, a)
    return Response(content, media_type=ENCODINGS[body.response_format][2], headers=headers)


async def speech_stream(
    http: Request, body: SpeechRequest, request: GenerationRequest, state: State, who
) -> StreamingResponse:
    """A voice's audio as each sentence is synthesised: ``stream_format: "audio"`` sends raw 16-bit
    PCM (``pcm``) or a WAV whose header leaves the length open (``wav``); ``"sse"`` sends OpenAI's
    ``speech.audio.delta`` events (base64 chunks) and ``speech.audio.done``. Every chunk carries the
    watermark's stretch at its offset; the joined clip is stored and recorded under ``x-genlab-id``
    when the stream ends. Only pcm and wav can be cut into chunks that play as they come."""
    if body.response_format not in ("pcm", "wav"):
        raise InvalidRequestError(
            f"a streamed speech response is pcm or wav, not {body.response_format}; "
            "set response_format, or leave out stream_format for the whole file",
            param="response_format",
        )
    stream = await run_in_threadpool(
        lambda: state.pipeline.stream_audio(
            request, endpoint="audio", caller=who, raw=body.model_dump(exclude_none=True)
        )
    )
    headers = {
        "x-genlab-id": stream.record_id,
        "x-genlab-seed": str(stream.seed),
        "x-genlab-sample-rate": str(stream.rate),
        "Cache-Control": "no-cache",
    }
    pcm = partial(encode_audio, sample_rate=stream.rate, fmt="pcm")
    if body.stream_format == "sse":
        response = sse(speech_events(http, stream, pcm))
        response.headers.update(headers)
        return response

    async def audio() -> AsyncIterator[bytes]:
        if body.response_format == "wav":
            yield wav_stream_header(stream.rate)
        async for chunk in chunks(http, stream):
            yield pcm(chunk)

    return StreamingResponse(audio(), media_type=ENCODINGS[body.response_format][2], headers=headers)


async def speech_events(http: Request, stream, pcm) -> AsyncIterator[dict[str, Any]]:
    seconds = 0.0
    async for chunk in chunks(http, stream):
        seconds += len(chunk) / stream.rate
        yield {"type": "speech.audio.delta", "audio": base64.b64encode(pcm(chunk)).decode("ascii")}
    yield {
        "type": "speech.audio.done",
        "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0},
        "genlab": {"id": stream.record_id, "seconds": round(seconds, 3), "sample_rate": stream.rate},
    }


async def transcribe_upload(
    http: Request, state: State, who, file: UploadFile, model: str, task: str, form: dict
) -> Any:
    """An uploaded audio file through the pipeline's transcription face, in OpenAI's formats: its
    duration is read from the header and capped before anything is decoded; it is decoded once
    admitted to the model's queue, and transcribed under the deadline until the client leaves."""
    fmt = form.get("response_format") or "json"
    if fmt not in FORMATS:
        raise InvalidRequestError(
            f"response_format must be one of {', '.join(FORMATS)}, got {fmt!r}", param="response_format"
        )
    data = await file.read()
    caps = state.pipeline.caps
    info = await run_in_threadpool(audio_info, data)
    caps.audio(info.seconds, info.frames * info.channels)
    transcript, released = await cancellable(
        http,
        lambda cancel: state.pipeline.transcribe(
            model,
            partial(read_audio, data, SAMPLE_RATE, max_seconds=caps.audio_seconds),
            endpoint=f"audio.{task}s",
            cancel=cancel,
            caller=who,
            raw={"model": model, "file": file.filename, "bytes": len(data), **form},
            language=form.get("language") or None,
            prompt=form.get("prompt") or None,
            temperature=float(form.get("temperature") or 0.0),
            task=task,
        ),
    )
    if released.held:
        return held(released.review)
    rendered = transcript.render(fmt)
    if isinstance(rendered, dict):
        return {**rendered, "genlab": {"generation_ids": released.record_ids}}
    return PlainTextResponse(rendered, media_type="text/vtt" if fmt == "vtt" else "text/plain")


@router.post("/audio/transcriptions")
async def transcriptions(
    http: Request,
    state: StateDep,
    who: CallerDep,
    file: UploadFile = File(...),
    model: str = Form(..., max_length=100),
    language: str | None = Form(None, max_length=10),
    prompt: str | None = Form(None, max_length=2000),
    response_format: str = Form("json"),
    temperature: float = Form(0.0, ge=0.0, le=1.0),
) -> Any:
    form = {
        "language": language,
        "prompt": prompt,
        "response_format": response_format,
        "temperature": temperature,
    }
    return await transcribe_upload(
        http, state, who, file, model, "transcribe", {k: v for k, v in form.items() if v is not None}
    )


@router.post("/audio/translations")
async def translations(
    http: Request,
    state: StateDep,
    who: CallerDep,
    file: UploadFile = File(...),
    model: str = Form(..., max_length=100),
    prompt: str | None = Form(None, max_length=2000),
    response_format: str = Form("json"),
    temperature: float = Form(0.0, ge=0.0, le=1.0),
) -> Any:
    form = {"prompt": prompt, "response_format": response_format, "temperature": temperature}
    return await transcribe_upload(
        http, state, who, file, model, "translate", {k: v for k, v in form.items() if v is not None}
    )


async def released_record(state: State, record_id: str, key) -> dict[str, Any]:
    """A generation record: 404 if unknown or another user's, 403 while it is held for review (and
    for good once rejected, expired, or replaced by a reviewer's edit)."""
    record = await run_in_threadpool(state.store.get_generation, record_id)
    if record is None or not owns(state, key, record["key_id"]):
        raise APIError(404, f"no generation {record_id!r}", type_="not_found_error", code="not_found")
    if record["status"] == "held":
        raise APIError(
            403,
            f"{record_id} is held for human review; GET /v1/reviews/{{id}} releases it once approved",
            type_="permission_error",
            code="held_for_review",
        )
    if record["status"] in UNRELEASED:
        raise APIError(
            403,
            f"{record_id} was not released: a reviewer's decision left it {record['status']}",
            type_="permission_error",
            code="not_released",
        )
    return record


@router.get("/genlab/generations/{record_id}")
async def get_generation(record_id: str, state: StateDep, key: KeyDep) -> dict[str, Any]:
    return await released_record(state, record_id, key)


@router.get("/genlab/generations/{record_id}/content")
async def generation_content(record_id: str, state: StateDep, key: KeyDep) -> Response:
    record = await released_record(state, record_id, key)
    if not record.get("artifact_path"):
        raise APIError(
            404, f"no stored artifact for {record_id!r}", type_="not_found_error", code="not_found"
        )
    path = Path(record["artifact_path"])
    if not path.is_file():
        raise APIError(
            410, f"the artifact of {record_id!r} is no longer on disk", type_="not_found_error", code="gone"
        )
    return Response(
        path.read_bytes(), media_type=MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
    )
