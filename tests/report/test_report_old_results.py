"""The report reads a stored result through the agent's result model: a result stored by an older agent (before
Cohen's d, the specificity test and the verdict) still renders, without the marks it cannot support."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from raddiff_orchestrator.report.render import render_report
from raddiff_orchestrator.report.view import build_view
from tests.report.conftest import FINDINGS, Analyses, first_release


def record_with(analyses: Analyses, result: dict[str, Any]) -> SimpleNamespace:
    """The finished analysis's record (its task, names, times) with another result."""
    stored = analyses.store.get(analyses.finished)
    return SimpleNamespace(
        id=stored.id, name=stored.name, task=stored.task, result=result, finished_at=stored.finished_at
    )


def test_a_result_from_before_the_specificity_test_renders(analyses: Analyses) -> None:
    record = record_with(analyses, first_release(analyses.result))
    view = build_view(record)
    assert [f.text for f in view.findings] == FINDINGS
    assert all(f.supported is None and f.specific_auroc is None and f.effect_size is None for f in view.findings)
    assert view.verdict == "" and view.acc_at_1 == 1.0 and len(view.iterations) == 2
    page = render_report(record)
    assert "✓ supported" not in page and "✗ not supported" not in page  # no verdict it never made
    assert "Cohen’s d" not in page and "Specific AUROC</dt>" not in page
    assert f"{analyses.result['findings'][0]['auroc']:.3f}" in page
    assert page.count('src="images/') == render_report(record_with(analyses, analyses.result)).count('src="images/')


def test_the_current_result_reads_the_same_through_the_model(analyses: Analyses) -> None:
    view = build_view(record_with(analyses, analyses.result))
    first, second = view.findings[:2]
    assert (first.supported, second.supported) == (True, False)
    assert first.effect_size == analyses.result["findings"][0]["effect_size"]
    assert first.specific_ci == analyses.result["findings"][0]["specific_auroc_ci"]
    assert view.iterations[0].rounds[0].proposed == analyses.result["iterations"][0]["rounds"][0]["proposed"]
    assert view.verdict.startswith("1 of 3 findings supported")


def test_a_stored_result_not_in_the_models_shape_is_an_error_not_a_guess(analyses: Analyses) -> None:
    broken = {**analyses.result, "findings": [{"finding": "effusion"}]}
    with pytest.raises(ValidationError, match="auroc"):
        build_view(record_with(analyses, broken))
