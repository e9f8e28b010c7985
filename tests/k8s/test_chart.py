"""The chart passes every offline check on every profile: helm lint --strict, helm template,
kubernetes-validate --strict, the CRD schemas, and the checks no offline tool makes."""

from __future__ import annotations

import pytest

from tests.k8s import chartcheck as cc

PROFILES = list(cc.PROFILES)


@pytest.mark.parametrize("profile", PROFILES)
def test_helm_lint_strict(profile: str) -> None:
    out = cc.lint(values=[cc.profile_path(profile)])
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("profile", PROFILES)
def test_renders_every_component(profile: str, rendered: dict) -> None:
    deployments = {d["metadata"]["name"] for d in rendered[profile] if d["kind"] == "Deployment"}
    assert deployments == {
        f"raddiff-{c}" for c in ("vlm", "embedding", "llm-proxy", "localize", "evaluator", "orchestrator")
    }


@pytest.mark.parametrize("profile", PROFILES)
def test_kubernetes_and_crd_schemas(profile: str, rendered: dict) -> None:
    assert cc.check_schemas(rendered[profile]) == []


@pytest.mark.parametrize("check", sorted(cc.check_rendered([]).keys()))
@pytest.mark.parametrize("profile", PROFILES)
def test_structural_checks(profile: str, check: str, rendered: dict) -> None:
    assert cc.check_rendered(rendered[profile])[check] == []


@pytest.mark.parametrize("profile", PROFILES)
def test_images_built_by_skaffold_are_the_images_the_chart_runs(profile: str, rendered: dict, skaffold: dict) -> None:
    assert cc.check_images(rendered[profile], skaffold) == []


COMMANDS = {
    "vlm": "raddiff-vlm",
    "embedding": "raddiff-embedding",
    "llm-proxy": "raddiff-llm-proxy",
    "localize": "raddiff-localize",
    "evaluator": "raddiff-evaluator",
    "orchestrator": "raddiff-orchestrator",
}


@pytest.mark.parametrize("component", list(COMMANDS))
@pytest.mark.parametrize("profile", PROFILES)
def test_every_env_var_a_service_reads_is_set_or_defaulted(profile: str, component: str, rendered: dict) -> None:
    try:
        cc.settings_of(COMMANDS[component])
    except (LookupError, ImportError) as exc:
        pytest.skip(f"the {component} package is not installed in this venv yet: {exc}")
    docs = [
        d for d in rendered[profile] if d["kind"] != "Deployment" or d["metadata"]["name"] == f"raddiff-{component}"
    ]
    assert cc.check_env(docs) == []
