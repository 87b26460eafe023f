"""Where genlab keeps its state. Everything genlab writes lives under ``GENLAB_HOME``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

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


def _setting(default, variable: str, help: str, parse=None, show=str):
    """A setting, declared once: its default, the ``GENLAB_*`` variable it is read from, how the
    variable's text becomes the value (``parse(name, text)``) and back (``show``), and what it is for
    (``genlab doctor`` and the docs print it)."""
    kind = type(default) if default is not None else str
    parse = parse or {bool: lambda _n, v: _flag(v), int: lambda n, v: _int(n, v, default)}.get(
        kind, lambda _n, v: v or default
    )
    return field(default=default, metadata={"variable": variable, "help": help, "parse": parse, "show": show})


def _show_flag(value: bool) -> str:
    return "1" if value else "0"


def _show_list(value: tuple[str, ...]) -> str:
    return ",".join(value)


@dataclass(frozen=True)
class Settings:
    """Every ``GENLAB_*`` setting, each declared once below (its variable, default and purpose), read
    in one place (``from_env``) and passed down from there. ``genlab doctor`` prints the table
    (``describe``); ``to_env`` gives worker processes the same settings."""

    home: Path = _setting(None, "GENLAB_HOME", "where genlab keeps everything it writes (default ~/.genlab)")
    database_url: str | None = _setting(
        None,
        "GENLAB_DATABASE_URL",
        "SQLAlchemy URL of the database (default: SQLite at GENLAB_HOME/genlab.db)",
    )
    watermark_key: str | None = _setting(
        None,
        "GENLAB_WATERMARK_KEY",
        "hex key of the invisible watermark (default: made once in GENLAB_HOME/keys/)",
    )
    audit_key: str | None = _setting(
        None, "GENLAB_AUDIT_KEY", "key of the audit chain's HMAC (default: made once in GENLAB_HOME/keys/)"
    )
    threads: int | None = _setting(
        None,
        "GENLAB_THREADS",
        "threads of llama.cpp and torch (default: the physical cores)",
        parse=lambda n, v: _int(n, v, None),
    )
    open_access: bool = _setting(
        False,
        "GENLAB_OPEN_ACCESS",
        "serve without keys (loopback only; `genlab serve` decides from the keys)",
        show=_show_flag,
    )
    queue_limit: int = _setting(8, "GENLAB_QUEUE_LIMIT", "requests per model running or waiting")
    policy: str = _setting("default", "GENLAB_POLICY", "the guardrail policy: a shipped name or a YAML path")
    llama_log: bool = _setting(False, "GENLAB_LLAMA_LOG", "show llama.cpp's own log", show=_show_flag)
    prompt_cache_mb: int = _setting(
        256,
        "GENLAB_PROMPT_CACHE_MB",
        "MiB of RAM per llama.cpp model for saved conversation states, least recently used dropped "
        "first (0: none saved)",
        parse=lambda n, v: _int(n, v, 256, minimum=0),
    )
    code_roles: tuple[str, ...] = _setting(
        ("reviewer", "admin"),
        "GENLAB_CODE_ROLES",
        "key roles whose own code runs (in the sandbox)",
        parse=lambda n, v: parse_roles(v, n),
        show=_show_list,
    )
    webhook_allow: tuple[str, ...] = _setting(
        (),
        "GENLAB_WEBHOOK_ALLOW",
        "hosts or networks review webhooks may reach besides public ones",
        parse=lambda _n, v: parse_list(v),
        show=_show_list,
    )
    request_seconds: int = _setting(
        300,
        "GENLAB_REQUEST_SECONDS",
        "the deadline of one request's work: text, images, speech, embeddings, recipes",
    )
    self_review: bool = _setting(
        False, "GENLAB_SELF_REVIEW", "a reviewer's key may decide its own request", show=_show_flag
    )

    def __post_init__(self) -> None:
        if self.home is None:
            raise InvalidRequestError(
                "Settings need a home", hint="Settings(home=...) or Settings.from_env()"
            )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read every ``GENLAB_*`` variable, each time: no hidden global state."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            variable, parse = f.metadata["variable"], f.metadata["parse"]
            text = env.get(variable)
            values[f.name] = f.default if text is None else parse(variable, text)
        home = env.get("GENLAB_HOME") or str(Path.home() / ".genlab")
        return cls(**{**values, "home": Path(home).expanduser().resolve()})

    def to_env(self) -> dict[str, str]:
        """The variables that make ``from_env`` give these settings (for worker processes)."""
        env = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                env[f.metadata["variable"]] = f.metadata["show"](value)
        return env

    @classmethod
    def describe(cls) -> list[dict[str, str]]:
        """Each setting: its field, variable, default and what it is for (`genlab doctor --json`)."""
        return [
            {
                "field": f.name,
                "variable": f.metadata["variable"],
                "default": repr(f.default),
                "help": f.metadata["help"],
            }
            for f in fields(cls)
        ]

    @property
    def threads_in_use(self) -> int:
        return self.threads or physical_cores()

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

    @property
    def guard_dir(self) -> Path:
        """The learned guardrail's retrained weights (``genlab guard train``), when there are any."""
        return self.home / "guard"
