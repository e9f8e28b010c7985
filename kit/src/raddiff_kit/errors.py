"""Domain errors that carry the gRPC status they map to.

Engines and servicers raise these; the kit's interceptor turns them into
status codes, so no servicer builds a status by hand.
"""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def within(self, where: str) -> ServiceError:
        """The same error with where it happened in the request (e.g. "images[3]") before its message."""
        return type(self)(f"{where}: {self.message}")


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(ServiceError):
    code = grpc.StatusCode.UNIMPLEMENTED
