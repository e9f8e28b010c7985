"""From a submitted request to a validated AnalysisTask, or a 4xx that names the problem.

Image sets come as lists, as a CSV (path, group_name) or as one pair of a
RadDiffBench-style JSONL. Every image is checked with the kit's ImageStore
(inside RADDIFF_DATA_ROOTS, no symlink out, exists, decodes, not truncated)
before anything is stored; the task keeps each image's canonical file:/// uri.
"""

from __future__ import annotations

import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from raddiff_kit.errors import NotFound, ServiceError
from raddiff_kit.images import ImageStore
from raddiff_orchestrator.agent.config import AgentConfig
from raddiff_orchestrator.agent.task import AnalysisTask, GroundTruth, ImageSet
from raddiff_orchestrator.schemas import AnalysisCreate, CsvInput, JsonlInput, SetsInput

_MAX_LISTED_PROBLEMS = 20
RADDIFF_RANK_CAP = 5000  # RadDiff's ranker.max_num_samples
CSV_PATH, CSV_GROUP, CSV_REPORT = "path", "group_name", "report"
JSONL_KEYS = ("set1", "set2", "set1_images", "set2_images")


class InputProblem(Exception):
    """A request that cannot be accepted; becomes an HTTP 4xx with this message."""

    def __init__(self, status: int, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems or []


@dataclass(frozen=True)
class Limits:
    max_images_per_set: int = 5000
    max_rank_images_per_set: int = 1000
    max_manifest_bytes: int = 64 * 1024 * 1024
    validation_threads: int = 4


@dataclass(frozen=True)
class _Ref:
    """An image as the request named it, and the folder a relative name is relative to."""

    text: str
    base: Path | None = None


@dataclass
class _Gathered:
    name_a: str
    name_b: str
    refs_a: list[_Ref]
    refs_b: list[_Ref]
    reports: dict[_Ref, str] = field(default_factory=dict)
    truth: GroundTruth | None = None


class InputResolver:
    def __init__(self, images: ImageStore, limits: Limits) -> None:
        self.images = images
        self.limits = limits

    def resolve(self, request: AnalysisCreate) -> AnalysisTask:
        """Validate everything the request names; blocking (it reads every image), so call it in a thread."""
        config = self._config(request)
        gathered = self._gather(request.input)
        for label, name, refs in (("A", gathered.name_a, gathered.refs_a), ("B", gathered.name_b, gathered.refs_b)):
            if not refs:
                raise InputProblem(422, f"set {label} ({name!r}) has no images")
            if len(refs) > self.limits.max_images_per_set:
                raise InputProblem(
                    422,
                    f"set {label} ({name!r}) has {len(refs)} images; at most {self.limits.max_images_per_set} are "
                    "accepted (RADDIFF_ORCH_MAX_IMAGES_PER_SET)",
                )
        uris = self._check_images([*gathered.refs_a, *gathered.refs_b])
        uris_a = list(dict.fromkeys(uris[: len(gathered.refs_a)]))  # a repeated image counts once
        uris_b = list(dict.fromkeys(uris[len(gathered.refs_a) :]))
        both = set(uris_a) & set(uris_b)
        if both:
            listed = ", ".join(sorted(both)[:5])
            raise InputProblem(422, f"{len(both)} image(s) are in both sets, e.g. {listed}; the sets must not overlap")
        reports = self._reports(request.reports, gathered.reports, set(uris_a) | set(uris_b))
        if config.proposer.method == "reports" and not reports:
            raise InputProblem(
                422,
                "config.proposer.method 'reports' needs reports: give `reports` or a CSV with a report column",
            )
        truth = request.ground_truth
        return AnalysisTask(
            set_a=ImageSet(gathered.name_a, uris_a),
            set_b=ImageSet(gathered.name_b, uris_b),
            config=config,
            reports=reports,
            ground_truth=GroundTruth(truth.a, truth.b) if truth else gathered.truth,
        )

    # -- config ---------------------------------------------------------------------
    def _config(self, request: AnalysisCreate) -> AgentConfig:
        """The request's config with the number of images ranked resolved against this deployment's ceiling."""
        given = request.config
        ceiling = self.limits.max_rank_images_per_set
        cap = given.ranker.max_num_samples
        if cap is not None and cap > ceiling:
            raise InputProblem(
                422,
                f"config.ranker.max_num_samples {cap} is over this deployment's ceiling of {ceiling} images per set "
                "(RADDIFF_ORCH_MAX_RANK_IMAGES_PER_SET)",
            )
        ranker = given.ranker.model_copy(update={"max_num_samples": cap or min(RADDIFF_RANK_CAP, ceiling)})
        return given.model_copy(update={"ranker": ranker})

    # -- the three ways to name two sets ------------------------------------------------
    def _gather(self, source: SetsInput | CsvInput | JsonlInput) -> _Gathered:
        if isinstance(source, SetsInput):
            refs_a, refs_b = [_Ref(t) for t in source.set_a], [_Ref(t) for t in source.set_b]
            return _Gathered(source.name_a, source.name_b, refs_a, refs_b)
        if isinstance(source, CsvInput):
            return self._from_csv(source)
        return self._from_jsonl(source)

    def _read_manifest(self, path_text: str, noun: str) -> tuple[str, Path]:
        """The text of a CSV or JSONL under the data roots, and the folder its relative paths start from."""
        path = Path(unquote(urlparse(path_text).path)) if path_text.startswith("file://") else Path(path_text)
        if not path.is_absolute():
            raise InputProblem(422, f"{noun} path {path_text!r} is not absolute")
        real = self._checked(lambda: self.images.resolve_data_file(path, noun))
        size = real.stat().st_size
        if size > self.limits.max_manifest_bytes:
            raise InputProblem(
                422, f"{noun} {path_text!r} is {size} bytes; the limit is {self.limits.max_manifest_bytes}"
            )
        try:
            return real.read_bytes().decode("utf-8-sig"), real.parent
        except UnicodeDecodeError as exc:
            raise InputProblem(422, f"{noun} {path_text!r} is not UTF-8 text (byte {exc.start})") from None

    def _from_csv(self, source: CsvInput) -> _Gathered:
        text, base = self._read_manifest(source.path, "CSV file")
        reader = csv.DictReader(io.StringIO(text))
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in (CSV_PATH, CSV_GROUP) if c not in columns]
        if missing:
            raise InputProblem(
                422, f"CSV file {source.path!r} lacks the column(s) {missing}; its columns are {columns or 'none'}"
            )
        reader.fieldnames = columns
        groups: dict[str, list[_Ref]] = {}
        reports: dict[_Ref, str] = {}
        try:
            for line, row in enumerate(reader, 2):
                path, group = (row.get(CSV_PATH) or "").strip(), (row.get(CSV_GROUP) or "").strip()
                if not path:
                    raise InputProblem(422, f"CSV file {source.path!r} line {line} has an empty path")
                ref = _Ref(path, base)
                groups.setdefault(group, []).append(ref)
                if (row.get(CSV_REPORT) or "").strip():
                    reports[ref] = row[CSV_REPORT].strip()
        except csv.Error as exc:
            raise InputProblem(422, f"CSV file {source.path!r} is malformed: {exc}") from None
        for group in (source.group_a, source.group_b):
            if group not in groups:
                known = ", ".join(repr(g) for g in sorted(groups)[:20]) or "none"
                raise InputProblem(422, f"group {group!r} is not in CSV file {source.path!r}; its groups are {known}")
        if source.group_a == source.group_b:
            raise InputProblem(422, f"group_a and group_b are both {source.group_a!r}; name two different groups")
        return _Gathered(source.group_a, source.group_b, groups[source.group_a], groups[source.group_b], reports)

    def _from_jsonl(self, source: JsonlInput) -> _Gathered:
        text, base = self._read_manifest(source.path, "JSONL file")
        pairs: list[tuple[int, dict[str, Any]]] = []
        for line_no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                pair = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputProblem(
                    422, f"JSONL file {source.path!r} line {line_no} is not valid JSON: {exc.msg} (column {exc.colno})"
                ) from None
            if not isinstance(pair, dict):
                raise InputProblem(422, f"JSONL file {source.path!r} line {line_no} is not a JSON object")
            pairs.append((line_no, pair))
        if not pairs:
            raise InputProblem(422, f"JSONL file {source.path!r} has no pairs")
        if source.pair_index is not None:
            if source.pair_index >= len(pairs):
                raise InputProblem(
                    422,
                    f"pair_index {source.pair_index} is out of range: JSONL file {source.path!r} has {len(pairs)} "
                    f"pair(s), indexed from 0",
                )
            line_no, pair = pairs[source.pair_index]
        else:
            matches = [(n, p) for n, p in pairs if p.get("set1") == source.set1 and p.get("set2") == source.set2]
            if not matches:
                raise InputProblem(
                    422, f"no pair in JSONL file {source.path!r} has set1={source.set1!r} and set2={source.set2!r}"
                )
            line_no, pair = matches[0]
        where = f"JSONL file {source.path!r} line {line_no}"
        missing = [k for k in JSONL_KEYS if k not in pair]
        if missing:
            raise InputProblem(422, f"{where} lacks the key(s) {missing}")
        for key in ("set1", "set2"):
            if not isinstance(pair[key], str) or not pair[key].strip():
                raise InputProblem(422, f"{where}: {key} must be a non-empty string")
        for key in ("set1_images", "set2_images"):
            if not isinstance(pair[key], list) or not all(isinstance(p, str) and p for p in pair[key]):
                raise InputProblem(422, f"{where}: {key} must be a list of image paths")
        return _Gathered(
            pair["set1"],
            pair["set2"],
            [_Ref(p, base) for p in pair["set1_images"]],
            [_Ref(p, base) for p in pair["set2_images"]],
            truth=GroundTruth(pair["set1"], pair["set2"]),
        )

    # -- images ---------------------------------------------------------------------------
    def _uri(self, ref: _Ref) -> str:
        """A file:/// uri for an absolute path, a path relative to its manifest, or a uri as given."""
        if "://" in ref.text:
            return ref.text
        path = Path(ref.text)
        if not path.is_absolute():
            if ref.base is None:
                raise InputProblem(422, f"image {ref.text!r} is neither an absolute path nor a file:/// uri")
            path = ref.base / path
        return path.as_uri()

    def _canonical(self, ref: _Ref) -> str:
        """The uri of the real file (symlinks and .. resolved) after the root and existence checks."""
        uri = self._uri(ref)
        return self._checked(lambda: self.images.resolve(uri)).as_uri()

    def _check_images(self, refs: list[_Ref]) -> list[str]:
        """Canonical uris, in order, after decoding every image; one 4xx naming every bad one."""

        def check(ref: _Ref) -> tuple[str | None, InputProblem | None]:
            try:
                uri = self._canonical(ref)
                self._checked(lambda: self.images.check(uri))
                return uri, None
            except InputProblem as problem:
                return None, problem

        with ThreadPoolExecutor(max_workers=self.limits.validation_threads) as pool:
            outcomes = list(pool.map(check, refs))
        problems = [p for _, p in outcomes if p is not None]
        if problems:
            # 404 only when every problem is a missing file; anything else is a bad request body.
            status = 404 if all(p.status == 404 for p in problems) else 422
            listed = [p.message for p in problems[:_MAX_LISTED_PROBLEMS]]
            if len(problems) > _MAX_LISTED_PROBLEMS:
                listed.append(f"... and {len(problems) - _MAX_LISTED_PROBLEMS} more")
            raise InputProblem(status, f"{len(problems)} of {len(refs)} images cannot be used: {listed[0]}", listed)
        return [uri for uri, _ in outcomes if uri is not None]

    def _checked(self, action: Any) -> Any:
        try:
            return action()
        except NotFound as exc:
            raise InputProblem(404, exc.message) from None
        except ServiceError as exc:
            raise InputProblem(422, exc.message) from None

    def _reports(self, given: dict[str, str], from_manifest: dict[_Ref, str], uris: set[str]) -> dict[str, str]:
        reports: dict[str, str] = {}
        for ref, text in [*from_manifest.items(), *((_Ref(k), v) for k, v in given.items())]:
            uri = self._canonical(ref)
            if uri not in uris:
                raise InputProblem(422, f"a report is given for {ref.text!r}, which is in neither set")
            if text.strip():
                reports[uri] = text.strip()
        return reports
