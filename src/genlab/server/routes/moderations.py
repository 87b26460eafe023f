"""``POST /v1/moderations``: the server's guardrail policy, in OpenAI's moderation format."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from fastapi import APIRouter, Request

from genlab.pipeline import Budget
from genlab.server.deps import KeyDep, StateDep
from genlab.server.responses import cancellable
from genlab.server.schemas import ModerationRequest
from genlab.server.state import State

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


def scan_all(state: State, inputs: list[str], *, cancel: threading.Event) -> list[dict[str, Any]]:
    """Each input through the policy's scanners, under the request's deadline and its client."""
    budget = Budget(state.pipeline.deadline_s, cancel, observer=state.pipeline.observer, model="moderation")
    results = []
    for i, text in enumerate(inputs):
        budget.check(i, len(inputs))
        results.append(moderation(state.guard.scan_all(text)))
    return results


@router.post("/moderations")
async def moderations(body: ModerationRequest, http: Request, state: StateDep, _: KeyDep) -> dict[str, Any]:
    inputs = [body.input] if isinstance(body.input, str) else body.input
    caps = state.pipeline.caps
    caps.count("inputs", len(inputs), caps.moderation_inputs, "input")  # before any scan
    results = await cancellable(http, scan_all, state, inputs)
    return {
        "id": f"modr-{uuid.uuid4().hex}",
        "model": f"genlab-guard/{state.guard.policy.name}",
        "results": results,
    }
