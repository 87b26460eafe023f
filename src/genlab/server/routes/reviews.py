"""Human review over HTTP: the reviewer API, what a requester sees of a held item, webhooks.

    GET  /v1/reviews                    the queue (reviewer role)
    GET  /v1/reviews/{id}               a requester sees the status and, once released, the response
    GET  /v1/reviews/{id}/content       a held image or audio, ``?output=i`` of several (reviewer role)
    POST /v1/reviews/{id}/claim | release | decision
    GET  /v1/genlab/audit/verify        the audit log's hash chain

A generation held by the pipeline (202 + review id) is released by ``GET /v1/reviews/{id}`` once a
reviewer approves it (or as edited); an item past its due time expires and is never released.
The item holds every output of the request (``artifact.outputs``); an edit names the one it replaces
(``output``). Only the item's owner (the key that asked; ``local`` without a key) and reviewers
read it, and a reviewer cannot decide their own request (403 ``self_review``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from genlab.safety.review import FINAL, REASON_CODES, STATES, outputs_of, owner_of
from genlab.server import webhooks
from genlab.server.deps import KeyDep, ReviewerDep, StateDep, is_reviewer
from genlab.server.errors import APIError

router = APIRouter(tags=["reviews"])
MEDIA = {".png": "image/png", ".wav": "audio/wav"}


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Literal["approve", "reject", "edit", "escalate"]
    reason_code: str = Field(min_length=1, max_length=60)
    comment: str = Field(default="", max_length=10_000)
    edited: dict[str, Any] | None = None
    output: int = Field(default=0, ge=0, le=1000, description="Which output an edit replaces.")
    seconds_spent: float = Field(default=0.0, ge=0.0, le=86_400.0)
    version: int | None = None


class VersionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = None


def released_response(item: dict[str, Any]) -> dict[str, Any] | None:
    """The response a client gets once its held generation is approved (or edited)."""
    if item["state"] not in ("approved", "edited") or item["released"] is None:
        return None
    artifact = item["artifact"]
    response = artifact.get("response")
    if item["state"] == "approved" or response is None:
        return response
    edit = item["released"]
    index = int(edit.get("output", 0))
    response = dict(response)
    if index >= len(response.get("choices") or response.get("data") or [None]):
        return response  # the decision checked the index against the item's outputs
    if "text" in edit and "choices" in response:  # an edited text replaces the choice it names
        choices = [dict(c) for c in response["choices"]]
        if "message" in choices[index]:
            choices[index]["message"] = {**choices[index]["message"], "content": edit["text"]}
        else:
            choices[index]["text"] = edit["text"]
        response["choices"] = choices
    elif (
        "text" in edit and response.get("object") == "app.result"
    ):  # a recipe's result, as the reviewer wrote it
        response = {**response, "text": edit["text"], "edited_by_reviewer": True}
    elif "b64_png" in edit and "data" in response:  # the image it names, inline
        data = [dict(d) for d in response["data"]]
        data[index] = {**data[index], "b64_json": edit["b64_png"], "url": None}
        response["data"] = data
    elif "b64_wav" in edit:
        response = {**response, "b64_wav": edit["b64_wav"]}
    return response


def public_view(item: dict[str, Any]) -> dict[str, Any]:
    """What the requester sees: the status and, once released, the response."""
    decision = (item.get("decisions") or [None])[-1]
    out = {
        "id": item["id"],
        "object": "review",
        "status": item["state"],
        "created_at": item["created_at"],
        "updated_at": item["updated_at"],
        "due_at": item["due_at"],
        "rule": item["rule"],
    }
    if item["state"] in FINAL and decision is not None:
        out["reason_code"] = decision["reason_code"]
        out["comment"] = decision["comment"]
    response = released_response(item)
    if response is not None:
        out["response"] = response
    return out


@router.get("/v1/reviews")
async def list_reviews(
    state: StateDep, _: ReviewerDep, wanted: str | None = Query(None, alias="state"), limit: int = 100
):
    wanted = wanted or "pending"
    if wanted != "all" and wanted not in STATES:
        raise APIError(
            400,
            f"unknown state {wanted!r}; expected all or one of {', '.join(STATES)}",
            type_="invalid_request_error",
            code="invalid_state",
        )
    queue = state.reviews
    items = await run_in_threadpool(queue.list, None if wanted == "all" else wanted, limit)
    counts = await run_in_threadpool(queue.counts)
    return {"object": "list", "data": items, "counts": counts, "reason_codes": REASON_CODES}


@router.get("/v1/reviews/{item_id}")
async def get_review(item_id: str, state: StateDep, key: KeyDep):
    item = await run_in_threadpool(state.reviews.get, item_id)
    if is_reviewer(state, key):
        return {**item, **public_view(item)}
    if key is None or item["owner"] != owner_of(key.id):  # another's item (or the local user's)
        raise APIError(404, f"no review item {item_id!r}", type_="not_found_error", code="not_found")
    return public_view(item)


@router.get("/v1/reviews/{item_id}/content")
async def review_content(
    item_id: str, state: StateDep, _: ReviewerDep, output: int = Query(0, ge=0)
) -> Response:
    """A held image or audio itself (``output``: which of the request's), for the reviewer's page."""
    item = await run_in_threadpool(state.reviews.get, item_id, decisions=False)
    outputs = outputs_of(item["artifact"])
    path = Path((outputs[output] if output < len(outputs) else {}).get("path") or "")
    if not path.is_file():
        raise APIError(404, f"{item_id} holds no file {output}", type_="not_found_error", code="not_found")
    return Response(path.read_bytes(), media_type=MEDIA.get(path.suffix.lower(), "application/octet-stream"))


@router.post("/v1/reviews/{item_id}/claim")
async def claim(
    item_id: str, state: StateDep, name: ReviewerDep, key: KeyDep, body: VersionBody | None = None
):
    version, identity = body.version if body else None, owner_of(key.id if key is not None else None)
    return await run_in_threadpool(state.reviews.claim, item_id, name, version=version, identity=identity)


@router.post("/v1/reviews/{item_id}/release")
async def release(item_id: str, state: StateDep, name: ReviewerDep, body: VersionBody | None = None):
    version = body.version if body else None
    return await run_in_threadpool(state.reviews.release_claim, item_id, name, version=version)


@router.post("/v1/reviews/{item_id}/decision")
async def decide(item_id: str, body: DecisionBody, state: StateDep, name: ReviewerDep, key: KeyDep):
    queue = state.reviews
    item = await run_in_threadpool(
        queue.decide,
        item_id,
        name,
        body.verdict,
        body.reason_code,
        comment=body.comment,
        edited=body.edited,
        output=body.output,
        seconds_spent=body.seconds_spent,
        version=body.version,
        identity=owner_of(key.id if key is not None else None),
    )
    if item["state"] in FINAL:
        full = await run_in_threadpool(queue.get, item_id)
        if full.get("webhook"):
            webhooks.notify(full["webhook"], public_view(full), state.config.webhook_allow)
    return item


@router.get("/v1/genlab/audit/verify")
async def audit_verify(state: StateDep, _: ReviewerDep):
    return (await run_in_threadpool(state.reviews.verify)).to_dict()


class TuneDataBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recipe: str = Field(description="The recipe whose decided items become training data.")
    min_decisions: int = Field(8, ge=1, le=100_000, description="Approved or edited outputs needed.")
    save: bool = Field(True, description="Write the datasets under GENLAB_HOME (else only count).")


@router.post("/v1/genlab/tune/data")
async def tune_data(body: TuneDataBody, state: StateDep, _: ReviewerDep):
    """A recipe's review decisions as SFT, DPO and KTO datasets (`genlab tune data`)."""
    from genlab.apps import tunable_recipe
    from genlab.tuning.data import prepare

    recipe = tunable_recipe(body.recipe).name
    rows = await run_in_threadpool(state.reviews.export)
    settings = state.reviews.store.settings
    return await run_in_threadpool(
        prepare, rows, recipe, settings, minimum=body.min_decisions, save=body.save
    )
