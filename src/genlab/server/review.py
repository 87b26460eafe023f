"""Human review over HTTP: held generations (202 + review id), the reviewer API and webhooks.

A generation route collects its guardrail findings in a ``Flags`` (safety.policy), then asks ``Holds.hold`` whether
the policy's ``review:`` section holds it. A held generation's response is kept in the review item
and released by ``GET /v1/reviews/{id}`` once a reviewer approves it (or as edited). Reviewer routes
need the reviewer or admin role (an open-access loopback server treats its local user as admin).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

import httpx
from fastapi import Depends, FastAPI, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from genlab.safety.policy import Flags
from genlab.safety.review import FINAL, REASON_CODES, STATES
from genlab.server import errors
from genlab.server.errors import APIError
from genlab.storage.db import KeyInfo

WEBHOOK_HEADER = "x-genlab-review-webhook"


def actor(key: KeyInfo | None) -> str:
    return "local" if key is None else f"{key.name}#{key.id}"


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Literal["approve", "reject", "edit", "escalate"]
    reason_code: str = Field(min_length=1, max_length=60)
    comment: str = Field(default="", max_length=10_000)
    edited: dict[str, Any] | None = None
    seconds_spent: float = Field(default=0.0, ge=0.0, le=86_400.0)
    version: int | None = None


class VersionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = None


class Holds:
    def __init__(self, state) -> None:
        self.state = state

    @property
    def queue(self):
        return self.state.store.reviews

    def rule(self, endpoint: str, flags: Flags) -> str | None:
        """Why this generation will be held, or None (decided before recording media generations)."""
        return self.state.guard.policy.review.hold(endpoint, flags.flagged_by)

    def will_hold_everything(self, endpoint: str) -> bool:
        policy = self.state.guard.policy.review
        return policy.endpoints.get(endpoint, policy.mode) == "always"

    def refuse_stream(self, endpoint: str) -> None:
        if self.will_hold_everything(endpoint):
            raise APIError(400, f"every {endpoint} generation is held for human review under policy "
                           f"{self.state.guard.policy.name!r}, so it cannot stream; send stream: false and poll "
                           "GET /v1/reviews/{id}", type_="invalid_request_error", code="review_required")  # fmt: skip

    async def hold(self, *, endpoint: str, model: str, modality: str, request: dict[str, Any], response: dict[str, Any],
                   artifact: dict[str, Any], flags: Flags, key: KeyInfo | None, http: Request,
                   record_ids: tuple[str, ...] | list[str] = (), rule: str | None = None) -> JSONResponse | None:  # fmt: skip
        """A 202 with the review id when the policy holds this generation; None to release it now.

        The generation records of a held response are marked ``held``: their content is not served
        until the review releases it.
        """
        policy = self.state.guard.policy.review
        rule = policy.hold(endpoint, flags.flagged_by) if rule is None else rule
        if rule is None:
            return None
        webhook = http.headers.get(WEBHOOK_HEADER)
        if webhook and not webhook.startswith(("http://", "https://")):
            raise APIError(400, f"{WEBHOOK_HEADER} must be an http(s) URL", type_="invalid_request_error",
                           code="invalid_webhook")  # fmt: skip
        item = await run_in_threadpool(
            self.queue.submit, endpoint=endpoint, model=model, modality=modality, request=request,
            artifact={**artifact, "response": response}, findings=flags.findings, rule=rule, policy=policy,
            key_id=key.id if key else None, webhook=webhook, actor=actor(key),
        )  # fmt: skip
        if record_ids:
            await run_in_threadpool(self.state.store.set_generation_status, list(record_ids), "held")
        self.state.metrics.rejected.labels("held_for_review").inc()
        body = held_body(item["id"], rule, item["due_at"])
        return JSONResponse(body, status_code=202, headers={"location": body["url"]})


def held_body(item_id: str, rule: str, due_at: str) -> dict[str, Any]:
    """What a client gets instead of a held generation: where to poll for its release."""
    return {"id": item_id, "object": "review", "status": "pending", "rule": rule, "url": f"/v1/reviews/{item_id}",
            "due_at": due_at}  # fmt: skip


def released_response(item: dict[str, Any]) -> dict[str, Any] | None:
    """The response a client gets once its held generation is approved (or edited)."""
    if item["state"] not in ("approved", "edited") or item["released"] is None:
        return None
    artifact = item["artifact"]
    response = artifact.get("response")
    if item["state"] == "approved" or response is None:
        return response
    edit = item["released"]
    response = dict(response)
    if "text" in edit and "choices" in response:  # an edited text replaces the first choice's text
        choices = [dict(c) for c in response["choices"]]
        if "message" in choices[0]:
            choices[0]["message"] = {**choices[0]["message"], "content": edit["text"]}
        else:
            choices[0]["text"] = edit["text"]
        response["choices"] = choices
    elif (
        "text" in edit and response.get("object") == "app.result"
    ):  # a recipe's result, as the reviewer wrote it
        response = {**response, "text": edit["text"], "edited_by_reviewer": True}
    elif "b64_png" in edit and "data" in response:
        response["data"] = [
            {**response["data"][0], "b64_json": edit["b64_png"], "url": None},
            *response["data"][1:],
        ]
    elif "b64_wav" in edit:
        response = {**response, "b64_wav": edit["b64_wav"]}
    return response


def public_view(item: dict[str, Any]) -> dict[str, Any]:
    """What the requester sees: the status and, once released, the response."""
    decision = (item.get("decisions") or [None])[-1]
    out = {"id": item["id"], "object": "review", "status": item["state"], "created_at": item["created_at"],
           "updated_at": item["updated_at"], "due_at": item["due_at"], "rule": item["rule"]}  # fmt: skip
    if item["state"] in FINAL and decision is not None:
        out["reason_code"] = decision["reason_code"]
        out["comment"] = decision["comment"]
    response = released_response(item)
    if response is not None:
        out["response"] = response
    return out


def notify(item: dict[str, Any]) -> None:
    """POST the outcome to the item's webhook (in the background; two retries; failures are logged)."""
    url = item.get("webhook")
    if not url:
        return

    def send() -> None:
        body = public_view(item)
        for _ in range(3):
            try:
                if httpx.post(url, json=body, timeout=10).status_code < 500:
                    return
            except httpx.HTTPError:
                continue  # unreachable: try again
        errors.log.warning("review webhook %s failed for %s", url, item["id"])

    threading.Thread(target=send, daemon=True).start()


def install(app: FastAPI, state, auth) -> None:
    queue = state.store.reviews

    def reviewer(key: KeyInfo | None) -> str:
        if key is None and state.config.open_access:
            return "local"
        if key is None or key.role not in ("reviewer", "admin"):
            raise APIError(403, "this needs the reviewer role: `genlab keys create --name NAME --role reviewer`",
                           type_="permission_error", code="reviewer_role_required")  # fmt: skip
        return actor(key)

    @app.get("/v1/reviews")
    async def list_reviews(
        state_: str | None = Query(None, alias="state"), limit: int = 100, key: KeyInfo | None = Depends(auth)
    ):
        reviewer(key)
        wanted = state_ or "pending"
        if wanted != "all" and wanted not in STATES:
            raise APIError(400, f"unknown state {wanted!r}; expected all or one of {', '.join(STATES)}",
                           type_="invalid_request_error", code="invalid_state")  # fmt: skip
        items = await run_in_threadpool(queue.list, None if wanted == "all" else wanted, limit)
        counts = await run_in_threadpool(queue.counts)
        return {"object": "list", "data": items, "counts": counts, "reason_codes": REASON_CODES}

    @app.get("/v1/reviews/{item_id}")
    async def get_review(item_id: str, key: KeyInfo | None = Depends(auth)):
        item = await run_in_threadpool(queue.get, item_id)
        is_reviewer = (key is None and state.config.open_access) or (
            key is not None and key.role in ("reviewer", "admin")
        )
        if is_reviewer:
            return {**item, **public_view(item)}
        if key is not None and item.get("key_id") not in (None, key.id):
            raise APIError(404, f"no review item {item_id!r}", type_="not_found_error", code="not_found")
        return public_view(item)

    @app.get("/v1/reviews/{item_id}/content")
    async def review_content(item_id: str, key: KeyInfo | None = Depends(auth)) -> Response:
        """The held image or audio itself, for the reviewer's page."""
        reviewer(key)
        item = await run_in_threadpool(queue.get, item_id, decisions=False)
        path = Path(item["artifact"].get("path") or "")
        if not path.is_file():
            raise APIError(404, f"{item_id} holds no file", type_="not_found_error", code="not_found")
        media = {".png": "image/png", ".wav": "audio/wav"}.get(
            path.suffix.lower(), "application/octet-stream"
        )
        return Response(path.read_bytes(), media_type=media)

    @app.post("/v1/reviews/{item_id}/claim")
    async def claim(item_id: str, body: VersionBody | None = None, key: KeyInfo | None = Depends(auth)):
        name = reviewer(key)
        return await run_in_threadpool(queue.claim, item_id, name, version=body.version if body else None)

    @app.post("/v1/reviews/{item_id}/release")
    async def release(item_id: str, body: VersionBody | None = None, key: KeyInfo | None = Depends(auth)):
        name = reviewer(key)
        return await run_in_threadpool(
            queue.release_claim, item_id, name, version=body.version if body else None
        )

    @app.post("/v1/reviews/{item_id}/decision")
    async def decide(item_id: str, body: DecisionBody, key: KeyInfo | None = Depends(auth)):
        name = reviewer(key)
        item = await run_in_threadpool(
            queue.decide, item_id, name, body.verdict, body.reason_code, comment=body.comment, edited=body.edited,
            seconds_spent=body.seconds_spent, version=body.version,
        )  # fmt: skip
        if item["state"] in FINAL:
            full = await run_in_threadpool(queue.get, item_id)
            notify(full)
        return item

    @app.get("/v1/genlab/audit/verify")
    async def audit_verify(key: KeyInfo | None = Depends(auth)):
        reviewer(key)
        return (await run_in_threadpool(queue.verify)).to_dict()
