"""Prometheus metrics every service exports, defined once.

raddiff_inflight_requests is the autoscaling signal: calls accepted and not
yet answered, waiting in a queue or running.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

REQUESTS = Counter(
    "raddiff_grpc_requests_total", "gRPC calls answered", ["service", "method", "code"]
)
LATENCY = Histogram(
    "raddiff_grpc_request_seconds",
    "gRPC call latency",
    ["service", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
INFLIGHT = Gauge("raddiff_inflight_requests", "gRPC calls accepted and not yet answered", ["service"])
QUEUE_DEPTH = Gauge("raddiff_queue_depth", "Work items waiting for an engine", ["service"])
BATCH_SIZE = Histogram(
    "raddiff_batch_size", "Items per engine batch", ["service"], buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    if port:
        start_http_server(port, addr=host)
