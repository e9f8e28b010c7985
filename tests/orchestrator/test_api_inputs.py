"""POST /v1/analyses: the three ways to name two sets, and every kind of bad input answered with a
4xx that names the problem, with nothing stored. The worker is off: these tests are about input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.orchestrator.conftest import DataRoot, make_app, sets_body


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], scope="module")
def client(
    request: pytest.FixtureRequest, data: DataRoot, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'orchestrator.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    with TestClient(make_app(url, data, run_worker=False, max_rank_images_per_set=500)) as client:
        yield client


@pytest.fixture(scope="module")
def manifests(data: DataRoot) -> dict[str, Path]:
    folder = data.root / "manifests"
    folder.mkdir(exist_ok=True)
    rows = ["path,group_name,report"]
    rows += [f"../a/{p.name},effusion,Small left pleural effusion." for p in data.set_a]
    rows += [f"{p},normal," for p in data.set_b]  # absolute paths are fine too
    (folder / "sets.csv").write_text("\n".join(rows) + "\n")
    (folder / "no-group.csv").write_text("path,label\n../a/a00.png,effusion\n")
    lines = [
        {
            "set1": "effusion",
            "set2": "normal",
            "set1_images": [f"../a/{p.name}" for p in data.set_a],
            "set2_images": [str(p) for p in data.set_b],
        },
        {
            "set1": "normal",
            "set2": "effusion",
            "set1_images": [str(p) for p in data.set_b],
            "set2_images": [str(p) for p in data.set_a],
        },
    ]
    (folder / "bench.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    (folder / "broken.jsonl").write_text(json.dumps(lines[0]) + "\n{not json\n")
    (data.outside / "out.csv").write_text("path,group_name\n")
    return {p.stem: p for p in folder.iterdir()} | {"outside": data.outside / "out.csv"}


def post(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post("/v1/analyses", json=body)


# -- good input ----------------------------------------------------------------------------------
def test_sets_are_accepted_with_canonical_uris_and_reports(client: TestClient, data: DataRoot) -> None:
    body = sets_body(data, reports={str(data.set_a[0]): "Left pleural effusion."}, name="first")
    body["input"]["set_a"].append(str(data.set_a[0]))  # a repeated image counts once
    reply = post(client, body)
    assert reply.status_code == 202, reply.text
    assert reply.headers["location"] == f"/v1/analyses/{reply.json()['id']}"
    view = client.get(reply.json()["url"]).json()
    assert view["status"] == "queued" and view["stage"] == "queued" and view["progress"] == 0.0
    assert view["sets"] == {"a": {"name": "effusion", "images": 6}, "b": {"name": "normal", "images": 5}}
    # RadDiff's defaults, with the images ranked resolved to this deployment's ceiling
    assert view["config"]["ranker"]["max_num_samples"] == 500 and view["config"]["proposer"]["num_samples"] == 20
    assert view["config"]["num_iterations"] == 2 and view["config"]["proposer"]["num_rounds"] == 3
    assert view["ground_truth"] is None and view["results"] is None and view["name"] == "first"


def test_csv_with_relative_paths_and_report_column(client: TestClient, manifests: dict[str, Path]) -> None:
    body = {
        "input": {"kind": "csv", "path": str(manifests["sets"]), "group_a": "effusion", "group_b": "normal"},
        "ground_truth": {"a": "pleural effusion", "b": "no findings"},
        "config": {"proposer": {"num_samples": 3}, "seed": 9, "ranker": {"max_num_samples": 4}},
    }
    reply = post(client, body)
    assert reply.status_code == 202, reply.text
    view = client.get(reply.json()["url"]).json()
    assert view["sets"]["a"] == {"name": "effusion", "images": 6}
    assert view["ground_truth"] == {"a": "pleural effusion", "b": "no findings"}
    assert view["config"]["seed"] == 9 and view["config"]["ranker"]["max_num_samples"] == 4


@pytest.mark.parametrize("choose", [{"pair_index": 1}, {"set1": "normal", "set2": "effusion"}])
def test_jsonl_pair_by_index_or_names_brings_its_ground_truth(
    client: TestClient, manifests: dict[str, Path], choose: dict[str, Any]
) -> None:
    reply = post(client, {"input": {"kind": "jsonl", "path": manifests["bench"].as_uri(), **choose}})
    assert reply.status_code == 202, reply.text
    view = client.get(reply.json()["url"]).json()
    assert view["sets"] == {"a": {"name": "normal", "images": 5}, "b": {"name": "effusion", "images": 6}}
    assert view["ground_truth"] == {"a": "normal", "b": "effusion"}


# -- bad input -----------------------------------------------------------------------------------
def _sets(data: DataRoot, a: list[str] | None = None, b: list[str] | None = None) -> dict[str, Any]:
    body = sets_body(data)
    if a is not None:
        body["input"]["set_a"] = a
    if b is not None:
        body["input"]["set_b"] = b
    return body


BAD_CASES: dict[str, tuple[Any, int, str]] = {
    # name: (body builder, status, text the message must contain)
    "missing file": (lambda d, m: _sets(d, a=[str(d.root / "a" / "nope.png")]), 404, "does not exist"),
    "dotdot out of the root": (
        lambda d, m: _sets(d, a=[f"{d.root}/../outside/secret00.png"]),
        422,
        "outside the data roots",
    ),
    "symlink out of the root": (lambda d, m: _sets(d, b=[str(d.root / "link-out.png")]), 422, "outside the data roots"),
    "not an image": (lambda d, m: _sets(d, a=[str(d.root / "notes.png")]), 422, "is not an image"),
    "truncated image": (lambda d, m: _sets(d, a=[str(d.root / "cut.png")]), 422, "truncated"),
    "empty set": (lambda d, m: _sets(d, b=[]), 422, "set B ('normal') has no images"),
    "relative path": (lambda d, m: _sets(d, a=["a/a00.png"]), 422, "neither an absolute path nor a file:/// uri"),
    "remote uri": (lambda d, m: _sets(d, a=["http://example.org/x.png"]), 422, "unsupported scheme"),
    "image in both sets": (lambda d, m: _sets(d, b=[str(d.set_a[0])]), 422, "in both sets"),
    "unknown group": (
        lambda d, m: {"input": {"kind": "csv", "path": str(m["sets"]), "group_a": "effusion", "group_b": "edema"}},
        422,
        "group 'edema' is not in CSV file",
    ),
    "same group twice": (
        lambda d, m: {"input": {"kind": "csv", "path": str(m["sets"]), "group_a": "normal", "group_b": "normal"}},
        422,
        "two different groups",
    ),
    "csv without the columns": (
        lambda d, m: {"input": {"kind": "csv", "path": str(m["no-group"]), "group_a": "x", "group_b": "y"}},
        422,
        "lacks the column(s) ['group_name']",
    ),
    "missing csv": (
        lambda d, m: {"input": {"kind": "csv", "path": str(d.root / "nope.csv"), "group_a": "x", "group_b": "y"}},
        404,
        "CSV file",
    ),
    "csv outside the roots": (
        lambda d, m: {"input": {"kind": "csv", "path": str(m["outside"]), "group_a": "x", "group_b": "y"}},
        422,
        "outside the data roots",
    ),
    "jsonl pair index out of range": (
        lambda d, m: {"input": {"kind": "jsonl", "path": str(m["bench"]), "pair_index": 2}},
        422,
        "pair_index 2 is out of range",
    ),
    "jsonl unknown set names": (
        lambda d, m: {"input": {"kind": "jsonl", "path": str(m["bench"]), "set1": "edema", "set2": "normal"}},
        422,
        "no pair",
    ),
    "malformed jsonl line": (
        lambda d, m: {"input": {"kind": "jsonl", "path": str(m["broken"]), "pair_index": 0}},
        422,
        "line 2 is not valid JSON",
    ),
    "jsonl chosen two ways": (
        lambda d, m: {"input": {"kind": "jsonl", "path": str(m["bench"]), "pair_index": 0, "set1": "a", "set2": "b"}},
        422,
        "either by pair_index or by both set1 and set2",
    ),
    "unknown field": (lambda d, m: {**_sets(d), "colour": "blue"}, 422, "colour"),
    "unknown input kind": (lambda d, m: {"input": {"kind": "zip", "path": "/x"}}, 422, "kind"),
    "rank cap over the ceiling": (
        lambda d, m: {**_sets(d), "config": {"ranker": {"max_num_samples": 501}}},
        422,
        "ceiling of 500",
    ),
    "first-version rank cap over the ceiling": (
        lambda d, m: {**_sets(d), "config": {"rank_cap": 501}},
        422,
        "max_num_samples 501",
    ),
    "min over max findings": (
        lambda d, m: {**_sets(d), "config": {"min_findings": 9, "max_findings": 5}},
        422,
        "min_hypotheses",
    ),
    "unknown config key": (lambda d, m: {**_sets(d), "config": {"proposer": {"num_round": 2}}}, 422, "num_round"),
    "bad config value": (lambda d, m: {**_sets(d), "config": {"num_iterations": 0}}, 422, "num_iterations"),
    "unknown proposer method": (lambda d, m: {**_sets(d), "config": {"proposer": {"method": "magic"}}}, 422, "method"),
    "llm dedup without an llm": (
        lambda d, m: {**_sets(d), "config": {"proposer": {"method": "offline"}, "dedup": {"method": "llm"}}},
        422,
        "dedup.method is 'llm'",
    ),
    "report for an image in neither set": (
        lambda d, m: {**_sets(d), "reports": {str(d.root / "extra" / "x00.png"): "x"}},
        422,
        "in neither set",
    ),
    "llm proposer without an llm": (
        lambda d, m: {**_sets(d), "config": {"proposer": "llm"}},
        422,
        "RADDIFF_LLM_TARGET",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_is_refused_with_a_message_that_names_it(
    client: TestClient, data: DataRoot, manifests: dict[str, Path], case: str
) -> None:
    build, status, message = BAD_CASES[case]
    before = client.get("/v1/analyses", params={"page_size": 200}).json()["analyses"]
    reply = post(client, build(data, manifests))
    assert reply.status_code == status, reply.text
    assert message in json.dumps(reply.json()), reply.text
    after = client.get("/v1/analyses", params={"page_size": 200}).json()["analyses"]
    assert after == before  # nothing was stored


def test_every_bad_image_is_listed(client: TestClient, data: DataRoot) -> None:
    reply = post(client, _sets(data, a=[str(data.set_a[0]), str(data.root / "notes.png"), str(data.root / "cut.png")]))
    assert reply.status_code == 422
    body = reply.json()
    assert body["detail"].startswith("2 of 8 images cannot be used")
    assert len(body["problems"]) == 2 and "notes.png" in body["problems"][0] and "cut.png" in body["problems"][1]


def test_malformed_json_body(client: TestClient) -> None:
    broken = b'{"input": {"kind": "sets",'
    reply = client.post("/v1/analyses", content=broken, headers={"content-type": "application/json"})
    assert reply.status_code == 422
    assert "JSON decode error" in reply.text


def test_unknown_analysis_and_bad_page_token(client: TestClient) -> None:
    assert client.get("/v1/analyses/nope").status_code == 404
    assert "no analysis has id 'nope'" in client.get("/v1/analyses/nope").json()["detail"]
    assert client.delete("/v1/analyses/nope").status_code == 404
    reply = client.get("/v1/analyses", params={"page_token": "garbage!"})
    assert reply.status_code == 400 and "page_token" in reply.json()["detail"]
    assert client.get("/v1/analyses", params={"page_size": 0}).status_code == 422
    assert client.get("/v1/analyses", params={"page_size": 10_000}).status_code == 422
    assert client.get("/v1/analyses", params={"status": "sleeping"}).status_code == 422
