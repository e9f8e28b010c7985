"""docker/Dockerfile, checked statically as each skaffold artifact builds it: no Docker engine runs on
these machines, so the images are built only where one does (skaffold build). Each check also fails on a
broken Dockerfile or a broken skaffold artifact."""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from tests.k8s import dockercheck as dc

ARTIFACTS = dc.artifacts()
IMAGES = list(ARTIFACTS)
TEXT = dc.DOCKERFILE.read_text()


def args_of(image: str) -> dict[str, str]:
    return dc.build_args(ARTIFACTS[image])


def component_values(image: str) -> dict:
    component = image.removeprefix("raddiff-")
    return yaml.safe_load((dc.ROOT / "charts/raddiff/charts" / component / "values.yaml").read_text())


def test_every_image_is_built_from_the_one_dockerfile() -> None:
    assert {dc.dockerfile_of(a) for a in ARTIFACTS.values()} == {dc.DOCKERFILE}
    assert len(IMAGES) == 6


@pytest.mark.parametrize("image", IMAGES)
def test_artifact_passes_the_static_checks(image: str) -> None:
    assert dc.check_artifact(ARTIFACTS[image]) == []


@pytest.mark.parametrize("image", IMAGES)
def test_image_runs_the_packages_console_script_on_the_charts_ports(image: str) -> None:
    args = args_of(image)
    values = component_values(image)
    assert args["SCRIPT"] in dc.package_scripts(args["PACKAGE"])
    assert dc.entrypoint(TEXT, args) == [args["SCRIPT"]] == values["command"]
    assert dc.exposed(TEXT, args) == {p for k, p in values["ports"].items() if k != "servicePort"}
    chart = yaml.safe_load((dc.ROOT / "charts/raddiff/values.yaml").read_text())
    assert dc.final_env(TEXT, args)["RADDIFF_MODEL_DIR"] == chart["global"]["paths"]["models"]


@pytest.mark.parametrize("image", IMAGES)
def test_pytorch_only_where_the_package_needs_it(image: str) -> None:
    args = args_of(image)
    deps = dc.package_dependencies(args["PACKAGE"])
    assert dc.installs_torch(TEXT, args) == ("torch" in deps)
    assert (args["TORCH"] != "none") == ("torch" in deps)
    if image in ("raddiff-llm-proxy", "raddiff-orchestrator"):
        assert not set(deps) & set(dc.HEAVY), "the LLM proxy and the orchestrator images stay slim"


def test_gpu_images_take_cuda_torch_and_cpu_images_the_cpu_wheels() -> None:
    cpu_index = "download.pytorch.org/whl/cpu"
    assert not any(cpu_index in run for run in dc.resolve(TEXT, args_of("raddiff-embedding")).runs())
    assert any(cpu_index in run for run in dc.resolve(TEXT, args_of("raddiff-evaluator")).runs())


def test_orchestrator_image_installs_the_harness_for_the_bench_jobs() -> None:
    args = args_of("raddiff-orchestrator")
    assert "./harness" in dc.installed(TEXT, args)
    assert {"raddiff-orchestrator", "raddiff-bench"} <= dc.image_scripts(args)


def test_vlm_image_runs_pinned_vllm_in_the_services_one_venv() -> None:
    args = args_of("raddiff-vlm")
    image = dc.resolve(TEXT, args)
    installs = dc.installed(TEXT, args)
    assert "vllm" in installs and "./services/vlm" in installs
    assert any("pip install -c constraints.txt vllm==0.33.0" in run for run in image.runs())
    # constraints.txt's torch and transformers pins are the local venv's: dropped before vLLM's own.
    assert any(re.search(r"sed .*\^\(torch\|torchvision\|transformers\)==/d", run) for run in image.runs())
    # One venv: the runtime copies /opt/venv alone, and every pip in the build is that venv's.
    copies = [i.args for i in image.final.instructions if i.keyword == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]
    # The service's transformers range holds vLLM 0.33.0's (>=5.16.1,<5.21) and the local pin (5.23.0).
    text = (dc.ROOT / "services/vlm/pyproject.toml").read_text()
    (spec,) = re.findall(r'"transformers([^"]*)"', text)
    assert {"5.16.1", "5.20.2", "5.23.0"} <= set(SpecifierSet(spec).filter(["5.16.1", "5.20.2", "5.23.0"]))


GOOD = args_of("raddiff-evaluator")


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("FROM python:3.11.14-slim-bookworm AS base", "FROM python:3.11-slim AS base", "is not pinned"),
        ("FROM python:3.11.14-slim-bookworm AS runtime", "FROM python:latest AS runtime", "is not pinned"),
        ("USER 10001:10001", "USER root", "runs as USER root"),
        ("USER 10001:10001\n", "", "sets no USER"),
        ("COPY kit/ kit/", "COPY kit/ kit/\nCOPY .models/ /models/", "puts model weights in the image"),
        ("COPY kit/ kit/", "COPY kit/ kit/\nCOPY .venv/ /opt/venv/", "excluded by .dockerignore"),
        ("--grpc_python_out=kit/src protos/raddiff/v1/*.proto", "--grpc_python_out=kit/src", "gRPC stubs"),
        ("ARG SCRIPT\n", "", "build arg SCRIPT is declared by no ARG"),
        ("FROM torch-${TORCH} AS build", "FROM torch-${FLAVOUR} AS build", "which is no stage"),
    ],
)
def test_static_checks_fail_on_a_broken_dockerfile(old: str, new: str, problem: str) -> None:
    assert old in TEXT
    assert dc.check_dockerfile(TEXT, GOOD) == []
    problems = dc.check_dockerfile(TEXT.replace(old, new, 1), GOOD)
    assert any(problem in p for p in problems), problems


def test_single_stage_dockerfile_is_refused() -> None:
    text = "FROM python:3.11.14-slim-bookworm\nCOPY kit/ kit/\nUSER 10001\n"
    problems = dc.check_dockerfile(text, {})
    assert "not multi-stage: build tools would ship in the image" in problems


@pytest.mark.parametrize(
    ("image", "change", "problem"),
    [
        ("raddiff-localize", {"PACKAGE": "services/nothing"}, "COPY source services/nothing/ does not exist"),
        ("raddiff-localize", {"PACKAGE": ""}, "build arg PACKAGE is not set"),
        ("raddiff-localize", {"PACKGE": "services/localize"}, "build arg PACKGE is declared by no ARG"),
        ("raddiff-localize", {"PACKAGE": "services"}, "services is not a package"),
        ("raddiff-localize", {"SCRIPT": "raddiff-localise"}, "raddiff-localise is not a console script"),
        ("raddiff-localize", {"TORCH": "rocm"}, "FROM torch-${TORCH} gives torch-rocm, which is no stage"),
        ("raddiff-localize", {"TORCH": "cuda"}, "installs PyTorch: True, but its package depends on torch: False"),
        ("raddiff-embedding", {"TORCH": "none"}, "installs PyTorch: False, but its package depends on torch: True"),
        ("raddiff-vlm", {"SCRIPT": "raddiff-embedding"}, "raddiff-embedding is not a console script"),
        ("raddiff-embedding", {"DATA_PACKAGE": "weights"}, "weights is not a package"),
    ],
)
def test_artifact_check_fails_on_a_broken_skaffold_artifact(image: str, change: dict, problem: str) -> None:
    broken = copy.deepcopy(ARTIFACTS[image])
    broken["docker"]["buildArgs"].update(change)
    problems = dc.check_artifact(broken)
    assert any(problem in p for p in problems), problems


def test_artifact_check_reports_a_missing_dockerfile() -> None:
    broken = copy.deepcopy(ARTIFACTS["raddiff-localize"])
    broken["docker"]["dockerfile"] = "nope/Dockerfile"
    assert dc.check_artifact(broken) == ["skaffold artifact raddiff-localize: nope/Dockerfile does not exist"]
