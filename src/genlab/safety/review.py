"""Human-in-the-loop review: a queue of held artifacts, reviewers' decisions, and a tamper-evident audit log.

A review policy (in a guardrail policy's ``review:`` section) decides which generations are held:
``always`` (every one, e.g. healthcare), ``flagged`` (when a guardrail's action is ``flag``),
``sample`` (a random share, for quality audits) or ``never``. A held generation is not released:
the client gets 202 and a review id, and ``GET /v1/reviews/{id}`` gives the artifact only once a
reviewer approved (or edited) it.

States and the only legal moves::

    pending --claim--> in_review --approve--> approved
       |                  |  \\--reject---> rejected
       |                  |  \\--edit-----> edited      (the edited artifact is what is released)
       |                  |  \\--escalate-> escalated --claim--> in_review (another reviewer)
       |                  \\--release--> pending
       \\--(past due)--> expired            (pending, in_review or escalated)

Concurrency: every change is ``UPDATE review_items SET ..., version = version + 1 WHERE id = ? AND
version = ? AND state = ?``: of two reviewers deciding one item exactly one update matches a row;
the other gets a conflict and nothing changes. The decision row and the audit event are written in
the same transaction as the state change, so a decision acknowledged to a client is durable and
accompanied by its audit event, or none of the three exists.

Every output of a request is held and shown (``artifact["outputs"]``: a chat with ``n=3`` holds
three texts, an image request with ``n=4`` four files); an approval releases them as they were
reviewed, an edit replaces the one output it names (``output``, default 0). A decision also settles
the requests' generation records in the same transaction: approved (or edited) records can be
fetched by their owner, rejected and expired ones never (see ``RECORD_STATUS``).

Owners: an item belongs to the key that asked (``key:<id>``) or, without a key (the CLI, an open
loopback server, the Python API), to the local user (``local``). Only its owner and reviewers read
it; a reviewer may not decide an item their own key asked for (``SelfReview``) unless
``GENLAB_SELF_REVIEW`` allows it (default off). The local user (the CLI, an open loopback server)
is the one person at the machine: they review what they asked for, as a one-person workbench must.

Audit log: append-only events (actor, action, from-state, to-state, sha256 of the payload) chained
by hash: hash_n = sha256(hash_{n-1} || canonical JSON of event n). A one-row head (last sequence
number and hash) is updated first in every append, which serialises appends (SQLite's write lock,
PostgreSQL's row lock) and pins the tail. ``verify_audit`` recomputes the chain and names the first
edited, deleted or reordered event.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from genlab.core import GenlabError, InvalidRequestError
from genlab.safety.guardrails import HAZARDS
from genlab.safety.keys import secret_key
from genlab.storage.models import AuditEvent, AuditHead, GenerationRecord, ReviewDecision, ReviewItem

STATES = ("pending", "in_review", "approved", "rejected", "edited", "escalated", "expired")
FINAL = ("approved", "rejected", "edited", "expired")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "pending": ("in_review", "expired"),
    "in_review": ("approved", "rejected", "edited", "escalated", "pending", "expired"),
    "escalated": ("in_review", "expired"),
}
VERDICTS = {"approve": "approved", "reject": "rejected", "edit": "edited", "escalate": "escalated"}
GENESIS = "0" * 64
MODES = ("always", "flagged", "sample", "never")
MODES_BY_STRICTNESS = ("never", "flagged", "sample", "always")  # each holds what the one before does, or more

# Reason codes: the guardrails' categories (MLCommons hazards, PII, secrets, injection ...) and
# quality reasons. A decision must give one.
QUALITY_REASONS = {
    "ok": "fit to release as it is",
    "minor_fix": "released after a small correction",
    "factual_error": "states something false",
    "unsupported_claim": "says what its sources do not",
    "off_topic": "does not answer the request",
    "low_quality": "garbled, repetitive or unusable",
    "formatting": "wrong format or structure",
    "false_positive": "the guardrail flagged it wrongly",
    "needs_expert": "beyond this reviewer; escalated",
    "other": "see the comment",
}
GUARD_REASONS = {
    **{code: name for code, name in HAZARDS.items()},
    "pii": "personal data",
    "secret": "a credential or key",
    "prompt_injection": "an injection or jailbreak",
    "toxicity": "toxic or profane",
    "banned_topic": "a banned topic",
    "brand_violation": "breaks the brand or house rules",
}
REASON_CODES = {**QUALITY_REASONS, **GUARD_REASONS}


ACTIVE = ("pending", "in_review", "escalated")  # states an item can still leave (and expire from)


class ReviewConflict(GenlabError):
    """Someone else changed the item first (or the move is not legal from its state)."""

    exit_code = 2
    http_status = 409
    error_type = "conflict_error"


class ReviewNotFound(GenlabError):
    exit_code = 2
    http_status = 404
    error_type = "not_found_error"


class SelfReview(GenlabError):
    """A reviewer tried to decide a generation they asked for themselves."""

    exit_code = 2
    http_status = 403
    error_type = "permission_error"
    code = "self_review"


LOCAL_OWNER = "local"  # the owner of what is asked without a key: the CLI, an open loopback server


def owner_of(key_id: int | None) -> str:
    """Who an item belongs to: the key that asked, or the local user."""
    return LOCAL_OWNER if key_id is None else f"key:{key_id}"


# What a final state makes of the held generation records (the server serves "approved" and
# "edited" ones to their owner; "held", "rejected", "expired" and "replaced" never).
RECORD_STATUS = {"approved": "approved", "edited": "approved", "rejected": "rejected", "expired": "expired"}


@dataclass
class ReviewPolicy:
    """Which generations a person must see before release."""

    mode: str = "flagged"
    sample_rate: float = 0.0
    priority: int = 0
    due_minutes: float = 24 * 60
    endpoints: dict[str, str] = field(default_factory=dict)  # endpoint -> mode, overriding ``mode``

    def __post_init__(self) -> None:
        for m in (self.mode, *self.endpoints.values()):
            if m not in MODES:
                raise InvalidRequestError(f"unknown review mode {m!r}; expected one of {', '.join(MODES)}")
        if not 0 <= self.sample_rate <= 1:
            raise InvalidRequestError(f"review sample_rate must be in [0, 1], got {self.sample_rate}")
        if self.due_minutes <= 0:
            raise InvalidRequestError(f"review due_minutes must be positive, got {self.due_minutes}")

    def stricter(self, other: ReviewPolicy) -> ReviewPolicy:
        """Both review rules at once (a recipe under a server's policy): per endpoint the mode that
        holds more (never < flagged < sample < always), the larger sample rate and priority, the
        earlier due time."""

        def mode(policy: ReviewPolicy, endpoint: str) -> str:
            return policy.endpoints.get(endpoint, policy.mode)

        def stronger(a: str, b: str) -> str:
            return max(a, b, key=MODES_BY_STRICTNESS.index)

        return ReviewPolicy(
            mode=stronger(self.mode, other.mode),
            sample_rate=max(self.sample_rate, other.sample_rate),
            priority=max(self.priority, other.priority),
            due_minutes=min(self.due_minutes, other.due_minutes),
            endpoints={
                e: stronger(mode(self, e), mode(other, e)) for e in {**self.endpoints, **other.endpoints}
            },
        )

    def hold(self, endpoint: str, flagged_by: list[str], rng: random.Random | None = None) -> str | None:
        """Why this generation is held (the rule), or None to release it now."""
        mode = self.endpoints.get(endpoint, self.mode)
        if mode == "always":
            return "always"
        if mode == "never":
            return None
        if flagged_by:
            return "flagged by " + ", ".join(sorted(set(flagged_by)))
        if mode == "sample" and (rng or random).random() < self.sample_rate:
            return f"sampled at {self.sample_rate:g}"
        return None


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def canonical(payload: Any) -> bytes:
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def payload_hash(payload: Any) -> str:
    return hashlib.sha256(canonical(payload)).hexdigest()


def event_hash(key: bytes, prev_hash: str, event: dict[str, Any]) -> str:
    """HMAC-SHA256 under a key kept outside the database (safety/keys.py): whoever can rewrite the
    database cannot recompute the chain without it."""
    fields = {
        k: event[k]
        for k in ("seq", "created_at", "actor", "action", "item_id", "from_state", "to_state", "payload_hash")
    }
    return hmac.new(key, prev_hash.encode() + canonical(fields), hashlib.sha256).hexdigest()


def append_event(
    s: Session,
    *,
    key: bytes,
    actor: str,
    action: str,
    item_id: str | None,
    from_state: str | None,
    to_state: str | None,
    payload: Any,
) -> AuditEvent:
    """Append one event inside the caller's transaction (serialised through the head row)."""
    s.execute(update(AuditHead).where(AuditHead.id == 1).values(last_seq=AuditHead.last_seq + 1))
    head = s.execute(select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == 1)).one()
    event = {
        "seq": head.last_seq,
        "created_at": _iso(_now()),
        "actor": actor,
        "action": action,
        "item_id": item_id,
        "from_state": from_state,
        "to_state": to_state,
        "payload_hash": payload_hash(payload),
        "prev_hash": head.last_hash,
    }
    event["hash"] = event_hash(key, head.last_hash, event)
    row = AuditEvent(**event)
    s.add(row)
    s.execute(update(AuditHead).where(AuditHead.id == 1).values(last_hash=event["hash"]))
    return row


@dataclass
class AuditReport:
    ok: bool
    events: int
    problems: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "problems": self.problems}


def verify_audit(s: Session, key: bytes) -> AuditReport:
    """Recompute the chain; name the first row that was edited, deleted, inserted or reordered."""
    problems: list[str] = []
    prev, expected_seq, count = GENESIS, 1, 0
    for row in s.scalars(select(AuditEvent).order_by(AuditEvent.seq)):
        count += 1
        event = {
            c: getattr(row, c)
            for c in (
                "seq",
                "created_at",
                "actor",
                "action",
                "item_id",
                "from_state",
                "to_state",
                "payload_hash",
            )
        }
        if row.seq != expected_seq:
            problems.append(
                f"event {expected_seq}"
                + (f"-{row.seq - 1}" if row.seq - 1 > expected_seq else "")
                + f" is missing (deleted): the chain jumps from {expected_seq - 1} to {row.seq}"
            )
        if row.prev_hash != prev:
            problems.append(
                f"event {row.seq} does not follow the event before it (deleted, inserted or reordered)"
            )
        if not hmac.compare_digest(event_hash(key, row.prev_hash, event), row.hash):
            problems.append(f"event {row.seq} was edited: its content does not match its hash")
        prev, expected_seq = row.hash, row.seq + 1
        if len(problems) >= 20:
            break
    head = s.get(AuditHead, 1)
    if head is not None and not problems:
        if head.last_seq != expected_seq - 1:
            problems.append(
                f"events {expected_seq}-{head.last_seq} are missing (the tail was deleted)"
                if head.last_seq > expected_seq - 1
                else f"the log holds events past the head ({head.last_seq}): rows were inserted"
            )
        elif head.last_hash != prev:
            problems.append(f"event {head.last_seq} differs from the hash the head recorded for it")
    return AuditReport(not problems, count, problems)


# -- the queue --------------------------------------------------------------------------------------
def item_dict(row: ReviewItem, decisions: list[ReviewDecision] | None = None) -> dict[str, Any]:
    out = {
        "id": row.id,
        "state": row.state,
        "version": row.version,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "due_at": _iso(row.due_at) if row.due_at else None,
        "priority": row.priority,
        "endpoint": row.endpoint,
        "model": row.model,
        "modality": row.modality,
        "rule": row.rule,
        "risk": row.risk,
        "request": row.request,
        "artifact": row.artifact,
        "findings": row.findings,
        "claimed_by": row.claimed_by,
        "released": row.released,
        "key_id": row.key_id,
        "owner": owner_of(row.key_id),
        "webhook": row.webhook,
    }
    if decisions is not None:
        out["decisions"] = [
            {
                "reviewer": d.reviewer,
                "verdict": d.verdict,
                "reason_code": d.reason_code,
                "comment": d.comment,
                "edited": d.edited,
                "seconds_spent": d.seconds_spent,
                "created_at": _iso(d.created_at),
            }
            for d in decisions
        ]
    return out


def outputs_of(artifact: dict[str, Any]) -> list[dict[str, Any]]:
    """Every output a held item holds, in the order of the response's choices (or images); an item
    written before items held every output is its one output."""
    outputs = artifact.get("outputs")
    if isinstance(outputs, list) and outputs:
        return outputs
    return [{k: v for k, v in artifact.items() if k != "response"}]


def _settle_records(s: Session, artifact: dict[str, Any], to: str, released: dict[str, Any] | None) -> None:
    """The held generation records follow the decision (in its transaction): released ones become
    fetchable, the one a reviewer edited holds the edited text (or, for a file, is ``replaced``:
    the edit is released inline), rejected and expired ones stay out of reach."""
    status = RECORD_STATUS.get(to)
    if status is None:
        return
    edited_index = released.get("output", 0) if to == "edited" and released else None
    for index, output in enumerate(outputs_of(artifact)):
        row = s.get(GenerationRecord, output.get("record_id") or "")
        if row is None:
            continue
        row.status = status
        if index == edited_index and "text" in released:
            row.output_text = released["text"]
            row.artifact_sha256 = hashlib.sha256(released["text"].encode("utf-8")).hexdigest()
        elif index == edited_index:
            row.status = "replaced"


class ReviewQueue:
    """The review queue over a Store's database. Each method is one transaction. ``self_review``
    (default: the ``GENLAB_SELF_REVIEW`` setting, off) lets a reviewer decide their own request."""

    def __init__(self, store, *, self_review: bool | None = None) -> None:
        self.store = store
        settings = store.settings
        self.key = secret_key(settings.home, "audit", settings.audit_key, "GENLAB_AUDIT_KEY")
        self.self_review = settings.self_review if self_review is None else self_review

    def submit(
        self,
        *,
        endpoint: str,
        model: str,
        modality: str,
        request: dict[str, Any],
        artifact: dict[str, Any],
        findings: list[dict[str, Any]],
        rule: str,
        policy: ReviewPolicy | None = None,
        key_id: int | None = None,
        webhook: str | None = None,
        actor: str = "system",
    ) -> dict[str, Any]:
        policy = policy or ReviewPolicy()
        now = _now()
        row = ReviewItem(
            id=f"rev-{uuid.uuid4().hex}",
            created_at=now,
            updated_at=now,
            due_at=now + timedelta(minutes=policy.due_minutes),
            state="pending",
            version=0,
            priority=policy.priority,
            endpoint=endpoint,
            model=model,
            modality=modality,
            rule=rule[:200],
            risk=max((float(f.get("score", 0.0)) for f in findings), default=0.0),
            request=request,
            artifact=artifact,
            findings=findings,
            key_id=key_id,
            webhook=webhook,
        )
        with self.store.session() as s, s.begin():
            s.add(row)
            s.flush()
            append_event(
                s,
                key=self.key,
                actor=actor,
                action="submit",
                item_id=row.id,
                from_state=None,
                to_state="pending",
                payload={"artifact": artifact, "request": request, "rule": rule},
            )
        return item_dict(row)

    def get(self, item_id: str, *, decisions: bool = True) -> dict[str, Any]:
        with self.store.session() as s:
            row = s.get(ReviewItem, item_id)
            if row is None:
                raise ReviewNotFound(f"no review item {item_id!r}")
            ds = (
                list(
                    s.scalars(
                        select(ReviewDecision)
                        .where(ReviewDecision.item_id == item_id)
                        .order_by(ReviewDecision.id)
                    )
                )
                if decisions
                else None
            )
            return item_dict(row, ds)

    def list(self, state: str | None = "pending", limit: int = 100) -> list[dict[str, Any]]:
        if state is not None and state not in STATES:
            raise InvalidRequestError(
                f"unknown state {state!r}; expected one of {', '.join(STATES)}", param="state"
            )
        with self.store.session() as s:
            q = select(ReviewItem)
            if state is not None:
                q = q.where(ReviewItem.state == state)
            q = q.order_by(ReviewItem.priority.desc(), ReviewItem.created_at).limit(max(1, min(limit, 1000)))
            return [item_dict(r) for r in s.scalars(q)]

    def counts(self) -> dict[str, int]:
        with self.store.session() as s:
            rows = s.execute(select(ReviewItem.state, func.count()).group_by(ReviewItem.state)).all()
        return {state: 0 for state in STATES} | {state: n for state, n in rows}

    def _move(
        self,
        s: Session,
        item_id: str,
        expect_version: int | None,
        to: str,
        *,
        actor: str,
        action: str,
        payload: Any,
        **values: Any,
    ) -> ReviewItem:
        """Change an item's state (optimistic lock) and append the audit event, in the caller's transaction."""
        row = s.get(ReviewItem, item_id)
        if row is None:
            raise ReviewNotFound(f"no review item {item_id!r}")
        frm = row.state
        if frm in FINAL:
            raise ReviewConflict(f"{item_id} is already {frm}; a decided item cannot change")
        if to not in TRANSITIONS.get(frm, ()):
            raise ReviewConflict(f"{item_id} is {frm}; it cannot become {to}")
        version = row.version if expect_version is None else expect_version
        done = s.execute(
            update(ReviewItem)
            .where(ReviewItem.id == item_id, ReviewItem.version == version, ReviewItem.state == frm)
            .values(state=to, version=version + 1, updated_at=_now(), **values)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:
            raise ReviewConflict(f"{item_id} was changed by someone else; reload it and try again")
        s.expire(row)
        if to in FINAL:
            _settle_records(s, row.artifact, to, values.get("released"))
        append_event(
            s,
            key=self.key,
            actor=actor,
            action=action,
            item_id=item_id,
            from_state=frm,
            to_state=to,
            payload=payload,
        )
        return row

    def expire_if_overdue(self, item_id: str, actor: str = "system") -> bool:
        """Expire one item past its due time (never released); True if it was expired now."""
        with self.store.session() as s:
            overdue = s.scalar(
                select(ReviewItem.id).where(
                    ReviewItem.id == item_id, ReviewItem.state.in_(ACTIVE), ReviewItem.due_at < _now()
                )
            )
        if overdue is None:
            return False
        try:
            with self.store.session() as s, s.begin():
                self._move(
                    s, item_id, None, "expired", actor=actor, action="expire", payload={"reason": "overdue"}
                )
        except ReviewConflict:  # decided or expired meanwhile
            return False
        return True

    def claim(
        self, item_id: str, reviewer: str, *, version: int | None = None, identity: str | None = None
    ) -> dict[str, Any]:
        """Take an item to decide it; nobody takes their own request (``identity``, as in ``decide``)."""
        self.expire_if_overdue(item_id)  # an overdue item cannot be claimed, only expire
        with self.store.session() as s, s.begin():
            row = s.get(ReviewItem, item_id)
            if row is not None:
                self._check_reviewer(row, identity)
            row = self._move(
                s,
                item_id,
                version,
                "in_review",
                actor=reviewer,
                action="claim",
                payload={"reviewer": reviewer},
                claimed_by=reviewer,
            )
            return item_dict(row)

    def release_claim(self, item_id: str, reviewer: str, *, version: int | None = None) -> dict[str, Any]:
        with self.store.session() as s, s.begin():
            row = s.get(ReviewItem, item_id)
            if row is not None and row.state == "in_review" and row.claimed_by not in (reviewer, None):
                raise ReviewConflict(f"{item_id} is being reviewed by {row.claimed_by}")
            row = self._move(
                s, item_id, version, "pending", actor=reviewer, action="release", payload={}, claimed_by=None
            )
            return item_dict(row)

    def decide(
        self,
        item_id: str,
        reviewer: str,
        verdict: str,
        reason_code: str,
        *,
        comment: str = "",
        edited: dict[str, Any] | None = None,
        output: int = 0,
        seconds_spent: float = 0.0,
        version: int | None = None,
        identity: str | None = None,
    ) -> dict[str, Any]:
        """Approve, reject, edit or escalate an item. An item pending or escalated is claimed in the
        same transaction; one claimed by someone else is a conflict. An edit replaces output
        ``output`` of the item; the others are released as reviewed. ``identity`` is who the
        reviewer is as a requester (``owner_of``: their key, or ``local``): deciding an item of
        one's own is refused unless self-review is allowed."""
        if verdict not in VERDICTS:
            raise InvalidRequestError(
                f"unknown verdict {verdict!r}; expected one of {', '.join(VERDICTS)}", param="verdict"
            )
        if reason_code not in REASON_CODES:
            raise InvalidRequestError(
                f"unknown reason code {reason_code!r}; expected one of {', '.join(REASON_CODES)}",
                param="reason_code",
            )
        if verdict == "edit" and not edited:
            raise InvalidRequestError("an edit needs the edited artifact", param="edited")
        if verdict != "edit" and edited:
            raise InvalidRequestError(
                f"only an edit carries an edited artifact, not {verdict}", param="edited"
            )
        if seconds_spent < 0:
            raise InvalidRequestError("seconds_spent cannot be negative", param="seconds_spent")
        to = VERDICTS[verdict]
        self.expire_if_overdue(item_id)  # an overdue item is never released: it expires instead
        with self.store.session() as s, s.begin():
            row = s.get(ReviewItem, item_id)
            if row is None:
                raise ReviewNotFound(f"no review item {item_id!r}")
            self._check_reviewer(row, identity)
            if edited is not None:
                check_output_index(row.artifact, output)
                edited = {**check_edit(row.modality, row.artifact, edited), "output": output}
            if row.state == "in_review" and row.claimed_by not in (reviewer, None):
                raise ReviewConflict(f"{item_id} is being reviewed by {row.claimed_by}")
            if version is not None and row.version != version:
                raise ReviewConflict(f"{item_id} was changed by someone else; reload it and try again")
            if row.state in ("pending", "escalated"):
                if row.state == "escalated" and row.claimed_by == reviewer:
                    raise ReviewConflict(
                        f"{item_id} was escalated by {reviewer}; another reviewer must decide it"
                    )
                row = self._move(
                    s,
                    item_id,
                    row.version,
                    "in_review",
                    actor=reviewer,
                    action="claim",
                    payload={"reviewer": reviewer},
                    claimed_by=reviewer,
                )
            released = None
            if to == "approved":
                released = row.artifact
            elif to == "edited":
                released = edited
            values: dict[str, Any] = {"released": released}
            if to == "escalated":
                values["claimed_by"] = reviewer  # remembered: the escalating reviewer cannot take it back
            row = self._move(
                s,
                item_id,
                row.version,
                to,
                actor=reviewer,
                action=verdict,
                payload={"reason_code": reason_code, "comment": comment, "edited": edited},
                **values,
            )
            s.add(
                ReviewDecision(
                    item_id=item_id,
                    reviewer=reviewer,
                    verdict=to,
                    reason_code=reason_code,
                    comment=comment or "",
                    edited=edited,
                    seconds_spent=float(seconds_spent),
                    created_at=_now(),
                )
            )
            return item_dict(row)

    def _check_reviewer(self, row: ReviewItem, identity: str | None) -> None:
        own = identity is not None and identity != LOCAL_OWNER and identity == owner_of(row.key_id)
        if own and not self.self_review:
            raise SelfReview(
                f"{row.id} was asked for by you ({identity}); another reviewer must decide it "
                "(or allow self-review: GENLAB_SELF_REVIEW=1)"
            )

    def expire_overdue(self, actor: str = "system") -> int:
        """Move every pending, in-review or escalated item past its due time to expired."""
        expired = 0
        with self.store.session() as s:
            due = list(
                s.scalars(
                    select(ReviewItem.id).where(ReviewItem.state.in_(ACTIVE), ReviewItem.due_at < _now())
                )
            )
        for item_id in due:
            try:
                with self.store.session() as s, s.begin():
                    self._move(s, item_id, None, "expired", actor=actor, action="expire", payload={})
                expired += 1
            except ReviewConflict:  # decided meanwhile: fine
                continue
        return expired

    def verify(self) -> AuditReport:
        with self.store.session() as s:
            return verify_audit(s, self.key)

    # -- feedback ------------------------------------------------------------------------------------
    def export(self) -> list[dict[str, Any]]:
        """One row per decided item: prompt, output, decision, edited output (preference pairs)."""
        with self.store.session() as s:
            rows = s.execute(
                select(ReviewItem, ReviewDecision)
                .join(ReviewDecision, ReviewDecision.item_id == ReviewItem.id)
                .where(ReviewDecision.verdict.in_(("approved", "rejected", "edited")))
                .order_by(ReviewDecision.id)
            ).all()
        out = []
        for item, d in rows:
            outputs = outputs_of(item.artifact)
            named = outputs[min(int((d.edited or {}).get("output", 0)), len(outputs) - 1)]
            output = named.get("text") if item.modality in ("text", "code") else item.artifact
            edited = (
                (d.edited or {}).get("text") if d.edited and item.modality in ("text", "code") else d.edited
            )
            record = {
                "id": item.id,
                "endpoint": item.endpoint,
                "model": item.model,
                "modality": item.modality,
                "prompt": item.request.get("prompt")
                or item.request.get("messages")
                or item.request.get("input"),
                "model_prompts": item.request.get("model_prompts"),  # a recipe's, as the model saw them
                "output": output,
                "decision": d.verdict,
                "reason_code": d.reason_code,
                "comment": d.comment,
                "edited_output": edited,
                "reviewer": d.reviewer,
                "scanners_flagged": sorted({f.get("scanner") for f in item.findings if f.get("scanner")}),
            }
            if d.verdict == "edited":  # a preference pair: the reviewer's version over the model's
                record["chosen"], record["rejected"] = edited, output
            out.append(record)
        return out

    def scanner_feedback(self) -> dict[str, dict[str, int]]:
        """Per scanner, from reviewers' verdicts: true positives (flagged, and rejected or edited for
        a guardrail reason), false positives (flagged, yet approved or marked false_positive), and
        false negatives (not flagged, yet rejected for that scanner's reason)."""
        reason_scanner = {
            "pii": "pii",
            "secret": "secrets",
            "prompt_injection": "prompt_injection",
            "toxicity": "toxicity",
            "banned_topic": "banned_topics",
        }
        counts: dict[str, dict[str, int]] = {}

        def bump(scanner: str, what: str) -> None:
            counts.setdefault(scanner, {"true_positives": 0, "false_positives": 0, "false_negatives": 0})[
                what
            ] += 1

        with self.store.session() as s:
            rows = s.execute(
                select(ReviewItem.findings, ReviewDecision.verdict, ReviewDecision.reason_code)
                .join(ReviewDecision, ReviewDecision.item_id == ReviewItem.id)
                .where(ReviewDecision.verdict.in_(("approved", "rejected", "edited")))
            ).all()
        for findings, verdict, reason in rows:
            flagged = {f.get("scanner") for f in findings if f.get("scanner")}
            for scanner in flagged:
                if verdict == "approved" or reason == "false_positive":
                    bump(scanner, "false_positives")
                else:
                    bump(scanner, "true_positives")
            blamed = reason_scanner.get(reason)
            if blamed and verdict in ("rejected", "edited") and blamed not in flagged:
                bump(blamed, "false_negatives")
        return counts


def check_output_index(artifact: dict[str, Any], output: int) -> None:
    count = len(outputs_of(artifact))
    if not 0 <= output < count:
        raise InvalidRequestError(
            f"this item holds {count} output(s); an edit names one of 0-{count - 1}, not {output}",
            param="output",
        )


def check_edit(modality: str, original: dict[str, Any], edited: dict[str, Any]) -> dict[str, Any]:
    """An edit must be of the item's own modality: text for text, an image for an image."""
    if not isinstance(edited, dict):
        raise InvalidRequestError('the edited artifact is an object such as {"text": "..."}', param="edited")
    if modality in ("text", "code"):
        text = edited.get("text")
        if not isinstance(text, str) or set(edited) - {"text"}:
            raise InvalidRequestError(
                f'this item is {modality}: an edit is {{"text": "..."}}, not {sorted(edited)}', param="edited"
            )
        if not text.strip():
            raise InvalidRequestError("the edited text is empty; reject the item instead", param="edited")
        return {"text": text}
    key = "b64_png" if modality == "image" else "b64_wav"
    if set(edited) != {key} or not isinstance(edited[key], str):
        raise InvalidRequestError(
            f'this item is {modality}: an edit is {{"{key}": "..."}}, not {sorted(edited)}', param="edited"
        )
    import base64
    import io

    try:
        raw = base64.b64decode(edited[key], validate=True)
        if modality == "image":
            from PIL import Image

            Image.open(io.BytesIO(raw)).verify()
        else:
            import soundfile

            soundfile.info(io.BytesIO(raw))
    except Exception:
        raise InvalidRequestError(
            f"the edited {modality} is not a readable {key[4:].upper()} file", param="edited"
        ) from None
    return {key: edited[key]}
