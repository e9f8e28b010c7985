"""Each kind of check fails on a deliberately broken chart, and says what is wrong.

A chart is broken either through values (what an operator could get wrong) or by patching a copy of the
chart in tmp (what a chart author could get wrong); the same check that passes in test_chart.py must
then report the problem."""

from __future__ import annotations

import copy

import pytest
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tests.k8s import chartcheck as cc

GPU = [cc.profile_path("values-gpu.yaml")]


def render_gpu(**sets: object) -> list[dict]:
    return cc.render(values=GPU, sets={k: v for k, v in sets.items()})


def render_copy(chart, **sets: object) -> list[dict]:
    return cc.render(chart=chart, values=[chart / "values-gpu.yaml"], sets=dict(sets))


def test_lint_fails_on_an_invalid_chart(chart_copy) -> None:
    chart = chart_copy("Chart.yaml", "version: 0.1.0", "version: not-a-version")
    with pytest.raises(cc.HelmError, match="not-a-version"):
        cc.lint(chart)


def test_template_refuses_a_grace_period_shorter_than_pause_plus_drain() -> None:
    with pytest.raises(cc.HelmError, match=r"vlm: terminationGracePeriodSeconds \(50\) must be longer"):
        render_gpu(**{"vlm.terminationGracePeriodSeconds": 50})


def test_template_refuses_a_cooldown_shorter_than_model_load() -> None:
    with pytest.raises(cc.HelmError, match=r"embedding: autoscaling.cooldownSeconds \(60\) must be longer"):
        render_gpu(**{"embedding.autoscaling.cooldownSeconds": 60})


def test_kubernetes_validate_reports_an_unknown_field() -> None:
    problems = cc.check_schemas(render_gpu(**{"vlm.rollingUpdate.maxSurgee": 1}))
    assert any("Deployment/raddiff-vlm" in p and "maxSurgee" in p for p in problems), problems


def test_keda_schema_reports_a_bad_scaled_object() -> None:
    problems = cc.check_schemas(render_gpu(**{"vlm.autoscaling.fallbackReplicas": "two"}))
    assert problems == ["ScaledObject/raddiff-vlm: spec/fallback/replicas: 'two' is not of type 'integer'"]


def test_servicemonitor_schema_reports_a_bad_interval() -> None:
    problems = cc.check_schemas(render_gpu(**{"global.serviceMonitor.interval": "fifteen seconds"}))
    assert len(problems) == 6 and all("ServiceMonitor/" in p and "interval" in p for p in problems), problems


def test_selector_check_reports_a_selector_that_misses_its_pods(chart_copy) -> None:
    selector = (
        '  selector:\n    matchLabels:\n      {{- include "raddiff-lib.selectorLabels" . | nindent 6 }}\n  template:'
    )
    chart = chart_copy(
        "charts/raddiff-lib/templates/_component.tpl",
        selector,
        selector.replace("matchLabels:\n", "matchLabels:\n      tier: model\n"),
    )
    problems = cc.check_selectors(render_copy(chart))
    assert "Deployment/raddiff-vlm: spec.selector does not match the pod template's labels" in problems


def test_probe_check_reports_a_probe_on_an_undeclared_port(chart_copy) -> None:
    chart = chart_copy(
        "charts/raddiff-lib/templates/_component.tpl", "  port: {{ .ctx.Values.ports.grpc }}", "  port: 50099"
    )
    problems = cc.check_probe_ports(render_copy(chart))
    assert "Deployment/raddiff-vlm container vlm: readinessProbe grpc port 50099 is not declared" in problems


def test_job_check_reports_restart_policy_always(chart_copy) -> None:
    chart = chart_copy("templates/_bench.tpl", "restartPolicy: Never", "restartPolicy: Always")
    problems = cc.check_jobs(render_copy(chart, **{"bench.cronJob.enabled": True, "bench.cronJob.pairs": 2}))
    assert "CronJob/raddiff-bench: restartPolicy 'Always'; a Job's pods must use Never or OnFailure" in problems


def test_name_check_reports_a_name_that_is_not_dns_1123() -> None:
    problems = cc.check_names(render_gpu(**{"evaluator.component": "Judge_2"}))
    assert "Service/raddiff-Judge_2-headless: name is not a DNS-1123 label (a-z, 0-9, '-', at most 63)" in problems


def test_autoscaler_check_reports_two_autoscalers_on_one_deployment(chart_copy) -> None:
    chart = chart_copy(
        "charts/raddiff-lib/templates/_autoscaling.tpl",
        '{{ include "raddiff-lib.scaledObject" . }}',
        '{{ include "raddiff-lib.scaledObject" . }}\n---\n'
        '{{ include "raddiff-lib.hpa" (dict "ctx" . "metrics" (include "raddiff-lib.queueMetric" .)) }}',
    )
    problems = cc.check_autoscalers(render_copy(chart))
    assert (
        "Deployment/raddiff-vlm has 2 autoscalers: HorizontalPodAutoscaler/raddiff-vlm, ScaledObject/raddiff-vlm"
        in problems
    )


def test_autoscaler_check_reports_replicas_fixed_under_an_autoscaler(chart_copy) -> None:
    chart = chart_copy(
        "charts/raddiff-lib/templates/_component.tpl", "{{- if not .Values.autoscaling.enabled }}", "{{- if true }}"
    )
    problems = cc.check_autoscalers(render_copy(chart))
    assert (
        "Deployment/raddiff-embedding sets spec.replicas although ScaledObject/raddiff-embedding scales it" in problems
    )


def test_network_check_reports_an_extra_caller_and_egress_outside() -> None:
    pytest.importorskip("raddiff_evaluator.settings")
    sets = {"vlm.clients": "{orchestrator,localize,evaluator}", "localize.externalEgress": True}
    problems = cc.check_network(render_gpu(**sets))
    # The evaluator's settings read no VLM target: it has no business reaching the VLM.
    assert (
        "Deployment/raddiff-vlm: port 50051 admits ['evaluator', 'localize', 'orchestrator']; "
        "its callers are ['localize', 'orchestrator']" in problems
    )
    assert any(p.startswith("Deployment/raddiff-localize: an egress rule reaches outside") for p in problems)


def test_network_check_reports_a_caller_the_policies_block() -> None:
    pytest.importorskip("raddiff_evaluator.settings")
    problems = cc.check_network(render_gpu(**{"llm-proxy.clients": "{orchestrator,localize}", "evaluator.calls": "{}"}))
    # The evaluator reads RADDIFF_LLM_TARGET, so both the LLM proxy's ingress and its own egress must allow it.
    assert (
        "Deployment/raddiff-llm-proxy: port 50053 admits ['localize', 'orchestrator']; "
        "its callers are ['evaluator', 'localize', 'orchestrator']" in problems
    )
    assert "Deployment/raddiff-evaluator: no egress to llm-proxy, which it calls" in problems


def test_network_check_falls_back_to_the_design_without_a_callers_settings() -> None:
    def missing(command: str) -> list:
        raise LookupError(f"{command} is not an installed console script")

    docs = render_gpu()
    clients, unknown = cc.expected_clients(docs, missing)
    assert clients == cc.DESIGN_CLIENTS and len(unknown) == 6
    problems = cc.check_network(docs, sources_for=missing)
    # The chart also lets localize reach the VLM and embedding services, which the bare design does not.
    assert (
        "Deployment/raddiff-vlm: port 50051 admits ['localize', 'orchestrator']; its callers are ['orchestrator']"
        in problems
    )


def test_network_check_reports_a_pod_without_a_policy() -> None:
    problems = cc.check_network(render_gpu(**{"global.networkPolicy.enabled": False}))
    assert len(problems) == 6 and all("not isolated" in p for p in problems)


def test_security_check_reports_a_writable_root_filesystem() -> None:
    problems = cc.check_security(render_gpu(**{"global.containerSecurityContext.readOnlyRootFilesystem": False}))
    assert "Deployment/raddiff-vlm container vlm: readOnlyRootFilesystem is not true" in problems


def test_grace_check_reports_a_grace_period_shorter_than_the_drain(chart_copy) -> None:
    chart = chart_copy(
        "charts/raddiff-lib/templates/_component.tpl",
        '{{ include "raddiff-lib.gracePeriodSeconds" . }}',
        "20",
    )
    problems = cc.check_grace(render_copy(chart))
    assert "Deployment/raddiff-vlm: terminationGracePeriodSeconds 20 <= preStop 5 + drain 90" in problems


def test_image_check_reports_an_image_not_built_and_one_built_for_nothing(skaffold: dict) -> None:
    docs = render_gpu(**cc.skaffold_sets(skaffold))
    broken = copy.deepcopy(skaffold)
    broken["build"]["artifacts"] = [a for a in broken["build"]["artifacts"] if a["image"] != "raddiff-localize"]
    broken["build"]["artifacts"].append(
        {"image": "raddiff-unused", "context": ".", "docker": {"dockerfile": "nope/Dockerfile"}}
    )
    problems = cc.check_images(docs, broken)
    assert "the chart runs image 'raddiff-localize', which skaffold does not build" in problems
    assert "skaffold builds 'raddiff-unused', which the chart never runs" in problems
    assert "skaffold artifact raddiff-unused: nope/Dockerfile does not exist" in problems


def test_image_check_reports_an_image_without_the_harness_or_the_charts_ports(skaffold: dict) -> None:
    docs = render_gpu(**cc.skaffold_sets(skaffold), **{"bench.cronJob.enabled": True, "bench.cronJob.pairs": 3})
    assert cc.check_images(docs, skaffold) == []
    broken = copy.deepcopy(skaffold)
    args = {a["image"]: a["docker"]["buildArgs"] for a in broken["build"]["artifacts"]}
    del args["raddiff-orchestrator"]["EXTRA_PACKAGE"]
    args["raddiff-embedding"]["PORTS"] = "50052 9199"
    problems = cc.check_images(docs, broken)
    assert "CronJob/raddiff-bench container bench: runs 'raddiff-bench', which raddiff-orchestrator lacks" in problems
    assert (
        "Deployment/raddiff-embedding container embedding: ports [9102, 50052] are not the ports "
        "raddiff-embedding exposes [9199, 50052]"
    ) in problems


def test_skaffold_template_naming_no_artifact_is_reported(skaffold: dict) -> None:
    broken = copy.deepcopy(skaffold)
    broken["deploy"]["helm"]["releases"][0]["setValueTemplates"]["vlm.image.repository"] = (
        "{{.IMAGE_REPO_raddiff_vlmx}}"
    )
    with pytest.raises(KeyError, match="names no artifact"):
        cc.skaffold_sets(broken)


def _only(docs: list[dict], deployment: str) -> list[dict]:
    return [d for d in docs if d["kind"] != "Deployment" or d["metadata"]["name"] == deployment]


def test_env_check_reports_a_misspelt_key_and_a_bad_value() -> None:
    pytest.importorskip("raddiff_vlm.settings")
    problems = cc.check_env(_only(render_gpu(**{"vlm.config.DTPYE": "float32"}), "raddiff-vlm"))
    assert problems == [
        "Deployment/raddiff-vlm container vlm: sets RADDIFF_VLM_DTPYE, which none of its settings read (a typo?)"
    ]
    problems = cc.check_env(_only(render_gpu(**{"vlm.config.DTYPE": "float8"}), "raddiff-vlm"))
    assert len(problems) == 1 and "VLMSettings does not load" in problems[0] and "dtype" in problems[0]


def needs_a_key() -> type:
    """The LLM proxy's real settings plus one key that has no default."""
    llm = pytest.importorskip("raddiff_llm_proxy.settings")

    class NeedsAKey(llm.LLMSettings):
        model_config = SettingsConfigDict(env_prefix="RADDIFF_LLM_", extra="ignore")
        api_base: str = Field(description="required: no default")

    return NeedsAKey


def test_env_check_reports_a_required_key_that_is_not_set() -> None:
    NeedsAKey = needs_a_key()
    docs = _only(render_gpu(), "raddiff-llm-proxy")
    problems = cc.check_env(docs, sources_for=lambda command: [cc.SettingsSource(NeedsAKey, "RADDIFF_LLM_")])
    assert (
        "Deployment/raddiff-llm-proxy container llm-proxy: NeedsAKey requires RADDIFF_LLM_API_BASE, which is not set"
        in problems
    )
    # ... and is satisfied once the chart sets it.
    docs = _only(render_gpu(**{"llm-proxy.config.API_BASE": "https://llm.example.org/v1"}), "raddiff-llm-proxy")
    assert cc.check_env(docs, sources_for=lambda command: [cc.SettingsSource(NeedsAKey, "RADDIFF_LLM_")]) == []
