"""Static checks of docker/Dockerfile, the one Dockerfile of every image, as each skaffold artifact builds it
(no Docker engine runs here, so the images are never built in CI): the Dockerfile is resolved with the
artifact's build args (ARG scoping, `${VAR}` in FROM, COPY, EXPOSE, RUN; the stages the final one needs),
then checked: pinned bases, multi-stage, a non-root final user, COPY sources that exist and are not ignored,
stubs generated from protos/ in the build stage, no weights, and an entrypoint, ports and PyTorch that match
the package."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
SKAFFOLD = ROOT / "skaffold.yaml"
HEAVY = ("torch", "transformers", "open_clip_torch", "open-clip-torch", "vllm")
# What a pip install of these puts in the venv: PyTorch itself, or vLLM with the torch it pins.
BRINGS_TORCH = ("torch", "vllm")
TORCH_FLAVOURS = ("cuda", "cpu", "none", "vllm")
REQUIRED_ARGS = ("PACKAGE", "SCRIPT", "PORTS", "TORCH")


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


_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def _expand(value: str, env: dict[str, str]) -> str:
    """${X} and $X replaced for the variables in env; others (the image's own, such as $PATH) kept."""
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), value)


@dataclass
class Stage:
    base: str  # the image or stage it starts from, build args expanded
    name: str | None
    line: int
    raw_base: str
    instructions: list[Instruction] = field(default_factory=list)  # build args expanded


@dataclass
class Image:
    """One Dockerfile resolved with one set of build args."""

    stages: list[Stage]
    problems: list[str]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def needed(self) -> list[Stage]:
        """The final stage and every stage it starts from or copies from, in Dockerfile order."""
        seen: set[int] = set()
        todo = [self.final] if self.stages else []
        while todo:
            stage = todo.pop()
            if id(stage) in seen:
                continue
            seen.add(id(stage))
            sources = [stage.base] + [
                m.group(1) for i in stage.instructions if (m := re.search(r"--from=(\S+)", i.args))
            ]
            todo += [s for s in map(self.stage, sources) if s is not None]
        return [s for s in self.stages if id(s) in seen]

    def runs(self, stages: list[Stage] | None = None) -> list[str]:
        chosen = self.needed() if stages is None else stages
        return [i.args for s in chosen for i in s.instructions if i.keyword == "RUN"]


def resolve(text: str, build_args: dict[str, str]) -> Image:
    """Docker's ARG rules: ARGs before the first FROM are global (usable in FROM, and in a stage that
    redeclares them); a stage's ARG takes the build arg, else its default, else the global value."""
    problems: list[str] = []
    declared: set[str] = set()
    global_env: dict[str, str] = {}
    stages: list[Stage] = []
    env: dict[str, str] = {}
    for ins in parse(text):
        if ins.keyword == "ARG":
            name, eq, default = ins.args.partition("=")
            name = name.strip()
            declared.add(name)
            scope = env if stages else global_env
            if name in build_args:
                scope[name] = build_args[name]
            elif eq:
                scope[name] = _expand(default.strip().strip('"'), scope)
            elif name in global_env and stages:
                scope[name] = global_env[name]
            if stages and not scope.get(name):
                problems.append(f"line {ins.line}: build arg {name} has no value")
            if stages:
                stages[-1].instructions.append(Instruction("ARG", f"{name}={scope.get(name, '')}", ins.line))
            continue
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(_expand(words[0], global_env), name, ins.line, words[0]))
            env = {}
            continue
        if stages:
            stages[-1].instructions.append(Instruction(ins.keyword, _expand(ins.args, env), ins.line))
    for name in sorted(set(build_args) - declared):
        problems.append(f"build arg {name} is declared by no ARG (misspelt?)")
    names = {s.name for s in stages}
    for stage in stages:
        if "$" in stage.raw_base and stage.base not in names:
            problems.append(f"line {stage.line}: FROM {stage.raw_base} gives {stage.base}, which is no stage")
    return Image(stages, problems)


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


def _pinned(image: str) -> bool:
    return "@sha256:" in image or bool(re.search(r":[^:/]*\d+\.\d+\.\d+[^:/]*$", image))


def check_dockerfile(text: str, build_args: dict[str, str], root: Path = ROOT) -> list[str]:
    """Problems with the Dockerfile as built with these build args (build context: the repository root)."""
    image = resolve(text, build_args)
    problems = list(image.problems)
    needed = image.needed()
    if len(needed) < 2:
        problems.append("not multi-stage: build tools would ship in the image")
    earlier: set[str] = set()
    for stage in image.stages:
        if stage.base not in earlier and "$" not in stage.raw_base and not _pinned(stage.base):
            problems.append(f"line {stage.line}: FROM {stage.base} is not pinned to a digest or an exact version tag")
        if stage.name:
            earlier.add(stage.name)
    patterns = dockerignore_patterns(root)
    for ins in [i for s in needed for i in s.instructions]:
        if ins.keyword not in ("COPY", "ADD") or "--from=" in ins.args:
            continue
        words = [w for w in ins.args.split() if not w.startswith("--")]
        for source in words[:-1]:
            if source.strip("/.") == "":
                problems.append(f"line {ins.line}: {ins.keyword} {source} takes the whole build context")
                continue
            matches = list(root.glob(source.rstrip("/"))) if any(c in source for c in "*?[") else [root / source]
            if not any(m.exists() for m in matches):
                problems.append(f"line {ins.line}: {ins.keyword} source {source} does not exist in the build context")
            elif ignored(source.rstrip("/"), patterns):
                problems.append(f"line {ins.line}: {ins.keyword} source {source} is excluded by .dockerignore")
            if re.search(r"\.models|\.(pt|safetensors|bin|ckpt)$", source):
                problems.append(f"line {ins.line}: {ins.keyword} {source} puts model weights in the image")
    final = image.final.instructions if image.stages else []
    users = [ins.args for ins in final if ins.keyword == "USER"]
    if not users:
        problems.append("the final stage sets no USER: the container would run as root")
    elif users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"the final stage runs as USER {users[-1]}")
    build = "\n".join(image.runs(needed[:-1]))
    if "grpc_tools.protoc" not in build or "protos/raddiff/v1/*.proto" not in build:
        problems.append("the build stage does not generate the gRPC stubs from protos/")
    return problems


def pip_installs(run: str) -> list[str]:
    """The requirement names each `pip install` of a RUN line installs (folders as given)."""
    names = []
    for command in re.split(r"&&|\|\||;", run):
        words = shlex.split(command)
        if "pip" not in [Path(w).name for w in words[:1]] or words[1:2] != ["install"]:
            continue
        skip = False
        for word in words[2:]:
            if skip:
                skip = False
            elif word in ("-c", "-r", "--index-url", "--extra-index-url", "-i", "--constraint"):
                skip = True
            elif not word.startswith("-"):
                names.append(re.split(r"[<>=!~\[ ;]", word, maxsplit=1)[0].lower())
    return names


def installed(text: str, build_args: dict[str, str]) -> list[str]:
    image = resolve(text, build_args)
    return [name for run in image.runs() for name in pip_installs(run)]


def installs_torch(text: str, build_args: dict[str, str]) -> bool:
    return bool(set(installed(text, build_args)) & set(BRINGS_TORCH))


def entrypoint(text: str, build_args: dict[str, str]) -> list[str]:
    """The final ENTRYPOINT, with a link made in a RUN (`ln -s TARGET .../NAME`) resolved to its target."""
    image = resolve(text, build_args)
    (ins,) = [i for i in image.final.instructions if i.keyword == "ENTRYPOINT"][-1:]
    command = json.loads(ins.args)
    for run in image.runs():
        for target, link in re.findall(r"ln -s\S*\s+(\S+)\s+(\S+)", run):
            if Path(link).name == command[0]:
                command[0] = Path(target).name
    return command


def exposed(text: str, build_args: dict[str, str]) -> set[int]:
    image = resolve(text, build_args)
    return {int(p.split("/")[0]) for i in image.final.instructions if i.keyword == "EXPOSE" for p in i.args.split()}


def final_env(text: str, build_args: dict[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in resolve(text, build_args).final.instructions:
        if ins.keyword == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", ins.args)))
    return env


# -- the packages and the skaffold artifacts ------------------------------------------------------


def package_dependencies(folder: str, root: Path = ROOT) -> list[str]:
    data = tomllib.loads((root / folder / "pyproject.toml").read_text())
    return [re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower() for d in data["project"].get("dependencies", [])]


def package_scripts(folder: str, root: Path = ROOT) -> dict[str, str]:
    return tomllib.loads((root / folder / "pyproject.toml").read_text())["project"].get("scripts", {})


def artifacts(config: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """skaffold image -> its artifact."""
    config = config or yaml.safe_load(SKAFFOLD.read_text())
    return {a["image"]: a for a in config["build"]["artifacts"]}


def build_args(artifact: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (artifact.get("docker", {}).get("buildArgs") or {}).items()}


def dockerfile_of(artifact: dict[str, Any], root: Path = ROOT) -> Path:
    return root / artifact.get("context", ".") / artifact.get("docker", {}).get("dockerfile", "Dockerfile")


def packages(args: dict[str, str]) -> list[str]:
    """The package folders an image installs beside the kit."""
    return list(dict.fromkeys(a for a in (args.get("PACKAGE"), args.get("EXTRA_PACKAGE")) if a))


def image_scripts(args: dict[str, str], root: Path = ROOT) -> set[str]:
    """Console scripts of every package the image installs."""
    return {s for f in packages(args) if (root / f / "pyproject.toml").exists() for s in package_scripts(f, root)}


def check_artifact(artifact: dict[str, Any], root: Path = ROOT) -> list[str]:
    """One skaffold artifact: its Dockerfile passes the static checks with its build args, the build args
    name real packages and a console script of theirs, and PyTorch goes in exactly when the package needs it."""
    where = f"skaffold artifact {artifact['image']}"
    path = dockerfile_of(artifact, root)
    if not path.exists():
        return [f"{where}: {path.relative_to(root)} does not exist"]
    args = build_args(artifact)
    problems = [f"{where}: build arg {name} is not set" for name in REQUIRED_ARGS if not args.get(name)]
    if problems:
        return problems
    text = path.read_text()
    problems += [f"{where}: {p}" for p in check_dockerfile(text, args, root)]
    for folder in [*packages(args), *([args["DATA_PACKAGE"]] if args.get("DATA_PACKAGE") else [])]:
        if not (root / folder / "pyproject.toml").exists():
            problems.append(f"{where}: {folder} is not a package (no pyproject.toml)")
    if problems:
        return problems
    if args["TORCH"] not in TORCH_FLAVOURS:
        problems.append(f"{where}: TORCH={args['TORCH']} is none of {', '.join(TORCH_FLAVOURS)}")
    if args["SCRIPT"] not in image_scripts(args, root):
        problems.append(f"{where}: {args['SCRIPT']} is not a console script of {' or '.join(packages(args))}")
    if entrypoint(text, args) != [args["SCRIPT"]]:
        problems.append(f"{where}: the entrypoint {entrypoint(text, args)} is not [{args['SCRIPT']!r}]")
    needs = "torch" in {d for f in packages(args) for d in package_dependencies(f, root)}
    if installs_torch(text, args) != needs:
        problems.append(
            f"{where}: installs PyTorch: {installs_torch(text, args)}, but its package depends on torch: {needs}"
        )
    return problems
