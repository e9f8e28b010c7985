"""Channel options that both sides agree on.

Clients ping every 30 s while calls are open; servers accept pings as often as
every 10 s, so a client is never sent GOAWAY for pinging too often. Message
sizes stay at gRPC's 4 MB default: images travel as references.
"""

from __future__ import annotations

import json

MAX_MESSAGE_BYTES = 4 * 1024 * 1024

CLIENT_KEEPALIVE_TIME_MS = 30_000
CLIENT_KEEPALIVE_TIMEOUT_MS = 10_000
SERVER_MIN_PING_INTERVAL_MS = 10_000

SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.min_ping_interval_without_data_ms", SERVER_MIN_PING_INTERVAL_MS),
    ("grpc.http2.max_ping_strikes", 2),
    ("grpc.keepalive_permit_without_calls", 0),
]

# Idempotent methods are retried on UNAVAILABLE only (a pod draining or
# restarting); everything else fails fast. LLM chat is not listed: it costs
# money, and the proxy does its own upstream retries.
IDEMPOTENT_METHODS: dict[str, list[str]] = {
    "raddiff.v1.VLMService": ["Generate", "Info"],
    "raddiff.v1.EmbeddingService": ["EmbedImages", "EmbedTexts", "EmbedImagePatches", "Info"],
    "raddiff.v1.LocalizeService": ["Grid", "Crop", "Localize"],
    "raddiff.v1.EvaluatorService": ["Judge"],
}


def service_config(service: str) -> str:
    methods = IDEMPOTENT_METHODS.get(service, [])
    config: dict[str, object] = {"loadBalancingConfig": [{"round_robin": {}}]}
    if methods:
        config["methodConfig"] = [
            {
                "name": [{"service": service, "method": m} for m in methods],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.2s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    return json.dumps(config)


def client_options(service: str) -> list[tuple[str, object]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", CLIENT_KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", CLIENT_KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", service_config(service)),
    ]
