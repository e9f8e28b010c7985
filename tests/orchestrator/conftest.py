"""Fixtures for the orchestrator: a data root with real image files, both databases,
an app factory, and runners that are not models (they wait on a gate and record what ran)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from raddiff_kit.settings import SharedSettings
from raddiff_orchestrator.agent.ports import Progress
from raddiff_orchestrator.agent.results import AnalysisResult
from raddiff_orchestrator.agent.task import AnalysisTask
from raddiff_orchestrator.app import create_app
from raddiff_orchestrator.settings import OrchestratorSettings, ServiceTargets
from raddiff_orchestrator.store import AnalysisStore, metadata

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

POSTGRES_URL = os.environ.get("RADDIFF_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# -- images -------------------------------------------------------------------------------
@dataclass
class DataRoot:
    root: Path
    outside: Path  # a folder beside the root, not inside it
    set_a: list[Path]
    set_b: list[Path]


def _write_images(folder: Path, prefix: str, count: int, level: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}{i:02d}.png"
        image = Image.effect_noise((48, 40), 20 + i).point(lambda v, lv=level: min(255, v // 2 + lv))
        image.save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DataRoot:
    base = tmp_path_factory.mktemp("orch-data")
    root = base / "root"
    outside = base / "outside"
    set_a = _write_images(root / "a", "a", 6, 100)
    set_b = _write_images(root / "b", "b", 5, 20)
    _write_images(outside, "secret", 1, 50)
    _write_images(root / "extra", "x", 1, 70)  # under the root, in neither set
    (root / "notes.png").write_text("FINDINGS: this is text, not an image")
    whole = (root / "a" / "a00.png").read_bytes()
    (root / "cut.png").write_bytes(whole[: len(whole) // 2])
    (root / "link-out.png").symlink_to(outside / "secret00.png")
    return DataRoot(root, outside, set_a, set_b)


# -- databases ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of its own on the test PostgreSQL server, dropped at the end."""
    admin_url = make_url(POSTGRES_URL)
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect means no server here
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL}: {type(exc).__name__}")
    name = f"raddiff_orch_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orchestrator.db'}"
    url = request.getfixturevalue("postgres_database")
    engine = create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture()
def store(db_url: str) -> Iterator[AnalysisStore]:
    store = AnalysisStore(db_url)
    store.create_schema()
    yield store
    store.dispose()


# -- runners that are not models ---------------------------------------------------------------
@dataclass
class GatedRunner:
    """Reports a first stage, waits until the test opens the gate, reports a second stage, returns.

    It stands for the agent where a test is about the API, persistence or leases; it is not a
    model and produces no model output, only a record of what it ran.
    """

    gate: threading.Event = field(default_factory=threading.Event)
    started: list[str] = field(default_factory=list)  # set A's name of each task started
    finished: list[str] = field(default_factory=list)
    fail_with: Exception | None = None
    report_while_waiting: bool = True

    async def __call__(self, task: AnalysisTask, progress: Progress) -> dict[str, Any]:
        self.started.append(task.set_a.name)
        await progress("first", 0.25)
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        if self.fail_with is not None:
            raise self.fail_with
        await progress("second", 0.75)
        self.finished.append(task.set_a.name)
        # A valid raddiff.result/1 (the API serves results typed), with no findings; "ran" and "images" record
        # what it ran for tests that read the store (the API drops keys the result model does not know).
        ranked = {"a": len(task.set_a.uris), "b": len(task.set_b.uris)}
        result = AnalysisResult(config={}, proposer="gated", ranked_images=ranked, notes=[f"ran {task.set_a.name}"])
        return {**result.to_json(), "ran": task.set_a.name, "images": [ranked["a"], ranked["b"]]}


# -- the app ---------------------------------------------------------------------------------
def make_settings(db_url: str, **overrides: Any) -> OrchestratorSettings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "worker_concurrency": 1,
        "lease_seconds": 5.0,
        "heartbeat_seconds": 0.2,
        "poll_seconds": 0.05,
        "validation_threads": 2,
    }
    values.update(overrides)
    return OrchestratorSettings(**values)


def make_app(
    db_url: str,
    data: DataRoot,
    runner: Any = None,
    run_worker: bool = True,
    targets: ServiceTargets | None = None,
    serve_api: bool = True,
    **overrides: Any,
):
    return create_app(
        make_settings(db_url, **overrides),
        shared=SharedSettings(data_roots=str(data.root), scratch_dir=data.root.parent / "scratch"),
        targets=targets or ServiceTargets(),
        runner=runner,
        run_worker=run_worker,
        serve_api=serve_api,
    )


@pytest.fixture()
def client_factory(db_url: str, data: DataRoot) -> Iterator[Callable[..., TestClient]]:
    """Opens apps on this test's database; each is closed (lifespan exit) at the end."""
    opened: list[TestClient] = []

    def factory(**kwargs: Any) -> TestClient:
        client = TestClient(make_app(db_url, data, **kwargs))
        client.__enter__()
        opened.append(client)
        return client

    yield factory
    for client in reversed(opened):
        client.__exit__(None, None, None)


def sets_body(data: DataRoot, **extra: Any) -> dict[str, Any]:
    return {
        "input": {
            "kind": "sets",
            "set_a": [str(p) for p in data.set_a],
            "set_b": [p.as_uri() for p in data.set_b],
            "name_a": extra.pop("name_a", "effusion"),
            "name_b": "normal",
        },
        **extra,
    }


def wait_for(client: TestClient, analysis_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20):
    end = time.monotonic() + timeout
    while True:
        view = client.get(f"/v1/analyses/{analysis_id}").json()
        if predicate(view):
            return view
        if time.monotonic() > end:
            raise AssertionError(f"analysis never reached the expected state; last seen {view}")
        time.sleep(0.02)
