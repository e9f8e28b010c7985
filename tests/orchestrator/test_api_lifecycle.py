"""An analysis's life through the REST API on SQLite and PostgreSQL: queued, running with stage and
progress, succeeded or failed; paging; cancel; a restart that picks up what was queued; health,
readiness and metrics. The runner is a gate, not a model: these tests are about the platform."""

from __future__ import annotations

import time
import uuid

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from raddiff_orchestrator.agent.ports import DependencyError
from raddiff_orchestrator.settings import ServiceTargets
from tests.orchestrator.conftest import DataRoot, GatedRunner, make_app, make_settings, sets_body, wait_for


def test_an_analysis_runs_to_success_and_reports_its_stages(client_factory, data: DataRoot) -> None:
    runner = GatedRunner()
    client = client_factory(runner=runner)
    analysis_id = client.post("/v1/analyses", json=sets_body(data)).json()["id"]
    running = wait_for(client, analysis_id, lambda v: v["stage"] == "first")
    assert running["status"] == "running" and running["progress"] == 0.25 and running["attempts"] == 1
    assert running["started_at"] is not None and running["finished_at"] is None
    runner.gate.set()
    done = wait_for(client, analysis_id, lambda v: v["status"] == "succeeded")
    assert done["stage"] == "done" and done["progress"] == 1.0 and done["error"] is None
    results = done["results"]
    assert results["schema"] == "raddiff.result/1" and results["notes"] == ["ran effusion"]
    assert results["ranked_images"] == {"a": 6, "b": 5} and results["findings"] == []
    assert set(results["stage_seconds"]) == {"first", "second"}
    assert "ran" not in results  # served through the result model: keys it does not know are dropped
    assert runner.started == ["effusion"]


def test_a_failing_run_is_recorded_with_its_reason(client_factory, data: DataRoot) -> None:
    runner = GatedRunner(fail_with=DependencyError("embedding EmbedImages failed: UNAVAILABLE: connection refused"))
    runner.gate.set()
    client = client_factory(runner=runner)
    analysis_id = client.post("/v1/analyses", json=sets_body(data)).json()["id"]
    failed = wait_for(client, analysis_id, lambda v: v["status"] == "failed")
    assert failed["error"] == "embedding EmbedImages failed: UNAVAILABLE: connection refused"
    assert failed["results"] is None and failed["stage"] == "failed"


def test_unexpected_errors_fail_the_analysis_not_the_worker(client_factory, data: DataRoot) -> None:
    runner = GatedRunner(fail_with=ZeroDivisionError("division by zero"))
    runner.gate.set()
    client = client_factory(runner=runner)
    first = client.post("/v1/analyses", json=sets_body(data)).json()["id"]
    assert wait_for(client, first, lambda v: v["status"] == "failed")["error"] == "ZeroDivisionError: division by zero"
    runner.fail_with = None
    second = client.post("/v1/analyses", json=sets_body(data)).json()["id"]
    assert wait_for(client, second, lambda v: v["status"] == "succeeded")  # the worker lives on


def test_paging_walks_every_analysis_once_newest_first(client_factory, data: DataRoot) -> None:
    client = client_factory(run_worker=False)
    ids = [client.post("/v1/analyses", json=sets_body(data, name=f"n{i}")).json()["id"] for i in range(7)]
    seen, token, sizes = [], None, []
    while True:
        params = {"page_size": 3, **({"page_token": token} if token else {})}
        page = client.get("/v1/analyses", params=params).json()
        sizes.append(len(page["analyses"]))
        seen += [a["id"] for a in page["analyses"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert sizes == [3, 3, 1]
    assert seen == list(reversed(ids))
    assert "results" not in client.get("/v1/analyses").json()["analyses"][0]  # listings stay small
    client.delete(f"/v1/analyses/{ids[2]}")
    cancelled = client.get("/v1/analyses", params={"status": "cancelled"}).json()
    assert [a["id"] for a in cancelled["analyses"]] == [ids[2]] and cancelled["next_page_token"] is None
    exact = client.get("/v1/analyses", params={"page_size": 7}).json()
    assert len(exact["analyses"]) == 7 and exact["next_page_token"] is None


def test_cancel_a_queued_analysis(client_factory, data: DataRoot) -> None:
    client = client_factory(run_worker=False)
    analysis_id = client.post("/v1/analyses", json=sets_body(data)).json()["id"]
    reply = client.delete(f"/v1/analyses/{analysis_id}")
    assert reply.status_code == 202
    assert reply.json()["status"] == "cancelled" and reply.json()["finished_at"] is not None
    again = client.delete(f"/v1/analyses/{analysis_id}")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]


def test_cancel_a_running_analysis_stops_it_at_its_next_step(client_factory, data: DataRoot) -> None:
    runner = GatedRunner()
    # A long heartbeat: the stop must come from the progress report at the next step.
    client = client_factory(runner=runner, heartbeat_seconds=60, lease_seconds=120)
    analysis_id = client.post("/v1/analyses", json=sets_body(data)).json()["id"]
    wait_for(client, analysis_id, lambda v: v["stage"] == "first")
    reply = client.delete(f"/v1/analyses/{analysis_id}").json()
    assert reply["status"] == "running" and reply["cancel_requested"] is True
    runner.gate.set()
    done = wait_for(client, analysis_id, lambda v: v["status"] == "cancelled")
    assert runner.finished == [] and done["results"] is None  # the second step never completed
    assert client.delete(f"/v1/analyses/{analysis_id}").status_code == 409


def test_cancel_reaches_a_run_stuck_inside_a_step(client_factory, data: DataRoot) -> None:
    runner = GatedRunner()  # never opened: the run sits inside its first step
    client = client_factory(runner=runner, heartbeat_seconds=0.1)
    analysis_id = client.post("/v1/analyses", json=sets_body(data)).json()["id"]
    wait_for(client, analysis_id, lambda v: v["stage"] == "first")
    client.delete(f"/v1/analyses/{analysis_id}")
    assert wait_for(client, analysis_id, lambda v: v["status"] == "cancelled", timeout=10)
    assert runner.finished == []


def test_a_restarted_orchestrator_runs_what_was_queued_and_keeps_what_finished(client_factory, data: DataRoot) -> None:
    api_only = client_factory(run_worker=False)
    queued = [api_only.post("/v1/analyses", json=sets_body(data, name_a=f"set{i}")).json()["id"] for i in range(3)]
    api_only.__exit__(None, None, None)  # the process stops with everything still queued

    runner = GatedRunner()
    runner.gate.set()
    restarted = client_factory(runner=runner)
    for analysis_id in queued:
        assert wait_for(restarted, analysis_id, lambda v: v["status"] == "succeeded")
    assert sorted(runner.started) == ["set0", "set1", "set2"]
    restarted.__exit__(None, None, None)

    later = client_factory(run_worker=False)
    assert {later.get(f"/v1/analyses/{i}").json()["status"] for i in queued} == {"succeeded"}


def test_stopping_the_worker_gives_running_analyses_back(client_factory, data: DataRoot) -> None:
    runner = GatedRunner()
    first = client_factory(runner=runner)
    analysis_id = first.post("/v1/analyses", json=sets_body(data)).json()["id"]
    wait_for(first, analysis_id, lambda v: v["stage"] == "first")
    first.__exit__(None, None, None)  # graceful shutdown mid-run

    second = client_factory(run_worker=False)
    view = second.get(f"/v1/analyses/{analysis_id}").json()
    assert view["status"] == "queued" and view["attempts"] == 0  # a shutdown is not a failed attempt
    second.__exit__(None, None, None)

    runner.gate.set()
    third = client_factory(runner=runner)
    assert wait_for(third, analysis_id, lambda v: v["status"] == "succeeded")["attempts"] == 1


def test_health_readiness_and_metrics(client_factory, data: DataRoot) -> None:
    runner = GatedRunner()
    runner.gate.set()
    client = client_factory(runner=runner)
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "database": "ok", "services": {}}
    analysis_id = client.post("/v1/analyses", json=sets_body(data)).json()["id"]
    wait_for(client, analysis_id, lambda v: v["status"] == "succeeded")
    text = client.get("/metrics").text
    assert 'raddiff_orch_analyses{status="succeeded"} 1.0' in text
    assert 'raddiff_orch_analyses{status="queued"} 0.0' in text
    assert 'raddiff_orch_stage_seconds_count{stage="first"}' in text
    assert "raddiff_orch_analyses_submitted_total" in text
    assert client.get("/openapi.json").json()["paths"]["/v1/analyses"]["post"]
    assert client.get("/docs").status_code == 200


def test_not_ready_while_a_configured_service_is_unreachable(client_factory) -> None:
    with_dead_service = ServiceTargets(embedding_target="127.0.0.1:1")
    client = client_factory(run_worker=False, targets=with_dead_service, health_timeout_seconds=0.5)
    started = time.monotonic()
    reply = client.get("/readyz")
    assert time.monotonic() - started < 5
    assert reply.status_code == 503
    assert reply.json()["database"] == "ok" and reply.json()["services"]["embedding"].startswith("UNREACHABLE")


def test_worker_only_replica_serves_no_api(client_factory, data: DataRoot, db_url: str) -> None:
    runner = GatedRunner()
    runner.gate.set()
    api = client_factory(run_worker=False)
    analysis_id = api.post("/v1/analyses", json=sets_body(data)).json()["id"]
    with TestClient(make_app(db_url, data, runner=runner, run_worker=True, serve_api=False)) as worker:
        assert worker.get("/healthz").status_code == 200
        assert worker.get("/v1/analyses").status_code == 404
        assert wait_for(api, analysis_id, lambda v: v["status"] == "succeeded")


@pytest.mark.parametrize("bad", ["lease_seconds", "worker_concurrency"])
def test_settings_are_checked(bad: str, db_url: str) -> None:
    values = {
        "lease_seconds": {"lease_seconds": 1.0, "heartbeat_seconds": 2.0},
        "worker_concurrency": {"worker_concurrency": -1},
    }
    with pytest.raises(ValidationError):
        make_settings(db_url, **values[bad])


def test_set_size_limit(client_factory, data: DataRoot) -> None:
    client = client_factory(run_worker=False, max_images_per_set=5)
    reply = client.post("/v1/analyses", json=sets_body(data))
    assert reply.status_code == 422 and "set A ('effusion') has 6 images; at most 5" in reply.json()["detail"]


@pytest.mark.postgres
def test_a_database_outage_is_a_503_not_a_crash(postgres_database: str, data: DataRoot) -> None:
    admin = create_engine(postgres_database, isolation_level="AUTOCOMMIT")
    name = f"raddiff_orch_outage_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_database).set(database=name).render_as_string(hide_password=False)
    try:
        with TestClient(make_app(url, data, runner=GatedRunner())) as client:
            assert client.get("/readyz").status_code == 200
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            listing = client.get("/v1/analyses")
            assert listing.status_code == 503 and "database is unavailable" in listing.json()["detail"]
            assert client.post("/v1/analyses", json=sets_body(data)).status_code == 503
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["database"].startswith("unavailable")
            assert client.get("/healthz").status_code == 200  # the process itself is fine
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
