"""Static checks of the Dockerfiles (no Docker engine runs here, so the images are never built in CI):
pinned bases, a non-root final user, COPY sources that exist and are not ignored, stubs generated from
protos/ in the build stage, no weights, and an entrypoint, ports and PyTorch that match the package."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# folder -> (console script, chart component)
IMAGES = {
    "services/vlm": ("raddiff-vlm", "vlm"),
    "services/embedding": ("raddiff-embedding", "embedding"),
    "services/llm_proxy": ("raddiff-llm-proxy", "llm-proxy"),
    "services/localize": ("raddiff-localize", "localize"),
    "services/evaluator": ("raddiff-evaluator", "evaluator"),
    "orchestrator": ("raddiff-orchestrator", "orchestrator"),
}
HEAVY = ("torch", "transformers", "open_clip_torch", "open-clip-torch", "vllm")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments and blank lines dropped."""
    out: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        keyword, _, args = buffer.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = ""
    return out


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def _from_parts(args: str) -> tuple[str, str | None]:
    words = [w for w in args.split() if not w.startswith("--")]
    name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
    return words[0], name


def dockerignore_patterns(root: Path = ROOT) -> list[str]:
    path = root / ".dockerignore"
    lines = path.read_text().splitlines() if path.exists() else []
    return [ln.strip().rstrip("/") for ln in lines if ln.strip() and not ln.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    parts = Path(relative).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.removeprefix("**/")) for p in prefixes for pat in patterns
    )


def check_dockerfile(text: str, root: Path = ROOT) -> list[str]:
    """Problems with one Dockerfile (build context: the repository root)."""
    problems = []
    instructions = parse(text)
    all_stages = stages(instructions)
    if len(all_stages) < 2:
        problems.append("not multi-stage: build tools would ship in the image")
    names: set[str] = set()
    for stage in all_stages:
        image, name = _from_parts(stage[0].args)
        if image not in names:
            pinned = "@sha256:" in image or re.search(r":[^:/]*\d+\.\d+\.\d+[^:/]*$", image)
            if not pinned:
                problems.append(f"line {stage[0].line}: FROM {image} is not pinned to a digest or an exact version tag")
        if name:
            names.add(name)
    patterns = dockerignore_patterns(root)
    for ins in instructions:
        if ins.keyword not in ("COPY", "ADD") or "--from=" in ins.args:
            continue
        words = [w for w in ins.args.split() if not w.startswith("--")]
        for source in words[:-1]:
            matches = list(root.glob(source.rstrip("/"))) if any(c in source for c in "*?[") else [root / source]
            if not any(m.exists() for m in matches):
                problems.append(f"line {ins.line}: {ins.keyword} source {source} does not exist in the build context")
            elif ignored(source.rstrip("/"), patterns):
                problems.append(f"line {ins.line}: {ins.keyword} source {source} is excluded by .dockerignore")
            if re.search(r"\.models|\.(pt|safetensors|bin|ckpt)$", source):
                problems.append(f"line {ins.line}: {ins.keyword} {source} puts model weights in the image")
    final = all_stages[-1] if all_stages else []
    users = [ins.args for ins in final if ins.keyword == "USER"]
    if not users:
        problems.append("the final stage sets no USER: the container would run as root")
    elif users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"the final stage runs as USER {users[-1]}")
    build = "\n".join(ins.args for stage in all_stages[:-1] for ins in stage if ins.keyword == "RUN")
    if "grpc_tools.protoc" not in build or "protos/raddiff/v1/*.proto" not in build:
        problems.append("the build stage does not generate the gRPC stubs from protos/")
    return problems


def package_dependencies(folder: str, root: Path = ROOT) -> list[str]:
    data = tomllib.loads((root / folder / "pyproject.toml").read_text())
    return [re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower() for d in data["project"].get("dependencies", [])]


def package_scripts(folder: str, root: Path = ROOT) -> dict[str, str]:
    return tomllib.loads((root / folder / "pyproject.toml").read_text())["project"].get("scripts", {})


def entrypoint(text: str) -> list[str]:
    import json

    (ins,) = [i for i in parse(text) if i.keyword == "ENTRYPOINT"][-1:]
    return json.loads(ins.args)


def exposed(text: str) -> set[int]:
    return {int(p.split("/")[0]) for i in parse(text) if i.keyword == "EXPOSE" for p in i.args.split()}


def final_env(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stages(parse(text))[-1]:
        if ins.keyword == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", ins.args)))
    return env


def installs_torch(text: str) -> bool:
    return any(re.search(r"pip install\b.*\btorch\b", i.args) for i in parse(text) if i.keyword == "RUN")
