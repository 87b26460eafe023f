"""OpenAI's Videos API over genlab's video models: jobs that run in the background.

POST   /v1/videos                   a job (queued at once): model, prompt, seconds, size, seed
GET    /v1/videos                   the caller's jobs, newest first (limit, after, order)
GET    /v1/videos/{id}              a job: status (queued, in_progress, completed, failed), progress
GET    /v1/videos/{id}/content      the MP4 (``variant=video``), or a PNG ``thumbnail`` (the first
                                    frame) or ``spritesheet`` (every frame); 403 while held for review
DELETE /v1/videos/{id}              a finished job (the generation record stays: it is the audit trail)

Another key's job is a 404, as if it did not exist. The work is ``server/video_jobs.py``'s.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from genlab.core import GenerationRequest, InvalidRequestError, load_artifact
from genlab.server.deps import CallerDep, KeyDep, StateDep, owns
from genlab.server.errors import APIError
from genlab.server.routes.media import released_record
from genlab.server.schemas import VideoRequest
from genlab.server.state import State
from genlab.server.video_jobs import UNFINISHED, VideoJob

router = APIRouter(prefix="/v1", tags=["videos"])


async def read_body(http: Request) -> VideoRequest:
    """The form the openai client sends, or JSON; checked by ``VideoRequest`` either way."""
    kind = http.headers.get("content-type", "")
    try:
        if kind.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            form = await http.form()
            fields: Any = {k: v for k, v in form.items() if isinstance(v, str)}
        else:
            fields = json.loads(await http.body() or b"{}")
        return VideoRequest.model_validate(fields)
    except ValidationError as e:
        raise RequestValidationError(e.errors()) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidRequestError("the body is neither JSON nor a form") from None


def plan(state: State, body: VideoRequest) -> tuple[dict[str, Any], GenerationRequest]:
    """Bad input answered now, before a job exists: the model, its size and length, the prompt."""
    generator = state.pipeline.check(body.model, ("video",), size=body.size)
    seconds = f"{generator.seconds:g}"
    if body.seconds is not None and body.seconds.strip() != seconds:
        raise InvalidRequestError(
            f"{body.model} makes clips of {seconds} s ({generator.frames} frames at {generator.fps:g} fps); "
            f"seconds {body.seconds!r} is not available",
            param="seconds",
        )
    generator.motion(body.prompt)  # an unknown digit or direction is a 400 here
    extra = {"steps": body.steps, "sampler": body.sampler, "guidance": body.guidance}
    request = generator.image_request(body.prompt, model=body.model, n=1, seed=body.seed, options=extra)
    generator.options(extra)  # a sampler option out of range: a 400 now, not a failed job
    side = generator.model.config.size
    return {"model": body.model, "prompt": body.prompt, "seconds": seconds, "size": f"{side}x{side}"}, request


@router.post("/videos")
async def create_video(http: Request, state: StateDep, who: CallerDep) -> dict[str, Any]:
    body = await read_body(http)
    fields, request = await run_in_threadpool(plan, state, body)
    job = state.video_jobs.submit(fields, request, who, body.model_dump(exclude_none=True))
    return job.to_openai()


def owned_job(state: State, video_id: str, key) -> VideoJob:
    job = state.video_jobs.get(video_id)
    if job is None or not owns(state, key, job.key_id):
        raise APIError(404, f"no video {video_id!r}", type_="invalid_request_error", code="not_found")
    return job


@router.get("/videos")
async def list_videos(
    state: StateDep,
    key: KeyDep,
    limit: int = 20,
    after: str | None = None,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    if not 1 <= limit <= 100:
        raise InvalidRequestError(f"limit must be from 1 to 100, got {limit}", param="limit")
    jobs = state.video_jobs.owned_by(lambda key_id: owns(state, key, key_id))
    jobs = jobs if order == "desc" else jobs[::-1]
    if after is not None:
        ids = [j.id for j in jobs]
        jobs = jobs[ids.index(after) + 1 :] if after in ids else []
    page = jobs[:limit]
    return {
        "object": "list",
        "data": [j.to_openai() for j in page],
        "first_id": page[0].id if page else None,
        "last_id": page[-1].id if page else None,
        "has_more": len(jobs) > limit,
    }


@router.get("/videos/{video_id}")
async def retrieve_video(video_id: str, state: StateDep, key: KeyDep) -> dict[str, Any]:
    return owned_job(state, video_id, key).to_openai()


@router.get("/videos/{video_id}/content")
async def video_content(
    video_id: str,
    state: StateDep,
    key: KeyDep,
    variant: Literal["video", "thumbnail", "spritesheet"] = "video",
) -> Response:
    job = owned_job(state, video_id, key)
    if job.status != "completed" or job.record_id is None:
        raise APIError(
            409 if job.status in UNFINISHED else 404,
            f"video {video_id} is {job.status}; its content exists once it is completed",
            type_="invalid_request_error",
            code="video_not_ready" if job.status in UNFINISHED else "video_failed",
        )
    record = await released_record(state, job.record_id, key)  # 403 while held for review
    path = Path(record.get("artifact_path") or "")
    if not path.is_file():
        raise APIError(
            410, f"the clip of {video_id} is no longer on disk", type_="not_found_error", code="gone"
        )
    if variant == "video":
        return Response(path.read_bytes(), media_type="video/mp4")
    return Response(await run_in_threadpool(picture, path, variant), media_type="image/png")


def picture(path: Path, variant: str) -> bytes:
    """The first frame (thumbnail), or every frame side by side (spritesheet), as PNG."""
    from PIL import Image

    from genlab.codecs.image import image_grid

    frames = load_artifact(path).frames
    frames = frames[..., 0] if frames.shape[3] == 1 else frames
    pixels = frames[0] if variant == "thumbnail" else image_grid(list(frames), columns=len(frames))
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@router.delete("/videos/{video_id}")
async def delete_video(video_id: str, state: StateDep, key: KeyDep) -> dict[str, Any]:
    job = owned_job(state, video_id, key)
    if job.status in UNFINISHED:
        raise APIError(
            409,
            f"video {video_id} is {job.status}; delete it once it has finished",
            type_="invalid_request_error",
        )
    state.video_jobs.delete(job)
    return {"id": job.id, "object": "video.deleted", "deleted": True}
