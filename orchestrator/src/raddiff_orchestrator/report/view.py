"""From a stored analysis (its record, task and result JSON) to what the report template shows.

The result is read into the agent's own model (raddiff_orchestrator.agent.results.StoredResult,
"raddiff.result/1"), whose defaults for every field added since the first release let a result written
by an older agent still render.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from raddiff_orchestrator.agent.results import FindingResult, ImageScore, ProposalRound, StoredResult, VisualSearch
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
    rounds: list[ProposalRound]
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
    """record: a store.AnalysisRecord of a succeeded analysis (its task and result loaded).

    Raises pydantic.ValidationError (a ValueError) where the stored result is not a raddiff.result/1."""
    task: dict[str, Any] = record.task or {}
    result = StoredResult.from_json(record.result)
    # The image index works on the stored JSON: it collects every uri under the result's uri keys.
    index = {uri: n for n, uri in enumerate(analysis_images(task, record.result))}
    names = (task.get("set_a") or {}).get("name") or "A", (task.get("set_b") or {}).get("name") or "B"
    sizes = [len((task.get(key) or {}).get("uris", [])) for key in ("set_a", "set_b")]
    judged = result.evaluation.scores if result.evaluation else []
    context_uri = next(iter((task.get("set_a") or {}).get("uris", [])), "")

    def url(uri: str, size: int = 256) -> str | None:
        n = index.get(uri)
        return None if n is None else f"images/{n}?size={size}"

    def thumbs(entries: list[ImageScore]) -> list[Thumb]:
        links = ((url(e.uri), e) for e in entries)
        return [Thumb(link, e.group.upper(), e.score, e.uri) for link, e in links if link]

    def search(entry: VisualSearch) -> Search:
        return Search(
            finding=entry.finding,
            auroc=entry.auroc,
            box=asdict(entry.box),
            backend=entry.backend,
            grid_url=url(entry.grid_uri, 1024),
            crops_a=len(entry.crop_uris.get("a", [])),
            crops_b=len(entry.crop_uris.get("b", [])),
            context_url=url(context_uri, 256),
            thumb_url=url(entry.grid_uri, 320),
        )

    iteration_searches = [search(s) for item in result.iterations for s in item.searches]

    findings = []
    for position, item in enumerate(result.findings):
        found = _finding(item, judged[position] if position < len(judged) else None)
        found.most, found.least = thumbs(item.most_a_like), thumbs(item.least_a_like)
        found.searches = [search(s) for s in item.searches]
        led_to = {s.grid_url for s in found.searches}
        looks = [s for s in iteration_searches if s.finding == found.text and s.grid_url not in led_to]
        found.looks = looks[:LOOKS_PER_FINDING]
        findings.append(found)

    iterations = []
    for it in result.iterations:
        feedback = [(b.finding, b.auroc) for b in it.feedback]
        order = {text: n for n, (text, _) in enumerate(feedback)}
        iterations.append(
            Iteration(
                index=it.index,
                feedback=feedback,
                # Each round searched every fed-back finding: a finding's rounds side by side, in feedback order.
                searches=sorted((search(s) for s in it.searches), key=lambda s: order.get(s.finding, len(order))),
                rounds=list(it.rounds),
                deduplicated=len(it.deduplicated),
                ranked=[(b.finding, b.auroc) for b in it.ranked],
                acc_at_1=it.evaluation.acc_at_1 if it.evaluation else None,
                acc_at_5=it.evaluation.acc_at_5 if it.evaluation else None,
            )
        )
    history = [[a for _, a in it.ranked[:5] if a is not None] for it in iterations]
    evaluation = result.evaluation

    return ReportView(
        title=record.name or f"Analysis {record.id}",
        analysis_id=record.id,
        set_a=names[0],
        set_b=names[1],
        images_a=sizes[0],
        images_b=sizes[1],
        ranked_a=int(result.ranked_images.get("a", 0)),
        ranked_b=int(result.ranked_images.get("b", 0)),
        finished=_when(record.finished_at),
        proposer=result.proposer,
        embedding_model=result.embedding_model,
        ground_truth=task.get("ground_truth"),
        findings=findings,
        detailed=min(DETAILED_FINDINGS, len(findings)),
        iterations=iterations,
        history_svg=auroc_by_iteration(history) if any(history) else "",
        acc_at_1=evaluation.acc_at_1 if evaluation else None,
        acc_at_5=evaluation.acc_at_5 if evaluation else None,
        judge_backend=evaluation.backend if evaluation else "",
        verdict=result.verdict,
        config_rows=_flatten(result.config or (task.get("config") or {})),
        notes=list(result.notes),
    )


def _finding(item: FindingResult, judged: int | None) -> Finding:
    """One finding's statistics (its images and searches are added by build_view, which knows their urls)."""
    histogram = item.histogram
    return Finding(
        rank=item.rank,
        text=item.finding,
        auroc=item.auroc,
        ci=list(item.auroc_ci),
        ci_level=item.ci_level,
        p_value=item.p_value,
        q_value=item.q_value,
        t_statistic=item.t_statistic,
        t_p_value=item.t_p_value,
        effect_size=item.effect_size,
        mean_a=item.mean_a,
        mean_b=item.mean_b,
        chexzero_auroc=item.chexzero_auroc,
        specific_auroc=item.specific_auroc,
        specific_ci=list(item.specific_auroc_ci or []),
        specific_q_value=item.specific_q_value,
        # Without the specificity test (an older result) `supported` is only its default: show no mark.
        supported=item.supported if item.specificity_tested else None,
        support=item.support,
        iteration=item.iteration,
        origin=item.origin,
        judged=judged,
        histogram_svg=score_histogram(histogram.edges, histogram.a, histogram.b, item.mean_a, item.mean_b),
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
