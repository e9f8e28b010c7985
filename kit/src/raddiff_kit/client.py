"""Clients: one channel per service, reused, with a deadline on every call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc

from raddiff_kit.grpc_options import client_options


def open_channel(target: str, service: str) -> grpc.aio.Channel:
    """An aio channel to `target` (host:port, or dns:///name:port for round-robin over pods)."""
    return grpc.aio.insecure_channel(target, options=client_options(service))


@dataclass
class ServiceClient:
    """A stub bound to one shared channel and a default per-call timeout."""

    channel: grpc.aio.Channel
    stub: Any
    timeout_s: float

    async def call(self, method: str, request: Any, timeout_s: float | None = None) -> Any:
        return await getattr(self.stub, method)(request, timeout=timeout_s or self.timeout_s)

    async def close(self) -> None:
        await self.channel.close()
