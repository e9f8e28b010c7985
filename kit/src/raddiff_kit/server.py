"""The one server lifecycle every RadDiff service uses.

serve() builds a grpc.aio server with the kit's interceptor, registers the
service(s), grpc.health.v1 and reflection, exposes Prometheus metrics, and on
SIGTERM or SIGINT marks itself NOT_SERVING, stops accepting calls, finishes
in-flight ones (up to drain_seconds) and exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from raddiff_kit.grpc_options import SERVER_OPTIONS
from raddiff_kit.interceptor import ServiceInterceptor
from raddiff_kit.logs import configure_logging, log_fields
from raddiff_kit.metrics import serve_metrics
from raddiff_kit.settings import ServiceSettings, SharedSettings, load_settings

log = logging.getLogger("raddiff.server")


@dataclass
class Registration:
    """A servicer and how to add it: the generated add_XServicer_to_server and its full name."""

    servicer: object
    add_to_server: Callable[[object, grpc.aio.Server], None]
    full_name: str


@dataclass
class ServiceApp:
    name: str
    settings: ServiceSettings
    registrations: list[Registration]
    # Runs before the server starts (model loading); a startup probe waits on it.
    on_start: Callable[[], Awaitable[None]] | None = None
    on_stop: Callable[[], Awaitable[None]] | None = None
    # Whether the engine can still answer. A dead engine (vLLM's engine core gone) turns the health status to
    # NOT_SERVING, so the liveness probe restarts the pod instead of it answering UNAVAILABLE forever.
    engine_healthy: Callable[[], bool] | None = None
    health_check_seconds: float = 5.0
    health: health.aio.HealthServicer = field(default_factory=health.aio.HealthServicer)
    _watcher: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    async def build(self) -> grpc.aio.Server:
        server = grpc.aio.server(
            interceptors=[ServiceInterceptor(self.name)],
            options=SERVER_OPTIONS,
            maximum_concurrent_rpcs=self.settings.max_concurrent_rpcs,
        )
        for reg in self.registrations:
            reg.add_to_server(reg.servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = [r.full_name for r in self.registrations]
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        await self._set_status(health_pb2.HealthCheckResponse.NOT_SERVING)
        return server

    async def _set_status(self, status: int) -> None:
        for name in ["", *(r.full_name for r in self.registrations)]:
            await self.health.set(name, status)

    async def start(self, address: str) -> tuple[grpc.aio.Server, int]:
        """Load the engine, bind `address` (port 0 picks a free one) and serve; returns the bound port."""
        server = await self.build()
        port = server.add_insecure_port(address)
        if port == 0:
            raise SystemExit(f"{self.name}: cannot bind gRPC address {address}")
        # Engines load before the port accepts calls, so no servicer ever runs without one.
        if self.on_start is not None:
            await self.on_start()
        await server.start()
        await self._set_status(health_pb2.HealthCheckResponse.SERVING)
        if self.engine_healthy is not None:
            self._watcher = asyncio.create_task(self._watch_engine(self.engine_healthy))
        return server, port

    async def _watch_engine(self, healthy: Callable[[], bool]) -> None:
        serving = True
        while True:
            await asyncio.sleep(self.health_check_seconds)
            now = healthy()
            if now != serving:
                serving = now
                state = health_pb2.HealthCheckResponse.SERVING if now else health_pb2.HealthCheckResponse.NOT_SERVING
                await self._set_status(state)
                log_fields(log, "engine healthy" if now else "engine unhealthy: NOT_SERVING", service=self.name)

    async def drain(self, server: grpc.aio.Server) -> None:
        """Refuse new calls, finish in-flight ones within drain_seconds, release the engine."""
        if self._watcher is not None:
            self._watcher.cancel()
        await self._set_status(health_pb2.HealthCheckResponse.NOT_SERVING)
        await server.stop(grace=self.settings.drain_seconds)
        if self.on_stop is not None:
            await self.on_stop()

    async def run(self) -> None:
        serve_metrics(self.settings.metrics_port, self.settings.host)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log_fields(log, "starting", service=self.name, metrics_port=self.settings.metrics_port)
        server, port = await self.start(f"{self.settings.host}:{self.settings.grpc_port}")
        log_fields(log, "serving", service=self.name, grpc_port=port)
        await stop.wait()
        log_fields(log, "draining", service=self.name, grace_s=self.settings.drain_seconds)
        await self.drain(server)
        log_fields(log, "stopped", service=self.name)


def main(app_factory: Callable[[], ServiceApp]) -> None:
    """Console entry point shared by every service."""
    configure_logging(load_settings(SharedSettings).log_level)
    app = app_factory()
    asyncio.run(app.run())
