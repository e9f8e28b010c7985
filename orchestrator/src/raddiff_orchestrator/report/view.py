"""From a stored analysis (its record, task and result JSON) to what the report template shows.

The result's structure is raddiff_orchestrator.agent.results ("raddiff.result/1"). The report reads it
as JSON, with defaults for every key, so that a result written by an older agent still renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from raddiff_orchestrator.report.images import analysis_images
from raddiff_orchestrator.report.plots import auroc_by_iteration, score_histogram

# How many findings get a section of their own and a row in the table's visible part; the rest fold away.
DETAILED_FINDINGS = 10
# Zoomed looks shown per finding (each is one round's crops; the rounds' boxes are usually alike).
LOOKS_PER_FINDING = 2
JUDGE_WORDS = {2: "matches the ground truth", 1: "partly matches", 0: "does not match"}


@dataclass(frozen=True)
class Thumb:
    url: str
    group: str  # "A" or "B"
    score: float | None = None
    uri: str = ""


@dataclass(frozen=True)
class Search:
    finding: str
    auroc: float | None
    box: dict[str, float]
    backend: str
    grid_url: str | None
    crops_a: int
    crops_b: int
    context_url: str | None  # an image of set A, to draw the box on
    thumb_url: str | None  # the zoom grid, small

    @property
    def whole_image(self) -> bool:
        return (self.box["x0"], self.box["y0"], self.box["x1"], self.box["y1"]) == (0.0, 0.0, 1.0, 1.0)


@dataclass
class Finding:
    rank: int
    text: str
    auroc: float | None
    ci: list[float]
    ci_level: float
    p_value: float | None
    q_value: float | None
    t_statistic: float | None
    t_p_value: float | None
    effect_size: float | None
    mean_a: float | None
    mean_b: float | None
    chexzero_auroc: float | None
    specific_auroc: float | None
    specific_ci: list[float]
    specific_q_value: float | None
    supported: bool | None  # None: a result from before the specificity test
    support: str
    iteration: int | None
    origin: str
    judged: int | None
    histogram_svg: str
    most: list[Thumb] = field(default_factory=list)
    least: list[Thumb] = field(default_factory=list)
    searches: list[Search] = field(default_factory=list)  # the zoomed crops that led to it
    looks: list[Search] = field(default_factory=list)  # later zoomed looks at it, as a top finding fed back


@dataclass
class Iteration:
    index: int
    feedback: list[tuple[str, float | None]]
    searches: list[Search]
    rounds: list[dict[str, Any]]
    deduplicated: int
    ranked: list[tuple[str, float | None]]
    acc_at_1: float | None
    acc_at_5: float | None


@dataclass
class ReportView:
    title: str
    analysis_id: str
    set_a: str
    set_b: str
    images_a: int
    images_b: int
    ranked_a: int
    ranked_b: int
    finished: str
    proposer: str
    embedding_model: str
    ground_truth: dict[str, str] | None
    findings: list[Finding]
    detailed: int
    iterations: list[Iteration]
    history_svg: str
    acc_at_1: float | None
    acc_at_5: float | None
    judge_backend: str
    verdict: str
    config_rows: list[tuple[str, str]]
    notes: list[str]


def build_view(record: Any) -> ReportView:
    """record: a store.AnalysisRecord of a succeeded analysis (its task and result loaded)."""
    task: dict[str, Any] = record.task or {}
    result: dict[str, Any] = record.result or {}
    index = {uri: n for n, uri in enumerate(analysis_images(task, result))}
    names = (task.get("set_a") or {}).get("name") or "A", (task.get("set_b") or {}).get("name") or "B"
    sizes = [len((task.get(key) or {}).get("uris", [])) for key in ("set_a", "set_b")]
    ranked = result.get("ranked_images") or {}
    evaluation = result.get("evaluation") or {}
    judged = evaluation.get("scores") or []
    context_uri = next(iter((task.get("set_a") or {}).get("uris", [])), "")

    def url(uri: str, size: int = 256) -> str | None:
        n = index.get(uri)
        return None if n is None else f"images/{n}?size={size}"

    def thumbs(entries: list[dict[str, Any]]) -> list[Thumb]:
        out = []
        for entry in entries:
            link = url(entry.get("uri", ""))
            if link:
                out.append(Thumb(link, str(entry.get("group", "")).upper(), entry.get("score"), entry.get("uri", "")))
        return out

    def search(entry: dict[str, Any]) -> Search:
        crops = entry.get("crop_uris") or {}
        return Search(
            finding=entry.get("finding", ""),
            auroc=entry.get("auroc"),
            box=entry.get("box") or {"x0": 0.0, "y0": 0.0, "x1": 1.0, "y1": 1.0},
            backend=entry.get("backend", ""),
            grid_url=url(entry.get("grid_uri", ""), 1024),
            crops_a=len(crops.get("a", [])),
            crops_b=len(crops.get("b", [])),
            context_url=url(context_uri, 256),
            thumb_url=url(entry.get("grid_uri", ""), 320),
        )

    iteration_searches = [search(s) for item in result.get("iterations") or [] for s in item.get("searches") or []]

    findings = []
    for position, item in enumerate(result.get("findings") or []):
        histogram = item.get("histogram") or {}
        findings.append(
            Finding(
                rank=item.get("rank", position + 1),
                text=item.get("finding", ""),
                auroc=item.get("auroc"),
                ci=list(item.get("auroc_ci") or []),
                ci_level=item.get("ci_level", 0.95),
                p_value=item.get("p_value"),
                q_value=item.get("q_value"),
                t_statistic=item.get("t_statistic"),
                t_p_value=item.get("t_p_value"),
                effect_size=item.get("effect_size"),
                mean_a=item.get("mean_a"),
                mean_b=item.get("mean_b"),
                chexzero_auroc=item.get("chexzero_auroc"),
                specific_auroc=item.get("specific_auroc"),
                specific_ci=list(item.get("specific_auroc_ci") or []),
                specific_q_value=item.get("specific_q_value"),
                supported=item.get("supported") if "specific_auroc" in item else None,
                support=str(item.get("support", "")),
                iteration=item.get("iteration"),
                origin=item.get("origin", "proposal"),
                judged=judged[position] if position < len(judged) else None,
                histogram_svg=score_histogram(
                    histogram.get("edges", []), histogram.get("a", []), histogram.get("b", []),
                    item.get("mean_a"), item.get("mean_b"),
                ),
                most=thumbs(item.get("most_a_like") or []),
                least=thumbs(item.get("least_a_like") or []),
                searches=[search(s) for s in item.get("searches") or []],
            )
        )
        found = findings[-1]
        led_to = {s.grid_url for s in found.searches}
        looks = [s for s in iteration_searches if s.finding == found.text and s.grid_url not in led_to]
        found.looks = looks[:LOOKS_PER_FINDING]

    iterations = []
    for item in result.get("iterations") or []:
        evaluation_i = item.get("evaluation") or {}
        feedback = [(b.get("finding", ""), b.get("auroc")) for b in item.get("feedback") or []]
        order = {text: n for n, (text, _) in enumerate(feedback)}
        iterations.append(
            Iteration(
                index=item.get("index", len(iterations) + 1),
                feedback=feedback,
                # Each round searched every fed-back finding: a finding's rounds side by side, in feedback order.
                searches=sorted(
                    (search(s) for s in item.get("searches") or []), key=lambda s: order.get(s.finding, len(order))
                ),
                rounds=list(item.get("rounds") or []),
                deduplicated=len(item.get("deduplicated") or []),
                ranked=[(b.get("finding", ""), b.get("auroc")) for b in item.get("ranked") or []],
                acc_at_1=evaluation_i.get("acc_at_1"),
                acc_at_5=evaluation_i.get("acc_at_5"),
            )
        )
    history = [[a for _, a in it.ranked[:5] if a is not None] for it in iterations]

    return ReportView(
        title=record.name or f"Analysis {record.id}",
        analysis_id=record.id,
        set_a=names[0],
        set_b=names[1],
        images_a=sizes[0],
        images_b=sizes[1],
        ranked_a=int(ranked.get("a", 0)),
        ranked_b=int(ranked.get("b", 0)),
        finished=_when(record.finished_at),
        proposer=result.get("proposer", ""),
        embedding_model=result.get("embedding_model", ""),
        ground_truth=task.get("ground_truth"),
        findings=findings,
        detailed=min(DETAILED_FINDINGS, len(findings)),
        iterations=iterations,
        history_svg=auroc_by_iteration(history) if any(history) else "",
        acc_at_1=evaluation.get("acc_at_1"),
        acc_at_5=evaluation.get("acc_at_5"),
        judge_backend=evaluation.get("backend", ""),
        verdict=str(result.get("verdict", "")),
        config_rows=_flatten(result.get("config") or (task.get("config") or {})),
        notes=[str(n) for n in result.get("notes") or []],
    )


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _flatten(config: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """{"proposer": {"method": "offline"}} -> [("proposer.method", "offline")], in the config's order."""
    rows: list[tuple[str, str]] = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _flatten(value, f"{name}.")
        else:
            rows.append((name, "(default)" if value is None else str(value)))
    return rows
