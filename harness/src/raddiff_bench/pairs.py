"""Benchmark pairs read from a JSONL: RadDiffBench's image pairs and the report benchmark's report pairs.

A pair's index is its 0-based position among the non-blank lines, the same index the Kubernetes Indexed
Job gives its pods (charts/raddiff/templates/_bench.tpl). Anything malformed is a BadInput that names the
file and line, so `run-pair` can exit with the code the Job treats as "do not retry".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UNKNOWN_DIFFICULTY = "unknown"


class BadInput(Exception):
    """Input that will not improve on retry: a malformed pair, a missing file, a bad config."""


@dataclass(frozen=True)
class ImagePair:
    """One RadDiffBench pair: set1 is the truth of A, set2 of B; images as absolute paths."""

    index: int
    id: str
    difficulty: str
    set1: str
    set2: str
    images_a: tuple[str, ...]
    images_b: tuple[str, ...]
    null: bool = False  # the sets do not differ (raddiff-synth's null pairs): nothing to judge


@dataclass(frozen=True)
class ReportPair:
    """One pair of the report benchmark: report texts only, no images."""

    index: int
    id: str
    difficulty: str
    set1: str
    set2: str
    texts_a: tuple[str, ...]
    texts_b: tuple[str, ...]


def read_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path} is not UTF-8 text (byte {exc.start})") from None
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}:{number}: not JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(item, dict):
            raise BadInput(f"{path}:{number}: a pair must be a JSON object, not {type(item).__name__}")
        lines.append((number, item))
    if not lines:
        raise BadInput(f"{path} holds no pairs")
    return lines


def _text(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{where}: {key} must be a non-empty string")
    return value


def _strings(item: dict[str, Any], key: str, where: str) -> list[str]:
    value = item.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise BadInput(f"{where}: {key} must be a non-empty list of strings")
    return value


def _identity(item: dict[str, Any], index: int, where: str) -> tuple[str, str]:
    pair_id = item.get("pair_id", f"pair-{index}")
    difficulty = item.get("difficulty", UNKNOWN_DIFFICULTY)
    if not isinstance(pair_id, str) or not pair_id.strip():
        raise BadInput(f"{where}: pair_id must be a non-empty string")
    if not isinstance(difficulty, str) or not difficulty.strip():
        raise BadInput(f"{where}: difficulty must be a non-empty string")
    return pair_id, difficulty


def _absolute(image: str, root: Path) -> str:
    """An image path as the orchestrator must see it: relative paths start at `root`; uris stay as given."""
    if "://" in image:
        return image
    path = Path(image)
    return str(path if path.is_absolute() else root / path)


def image_pair(item: dict[str, Any], index: int, where: str, image_root: Path) -> ImagePair:
    pair_id, difficulty = _identity(item, index, where)
    return ImagePair(
        index=index,
        id=pair_id,
        difficulty=difficulty,
        set1=_text(item, "set1", where),
        set2=_text(item, "set2", where),
        images_a=tuple(_absolute(p, image_root) for p in _strings(item, "set1_images", where)),
        images_b=tuple(_absolute(p, image_root) for p in _strings(item, "set2_images", where)),
        null=item.get("null") is True,
    )


TextReader = Callable[[Sequence[str]], list[str]]


def report_pair(item: dict[str, Any], index: int, where: str, read_texts: TextReader | None) -> ReportPair:
    """Texts embedded (`--include-text`: set1_texts, set2_texts) or read back from report ids."""
    pair_id, difficulty = _identity(item, index, where)
    texts: list[tuple[str, ...]] = []
    for side in ("set1", "set2"):
        if f"{side}_texts" in item:
            texts.append(tuple(_strings(item, f"{side}_texts", where)))
            continue
        ids = _strings(item, f"{side}_reports", where)
        if read_texts is None:
            raise BadInput(f"{where}: {side}_reports holds report ids but no reader of report texts is available")
        try:
            texts.append(tuple(read_texts(ids)))
        except KeyError as exc:
            raise BadInput(f"{where}: {exc.args[0]}") from None
    return ReportPair(
        index=index,
        id=pair_id,
        difficulty=difficulty,
        set1=_text(item, "set1", where),
        set2=_text(item, "set2", where),
        texts_a=texts[0],
        texts_b=texts[1],
    )


def _select(
    lines: list[tuple[int, dict[str, Any]]], path: Path, ids: Sequence[str] | None
) -> list[tuple[int, int, dict[str, Any]]]:
    """(index, line number, object) of the pairs asked for, in file order; unknown ids are an error."""
    chosen = [(i, n, item) for i, (n, item) in enumerate(lines)]
    if ids is None:
        return chosen
    known = {item.get("pair_id", f"pair-{i}"): i for i, _, item in chosen}
    unknown = [p for p in ids if p not in known]
    if unknown:
        raise BadInput(f"{path} has no pair(s) {', '.join(unknown)}; its pairs are {', '.join(map(str, known))}")
    wanted = {known[p] for p in ids}
    return [c for c in chosen if c[0] in wanted]


def load_image_pairs(path: Path, ids: Sequence[str] | None = None, image_root: Path | None = None) -> list[ImagePair]:
    """The pairs of a RadDiffBench JSONL; relative image paths start at image_root (default: the JSONL's folder)."""
    root = (image_root or path.parent).absolute()
    lines = read_lines(path)
    return [image_pair(item, i, f"{path}:{n}", root) for i, n, item in _select(lines, path, ids)]


def load_image_pair(path: Path, index: int, image_root: Path | None = None) -> ImagePair:
    """The pair at a Job completion index."""
    lines = read_lines(path)
    if not 0 <= index < len(lines):
        raise BadInput(f"index {index} is out of range: {path} holds {len(lines)} pair(s), indexed from 0")
    number, item = lines[index]
    return image_pair(item, index, f"{path}:{number}", (image_root or path.parent).absolute())


def load_report_pairs(
    path: Path, ids: Sequence[str] | None = None, read_texts: TextReader | None = None
) -> list[ReportPair]:
    lines = read_lines(path)
    return [report_pair(item, i, f"{path}:{n}", read_texts) for i, n, item in _select(lines, path, ids)]


def image_reports(pair: ImagePair) -> dict[str, str]:
    """The report beside each image (<image>.txt, as raddiff-synth writes them), keyed by the image's path."""
    reports: dict[str, str] = {}
    for image in (*pair.images_a, *pair.images_b):
        if "://" in image:
            raise BadInput(f"pair {pair.id}: reports are read beside image files, but {image!r} is a uri")
        report = Path(image).with_suffix(".txt")
        try:
            reports[image] = report.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"pair {pair.id}: the config asks for reports but {report} cannot be read ({exc})") from None
    return reports
