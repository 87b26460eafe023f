"""Tables. Every change to them comes with an Alembic migration in migrations/versions/."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("user", "reviewer", "admin")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """The declarative base of genlab's tables (Alembic compares migrations against its metadata)."""


class ApiKey(Base):
    """An API key. Only its SHA-256 is stored; the key itself is shown once, at creation."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer, default=120)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class GenerationRecord(Base):
    """One served generation: what was asked, what came out (path and hash), usage, latency, who."""

    __tablename__ = "generations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(100), index=True)
    request: Mapped[dict] = mapped_column(JSON)
    output_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    artifact_path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    artifact_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(20), default="ok")


class ReviewItem(Base):
    """A generated artifact held for a person to approve, edit or reject before it is released.

    ``version`` is the optimistic lock: every change is ``UPDATE ... WHERE id = ? AND version = ?``,
    so of two reviewers deciding one item exactly one succeeds, on SQLite and PostgreSQL alike.
    """

    __tablename__ = "review_items"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    state: Mapped[str] = mapped_column(String(20), index=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    endpoint: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(100))
    modality: Mapped[str] = mapped_column(String(20))
    rule: Mapped[str] = mapped_column(String(200))  # why it was held: always, flagged by ..., sampled
    risk: Mapped[float] = mapped_column(Float, default=0.0)
    request: Mapped[dict] = mapped_column(JSON)
    artifact: Mapped[dict] = mapped_column(JSON)  # text, or path + sha256 + label for images and audio
    findings: Mapped[list] = mapped_column(JSON)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
    webhook: Mapped[str | None] = mapped_column(String(500), nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    released: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # what the client gets, once approved


class ReviewDecision(Base):
    """One reviewer's verdict on an item (an item has at most one final decision)."""

    __tablename__ = "review_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("review_items.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(100))
    verdict: Mapped[str] = mapped_column(String(20))
    reason_code: Mapped[str] = mapped_column(String(60))
    comment: Mapped[str] = mapped_column(Text, default="")
    edited: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    seconds_spent: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEvent(Base):
    """An append-only, hash-chained record of every review action (see safety/review.py)."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[str] = mapped_column(String(40))  # ISO text: hashed as written, no tz round trips
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    item_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    from_state: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_state: Mapped[str | None] = mapped_column(String(20), nullable=True)
    payload_hash: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the chain's last sequence number and hash. Appending updates it first, which takes
    the write lock (SQLite) or the row lock (PostgreSQL), so appends are serialised and a deleted
    tail is detectable."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class BiasAudit(Base):
    """One bias audit of a model: its headline and where its report lives (evaluation/bias.py)."""

    __tablename__ = "bias_audits"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    model: Mapped[str] = mapped_column(String(100), index=True)
    suite: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    gap: Mapped[float] = mapped_column(Float)
    headline: Mapped[dict] = mapped_column(JSON)
    path: Mapped[str] = mapped_column(String(500))


class Learner(Base):
    """A tutor learner: the course and the state the tutor keeps (apps/education.py), versioned so
    that two answers sent at once cannot both be applied to the same state."""

    __tablename__ = "learners"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    course: Mapped[str] = mapped_column(String(100))
    owner_key_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: the local user
    state: Mapped[dict] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LearnerEvent(Base):
    """One answer: the skill, the item, whether it was right, and mastery before and after."""

    __tablename__ = "learner_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    learner_id: Mapped[str] = mapped_column(
        String(100), ForeignKey("learners.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    skill: Mapped[str] = mapped_column(String(100))
    item_id: Mapped[str] = mapped_column(String(100))
    correct: Mapped[bool] = mapped_column(Boolean)
    mastery_before: Mapped[float] = mapped_column(Float)
    mastery_after: Mapped[float] = mapped_column(Float)
