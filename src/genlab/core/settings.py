"""Where genlab keeps its state. Everything genlab writes lives under ``GENLAB_HOME``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from genlab.core.errors import InvalidRequestError


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _int(name: str, value: str | None, default: int | None, minimum: int = 1) -> int | None:
    if value is None or not value.strip():
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidRequestError(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise InvalidRequestError(f"{name} must be at least {minimum}, got {number}")
    return number


def physical_cores() -> int:
    """Cores this process may use, counting each physical core once (SMT siblings share one):
    what llama.cpp and torch run fastest on, and what genlab uses unless told otherwise."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores = set()
    for cpu in allowed:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(
                (
                    (topology / "physical_package_id").read_text().strip(),
                    (topology / "core_id").read_text().strip(),
                )
            )
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


ROLES = ("user", "reviewer", "admin")


def parse_list(value: str | None) -> tuple[str, ...]:
    """``a, b,c`` -> ("a", "b", "c")."""
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def parse_roles(value: str | None, what: str = "GENLAB_CODE_ROLES") -> tuple[str, ...]:
    if value is None:
        return ("reviewer", "admin")
    roles = parse_list(value)
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise InvalidRequestError(
            f"{what}: unknown role(s) {', '.join(sorted(unknown))}; roles: {', '.join(ROLES)}"
        )
    return roles


@dataclass(frozen=True)
class Settings:
    """Every ``GENLAB_*`` setting, read in one place (``from_env``) and passed down from there.

    | field            | variable               | default                                   |
    |------------------|------------------------|-------------------------------------------|
    | home             | GENLAB_HOME            | ~/.genlab                                 |
    | database_url     | GENLAB_DATABASE_URL    | SQLite at GENLAB_HOME/genlab.db            |
    | watermark_key    | GENLAB_WATERMARK_KEY   | a key made once in GENLAB_HOME/keys/       |
    | audit_key        | GENLAB_AUDIT_KEY       | a key made once in GENLAB_HOME/keys/       |
    | threads          | GENLAB_THREADS         | the physical cores (llama.cpp and torch)  |
    | open_access      | GENLAB_OPEN_ACCESS     | off (`genlab serve` decides from the keys) |
    | queue_limit      | GENLAB_QUEUE_LIMIT     | 8 requests per model running or waiting   |
    | policy           | GENLAB_POLICY          | default                                   |
    | llama_log        | GENLAB_LLAMA_LOG       | off: llama.cpp's own log is silenced      |
    | code_roles       | GENLAB_CODE_ROLES      | reviewer,admin: keys whose own code runs  |
    | webhook_allow    | GENLAB_WEBHOOK_ALLOW   | none: review webhooks reach public hosts  |
    | request_seconds  | GENLAB_REQUEST_SECONDS | 300: the deadline of one request's work    |
    """

    home: Path
    database_url: str | None = None
    watermark_key: str | None = None
    audit_key: str | None = None
    threads: int | None = None
    open_access: bool = False
    queue_limit: int = 8
    policy: str = "default"
    llama_log: bool = False
    code_roles: tuple[str, ...] = ("reviewer", "admin")
    webhook_allow: tuple[str, ...] = ()
    request_seconds: int = 300  # every kind of work: text, images, speech, embeddings, recipes

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read every ``GENLAB_*`` variable, each time: no hidden global state."""
        env = os.environ if environ is None else environ
        home = env.get("GENLAB_HOME") or str(Path.home() / ".genlab")
        return cls(
            home=Path(home).expanduser().resolve(),
            database_url=env.get("GENLAB_DATABASE_URL") or None,
            watermark_key=env.get("GENLAB_WATERMARK_KEY") or None,
            audit_key=env.get("GENLAB_AUDIT_KEY") or None,
            threads=_int("GENLAB_THREADS", env.get("GENLAB_THREADS"), None),
            open_access=_flag(env.get("GENLAB_OPEN_ACCESS")),
            queue_limit=_int("GENLAB_QUEUE_LIMIT", env.get("GENLAB_QUEUE_LIMIT"), 8) or 8,
            policy=env.get("GENLAB_POLICY") or "default",
            llama_log=_flag(env.get("GENLAB_LLAMA_LOG")),
            code_roles=parse_roles(env.get("GENLAB_CODE_ROLES")),
            webhook_allow=parse_list(env.get("GENLAB_WEBHOOK_ALLOW")),
            request_seconds=_int("GENLAB_REQUEST_SECONDS", env.get("GENLAB_REQUEST_SECONDS"), 300) or 300,
        )

    @property
    def threads_in_use(self) -> int:
        return self.threads or physical_cores()

    def to_env(self) -> dict[str, str]:
        """The variables that make ``from_env`` give these settings (for worker processes)."""
        env = {
            "GENLAB_HOME": str(self.home),
            "GENLAB_OPEN_ACCESS": "1" if self.open_access else "0",
            "GENLAB_QUEUE_LIMIT": str(self.queue_limit),
            "GENLAB_POLICY": self.policy,
            "GENLAB_LLAMA_LOG": "1" if self.llama_log else "0",
            "GENLAB_CODE_ROLES": ",".join(self.code_roles),
            "GENLAB_WEBHOOK_ALLOW": ",".join(self.webhook_allow),
            "GENLAB_REQUEST_SECONDS": str(self.request_seconds),
        }
        optional = {
            "GENLAB_DATABASE_URL": self.database_url,
            "GENLAB_WATERMARK_KEY": self.watermark_key,
            "GENLAB_AUDIT_KEY": self.audit_key,
            "GENLAB_THREADS": None if self.threads is None else str(self.threads),
        }
        return env | {k: v for k, v in optional.items() if v is not None}

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def outputs_dir(self) -> Path:
        return self.home / "outputs"
