"""Deadlines reach the engines: work that outlives its caller is not started,
and long-running engines can poll `expired()` and stop."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from raddiff_kit.errors import DeadlineExceeded

T = TypeVar("T")


@dataclass(frozen=True)
class Deadline:
    """An absolute time.monotonic() instant, or None for no deadline."""

    at: float | None = None

    @classmethod
    def from_context(cls, context: grpc.aio.ServicerContext) -> Deadline:
        remaining = context.time_remaining()
        return cls(None if remaining is None else time.monotonic() + remaining)

    def remaining(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()

    def expired(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def check(self) -> None:
        if self.expired():
            raise DeadlineExceeded("the caller's deadline passed before the work finished")


async def run_blocking(deadline: Deadline, fn: Callable[..., T], *args: object) -> T:
    """Run CPU-bound engine work in a thread, refusing it if the deadline already passed."""
    deadline.check()
    ctx = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(None, lambda: ctx.run(fn, *args))
