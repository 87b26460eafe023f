"""Engine, migrations and the Store: the one gateway to the database."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from genlab.core import GenlabError, InvalidRequestError
from genlab.core.settings import Settings
from genlab.storage.models import ROLES, ApiKey, BiasAudit, GenerationRecord, Learner, LearnerEvent, utcnow

MIGRATIONS = Path(__file__).parent / "migrations"
KEY_PREFIX = "gl-"


class StorageError(GenlabError):
    exit_code = 6
    http_status = 503
    error_type = "server_error"


def database_url(settings: Settings | None = None) -> str:
    """``GENLAB_DATABASE_URL`` (e.g. postgresql+psycopg://user@host/db), else SQLite in GENLAB_HOME."""
    settings = settings or Settings.from_env()
    if settings.database_url:
        return settings.database_url
    settings.home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.home / 'genlab.db'}"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # WAL: readers never block the writer
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=FULL")  # an acknowledged decision survives a power cut
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    role: str
    prefix: str
    rate_limit_per_minute: int
    revoked: bool
    created_at: str


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        row.id,
        row.name,
        row.role,
        row.prefix,
        row.rate_limit_per_minute,
        row.revoked,
        row.created_at.isoformat(),
    )


class Store:
    """API keys, generation records and (through ``reviews``) the review queue. Each method is one transaction."""

    def __init__(self, url: str | None = None, *, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()  # where the keys outside the database live
        self.url = url or database_url(self.settings)
        try:
            self.engine = make_engine(self.url)
            migrate(self.engine)
        except SQLAlchemyError as e:
            raise StorageError(
                f"cannot open the database at {self._safe_url()}: {e.__class__.__name__}: {e.args[0] if e.args else e}"
            ) from None
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    def _safe_url(self) -> str:
        return (
            self.engine.url.render_as_string(hide_password=True)
            if hasattr(self, "engine")
            else self.url.split("@")[-1]
        )

    def session(self) -> Session:
        return self._session()

    # -- API keys ----------------------------------------------------------------------------------
    def create_key(
        self, name: str, role: str = "user", *, rate_limit_per_minute: int = 120
    ) -> tuple[str, KeyInfo]:
        """Returns the key itself (shown once) and its record."""
        if role not in ROLES:
            raise InvalidRequestError(
                f"unknown role {role!r}; expected one of {', '.join(ROLES)}", param="role"
            )
        if not name or len(name) > 100:
            raise InvalidRequestError("a key needs a name of 1-100 characters", param="name")
        if rate_limit_per_minute <= 0:
            raise InvalidRequestError("the rate limit must be a positive number of requests per minute")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKey(
            name=name,
            role=role,
            prefix=key[:10],
            key_hash=hash_key(key),
            rate_limit_per_minute=rate_limit_per_minute,
        )
        with self.session() as s, s.begin():
            s.add(row)
        return key, _info(row)

    def verify_key(self, key: str) -> KeyInfo | None:
        with self.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
            return _info(row) if row is not None and not row.revoked else None

    def list_keys(self) -> list[KeyInfo]:
        with self.session() as s:
            return [_info(r) for r in s.scalars(select(ApiKey).order_by(ApiKey.id))]

    def revoke_key(self, key_id: int) -> KeyInfo:
        with self.session() as s, s.begin():
            row = s.get(ApiKey, key_id)
            if row is None:
                raise InvalidRequestError(f"no API key with id {key_id}; `genlab keys list` shows them")
            row.revoked = True
            return _info(row)

    def has_active_keys(self) -> bool:
        with self.session() as s:
            return bool(s.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.revoked.is_(False))))

    # -- generation records --------------------------------------------------------------------------
    def record_generation(self, **fields: Any) -> str:
        record_id = fields.pop("id", None) or f"gen-{uuid.uuid4().hex}"
        with self.session() as s, s.begin():
            s.add(GenerationRecord(id=record_id, **fields))
        return record_id

    def set_generation_status(self, record_ids: list[str], status: str) -> None:
        with self.session() as s, s.begin():
            for record_id in record_ids:
                row = s.get(GenerationRecord, record_id)
                if row is not None:
                    row.status = status

    def get_generation(self, record_id: str) -> dict[str, Any] | None:
        with self.session() as s:
            row = s.get(GenerationRecord, record_id)
            return _record(row) if row else None

    def list_generations(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.session() as s:
            rows = s.scalars(
                select(GenerationRecord).order_by(GenerationRecord.created_at.desc()).limit(limit)
            )
            return [_record(r) for r in rows]

    # -- bias audits -----------------------------------------------------------------------------------
    def record_audit(self, **fields: Any) -> str:
        with self.session() as s, s.begin():
            s.add(BiasAudit(**fields))
        return fields["id"]

    def list_audits(self, model: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        with self.session() as s:
            q = select(BiasAudit).order_by(BiasAudit.created_at.desc()).limit(limit)
            if model:
                q = q.where(BiasAudit.model == model)
            return [
                {
                    "id": r.id,
                    "created_at": r.created_at.isoformat(),
                    "model": r.model,
                    "suite": r.suite,
                    "kind": r.kind,
                    "gap": r.gap,
                    "headline": r.headline,
                    "path": r.path,
                }
                for r in s.scalars(q)
            ]

    # -- tutor learners ----------------------------------------------------------------------------------
    def get_learner(self, learner_id: str) -> dict[str, Any] | None:
        with self.session() as s:
            row = s.get(Learner, learner_id)
            return _learner(row) if row else None

    def create_learner(
        self, learner_id: str, course: str, state: dict[str, Any], owner_key_id: int | None = None
    ) -> dict[str, Any]:
        with self.session() as s, s.begin():
            if s.get(Learner, learner_id) is not None:
                raise LearnerConflict(
                    f"learner {learner_id!r} exists already; continue with it or pick another name"
                )
            row = Learner(id=learner_id, course=course, state=state, version=1, owner_key_id=owner_key_id)
            s.add(row)
            s.flush()
            return _learner(row)

    def save_learner(
        self, learner_id: str, state: dict[str, Any], version: int, event: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Write a learner's new state if nobody changed it since ``version`` (and its answer event,
        in the same transaction); otherwise ``LearnerConflict`` and nothing changes."""
        from sqlalchemy import update

        with self.session() as s, s.begin():
            done = s.execute(
                update(Learner)
                .where(Learner.id == learner_id, Learner.version == version)
                .values(state=state, version=version + 1, updated_at=utcnow())
            ).rowcount
            if done != 1:
                raise LearnerConflict(
                    f"learner {learner_id!r} changed meanwhile (another answer came first); reload"
                )
            if event is not None:
                s.add(LearnerEvent(learner_id=learner_id, **event))
        return {"id": learner_id, "state": state, "version": version + 1}

    def learner_events(self, learner_id: str, limit: int = 500) -> list[dict[str, Any]]:
        with self.session() as s:
            rows = s.scalars(
                select(LearnerEvent)
                .where(LearnerEvent.learner_id == learner_id)
                .order_by(LearnerEvent.id)
                .limit(limit)
            )
            return [
                {
                    "at": r.created_at.isoformat(),
                    "skill": r.skill,
                    "item": r.item_id,
                    "correct": r.correct,
                    "mastery_before": r.mastery_before,
                    "mastery_after": r.mastery_after,
                }
                for r in rows
            ]

    def close(self) -> None:
        self.engine.dispose()


class LearnerConflict(GenlabError):
    exit_code = 2
    http_status = 409
    error_type = "conflict_error"


def _learner(row: Learner) -> dict[str, Any]:
    return {
        "id": row.id,
        "course": row.course,
        "owner_key_id": row.owner_key_id,
        "state": row.state,
        "version": row.version,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _record(row: GenerationRecord) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": row.created_at.isoformat(),
        "key_id": row.key_id,
        "endpoint": row.endpoint,
        "model": row.model,
        "request": row.request,
        "output_text": row.output_text,
        "artifact_path": row.artifact_path,
        "artifact_sha256": row.artifact_sha256,
        "usage": {"prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens},
        "latency_ms": row.latency_ms,
        "status": row.status,
    }
