"""What one running server holds: its settings, registry, store, the pipeline, metrics, limits."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.pipeline import Pipeline
from genlab.registry import Registry
from genlab.server.runtime import Metrics, MetricsObserver, RateLimiter
from genlab.storage import Store


@dataclass
class ServerConfig:
    open_access: bool = False  # no keys needed (only ever on loopback with no keys created)
    queue_limit: int = 8  # per model: running + waiting
    max_body_bytes: int = 1_000_000
    policy: str = "default"  # guardrail policy (a shipped name or a YAML path) run on every generation
    review_sweep_seconds: float = 30.0  # how often overdue review items are expired
    code_roles: tuple[str, ...] = (
        "reviewer",
        "admin",
    )  # key roles that may have their own code run (sandboxed)

    @classmethod
    def from_settings(cls, settings) -> ServerConfig:
        return cls(
            open_access=settings.open_access,
            queue_limit=settings.queue_limit,
            policy=settings.policy,
            code_roles=settings.code_roles,
        )


class State:
    def __init__(self, registry: Registry, store: Store, config: ServerConfig) -> None:
        self.registry = registry
        self.store = store
        self.config = config
        self.metrics = Metrics()
        self.limiter = RateLimiter()
        self.pipeline = Pipeline(
            registry,
            policy=config.policy,
            store=store,
            queue_limit=config.queue_limit,
            observer=MetricsObserver(self.metrics, registry),
        )

    @property
    def reviews(self):
        return self.pipeline.reviews

    @property
    def guard(self):
        return self.pipeline.guard
