"""Offline checks of the RadDiff chart: what helm, kubernetes-validate and the CRD schemas check, and what
only an API server or a running cluster would otherwise catch.

Each check takes rendered manifests (a list of dicts) and returns a list of problems, one readable line
each; an empty list means the check passed. The tests run every check on every profile and show each
one failing on a deliberately broken chart. As a command (`make chart-check`):

    python -m tests.k8s.chartcheck [--chart charts/raddiff] [--profile values-gpu.yaml ...]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "raddiff"
SKAFFOLD = ROOT / "skaffold.yaml"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
PROFILES = ("values-gpu.yaml", "values-cpu.yaml")
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas available.
KUBE_VERSIONS = ("1.31", "1.37")
RELEASE = "raddiff"

Doc = dict[str, Any]
WORKLOAD_KINDS = ("Deployment", "Job", "CronJob", "StatefulSet", "DaemonSet")
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject-v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-v1.json",
}


class HelmError(RuntimeError):
    """helm exited non-zero; the message carries its stderr."""


# -- tools and rendering -------------------------------------------------------------------------


def tool(name: str) -> str:
    """Path of helm or kubectl: $HELM / $KUBECTL, then .tools/bin (filled by scripts/fetch-k8s-tools.sh)."""
    override = os.environ.get(name.upper())
    if override:
        return override
    local = ROOT / ".tools" / "bin" / name
    if not local.exists():
        subprocess.run(["bash", str(ROOT / "scripts" / "fetch-k8s-tools.sh")], check=True, capture_output=True)
    return str(local)


def helm(*args: str) -> str:
    proc = subprocess.run([tool("helm"), *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        # helm lint reports its findings on stdout and only a summary on stderr.
        raise HelmError("\n".join(part for part in (proc.stdout.strip(), proc.stderr.strip()) if part))
    return proc.stdout


def lint(chart: Path = CHART, values: list[Path] | None = None, kube_version: str = KUBE_VERSIONS[-1]) -> str:
    args = ["lint", "--strict", str(chart), "--kube-version", kube_version]
    for v in values or []:
        args += ["-f", str(v)]
    return helm(*args)


def render(
    chart: Path = CHART,
    values: list[Path] | None = None,
    sets: dict[str, str] | None = None,
    set_files: dict[str, Path] | None = None,
    release: str = RELEASE,
    namespace: str = "raddiff",
    kube_version: str = KUBE_VERSIONS[-1],
    show_only: list[str] | None = None,
) -> list[Doc]:
    args = ["template", release, str(chart), "--namespace", namespace, "--kube-version", kube_version]
    for v in values or []:
        args += ["-f", str(v)]
    for key, value in (sets or {}).items():
        args += ["--set-string" if isinstance(value, str) else "--set", f"{key}={value}"]
    for key, path in (set_files or {}).items():
        args += ["--set-file", f"{key}={path}"]
    for template in show_only or []:
        args += ["--show-only", template]
    return [d for d in yaml.safe_load_all(helm(*args)) if d]


def profile_path(profile: str, chart: Path = CHART) -> Path:
    return chart / profile


# -- small helpers ------------------------------------------------------------------------------


def ident(doc: Doc) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def pod_spec(doc: Doc) -> Doc | None:
    """The pod spec of a workload, or None for other kinds."""
    kind = doc.get("kind")
    spec = doc.get("spec", {})
    if kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    if kind in WORKLOAD_KINDS:
        return spec.get("template", {}).get("spec")
    return None


def pod_labels(doc: Doc) -> dict[str, str]:
    spec = doc.get("spec", {})
    if doc.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("metadata", {}).get("labels", {}) or {}


def containers(spec: Doc) -> list[Doc]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def selector_matches(selector: Doc | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a label set."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and labels.get(key) in values)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return True


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


# -- schema validation --------------------------------------------------------------------------


def check_schemas(docs: list[Doc], kube_versions: tuple[str, ...] = KUBE_VERSIONS) -> list[str]:
    """kubernetes-validate --strict for built-in kinds at each version; our CRD schemas for KEDA and ServiceMonitor."""
    problems = []
    for doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key in CRD_SCHEMAS:
            schema = json.loads((SCHEMAS / CRD_SCHEMAS[key]).read_text())
            validator = jsonschema.Draft202012Validator(schema)
            for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
                path = "/".join(str(p) for p in error.absolute_path)
                problems.append(f"{ident(doc)}: {path}: {error.message}")
            continue
        for version in kube_versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(f"{ident(doc)}: no schema for {key[0]} {key[1]} in Kubernetes {version}")
            except kubernetes_validate.ValidationError as exc:
                where = "/".join(str(p) for p in exc.path)
                problems.append(f"{ident(doc)} (Kubernetes {version}): {where}: {exc.message}")
    return problems


# -- what only a server or a cluster would catch ---------------------------------------------------


def check_selectors(docs: list[Doc]) -> list[str]:
    """Workload selectors match their own template labels; Services, PDBs, NetworkPolicies and
    ServiceMonitors select something that exists."""
    problems = []
    workloads = [d for d in docs if d.get("kind") in ("Deployment", "StatefulSet", "DaemonSet")]
    for doc in workloads:
        if not selector_matches(doc["spec"].get("selector"), pod_labels(doc)):
            problems.append(f"{ident(doc)}: spec.selector does not match the pod template's labels")
    pods = [pod_labels(d) for d in workloads]
    for doc in by_kind(docs, "Service"):
        selector = doc["spec"].get("selector")
        if selector and not any(selector_matches({"matchLabels": selector}, labels) for labels in pods):
            problems.append(f"{ident(doc)}: selector {selector} matches no pod template")
    for kind, field in (("PodDisruptionBudget", "selector"), ("NetworkPolicy", "podSelector")):
        for doc in by_kind(docs, kind):
            if not any(selector_matches(doc["spec"].get(field), labels) for labels in pods):
                problems.append(f"{ident(doc)}: {field} matches no pod template")
    services = by_kind(docs, "Service")
    for doc in by_kind(docs, "ServiceMonitor"):
        chosen = [s for s in services if selector_matches(doc["spec"]["selector"], s["metadata"].get("labels", {}))]
        if not chosen:
            problems.append(f"{ident(doc)}: selector matches no Service")
        for endpoint in doc["spec"]["endpoints"]:
            if chosen and not any(endpoint.get("port") in {p.get("name") for p in s["spec"]["ports"]} for s in chosen):
                problems.append(f"{ident(doc)}: endpoint port {endpoint.get('port')!r} is not a port of its Service")
    return problems


def _probe_port(probe: Doc) -> tuple[str, Any]:
    for action in ("grpc", "httpGet", "tcpSocket"):
        if action in probe:
            return action, probe[action].get("port")
    return "exec", None


def check_probe_ports(docs: list[Doc]) -> list[str]:
    """Every probe names a port the container declares (a gRPC probe by number, as the API requires);
    every Service targetPort is a port of the pods it selects."""
    problems = []
    workloads = [d for d in docs if pod_spec(d) is not None]
    for doc in workloads:
        for c in containers(pod_spec(doc)):
            declared = {p["containerPort"] for p in c.get("ports", [])} | {p.get("name") for p in c.get("ports", [])}
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                if kind not in c:
                    continue
                action, port = _probe_port(c[kind])
                if action == "exec":
                    continue
                if port not in declared:
                    problems.append(
                        f"{ident(doc)} container {c['name']}: {kind} {action} port {port!r} is not declared"
                    )
    for svc in by_kind(docs, "Service"):
        targets = [
            d for d in workloads if selector_matches({"matchLabels": svc["spec"].get("selector", {})}, pod_labels(d))
        ]
        for port in svc["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            for doc in targets:
                declared = {
                    p.get(k)
                    for c in containers(pod_spec(doc))
                    for p in c.get("ports", [])
                    for k in ("name", "containerPort")
                }
                if target not in declared:
                    problems.append(f"{ident(svc)}: targetPort {target!r} is not a port of {ident(doc)}")
    return problems


def check_jobs(docs: list[Doc]) -> list[str]:
    """Job pods restart Never or OnFailure (Always is refused by the API server); the Indexed-Job fields
    that need each other come together."""
    problems = []
    for doc in docs:
        if doc.get("kind") not in ("Job", "CronJob"):
            continue
        job = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
        policy = job["template"]["spec"].get("restartPolicy")
        if policy not in ("Never", "OnFailure"):
            problems.append(f"{ident(doc)}: restartPolicy {policy!r}; a Job's pods must use Never or OnFailure")
        if "podFailurePolicy" in job and policy != "Never":
            problems.append(f"{ident(doc)}: podFailurePolicy needs restartPolicy Never")
        if "backoffLimitPerIndex" in job and job.get("completionMode") != "Indexed":
            problems.append(f"{ident(doc)}: backoffLimitPerIndex needs completionMode Indexed")
        for rule in job.get("podFailurePolicy", {}).get("rules", []):
            if rule.get("action") == "FailIndex" and "backoffLimitPerIndex" not in job:
                problems.append(f"{ident(doc)}: a FailIndex rule needs backoffLimitPerIndex")
            names = {c["name"] for c in job["template"]["spec"]["containers"]}
            named = rule.get("onExitCodes", {}).get("containerName")
            if named and named not in names:
                problems.append(f"{ident(doc)}: podFailurePolicy names container {named!r}, which the pod lacks")
    return problems


DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
IANA_SVC_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
# Kinds whose names become DNS labels (Service hostnames, pod hostnames of Indexed Jobs).
LABEL_NAMED = ("Service", "Namespace")


def check_names(docs: list[Doc]) -> list[str]:
    """Object names are DNS-1123 (labels where the name becomes a hostname), container names are
    labels, port names are IANA service names of at most 15 characters."""
    problems = []
    for doc in docs:
        name = doc.get("metadata", {}).get("name", "")
        if doc.get("kind") in LABEL_NAMED:
            if len(name) > 63 or not DNS1123_LABEL.match(name):
                problems.append(f"{ident(doc)}: name is not a DNS-1123 label (a-z, 0-9, '-', at most 63)")
        elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
            problems.append(f"{ident(doc)}: name is not a DNS-1123 subdomain")
        if doc.get("kind") in ("Job", "CronJob") and len(name) > 52:
            problems.append(f"{ident(doc)}: a Job name over 52 characters leaves no room for its pods' suffixes")
        spec = pod_spec(doc)
        for c in containers(spec) if spec else []:
            if len(c["name"]) > 63 or not DNS1123_LABEL.match(c["name"]):
                problems.append(f"{ident(doc)}: container name {c['name']!r} is not a DNS-1123 label")
            for port in c.get("ports", []):
                pname = port.get("name")
                if pname is not None and (len(pname) > 15 or not IANA_SVC_NAME.match(pname)):
                    problems.append(f"{ident(doc)}: port name {pname!r} is not an IANA service name")
        for key, value in (doc.get("metadata", {}).get("labels") or {}).items():
            if len(str(value)) > 63 or not re.match(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$", str(value)):
                problems.append(f"{ident(doc)}: label {key}={value!r} is not a valid label value")
    return problems


def check_autoscalers(docs: list[Doc]) -> list[str]:
    """No Deployment has two autoscalers (HPA and KEDA would fight); each targets a real Deployment, which
    then leaves spec.replicas unset (or every helm upgrade would reset the autoscaler's choice)."""
    problems = []
    deployments = {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}
    owners: dict[str, list[str]] = {}
    for doc in docs:
        if doc.get("kind") not in ("HorizontalPodAutoscaler", "ScaledObject"):
            continue
        target = doc["spec"]["scaleTargetRef"]
        if target.get("kind", "Deployment") != "Deployment" or target["name"] not in deployments:
            problems.append(
                f"{ident(doc)}: scales {target.get('kind', 'Deployment')}/{target['name']}, not in the chart"
            )
            continue
        owners.setdefault(target["name"], []).append(ident(doc))
    for name, scalers in owners.items():
        if len(scalers) > 1:
            problems.append(f"Deployment/{name} has {len(scalers)} autoscalers: {', '.join(sorted(scalers))}")
        if "replicas" in deployments[name]["spec"]:
            problems.append(f"Deployment/{name} sets spec.replicas although {scalers[0]} scales it")
    return problems


def check_security(docs: list[Doc]) -> list[str]:
    """Every pod runs as non-root with a read-only root filesystem, no privilege escalation, no capabilities."""
    problems = []
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        pod = spec.get("securityContext") or {}
        for c in containers(spec):
            sc = c.get("securityContext") or {}
            where = f"{ident(doc)} container {c['name']}"
            if sc.get("runAsNonRoot", pod.get("runAsNonRoot")) is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if "ALL" not in (sc.get("capabilities") or {}).get("drop", []):
                problems.append(f"{where}: capabilities do not drop ALL")
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            if "/tmp" not in mounts:
                problems.append(f"{where}: no writable /tmp under a read-only root filesystem")
        if spec.get("enableServiceLinks") is not False:
            problems.append(
                f"{ident(doc)}: enableServiceLinks is not false (service-link variables collide with RADDIFF_ prefixes)"
            )
    return problems


# Who may call each model service when a caller's settings cannot be imported (RadDiff's design: the
# orchestrator calls every service, localize and the evaluator also call the LLM proxy). Where they can,
# the callers are exactly the processes whose settings read the service's RADDIFF_<X>_TARGET.
DESIGN_CLIENTS = {
    "vlm": {"orchestrator"},
    "embedding": {"orchestrator"},
    "localize": {"orchestrator"},
    "evaluator": {"orchestrator"},
    "llm-proxy": {"orchestrator", "localize", "evaluator"},
}
OUTSIDE = {"llm-proxy"}
COMPONENT = "app.kubernetes.io/component"
_TARGET = re.compile(r"^RADDIFF_[A-Z]+_TARGET$")


def _service_port(deployment: Doc) -> int:
    ports = pod_spec(deployment)["containers"][0]["ports"]
    return next(p["containerPort"] for p in ports if p["name"] in ("grpc", "http"))


def _covers(rule: Doc, port: int) -> bool:
    return not rule.get("ports") or any(p.get("port") == port for p in rule["ports"])


def _target_components(docs: list[Doc]) -> dict[str, str]:
    """RADDIFF_<X>_TARGET -> the component whose headless Service it names (from the shared ConfigMap)."""
    services = {d["metadata"]["name"]: d for d in by_kind(docs, "Service")}
    result = {}
    for cm in by_kind(docs, "ConfigMap"):
        for key, value in (cm.get("data") or {}).items():
            match = re.match(r"^dns:///([^:/]+):\d+$", value) if _TARGET.match(key) else None
            if match and match.group(1) in services:
                result[key] = services[match.group(1)]["spec"]["selector"].get(COMPONENT, "")
    return result


def expected_clients(
    docs: list[Doc], sources_for: Callable[[str], list[SettingsSource]]
) -> tuple[dict[str, set[str]], list[str]]:
    """component -> the components that read its target; falls back to DESIGN_CLIENTS per caller whose
    settings cannot be imported (and says so)."""
    targets = _target_components(docs)
    clients: dict[str, set[str]] = {}
    notes = []
    for dep in by_kind(docs, "Deployment"):
        caller = pod_labels(dep).get(COMPONENT, "")
        try:
            sources = sources_for(pod_spec(dep)["containers"][0]["command"][0])
        except (LookupError, ImportError):
            notes.append(caller)
            for service, callers in DESIGN_CLIENTS.items():
                if caller in callers:
                    clients.setdefault(service, set()).add(caller)
            continue
        read = {n for s in sources for names in s.env_names().values() for n in names if _TARGET.match(n)}
        for key in read & set(targets):
            clients.setdefault(targets[key], set()).add(caller)
    return clients, notes


def check_network(docs: list[Doc], sources_for: Callable[[str], list[SettingsSource]] | None = None) -> list[str]:
    """NetworkPolicies isolate every pod both ways; each model service admits on its service port exactly
    the components that call it (whose settings read its target), and each of those may send to it; only
    the LLM proxy has egress beyond the release's pods and DNS."""
    problems = []
    deployments = by_kind(docs, "Deployment")
    policies = by_kind(docs, "NetworkPolicy")
    expected, _ = expected_clients(docs, sources_for or settings_of)
    by_component = {pod_labels(d).get(COMPONENT, ""): d for d in deployments}

    def policies_of(dep: Doc) -> list[Doc]:
        return [p for p in policies if selector_matches(p["spec"]["podSelector"], pod_labels(dep))]

    for dep in deployments:
        component = pod_labels(dep).get(COMPONENT, "")
        mine = policies_of(dep)
        types = {t for p in mine for t in p["spec"].get("policyTypes", [])}
        if not {"Ingress", "Egress"} <= types:
            problems.append(f"{ident(dep)}: not isolated for both Ingress and Egress by a NetworkPolicy")
            continue
        port = _service_port(dep)
        callers: set[str] = set()
        for rule in (r for p in mine for r in p["spec"].get("ingress", [])):
            if not _covers(rule, port):
                continue
            if "from" not in rule:
                callers.add("*")
            for peer in rule.get("from", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    callers |= {
                        c for c, d in by_component.items() if selector_matches(peer["podSelector"], pod_labels(d))
                    }
                else:
                    callers.add("*")
        if component in expected and callers != expected[component]:
            problems.append(
                f"{ident(dep)}: port {port} admits {sorted(callers)}; its callers are {sorted(expected[component])}"
            )
        for rule in (r for p in mine for r in p["spec"].get("egress", [])):
            dns_only = rule.get("ports") and all(p.get("port") == 53 for p in rule["ports"])
            peers = rule.get("to")
            reaches_out = peers is None or any("ipBlock" in peer for peer in peers)
            if reaches_out and not dns_only and component not in OUTSIDE:
                problems.append(f"{ident(dep)}: an egress rule reaches outside the cluster ({rule})")
    for service, callers in expected.items():
        if service not in by_component:
            continue
        server = by_component[service]
        for caller in sorted(callers & set(by_component)):
            egress = [r for p in policies_of(by_component[caller]) for r in p["spec"].get("egress", [])]
            allowed = any(
                _covers(rule, _service_port(server))
                and any(
                    "podSelector" in peer and selector_matches(peer["podSelector"], pod_labels(server))
                    for peer in rule.get("to", [])
                )
                for rule in egress
            )
            if egress and not allowed:
                problems.append(
                    f"Deployment/{by_component[caller]['metadata']['name']}: no egress to {service}, which it calls"
                )
    return problems


# -- environment: what each process reads, against what the chart sets ------------------------------


def container_env(doc: Doc, container: Doc, docs: list[Doc], secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """The environment a container starts with: envFrom ConfigMaps in order, then env. A Secret key is
    taken from `secrets` ((secret, key) -> value) or set to a placeholder: the operator provides it."""
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in by_kind(docs, "ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            if name not in configmaps and not source["configMapRef"].get("optional"):
                raise KeyError(f"{ident(doc)}: envFrom ConfigMap {name!r} is not in the chart")
            env.update(configmaps.get(name, {}))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "secretKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets.get((ref["name"], ref["key"]), f"<secret {ref['name']}/{ref['key']}>")
        elif "configMapKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = configmaps.get(ref["name"], {}).get(ref["key"], "")
    return env


@dataclass(frozen=True)
class SettingsSource:
    """A settings class a process reads, with the environment names of its fields."""

    cls: type
    prefix: str

    def env_names(self) -> dict[str, list[str]]:
        """field -> the environment keys that set it (its prefixed name, or its validation aliases)."""
        names = {}
        for field_name, field in self.cls.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, str):
                names[field_name] = [alias]
            elif alias is not None and hasattr(alias, "choices"):
                names[field_name] = [c for c in alias.choices if isinstance(c, str)]
            else:
                names[field_name] = [(self.prefix + field_name).upper()]
        return names

    def required(self) -> list[str]:
        names = self.env_names()
        return [names[n][0] for n, f in self.cls.model_fields.items() if f.is_required()]


def settings_of(command: str) -> list[SettingsSource]:
    """The settings classes a console script's package reads: every BaseSettings subclass in
    <package>.settings, plus the kit's SharedSettings. Raises LookupError if the script is not installed."""
    from pydantic_settings import BaseSettings

    from raddiff_kit.settings import SharedSettings

    points = importlib.metadata.entry_points(group="console_scripts", name=command)
    if not points:
        raise LookupError(f"{command} is not an installed console script")
    package = next(iter(points)).module.split(".")[0]
    module = importlib.import_module(f"{package}.settings")
    classes = {SharedSettings}
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if issubclass(obj, BaseSettings) and obj is not BaseSettings and obj.model_config.get("env_prefix") is not None:
            classes.add(obj)
    return [SettingsSource(c, c.model_config.get("env_prefix", "")) for c in sorted(classes, key=lambda c: c.__name__)]


@contextlib.contextmanager
def environ(env: dict[str, str]) -> Iterator[None]:
    """os.environ holding exactly `env` for RADDIFF_ keys (the rest kept), restored afterwards."""
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("RADDIFF_")]:
            del os.environ[key]
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check_env(
    docs: list[Doc],
    sources_for: Callable[[str], list[SettingsSource]] = settings_of,
    secrets: dict[tuple[str, str], str] | None = None,
) -> list[str]:
    """For each container of each Deployment: every key its settings require is set; every key set under
    its own prefix is one it reads (a typo would be ignored silently); the settings load from that
    environment (a bad value would stop the process at start)."""
    problems = []
    for doc in by_kind(docs, "Deployment"):
        for c in containers(pod_spec(doc)):
            where = f"{ident(doc)} container {c['name']}"
            try:
                sources = sources_for(c["command"][0])
                env = container_env(doc, c, docs, secrets or {})
            except (LookupError, ImportError) as exc:
                problems.append(f"{where}: {exc}")
                continue
            known = {n for s in sources for names in s.env_names().values() for n in names}
            # Every process gets every service's target (the shared ConfigMap); the clients read them.
            known |= {k for k in env if k.startswith("RADDIFF_") and k.endswith("_TARGET")}
            own = [s.prefix for s in sources if s.prefix and s.prefix != "RADDIFF_"]
            for key in sorted(env):
                if any(key.startswith(p) for p in own) and key not in known:
                    problems.append(f"{where}: sets {key}, which none of its settings read (a typo?)")
            for source in sources:
                for key in source.required():
                    if key not in env:
                        problems.append(f"{where}: {source.cls.__name__} requires {key}, which is not set")
                with environ(env):
                    try:
                        source.cls()
                    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError or a validator's
                        first = str(exc).strip().splitlines()
                        problems.append(f"{where}: {source.cls.__name__} does not load: {' '.join(first[:3])}")
    return problems


def check_grace(docs: list[Doc]) -> list[str]:
    """terminationGracePeriodSeconds is longer than the preStop pause plus the drain the process reads."""
    problems = []
    for doc in by_kind(docs, "Deployment"):
        spec = pod_spec(doc)
        grace = spec.get("terminationGracePeriodSeconds", 30)
        for c in spec["containers"]:
            pause = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
            env = container_env(doc, c, docs, {})
            drains = [float(v) for k, v in env.items() if k.endswith("_DRAIN_SECONDS")]
            drain = max(drains, default=0.0)
            if grace <= pause + drain:
                problems.append(
                    f"{ident(doc)}: terminationGracePeriodSeconds {grace} <= preStop {pause} + drain {drain:g}"
                )
    return problems


# -- images: skaffold builds what the chart uses ---------------------------------------------------


def skaffold_config(path: Path = SKAFFOLD) -> Doc:
    return yaml.safe_load(path.read_text())


def skaffold_artifact_var(image: str) -> str:
    """Skaffold's template name for an artifact: every character outside [A-Za-z0-9] becomes '_'."""
    return re.sub(r"[^A-Za-z0-9]", "_", image)


_SKAFFOLD_VAR = re.compile(r"\{\{\s*\.(IMAGE_REPO|IMAGE_TAG)_([A-Za-z0-9_]+)\s*\}\}")


def skaffold_sets(config: Doc, tag: str = "dev") -> dict[str, str]:
    """The --set values skaffold passes to helm, with IMAGE_REPO_x / IMAGE_TAG_x as skaffold would fill them."""
    artifacts = {skaffold_artifact_var(a["image"]): a["image"] for a in config["build"]["artifacts"]}
    sets = {}
    for release in config["deploy"]["helm"]["releases"]:
        for key, template in (release.get("setValueTemplates") or {}).items():
            value = str(template)
            for what, var in _SKAFFOLD_VAR.findall(value):
                if var not in artifacts:
                    raise KeyError(f"setValueTemplates {key}: {{{{.{what}_{var}}}}} names no artifact")
            sets[key] = _SKAFFOLD_VAR.sub(lambda m: artifacts[m.group(2)] if m.group(1) == "IMAGE_REPO" else tag, value)
    return sets


def chart_images(docs: list[Doc]) -> set[str]:
    return {c["image"] for d in docs if pod_spec(d) is not None for c in containers(pod_spec(d))}


# What every image's base (python:*-slim) has besides the console scripts the build installs.
BASE_PROGRAMS = ("python", "sh", "bash")


def check_images(docs: list[Doc], config: Doc) -> list[str]:
    """Every image the chart runs is one skaffold builds, and every image skaffold builds is used; each
    artifact passes the Dockerfile checks with its build args (tests/k8s/dockercheck.py); every container
    runs a console script its image installs (or the base image's python or shell), and a Deployment's
    ports are the ones it exposes."""
    from tests.k8s import dockercheck

    built = {a["image"]: a for a in config["build"]["artifacts"]}
    used = {re.sub(r"[:@].*$", "", image) for image in chart_images(docs)}
    problems = [f"the chart runs image {image!r}, which skaffold does not build" for image in sorted(used - set(built))]
    problems += [f"skaffold builds {image!r}, which the chart never runs" for image in sorted(set(built) - used)]
    for artifact in built.values():
        problems += dockercheck.check_artifact(artifact)
    for doc in docs:
        spec = pod_spec(doc)
        for c in containers(spec) if spec else []:
            artifact = built.get(re.sub(r"[:@].*$", "", c["image"]))
            if artifact is None or not dockercheck.dockerfile_of(artifact).exists():
                continue
            args = dockercheck.build_args(artifact)
            program = (c.get("command") or [args.get("SCRIPT")])[0]
            if program not in BASE_PROGRAMS and program not in dockercheck.image_scripts(args):
                problems.append(
                    f"{ident(doc)} container {c['name']}: runs {program!r}, which {artifact['image']} lacks"
                )
            if doc.get("kind") == "Deployment":
                text = dockercheck.dockerfile_of(artifact).read_text()
                ports = {p["containerPort"] for p in c.get("ports", [])}
                if ports != dockercheck.exposed(text, args):
                    problems.append(
                        f"{ident(doc)} container {c['name']}: ports {sorted(ports)} are not the ports "
                        f"{artifact['image']} exposes {sorted(dockercheck.exposed(text, args))}"
                    )
    return problems


# -- everything together ----------------------------------------------------------------------------


def check_rendered(docs: list[Doc]) -> dict[str, list[str]]:
    """Every structural check on one rendering (schemas and env are separate: slower, and need imports)."""
    return {
        "selectors": check_selectors(docs),
        "probe ports": check_probe_ports(docs),
        "jobs": check_jobs(docs),
        "names": check_names(docs),
        "autoscalers": check_autoscalers(docs),
        "network": check_network(docs),
        "security": check_security(docs),
        "grace": check_grace(docs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chart", type=Path, default=CHART)
    parser.add_argument("--profile", action="append", default=[], help="values file in the chart (default: all)")
    args = parser.parse_args(argv)
    failed = 0
    config = skaffold_config()
    for profile in args.profile or list(PROFILES):
        values = [profile_path(profile, args.chart)]
        results: dict[str, list[str]] = {}
        try:
            lint(args.chart, values)
            docs = render(args.chart, values, sets=skaffold_sets(config))
        except HelmError as exc:
            results["helm"] = [str(exc)]
        else:
            results.update(check_rendered(docs))
            results["schemas"] = check_schemas(docs)
            results["images"] = check_images(docs, config)
            results["env"] = check_env(docs)
        for name, problems in results.items():
            status = "ok" if not problems else f"{len(problems)} problem(s)"
            print(f"{profile:<18} {name:<12} {status}")
            for problem in problems:
                print(f"    {problem}")
            failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
