"""Micro-batching: concurrent calls' items are run through the engine together.

Callers submit a list of items and await their results; a single worker
drains the queue in batches of up to max_batch items, waiting at most
max_wait_s for a batch to fill. Items whose caller's deadline has passed are
dropped before the engine sees them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from raddiff_kit.deadlines import Deadline
from raddiff_kit.errors import DeadlineExceeded
from raddiff_kit.metrics import BATCH_SIZE, QUEUE_DEPTH

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class _Item(Generic[In, Out]):
    value: In
    deadline: Deadline
    future: asyncio.Future[Out] = field(repr=False)


class MicroBatcher(Generic[In, Out]):
    def __init__(
        self,
        run_batch: Callable[[list[In]], Sequence[Out]],
        service_name: str,
        max_batch: int = 32,
        max_wait_s: float = 0.01,
    ) -> None:
        self._run_batch = run_batch
        self._service = service_name
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._queue: asyncio.Queue[_Item[In, Out]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, values: Sequence[In], deadline: Deadline) -> list[Out]:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        loop = asyncio.get_running_loop()
        items = [_Item(v, deadline, loop.create_future()) for v in values]
        for item in items:
            self._queue.put_nowait(item)
        QUEUE_DEPTH.labels(self._service).set(self._queue.qsize())
        try:
            return list(await asyncio.gather(*(i.future for i in items)))
        except asyncio.CancelledError:
            for item in items:
                item.future.cancel()
            raise

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            end = loop.time() + self._max_wait_s
            while len(batch) < self._max_batch:
                timeout = end - loop.time()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except TimeoutError:
                    break
            QUEUE_DEPTH.labels(self._service).set(self._queue.qsize())
            live = []
            for item in batch:
                if item.future.done():
                    continue  # the caller was cancelled
                if item.deadline.expired():
                    item.future.set_exception(DeadlineExceeded("deadline passed while queued"))
                    continue
                live.append(item)
            if not live:
                continue
            BATCH_SIZE.labels(self._service).observe(len(live))
            try:
                outputs = await loop.run_in_executor(None, self._run_batch, [i.value for i in live])
            except Exception as exc:  # noqa: BLE001 - the error belongs to the callers
                for item in live:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            for item, out in zip(live, outputs, strict=True):
                if not item.future.done():
                    item.future.set_result(out)
