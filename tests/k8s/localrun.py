"""Run a rendered chart's containers as local processes: each Deployment's command with the environment
its ConfigMaps and Secrets give it, its volumes as folders (one per claim, so pods that share a claim
share the folder), its Service names mapped to 127.0.0.1 and its ports to free loopback ports. What
the rendered manifests say is what runs; nothing is configured twice.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.k8s import chartcheck as cc

Doc = dict[str, Any]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Launch:
    """One container, ready to start on this machine."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    ports: dict[str, int]  # container port name -> loopback port
    readiness: Doc | None = None
    liveness: Doc | None = None
    startup_budget_s: float = 60.0
    grace_s: float = 30.0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log: Path | None = None


class LocalCluster:
    """The volumes, ports and Service names of one rendering, mapped onto a tmp folder and loopback."""

    def __init__(self, docs: list[Doc], root: Path, secrets: dict[tuple[str, str], str]) -> None:
        self.docs = docs
        self.root = root
        self.secrets = secrets
        self.services = {d["metadata"]["name"] for d in cc.by_kind(docs, "Service")}
        # Every container port of every workload gets its own loopback port.
        self.port_map = {
            p["containerPort"]: free_port()
            for d in docs
            if cc.pod_spec(d) is not None
            for c in cc.containers(cc.pod_spec(d))
            for p in c.get("ports", [])
        }

    def claim_dir(self, claim: str) -> Path:
        path = self.root / "claims" / claim
        path.mkdir(parents=True, exist_ok=True)
        return path

    def mounts(self, doc: Doc, container: Doc) -> list[tuple[str, Path]]:
        """(mountPath, folder) for each mount, longest path first."""
        spec = cc.pod_spec(doc)
        pod_dir = self.root / "pods" / doc["metadata"]["name"] / container["name"]
        configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in cc.by_kind(self.docs, "ConfigMap")}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        result = []
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "persistentVolumeClaim" in volume:
                folder = self.claim_dir(volume["persistentVolumeClaim"]["claimName"])
            elif "configMap" in volume:
                folder = pod_dir / mount["name"]
                folder.mkdir(parents=True, exist_ok=True)
                data = configmaps[volume["configMap"]["name"]]
                items = volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    (folder / item["path"]).write_text(data[item["key"]])
            else:  # emptyDir
                folder = pod_dir / mount["name"]
                folder.mkdir(parents=True, exist_ok=True)
            result.append((mount["mountPath"], folder))
        return sorted(result, key=lambda m: -len(m[0]))

    def rewrite(self, value: str, mounts: list[tuple[str, Path]]) -> str:
        """Container paths to their folders, Service names to 127.0.0.1, chart ports to loopback ports."""
        if mounts:  # one pass, longest path first, so a replaced folder is never rewritten again
            folders = dict(mounts)
            paths = "|".join(re.escape(m) for m, _ in mounts)
            value = re.sub(rf"(?<![\w/.])({paths})(?=/|:|\s|$)", lambda m: str(folders[m.group(1)]), value)

        def target(match: re.Match[str]) -> str:
            host, port = match.group(1), int(match.group(2))
            if host in self.services:
                host = "127.0.0.1"
            return f"{host}:{self.port_map.get(port, port)}"

        names = "|".join(re.escape(s) for s in sorted(self.services, key=len, reverse=True))
        return re.sub(rf"\b({names}):(\d+)\b", target, value) if names else value

    @property
    def unmounted(self) -> Path:
        """Where a container's references to volumes it does not mount point: nothing may appear here
        (in the cluster, writing there would hit a read-only root filesystem)."""
        return self.root / "unmounted"

    def all_mount_paths(self) -> set[str]:
        return {
            m["mountPath"]
            for d in self.docs
            if cc.pod_spec(d) is not None
            for c in cc.containers(cc.pod_spec(d))
            for m in c.get("volumeMounts", [])
        }

    def launch(self, doc: Doc, container: Doc) -> Launch:
        mounts = self.mounts(doc, container)
        mine = {m for m, _ in mounts}
        mounts += [(p, self.unmounted / p.strip("/")) for p in self.all_mount_paths() - mine if p != "/dev/shm"]
        mounts.sort(key=lambda m: -len(m[0]))
        env = cc.container_env(doc, container, self.docs, self.secrets)
        env = {k: self.rewrite(v, mounts) for k, v in env.items()}
        for key, value in list(env.items()):
            if key.endswith("_PORT") and value.isdigit() and int(value) in self.port_map:
                env[key] = str(self.port_map[int(value)])
            if key.endswith("_HOST") and value == "0.0.0.0":
                env[key] = "127.0.0.1"  # loopback only on a shared machine
        argv = [self.rewrite(a, mounts) for a in [*container.get("command", []), *container.get("args", [])]]
        argv = [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a) for a in argv]
        bin_dir = Path(sys.executable).parent
        if argv[0] == "python":
            argv[0] = sys.executable
        elif (bin_dir / argv[0]).exists():
            argv[0] = str(bin_dir / argv[0])
        tmp = dict(mounts).get("/tmp") or self.root / "pods" / doc["metadata"]["name"] / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        base = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL") if k in os.environ}
        base["PATH"] = f"{bin_dir}:{base.get('PATH', '/usr/bin:/bin')}"
        # What the image's ENV sets (the Dockerfiles): a writable HOME and caches under /tmp.
        base.update({"HOME": str(tmp), "TMPDIR": str(tmp), "XDG_CACHE_HOME": str(tmp / ".cache")})
        ports = {}
        for p in container.get("ports", []):  # by name and by number, as probes may name either
            ports[str(p["containerPort"])] = self.port_map[p["containerPort"]]
            if "name" in p:
                ports[p["name"]] = self.port_map[p["containerPort"]]
        startup = container.get("startupProbe") or {}
        spec = cc.pod_spec(doc)
        return Launch(
            name=f"{doc['metadata']['name']}/{container['name']}",
            argv=argv,
            env={**base, **env},
            cwd=tmp,
            ports=ports,
            readiness=container.get("readinessProbe"),
            liveness=container.get("livenessProbe"),
            startup_budget_s=startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3),
            grace_s=spec.get("terminationGracePeriodSeconds", 30),
        )

    def deployments(self) -> list[Launch]:
        """One replica of every Deployment (replicas share claims, so one shows the wiring)."""
        return [self.launch(d, c) for d in cc.by_kind(self.docs, "Deployment") for c in cc.pod_spec(d)["containers"]]

    def job(self, name: str) -> list[Launch]:
        """A Job's init containers, then its containers, in order."""
        doc = next(d for d in cc.by_kind(self.docs, "Job") if d["metadata"]["name"] == name)
        spec = cc.pod_spec(doc)
        return [self.launch(doc, c) for c in [*spec.get("initContainers", []), *spec["containers"]]]


def start(launch: Launch, logs: Path) -> None:
    logs.mkdir(parents=True, exist_ok=True)
    launch.log = logs / (launch.name.replace("/", "_") + ".log")
    with launch.log.open("wb") as out:
        launch.process = subprocess.Popen(
            launch.argv, env=launch.env, cwd=launch.cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def run_to_end(launch: Launch, logs: Path, timeout_s: float) -> int:
    start(launch, logs)
    assert launch.process is not None
    return launch.process.wait(timeout=timeout_s)


def probe(launch: Launch, spec: Doc | None) -> bool:
    """One probe of a rendered probe spec against the process's loopback ports."""
    if spec is None:
        return True
    if "grpc" in spec:
        port = launch.ports[str(spec["grpc"]["port"])]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=spec["grpc"].get("service", "")), timeout=2
                )
            except grpc.RpcError:
                return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING
    if "httpGet" in spec:
        port = launch.ports[str(spec["httpGet"]["port"])]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{spec['httpGet']['path']}", timeout=3) as reply:
                return 200 <= reply.status < 400
        except OSError:
            return False
    raise ValueError(f"{launch.name}: probe kind not supported here: {spec}")


def wait_ready(launches: list[Launch], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(launches)
    while pending:
        for launch in list(pending):
            assert launch.process is not None
            if launch.process.poll() is not None:
                raise RuntimeError(f"{launch.name} exited ({launch.process.returncode}):\n{tail(launch)}")
            if probe(launch, launch.readiness):
                pending.remove(launch)
        if pending and time.monotonic() > deadline:
            names = ", ".join(p.name for p in pending)
            raise TimeoutError(f"not ready within {timeout_s:.0f} s: {names}\n" + "\n".join(tail(p) for p in pending))
        time.sleep(0.5)


def stop(launches: list[Launch]) -> dict[str, tuple[int | None, float]]:
    """SIGTERM every process (as the kubelet does after preStop) and wait up to its grace period;
    returns name -> (exit code, seconds taken), SIGKILLing what outlives its grace."""
    for launch in launches:
        if launch.process is not None and launch.process.poll() is None:
            os.killpg(launch.process.pid, signal.SIGTERM)
    began = time.monotonic()
    result = {}
    for launch in launches:
        if launch.process is None:
            continue
        try:
            code = launch.process.wait(timeout=max(0.1, launch.grace_s - (time.monotonic() - began)))
        except subprocess.TimeoutExpired:
            os.killpg(launch.process.pid, signal.SIGKILL)
            launch.process.wait()
            code = None
        result[launch.name] = (code, time.monotonic() - began)
    return result


def tail(launch: Launch, chars: int = 2500) -> str:
    text = launch.log.read_text(errors="replace") if launch.log and launch.log.exists() else ""
    return f"--- {launch.name} log ---\n{text[-chars:]}"


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
