"""Appeals: when the input policy says no, the user can ask a person instead of taking the 400.

A request sent with ``"appeal": true`` that the input policy blocks goes to the review queue (the
client gets 202 and a review id, as for a held generation) with the text the guard read, what it
found, and the category it blocked. The reviewer approves (the guard was wrong: reason
``false_positive``) or rejects (it was right: the hazard's code, ``prompt_injection`` ...). Either
verdict is a labelled example for the guard's next training run: :func:`reviewed_examples` reads
them back from the queue's own tables as ``(text, label)`` rows in the labels of
``evalsets/semantic.jsonl`` (``benign``, ``injection``, ``S1`` ... ``S14``).

A block for a secret is not sent to review: the key would be stored for a person to read, and
there is nothing to decide (remove the key and send again).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from genlab.safety.guardrails import HAZARDS
from genlab.safety.review import ReviewPolicy, ReviewQueue
from genlab.storage.models import ReviewDecision, ReviewItem

RULE = "appeal"  # the review rule of every appeal ("appeal: blocked as prompt_injection")
NOT_APPEALABLE = ("secret",)


def appealable(category: str) -> bool:
    return category not in NOT_APPEALABLE


def submit(
    queue: ReviewQueue,
    *,
    text: str,
    category: str,
    findings: list[dict[str, Any]],
    message: str,
    endpoint: str,
    model: str,
    request: dict[str, Any],
    policy: ReviewPolicy,
    key_id: int | None = None,
    webhook: str | None = None,
    actor: str = "system",
) -> dict[str, Any]:
    """Put a blocked request in the review queue; the item, as ``ReviewQueue.submit`` returns it."""
    return queue.submit(
        endpoint=endpoint,
        model=model,
        modality="text",
        request=request,
        artifact={"text": text, "appeal": {"category": category, "message": message}},
        findings=findings,
        rule=f"{RULE}: blocked as {category}",
        policy=policy,
        key_id=key_id,
        webhook=webhook,
        actor=actor,
    )


def label_of(verdict: str, reason_code: str, blocked_as: str) -> str | None:
    """The training label a reviewer's verdict gives the appealed text, or None (no label: an
    escalation, an expiry, a rejection for a reason that is no guard class)."""
    if verdict == "approved":
        return "benign"
    if verdict != "rejected":
        return None
    for code in (reason_code, blocked_as):
        if code in HAZARDS:
            return code
        if code in ("prompt_injection", "injection"):
            return "injection"
    return None


def reviewed_examples(store) -> list[tuple[str, str]]:
    """The home's reviewed appeals as ``(text, label)`` rows, oldest decision first: what
    ``genlab guard train`` adds to the shipped set (each text once: its latest verdict)."""
    with store.session() as s:
        rows = s.execute(
            select(ReviewItem.artifact, ReviewDecision.verdict, ReviewDecision.reason_code)
            .join(ReviewDecision, ReviewDecision.item_id == ReviewItem.id)
            .where(ReviewItem.rule.startswith(f"{RULE}:"))
            .order_by(ReviewDecision.id)
        ).all()
    labelled: dict[str, str] = {}
    for artifact, verdict, reason in rows:
        text = (artifact or {}).get("text") or ""
        label = label_of(verdict, reason, ((artifact or {}).get("appeal") or {}).get("category", ""))
        if text.strip() and label is not None:
            labelled.pop(text, None)  # a later verdict on the same text replaces the earlier one
            labelled[text] = label
    return list(labelled.items())
