"""The worker: claims analyses, runs the agent on them, records the outcome.

It runs as asyncio tasks inside the API process or alone (`raddiff-orchestrator
worker`). Each slot claims one analysis at a time under a lease, renews the
lease by heartbeat, and stops the run when the analysis is cancelled or the
lease is lost. On shutdown, runs in flight are stopped and their analyses go
back to the queue for another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from raddiff_kit.logs import log_fields
from raddiff_orchestrator.agent.ports import AnalysisCancelled, DependencyError, Progress
from raddiff_orchestrator.agent.task import AnalysisTask
from raddiff_orchestrator.metrics import FINISHED, STAGE_SECONDS, WORKER_BUSY
from raddiff_orchestrator.store import CANCELLED, FAILED, SUCCEEDED, AnalysisRecord, AnalysisStore

log = logging.getLogger("raddiff.orchestrator.worker")

# What runs an analysis: the agent in production, anything with the same shape in tests.
AnalysisRunner = Callable[[AnalysisTask, Progress], Awaitable[dict[str, Any]]]

_PROGRESS_WRITE_INTERVAL_S = 0.5  # progress inside a stage is written at most this often


class LeaseLost(Exception):
    """Another worker owns the analysis now; this one must stop without writing."""


@dataclass(frozen=True)
class WorkerOptions:
    owner: str
    concurrency: int = 1
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 10.0
    poll_seconds: float = 1.0
    max_attempts: int = 3


@dataclass
class _Run:
    """One claimed analysis while it runs."""

    record: AnalysisRecord
    stop_reason: str = ""  # "cancel", "lost" or "shutdown" once someone decided to stop it
    stage: str = ""
    fraction: float = 0.0
    stage_started: float = field(default_factory=time.monotonic)
    last_write: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def enter_stage(self, stage: str) -> None:
        """Close the current stage (its time goes to the result and the histogram) and open `stage`."""
        now = time.monotonic()
        if self.stage and self.stage != "done":
            elapsed = now - self.stage_started
            self.stage_seconds[self.stage] = round(self.stage_seconds.get(self.stage, 0.0) + elapsed, 4)
            STAGE_SECONDS.labels(self.stage).observe(elapsed)
        self.stage, self.stage_started = stage, now


class Worker:
    def __init__(self, store: AnalysisStore, runner: AnalysisRunner, options: WorkerOptions) -> None:
        self.store = store
        self.runner = runner
        self.options = options
        self._slots: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()

    @property
    def owner(self) -> str:
        return self.options.owner

    def start(self) -> None:
        if self._slots:
            return
        self._slots = [
            asyncio.create_task(self._slot(), name=f"worker-slot-{i}") for i in range(self.options.concurrency)
        ]
        log_fields(log, "worker started", owner=self.owner, concurrency=self.options.concurrency)

    def notify(self) -> None:
        """Something was queued: idle slots look now instead of at their next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop every slot; analyses in flight go back to the queue."""
        for slot in self._slots:
            slot.cancel()
        await asyncio.gather(*self._slots, return_exceptions=True)
        self._slots = []
        log_fields(log, "worker stopped", owner=self.owner)

    async def run_next(self) -> str | None:
        """Claim and run one analysis; its id, or None when nothing was claimable."""
        record = await asyncio.to_thread(
            self.store.claim, self.owner, self.options.lease_seconds, self.options.max_attempts
        )
        if record is None:
            return None
        await self._process(record)
        return record.id

    async def _slot(self) -> None:
        failures = 0
        while True:
            try:
                ran = await self.run_next()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is down or hiccuped: keep the slot alive, back off, retry
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    log.exception("worker slot cannot reach the database (failure %d); retrying", failures)
                ran = None
            if ran is None:
                self._wake.clear()
                # Jitter keeps idle replicas from polling in lockstep; failures back off up to 30 s.
                backoff = min(self.options.poll_seconds * 2**failures, 30.0) if failures else self.options.poll_seconds
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), backoff * random.uniform(0.8, 1.2))

    async def _process(self, record: AnalysisRecord) -> None:
        run = _Run(record)
        WORKER_BUSY.inc()
        log_fields(log, "claimed", analysis=record.id, owner=self.owner, attempt=record.attempts)
        work = asyncio.create_task(self._execute(run))
        beat = asyncio.create_task(self._heartbeat(run, work))
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            if not work.done():  # this slot is being stopped, not the run
                run.stop_reason = run.stop_reason or "shutdown"
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
                await asyncio.to_thread(self.store.release, record.id, self.owner)
                log_fields(log, "released", analysis=record.id, owner=self.owner)
            raise
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            WORKER_BUSY.dec()

    async def _execute(self, run: _Run) -> None:
        record = run.record
        outcome: tuple[str, dict[str, Any] | None, str | None]
        try:
            task = AnalysisTask.from_json(record.task or {})
            result = await self.runner(task, self._progress(run))
            run.enter_stage("done")
            outcome = (SUCCEEDED, {**result, "stage_seconds": run.stage_seconds}, None)
        except AnalysisCancelled:
            outcome = (CANCELLED, None, None)
        except LeaseLost:
            outcome = ("", None, None)
        except asyncio.CancelledError:
            # The heartbeat stopped it mid-step (cancelled, or the lease is gone); anything else
            # (the worker shutting down) propagates, and the slot gives the analysis back.
            if run.stop_reason == "cancel":
                outcome = (CANCELLED, None, None)
            elif run.stop_reason == "lost":
                outcome = ("", None, None)
            else:
                raise
        except DependencyError as exc:
            outcome = (FAILED, None, str(exc))
        except Exception as exc:  # any failure of one analysis is recorded on it, never crashes the worker
            log.exception("analysis %s failed", record.id)
            outcome = (FAILED, None, f"{type(exc).__name__}: {exc}")
        status, result, error = outcome
        run.enter_stage("done")  # a failed or cancelled run's last stage is timed as well
        if not status:
            log_fields(log, "lease lost", level=logging.WARNING, analysis=record.id, owner=self.owner)
            return
        written = await asyncio.to_thread(self.store.finish, record.id, self.owner, status, result, error)
        if written:
            FINISHED.labels(status).inc()
        log_fields(
            log,
            "finished" if written else "finished after losing the lease; outcome dropped",
            analysis=record.id,
            status=status,
            error=error,
        )

    def _progress(self, run: _Run) -> Progress:
        async def progress(stage: str, fraction: float) -> None:
            # Concurrent work inside a step may report out of order; what is stored never goes back.
            run.fraction = fraction = max(fraction, run.fraction)
            now = time.monotonic()
            new_stage = stage != run.stage
            if new_stage:
                run.enter_stage(stage)
            elif now - run.last_write < _PROGRESS_WRITE_INTERVAL_S:
                return
            run.last_write = now
            lease = await asyncio.to_thread(
                self.store.renew, run.record.id, self.owner, self.options.lease_seconds, stage, round(fraction, 4)
            )
            if not lease.held:
                raise LeaseLost(run.record.id)
            if lease.cancel_requested:
                run.stop_reason = "cancel"
                raise AnalysisCancelled(run.record.id)

        return progress

    async def _heartbeat(self, run: _Run, work: asyncio.Task[None]) -> None:
        """Keep the lease; stop the run mid-step when it is cancelled or the lease is gone."""
        while not work.done():
            await asyncio.sleep(self.options.heartbeat_seconds)
            try:
                lease = await asyncio.to_thread(self.store.renew, run.record.id, self.owner, self.options.lease_seconds)
            except Exception:  # a missed beat is retried; the lease outlasts several
                log.exception("heartbeat for %s failed", run.record.id)
                continue
            if not lease.held or lease.cancel_requested:
                run.stop_reason = "lost" if not lease.held else "cancel"
                work.cancel()
                return
