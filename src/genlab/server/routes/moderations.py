"""``POST /v1/moderations``: the server's guardrail policy, in OpenAI's moderation format."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from genlab.server.deps import KeyDep, StateDep
from genlab.server.schemas import ModerationRequest

router = APIRouter(prefix="/v1", tags=["moderations"])
CATEGORIES = ("prompt_injection", "secret", "pii", "slur", "invisible_text", "banned_substring")
# Reported, but not what "flagged" means: personal data and invisible characters are handled (redacted,
# stripped) by the policy, not judged as harmful content; "My name is Ana and I had a stroke" is not flagged.
HANDLED = ("pii", "invisible_text")


def moderation(result) -> dict[str, Any]:
    scores: dict[str, float] = dict.fromkeys(CATEGORIES, 0.0)
    for f in result.findings:
        key = "pii" if f.scanner in ("pii", "pii_leakage") else f.category
        scores[key] = max(scores.get(key, 0.0), f.score)
    return {
        "flagged": result.decision != "allow" or any(v > 0 for k, v in scores.items() if k not in HANDLED),
        "categories": {k: v > 0 for k, v in scores.items()},
        "category_scores": scores,
        "genlab": {"decision": result.decision, "findings": [f.to_dict() for f in result.findings]},
    }


@router.post("/moderations")
async def moderations(body: ModerationRequest, state: StateDep, _: KeyDep) -> dict[str, Any]:
    inputs = [body.input] if isinstance(body.input, str) else body.input
    results = [moderation(await run_in_threadpool(state.guard.scan_all, text)) for text in inputs]
    return {
        "id": f"modr-{uuid.uuid4().hex}",
        "model": f"genlab-guard/{state.guard.policy.name}",
        "results": results,
    }
