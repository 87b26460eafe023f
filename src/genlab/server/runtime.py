"""What the server keeps while it runs: metrics, rate limits, and a bridge from a blocking stream to asyncio."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from genlab.pipeline import Observer
from genlab.server.errors import APIError


class Metrics:
    """Prometheus metrics on a registry of the app's own (so several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "genlab_requests", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "genlab_request_latency_seconds",
            "Request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.ttft = Histogram(
            "genlab_time_to_first_token_seconds",
            "Time to first streamed token",
            ["model"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.tokens = Counter("genlab_tokens", "Tokens processed", ["model", "kind"], registry=self.registry)
        self.queue_depth = Gauge(
            "genlab_queue_depth", "Requests admitted and not finished", ["model"], registry=self.registry
        )
        self.loaded = Gauge("genlab_loaded_models", "Models loaded in memory", registry=self.registry)
        self.rejected = Counter(
            "genlab_rejected", "Requests refused before work", ["reason"], registry=self.registry
        )
        self.steps = Counter(
            "genlab_work_steps",
            "Steps of work checked against their deadline",
            ["model"],
            registry=self.registry,
        )


class PromptCacheCollector:
    """Each loaded llama.cpp model's prompt cache, read when /metrics is scraped: bytes held, the
    budget, states saved, and the requests that restored a state (hits) or reused nothing (misses)."""

    def __init__(self, registry) -> None:
        self.registry = registry

    def collect(self):
        held = GaugeMetricFamily(
            "genlab_prompt_cache_bytes", "RAM held by saved prompt states", labels=["model"]
        )
        budget = GaugeMetricFamily(
            "genlab_prompt_cache_capacity_bytes", "The prompt cache's RAM budget", labels=["model"]
        )
        states = GaugeMetricFamily("genlab_prompt_cache_states", "Saved prompt states", labels=["model"])
        hits = CounterMetricFamily(
            "genlab_prompt_cache_hits", "Requests that restored a saved state", labels=["model"]
        )
        misses = CounterMetricFamily(
            "genlab_prompt_cache_misses", "Requests that reused no evaluated prefix", labels=["model"]
        )
        for name in self.registry.loaded():
            cache = getattr(self.registry.load(name), "prompt_cache", None)
            if cache is None:
                continue
            stats = cache.stats()
            held.add_metric([name], stats["bytes"])
            budget.add_metric([name], stats["capacity_bytes"])
            states.add_metric([name], stats["states"])
            hits.add_metric([name], stats["hits"])
            misses.add_metric([name], stats["misses"])
        yield from (held, budget, states, hits, misses)


class MetricsObserver(Observer):
    """The pipeline's reports, counted in the server's Prometheus metrics."""

    def __init__(self, metrics: Metrics, registry) -> None:
        self.metrics, self.registry = metrics, registry

    def rejected(self, reason: str) -> None:
        self.metrics.rejected.labels(reason).inc()

    def tokens(self, model: str, prompt: int, completion: int) -> None:
        self.metrics.tokens.labels(model, "prompt").inc(prompt)
        self.metrics.tokens.labels(model, "completion").inc(completion)
        self.metrics.loaded.set(len(self.registry.loaded()))

    def queue_depth(self, model: str, depth: int) -> None:
        self.metrics.queue_depth.labels(model).set(depth)

    def first_token(self, model: str, seconds: float) -> None:
        self.metrics.ttft.labels(model).observe(seconds)

    def step(self, model: str) -> None:
        self.metrics.steps.labels(model).inc()


class RateLimiter:
    """A sliding one-minute window per API key."""

    def __init__(self) -> None:
        self._hits: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key_id: int, per_minute: int) -> None:
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key_id, deque())
            while hits and now - hits[0] > 60:
                hits.popleft()
            if len(hits) >= per_minute:
                retry = max(1, int(60 - (now - hits[0])) + 1)
                raise APIError(
                    429,
                    f"rate limit of {per_minute} requests per minute reached for this key",
                    type_="rate_limit_error",
                    code="rate_limit_exceeded",
                    headers={"Retry-After": str(retry)},
                )
            hits.append(now)


async def iterate_in_thread(make_iterator, cancelled: threading.Event, on_done=None) -> AsyncIterator:
    """Run a blocking iterator in a worker thread, handing its items to the event loop as they come.

    When the consumer goes away (a client disconnects and the response is cancelled), ``cancelled``
    is set: the thread stops pulling items and closes the iterator, which ends llama.cpp's
    generation at the next token.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    def put(kind: str, value) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is gone (server shutting down): stop working
            cancelled.set()

    def run() -> None:
        iterator: Iterator | None = None
        try:
            iterator = make_iterator()
            for item in iterator:
                if cancelled.is_set():
                    break
                put("item", item)
        except BaseException as e:  # handed to the consumer, raised there
            put("error", e)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            if on_done is not None:
                on_done()  # e.g. leave the model's queue: only once the work has really stopped
            put("done", done)

    threading.Thread(target=run, name="genlab-stream", daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "done":
                break
            if kind == "error":
                raise value
            yield value
    finally:
        cancelled.set()  # the worker stops at its next item and releases what it holds
