"""The Dockerfiles, checked statically: no Docker engine runs on these machines, so the images are
built only where one does (skaffold build). Each check also fails on a broken Dockerfile."""

from __future__ import annotations

import pytest
import yaml

from tests.k8s import dockercheck as dc

FOLDERS = list(dc.IMAGES)


def dockerfile(folder: str) -> str:
    return (dc.ROOT / folder / "Dockerfile").read_text()


def component_values(component: str) -> dict:
    return yaml.safe_load((dc.ROOT / "charts/raddiff/charts" / component / "values.yaml").read_text())


@pytest.mark.parametrize("folder", FOLDERS)
def test_dockerfile_passes_the_static_checks(folder: str) -> None:
    if not (dc.ROOT / folder / "pyproject.toml").exists():
        pytest.skip(f"{folder} has no package yet")
    assert dc.check_dockerfile(dockerfile(folder)) == []


@pytest.mark.parametrize("folder", FOLDERS)
def test_image_runs_the_packages_console_script_on_the_charts_ports(folder: str) -> None:
    if not (dc.ROOT / folder / "pyproject.toml").exists():
        pytest.skip(f"{folder} has no package yet")
    script, component = dc.IMAGES[folder]
    text = dockerfile(folder)
    values = component_values(component)
    assert script in dc.package_scripts(folder)
    assert dc.entrypoint(text) == [script] == values["command"]
    assert dc.exposed(text) == {p for k, p in values["ports"].items() if k != "servicePort"}
    chart = yaml.safe_load((dc.ROOT / "charts/raddiff/values.yaml").read_text())
    assert dc.final_env(text)["RADDIFF_MODEL_DIR"] == chart["global"]["paths"]["models"]


@pytest.mark.parametrize("folder", FOLDERS)
def test_pytorch_only_where_the_package_needs_it(folder: str) -> None:
    if not (dc.ROOT / folder / "pyproject.toml").exists():
        pytest.skip(f"{folder} has no package yet")
    deps = dc.package_dependencies(folder)
    assert dc.installs_torch(dockerfile(folder)) == ("torch" in deps)
    if folder in ("services/llm_proxy", "orchestrator"):
        assert not set(deps) & set(dc.HEAVY), "the LLM proxy and the orchestrator images stay slim"


def test_vlm_image_carries_pinned_vllm_in_its_own_venv() -> None:
    text = dockerfile("services/vlm")
    runs = [i.args for i in dc.parse(text) if i.keyword == "RUN"]
    assert any("/opt/vllm/bin/pip install vllm==" in r for r in runs)
    assert "COPY --from=vllm /opt/vllm /opt/vllm" in text


def test_gpu_images_take_cuda_torch_and_cpu_images_the_cpu_wheels() -> None:
    assert "download.pytorch.org/whl/cpu" not in dockerfile("services/embedding")
    assert "download.pytorch.org/whl/cpu" in dockerfile("services/evaluator")


GOOD = (dc.ROOT / "services/evaluator/Dockerfile").read_text()


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("FROM python:3.11.14-slim-bookworm AS build", "FROM python:3.11-slim AS build", "is not pinned"),
        ("FROM python:3.11.14-slim-bookworm AS runtime", "FROM python:latest AS runtime", "is not pinned"),
        ("USER 10001:10001", "USER root", "runs as USER root"),
        ("USER 10001:10001\n", "", "sets no USER"),
        ("COPY services/evaluator/ services/evaluator/", "COPY services/nothing/ services/nothing/", "does not exist"),
        ("COPY kit/ kit/", "COPY kit/ kit/\nCOPY .models/ /models/", "puts model weights in the image"),
        ("COPY kit/ kit/", "COPY kit/ kit/\nCOPY .venv/ /opt/venv/", "excluded by .dockerignore"),
        ("--grpc_python_out=kit/src protos/raddiff/v1/*.proto", "--grpc_python_out=kit/src", "gRPC stubs"),
    ],
)
def test_static_checks_fail_on_a_broken_dockerfile(old: str, new: str, problem: str) -> None:
    assert old in GOOD
    problems = dc.check_dockerfile(GOOD.replace(old, new))
    assert any(problem in p for p in problems), problems


def test_single_stage_dockerfile_is_refused() -> None:
    text = "FROM python:3.11.14-slim-bookworm\nCOPY kit/ kit/\nUSER 10001\n"
    problems = dc.check_dockerfile(text)
    assert "not multi-stage: build tools would ship in the image" in problems
