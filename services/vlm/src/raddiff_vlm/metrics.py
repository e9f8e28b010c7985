"""The VLM service's own Prometheus metrics, registered once."""

from __future__ import annotations

import threading

from prometheus_client import Counter, Gauge

PROMPT_TOKENS = Counter("raddiff_vlm_prompt_tokens_total", "Prompt tokens decoded, images included", ["engine"])
GENERATED_TOKENS = Counter("raddiff_vlm_generated_tokens_total", "Tokens generated", ["engine"])
ABANDONED = Counter(
    "raddiff_vlm_abandoned_requests_total",
    "Requests whose decoding was stopped early because the caller's deadline passed or the caller went away",
    ["engine", "reason"],
)
# The engine's own queue, the autoscaling signal: with vLLM these are its scheduler's figures.
REQUESTS_RUNNING = Gauge(
    "raddiff_vlm_engine_requests_running", "Requests the engine is decoding in its current batch", ["engine"]
)
REQUESTS_WAITING = Gauge(
    "raddiff_vlm_engine_requests_waiting", "Requests the engine accepted and has not started decoding", ["engine"]
)
KV_CACHE_USAGE = Gauge(
    "raddiff_vlm_engine_kv_cache_usage_ratio", "Fraction of the engine's KV cache in use (vLLM only)", ["engine"]
)


class QueueFigures:
    """Waiting and running requests of an engine that has no scheduler of its own to ask.

    accepted() is called on the event loop, running() from the batch thread; the
    lock keeps waiting = accepted - running consistent between them.
    """

    def __init__(self, engine: str) -> None:
        self._lock = threading.Lock()
        self._accepted = 0
        self._running = 0
        self._waiting_gauge = REQUESTS_WAITING.labels(engine)
        self._running_gauge = REQUESTS_RUNNING.labels(engine)

    def accepted(self, delta: int) -> None:
        with self._lock:
            self._accepted += delta
            self._publish()

    def running(self, count: int) -> None:
        with self._lock:
            self._running = count
            self._publish()

    def _publish(self) -> None:
        self._running_gauge.set(self._running)
        self._waiting_gauge.set(max(0, self._accepted - self._running))
