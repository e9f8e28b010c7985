"""Work handed out by lease, on SQLite and PostgreSQL: atomic claims across replicas, takeover of
an expired lease (its worker died), fencing of the dead worker's late writes, abandonment after
too many deaths, and cancellation of an analysis whose worker died."""

from __future__ import annotations

import asyncio
import threading
import time

from sqlalchemy import update

from raddiff_orchestrator.agent.task import AnalysisTask, ImageSet
from raddiff_orchestrator.store import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, AnalysisStore, analyses
from raddiff_orchestrator.worker import Worker, WorkerOptions
from tests.orchestrator.conftest import GatedRunner


def submit(store: AnalysisStore, name: str = "A") -> str:
    task = AnalysisTask(ImageSet(name, ["file:///data/a.png"]), ImageSet("B", ["file:///data/b.png"]))
    return store.submit(task.to_json(), {"a": name}).id


def test_claims_go_oldest_first_and_a_live_lease_is_left_alone(store: AnalysisStore) -> None:
    first, second = submit(store), submit(store)
    assert store.claim("w1", 30, 3).id == first
    assert store.claim("w2", 30, 3).id == second
    assert store.claim("w3", 30, 3) is None
    held = store.get(first)
    assert held.status == RUNNING and held.lease_owner == "w1" and held.attempts == 1


def test_replicas_claiming_at_once_never_share_an_analysis(store: AnalysisStore) -> None:
    ids = {submit(store) for _ in range(24)}
    claimed: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def replica(owner: str) -> None:
        mine = AnalysisStore(store.url)  # its own engine and connections, as another process has
        barrier.wait()
        claimed[owner] = []
        while (record := mine.claim(owner, 30, 3)) is not None:
            claimed[owner].append(record.id)
        mine.dispose()

    threads = [threading.Thread(target=replica, args=(f"r{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = [i for ids_ in claimed.values() for i in ids_]
    assert sorted(everything) == sorted(ids)  # each exactly once
    for owner, mine in claimed.items():
        assert all(store.get(i).lease_owner == owner for i in mine)


async def test_an_expired_lease_is_taken_over_and_the_dead_worker_is_fenced(store: AnalysisStore) -> None:
    analysis_id = submit(store, "effusion")
    assert store.claim("dead", lease_seconds=0.3, max_attempts=3).id == analysis_id
    assert store.claim("live", 30, 3) is None  # not yet expired
    time.sleep(0.4)  # the dead worker sends no heartbeat

    runner = GatedRunner()
    runner.gate.set()
    live = Worker(store, runner, WorkerOptions(owner="live", heartbeat_seconds=0.1, lease_seconds=5))
    assert await live.run_next() == analysis_id
    record = store.get(analysis_id)
    assert record.status == SUCCEEDED and record.attempts == 2 and runner.started == ["effusion"]
    assert record.result is not None and record.result["ran"] == "effusion"

    # The dead worker wakes up: its lease is gone, so none of its writes land.
    assert not store.renew(analysis_id, "dead", 30).held
    assert not store.finish(analysis_id, "dead", FAILED, error="late")
    assert store.get(analysis_id).status == SUCCEEDED and store.get(analysis_id).error is None


async def test_a_worker_that_loses_its_lease_stops_without_writing(store: AnalysisStore) -> None:
    analysis_id = submit(store)
    runner = GatedRunner()  # stays inside its first step until the gate opens
    slow = Worker(store, runner, WorkerOptions(owner="slow", heartbeat_seconds=0.05, lease_seconds=30))
    run = asyncio.create_task(slow.run_next())
    while store.get(analysis_id).stage != "first":
        await asyncio.sleep(0.01)
    # Another replica took the analysis over (as if slow had stalled past its lease).
    with store.engine.begin() as conn:
        conn.execute(update(analyses).where(analyses.c.id == analysis_id).values(lease_owner="other"))
    assert await asyncio.wait_for(run, 10) == analysis_id
    record = store.get(analysis_id)
    assert record.status == RUNNING and record.lease_owner == "other" and runner.finished == []


def test_an_analysis_whose_workers_keep_dying_is_failed_not_retried_forever(store: AnalysisStore) -> None:
    analysis_id = submit(store)
    for attempt in range(1, 3):
        assert store.claim(f"w{attempt}", 0.01, max_attempts=2).id == analysis_id
        time.sleep(0.03)
    assert store.claim("w3", 30, max_attempts=2) is None
    record = store.get(analysis_id)
    assert record.status == FAILED and "abandoned" in (record.error or "") and record.attempts == 2


def test_cancelling_an_analysis_whose_worker_died(store: AnalysisStore) -> None:
    analysis_id = submit(store)
    store.claim("dead", 0.05, 3)
    assert store.request_cancel(analysis_id).cancel_requested
    time.sleep(0.1)
    assert store.claim("live", 30, 3) is None
    assert store.get(analysis_id).status == CANCELLED


def test_release_returns_an_analysis_to_the_queue(store: AnalysisStore) -> None:
    analysis_id = submit(store)
    store.claim("w", 30, 3)
    assert not store.release(analysis_id, "someone-else")
    assert store.release(analysis_id, "w")
    record = store.get(analysis_id)
    assert record.status == QUEUED and record.lease_owner is None and record.attempts == 0
    assert store.claim("w2", 30, 3).id == analysis_id
