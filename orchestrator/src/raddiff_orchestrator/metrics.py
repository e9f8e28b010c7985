"""The orchestrator's Prometheus metrics.

Counts by status come from the database at scrape time, so every replica
reports the same, true numbers; stage durations and finishes are counted by
the worker that ran them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

SUBMITTED = Counter("raddiff_orch_analyses_submitted_total", "Analyses accepted by this replica's API")
FINISHED = Counter("raddiff_orch_analyses_finished_total", "Analyses finished by this replica's worker", ["status"])
STAGE_SECONDS = Histogram(
    "raddiff_orch_stage_seconds",
    "Time an analysis spent in each stage",
    ["stage"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
WORKER_BUSY = Gauge("raddiff_orch_worker_busy", "Analyses this replica's worker is running")


class StatusCounts(Collector):
    """raddiff_orch_analyses{status}: every analysis in the database, by status."""

    def __init__(self, count_by_status: Callable[[], dict[str, int]]) -> None:
        self._count = count_by_status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("raddiff_orch_analyses", "Analyses in the database by status", labels=["status"])
        for status, n in self._count().items():
            family.add_metric([status], n)
        yield family


def exposition(app_registry: CollectorRegistry) -> bytes:
    """The process-wide metrics plus this app's database-backed ones."""
    return generate_latest(REGISTRY) + generate_latest(app_registry)
