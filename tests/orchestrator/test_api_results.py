"""The result model (raddiff_orchestrator.agent.results) as the API's `results` schema: OpenAPI shows its fields,
a stored result is served through it (an older one with the newer fields defaulted), and to_json round-trips
through it unchanged."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from raddiff_orchestrator.agent.results import (
    SCHEMA,
    AnalysisResult,
    BoxOut,
    Evaluation,
    ImageScore,
    IterationResult,
    RankedBrief,
    StoredResult,
    VisualSearch,
)
from tests.orchestrator.conftest import DataRoot, sets_body
from tests.report.conftest import NEWER_FINDING_KEYS, build_result, first_release


def rich_result() -> dict[str, Any]:
    """The report tests' two-iteration result: every kind of entry, built by the agent's own types."""
    uris = [f"file:///data/{g}{i}.png" for g in "ab" for i in range(4)]
    return build_result(uris[:4], uris[4:], "scratch://grid.png", [f"scratch://crop{i}.png" for i in range(8)])


def _schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return spec["components"]["schemas"][name]  # type: ignore[no-any-return]


def test_openapi_shows_the_results_fields(client_factory) -> None:
    spec = client_factory(run_worker=False).get("/openapi.json").json()
    results = _schema(spec, "AnalysisView")["properties"]["results"]
    assert {"$ref": "#/components/schemas/StoredResult"} in results["anyOf"]
    stored = _schema(spec, "StoredResult")["properties"]
    assert stored["schema"]["const"] == SCHEMA
    assert {"findings", "verdict", "supported", "evaluation", "iterations", "stage_seconds"} <= set(stored)
    assert stored["findings"]["items"] == {"$ref": "#/components/schemas/FindingResult"}
    finding = _schema(spec, "FindingResult")
    assert {"auroc", "auroc_ci", "q_value", "supported", "specific_auroc", "support", "histogram"} <= set(
        finding["properties"]
    )
    assert finding["properties"]["auroc"]["type"] == "number"
    assert finding["properties"]["supported"]["type"] == "boolean"
    # Required where every stored result has it; the fields added later default, so they are optional.
    assert {"rank", "finding", "auroc", "q_value"} <= set(finding["required"])
    assert not NEWER_FINDING_KEYS & set(finding["required"])
    assert set(_schema(spec, "Evaluation")["properties"]) >= {"scores", "acc_at_1", "backend"}


def test_to_json_round_trips_through_the_model_unchanged() -> None:
    stored = rich_result()
    again = AnalysisResult.from_json(stored).to_json()
    assert json.dumps(again) == json.dumps(stored)  # the same keys in the same order, the same numbers
    assert next(iter(stored)) == "schema" and stored["schema"] == SCHEMA
    served = StoredResult.from_json({**stored, "stage_seconds": {"rank": 1.25}})
    assert served.to_json() == {**stored, "stage_seconds": {"rank": 1.25}}


def test_floats_are_rounded_to_six_places_and_the_constructors_take_positions() -> None:
    search = VisualSearch("effusion", 0.123456789, BoxOut(0.1, 0.2, 0.3, 0.4), "model", "scratch://g.png", {})
    result = AnalysisResult(
        {"seed": 1},
        "offline",
        iterations=[IterationResult(1, feedback=[RankedBrief("effusion", 2 / 3)], searches=[search])],
        evaluation=Evaluation([2], 1.0, 1.0, "semantic"),
    )
    out = result.to_json()
    assert out["config"] == {"seed": 1} and out["proposer"] == "offline"
    assert out["iterations"][0]["feedback"] == [{"finding": "effusion", "auroc": 0.666667}]
    assert out["iterations"][0]["searches"][0]["auroc"] == 0.123457
    assert ImageScore("file:///a.png", "a", 0.5).group == "a"


def test_a_result_stored_by_an_older_agent_is_served_with_the_newer_fields_defaulted(
    client_factory, data: DataRoot
) -> None:
    client: TestClient = client_factory(run_worker=False)
    analysis_id = client.post("/v1/analyses", json=sets_body(data)).json()["id"]
    store = client.app.state.orchestrator.store  # type: ignore[attr-defined]
    claimed = store.claim("test-worker", 60, 3)
    assert claimed is not None and claimed.id == analysis_id
    old = {**first_release(rich_result()), "stage_seconds": {"rank": 0.5}, "from_the_future": 1}
    store.finish(analysis_id, "test-worker", "succeeded", result=old)
    view = client.get(f"/v1/analyses/{analysis_id}")
    assert view.status_code == 200
    results = view.json()["results"]
    assert results["verdict"] == "" and results["supported"] == 0 and results["stage_seconds"] == {"rank": 0.5}
    assert "from_the_future" not in results  # a key the model does not know is dropped, not an error
    first = results["findings"][0]
    assert (first["effect_size"], first["specific_auroc"], first["supported"], first["support"]) == (
        None, None, False, "",
    )  # fmt: skip
    assert first["auroc"] == old["findings"][0]["auroc"] and first["histogram"] == old["findings"][0]["histogram"]
