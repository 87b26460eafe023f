"""What one running server holds: its settings, registry, store, the pipeline, metrics, limits."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

from genlab.pipeline import Caps, Pipeline
from genlab.registry import Registry
from genlab.server.runtime import Metrics, MetricsObserver, PromptCacheCollector, RateLimiter
from genlab.storage import Store


@dataclass
class ServerConfig:
    open_access: bool = False  # no keys needed (only ever on loopback with no keys created)
    queue_limit: int = 8  # per model: running + waiting
    max_body_bytes: int = 1_000_000
    max_upload_bytes: int = 25_000_000  # an audio file to transcribe (OpenAI's limit)
    policy: str = "default"  # guardrail policy (a shipped name or a YAML path) run on every generation
    review_sweep_seconds: float = 30.0  # how often overdue review items are expired
    # key roles that may have their own code run (in the sandbox)
    code_roles: tuple[str, ...] = ("reviewer", "admin")
    webhook_allow: tuple[str, ...] = ()
    max_request_tokens: int = 65_536  # prompts x n x max_tokens of one request
    request_seconds: float = 300.0  # the deadline of one request's work, of every kind
    caps: Caps = field(default_factory=Caps)  # items, schema bytes, audio seconds, pixels per request

    @classmethod
    def from_settings(cls, settings) -> ServerConfig:
        return cls(
            open_access=settings.open_access,
            queue_limit=settings.queue_limit,
            policy=settings.policy,
            code_roles=settings.code_roles,
            webhook_allow=settings.webhook_allow,
            request_seconds=float(settings.request_seconds),
        )


class State:
    def __init__(self, registry: Registry, store: Store, config: ServerConfig) -> None:
        self.registry = registry
        self.store = store
        self.config = config
        self.metrics = Metrics()
        self.metrics.registry.register(PromptCacheCollector(registry))
        self.limiter = RateLimiter()
        self._keys_checked: tuple[float, bool] = (-1e9, False)
        self.pipeline = Pipeline(
            registry,
            policy=config.policy,
            store=store,
            queue_limit=config.queue_limit,
            observer=MetricsObserver(self.metrics, registry),
            token_budget=config.max_request_tokens,
            deadline_s=config.request_seconds,
            offload_scans=True,
            caps=config.caps,
        )

    def open_access(self) -> bool:
        """Open (no key needed) only while no active key exists: a key created after start-up makes
        the server require keys from then on (checked at most once a second)."""
        if not self.config.open_access:
            return False
        now = time.monotonic()
        if now - self._keys_checked[0] > 1.0:
            self._keys_checked = (now, self.store.has_active_keys())
        return not self._keys_checked[1]

    @cached_property
    def video_jobs(self):
        """The video jobs (``video_jobs.py``), read from GENLAB_HOME/videos/ on first use."""
        from genlab.server.video_jobs import VideoJobs

        return VideoJobs(self.registry.settings.home / "videos", self.pipeline)

    @property
    def reviews(self):
        return self.pipeline.reviews

    @property
    def guard(self):
        return self.pipeline.guard
