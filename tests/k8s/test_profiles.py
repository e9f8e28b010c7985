"""What each profile deploys: GPU requests, autoscaling on queue depth, headless gRPC Services and the
targets clients use, the shared volumes, Secrets, the orchestrator's replicas, the dashboard."""

from __future__ import annotations

import json
import re

import pytest

from raddiff_kit.grpc_options import service_config
from raddiff_kit.metrics import INFLIGHT
from tests.k8s import chartcheck as cc
from tests.k8s.conftest import find

GPU_SERVICES = {"vlm", "embedding"}
CPU_SERVICES = {"llm-proxy", "localize", "evaluator", "orchestrator"}
GRPC = {"vlm": 50051, "embedding": 50052, "llm-proxy": 50053, "localize": 50054, "evaluator": 50055}


def container(docs: list[dict], component: str) -> dict:
    return cc.pod_spec(find(docs, "Deployment", f"raddiff-{component}"))["containers"][0]


def gpus(c: dict) -> tuple[object, object]:
    return c["resources"].get("requests", {}).get("nvidia.com/gpu"), c["resources"].get("limits", {}).get(
        "nvidia.com/gpu"
    )


def test_gpu_profile_requests_gpus_for_the_model_services_only(rendered: dict) -> None:
    docs = rendered["values-gpu.yaml"]
    for component in GPU_SERVICES:
        assert gpus(container(docs, component)) == (1, 1)
        spec = cc.pod_spec(find(docs, "Deployment", f"raddiff-{component}"))
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    for component in CPU_SERVICES:
        assert gpus(container(docs, component)) == (None, None)


def test_cpu_profile_requests_no_gpu_and_runs_without_an_autoscaler(rendered: dict) -> None:
    docs = rendered["values-cpu.yaml"]
    assert "nvidia.com/gpu" not in json.dumps(docs)
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ScaledObject", "HorizontalPodAutoscaler", "ServiceMonitor"}
    assert find(docs, "Deployment", "raddiff-orchestrator")["spec"]["replicas"] == 2


def test_gpu_services_scale_on_queue_depth_with_keda(rendered: dict) -> None:
    docs = rendered["values-gpu.yaml"]
    for component in GPU_SERVICES:
        so = find(docs, "ScaledObject", f"raddiff-{component}")["spec"]
        (trigger,) = so["triggers"]
        assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
        # The kit's in-flight gauge, for this Deployment's pods only.
        assert re.fullmatch(
            rf'sum\({INFLIGHT._name}\{{namespace="raddiff",pod=~"raddiff-{component}-\[a-z0-9\]\+-\[a-z0-9\]\+"\}}\)',
            trigger["metadata"]["query"],
        ), trigger["metadata"]["query"]
        assert 1 <= so["minReplicaCount"] < so["maxReplicaCount"]
        assert so["fallback"]["replicas"] >= so["minReplicaCount"]
        # A replica's model load fits in its startup probe; the cooldown outlasts half that budget (the load).
        startup = container(docs, component)["startupProbe"]
        load_budget = startup["periodSeconds"] * startup["failureThreshold"]
        window = so["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
        assert so["cooldownPeriod"] == window > load_budget / 2
    for component in CPU_SERVICES:
        hpa = find(docs, "HorizontalPodAutoscaler", f"raddiff-{component}")["spec"]
        (metric,) = hpa["metrics"]
        assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert find(docs, "HorizontalPodAutoscaler", "raddiff-orchestrator")["spec"]["minReplicas"] >= 2


def test_without_keda_the_gpu_services_get_an_hpa_on_the_same_metric() -> None:
    docs = cc.render(values=[cc.profile_path("values-gpu.yaml")], sets={"global.keda.enabled": False})
    assert not [d for d in docs if d["kind"] == "ScaledObject"]
    for component in GPU_SERVICES:
        (metric,) = find(docs, "HorizontalPodAutoscaler", f"raddiff-{component}")["spec"]["metrics"]
        assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == INFLIGHT._name
    assert cc.check_autoscalers(docs) == [] and cc.check_schemas(docs) == []


@pytest.mark.parametrize("profile", cc.PROFILES)
def test_clients_reach_every_pod_of_a_headless_service_with_round_robin(profile: str, rendered: dict) -> None:
    docs = rendered[profile]
    shared = find(docs, "ConfigMap", "raddiff-shared")["data"]
    prefixes = {
        "vlm": "VLM",
        "embedding": "EMBEDDING",
        "llm-proxy": "LLM",
        "localize": "LOCALIZE",
        "evaluator": "EVALUATOR",
    }
    for component, port in GRPC.items():
        svc = find(docs, "Service", f"raddiff-{component}-headless")["spec"]
        assert svc["clusterIP"] == "None"
        assert svc["ports"][0]["port"] == port and svc["ports"][0]["targetPort"] == "grpc"
        assert shared[f"RADDIFF_{prefixes[component]}_TARGET"] == f"dns:///raddiff-{component}-headless:{port}"
        probe = container(docs, component)["readinessProbe"]["grpc"]
        assert probe["port"] == port and probe["service"].startswith("raddiff.v1.")
    # The kit's channels balance calls over every address the headless name resolves to.
    assert json.loads(service_config("raddiff.v1.VLMService"))["loadBalancingConfig"] == [{"round_robin": {}}]


@pytest.mark.parametrize("profile", cc.PROFILES)
def test_shared_volumes(profile: str, rendered: dict) -> None:
    docs = rendered[profile]
    shared = find(docs, "ConfigMap", "raddiff-shared")["data"]
    claims = {}
    for dep in (d for d in docs if d["kind"] == "Deployment"):
        spec = cc.pod_spec(dep)
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
        if "models" in mounts:
            assert mounts["models"]["readOnly"] and volumes["models"]["persistentVolumeClaim"]["readOnly"]
            assert mounts["models"]["mountPath"] == shared["RADDIFF_MODEL_DIR"]
        if "data" in mounts:
            assert mounts["data"]["readOnly"] and shared["RADDIFF_DATA_ROOTS"].startswith(mounts["data"]["mountPath"])
        if "scratch" in mounts:
            assert (
                not mounts["scratch"].get("readOnly")
                and mounts["scratch"]["mountPath"] == shared["RADDIFF_SCRATCH_DIR"]
            )
            claims[dep["metadata"]["name"]] = volumes["scratch"]["persistentVolumeClaim"]["claimName"]
        assert volumes["tmp"]["emptyDir"] and mounts["tmp"]["mountPath"] == "/tmp"
    # One scratch store for every service that exchanges scratch:// references.
    assert set(claims.values()) == {"raddiff-scratch"} and len(claims) == 5
    scratch = find(docs, "PersistentVolumeClaim", "raddiff-scratch")["spec"]["accessModes"]
    assert scratch == (["ReadWriteMany"] if profile == "values-gpu.yaml" else ["ReadWriteOnce"])
    fill = find(docs, "Job", "raddiff-model-cache-fill")
    (mount,) = [m for m in cc.pod_spec(fill)["containers"][0]["volumeMounts"] if m["name"] == "models"]
    assert not mount.get("readOnly"), "the fill Job is the one writer of the model cache"


@pytest.mark.parametrize("profile", cc.PROFILES)
def test_secrets_are_referenced_never_inlined(profile: str, rendered: dict) -> None:
    docs = rendered[profile]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for component in ("llm-proxy", "orchestrator")
        for e in container(docs, component).get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs["RADDIFF_LLM_API_KEY"]["name"] == "raddiff-llm"
    assert refs["RADDIFF_ORCH_DATABASE_URL"] == {"name": "raddiff-postgres", "key": "url", "optional": False}
    assert not [d for d in docs if d["kind"] == "Secret"]


def test_dashboard_queries_metrics_the_platform_exports(rendered: dict) -> None:
    from prometheus_client import REGISTRY

    for module in (
        "raddiff_kit.metrics",
        "raddiff_vlm.metrics",
        "raddiff_llm_proxy.metrics",
        "raddiff_orchestrator.metrics",
    ):
        pytest.importorskip(module)
    exported = {n for collector in REGISTRY._collector_to_names for n in REGISTRY._collector_to_names[collector]}
    dashboard = json.loads(find(rendered["values-gpu.yaml"], "ConfigMap", "raddiff-dashboard")["data"]["raddiff.json"])
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(raddiff_[a-z_]+|kube_[a-z_]+)\b", target["expr"])
    }
    external = {n for n in queried if n.startswith("kube_")}  # kube-state-metrics
    assert queried - external - exported == set()
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("request rate", "latency", "queue depth", "replicas", "tokens", "cost", "cache hit rate"):
        assert topic in titles
