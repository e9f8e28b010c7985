"""One server interceptor for every service: errors to status codes, metrics,
in-flight gauge, and one structured log line per call."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from raddiff_kit.errors import ServiceError
from raddiff_kit.logs import log_fields
from raddiff_kit.metrics import INFLIGHT, LATENCY, REQUESTS

log = logging.getLogger("raddiff.rpc")

# Infrastructure services are not counted as work in the autoscaling signal.
_UNMETERED = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, service_name: str) -> None:
        self.service_name = service_name

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None or method.startswith(_UNMETERED):
            return handler
        inner = handler.unary_unary
        short = method.rsplit("/", 1)[-1]

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            message = ""
            INFLIGHT.labels(self.service_name).inc()
            try:
                return await inner(request, context)
            except ServiceError as exc:
                code, message = exc.code, exc.message
                await context.abort(exc.code, exc.message)
            except asyncio.CancelledError:
                # The caller went away or its deadline passed; grpc answers for us.
                code = grpc.StatusCode.CANCELLED
                raise
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception as exc:  # last line of defence: never crash the server
                code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
                log.exception("unhandled error in %s", method)
                await context.abort(code, message)
            finally:
                elapsed = time.perf_counter() - start
                INFLIGHT.labels(self.service_name).dec()
                REQUESTS.labels(self.service_name, short, code.name).inc()
                LATENCY.labels(self.service_name, short).observe(elapsed)
                log_fields(
                    log,
                    "rpc",
                    logging.WARNING if code not in (grpc.StatusCode.OK,) else logging.INFO,
                    service=self.service_name,
                    method=short,
                    code=code.name,
                    ms=round(elapsed * 1000, 2),
                    peer=context.peer(),
                    error=message or None,
                )

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
