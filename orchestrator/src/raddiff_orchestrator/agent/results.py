"""The result of one analysis: the structure the REST API returns under `results`, the CLI prints, and
the HTML evidence report (raddiff_orchestrator.report) renders. `AnalysisResult.to_json()` is the
only way a result leaves the agent, so this module is the contract between them.

One typed model serves every side: the classes below are pydantic dataclasses, so the agent builds them
like plain dataclasses (by keyword or position), the REST API declares `StoredResult` as the schema of
`results` (OpenAPI shows every field), and the report and the harness read a stored result back with
`StoredResult.from_json(...)` (validated, attributes instead of dict lookups). Every field added after
the first release has a default, so a result stored by an older agent still loads: `effect_size`
(null), the specificity fields (null / false / ""), `supported` (0) and `verdict` (""). Unknown keys are
ignored, so a result written by a newer agent loads too (without them).

Shape of `AnalysisResult.to_json()` (schema "raddiff.result/1"; every float rounded to 6 places):

    schema            "raddiff.result/1"
    config            the resolved agent configuration (AgentConfig as JSON)
    proposer          name of the proposer that produced the final findings ("raddiff", "offline", ...)
    embedding_model   the embedding service's model_id used for every score
    ranked_images     {"a": n_a, "b": n_b}: images of each set scored (ranker.max_num_samples caps them)
    ranked_uris       {"a": [uri...], "b": [uri...]}: those images, in the order of every `scores` array;
                      empty lists when the score arrays were left out (see FindingResult.scores)
    findings          [FindingResult]: the final ranking, best first (highest AUROC)
    iterations        [IterationResult]: what each iteration sampled, proposed, searched and ranked
    supported         how many findings are supported (see FindingResult.supported)
    verdict           in words: "no supported difference found: ..." or "2 of 14 findings supported at FDR 0.05"
    evaluation        Evaluation of the final ranking against the ground truth, or null
    samples           {"a": [{"uri", "caption", "report"}], "b": [...]}: the first iteration's first round
    notes             [str]: every repair, retry, fallback and skipped step, in the order they happened
    cache             {"image_hits", "image_misses", "text_hits", "text_misses"}: embedding cache use

A StoredResult (what the orchestrator stores and GET /v1/analyses/{id} serves) is an AnalysisResult plus

    stage_seconds     {stage: seconds}: wall time per pipeline stage, added by the worker as it stores it

A FindingResult (one ranked finding):

    rank              1-based
    finding           the text, as scored (the raw finding, no template: RadDiff's ranker)
    auroc             P(similarity of a random A image > that of a random B image), ties 1/2
    auroc_ci          [low, high]: stratified bootstrap percentile interval at `ci_level`; where every
                      resample gives the same AUROC (perfect separation), Wilson's interval over
                      min(n_a, n_b) instead of a zero-width [1.000, 1.000]
    ci_level          e.g. 0.95
    p_value           one-sided permutation p-value of the AUROC (A > B), (1 + #perm >= obs) / (1 + perms)
    q_value           Benjamini-Hochberg q-value of p_value over all findings of this result
    t_statistic       Welch's t of the scores, A minus B
    t_p_value         its two-sided p-value
    effect_size       Cohen's d of the scores, A minus B (pooled SD); ranker.order "effect_size" sorts by it;
                      null only in results stored before it existed
    mean_a, mean_b    mean score of A's and B's images
    chexzero_auroc    AUROC of softmax([sim(finding), sim("no " + finding)]), or null when not computed
    specific_auroc    AUROC of the cosine less its projection on the sets' common shift (the leading direction
                      of the control statements' similarities; agent/specificity.py): how far the finding
                      tracks the difference beyond what every text shares
    specific_auroc_ci its bootstrap interval
    specific_effect_size  Cohen's d of those residuals, A minus B: what the specificity test compares
    specific_p_value  one-sided p of that d against the residual d of control statements naming other things
    specific_q_value  Benjamini-Hochberg over all findings of this result
    supported         q_value and specific_q_value both below ranker.fdr (and both AUROCs above 0.5);
                      meaningful only where specific_auroc is not null (FindingResult.specificity_tested)
    support           why or why not, in words ("moves with every text: specific AUROC 0.51, q 0.62")
    iteration         the iteration (1-based) whose proposals contained this finding
    origin            "proposal" or "refinement" (proposed from zoom grids of a visual search)
    histogram         {"edges": [k+1 floats], "a": [k counts], "b": [k counts]}: always present
    scores            {"a": [...], "b": [...]} per image, aligned with ranked_uris; null when the run
                      ranked more images than ranker.max_scores_in_result per set
    most_a_like       [ImageScore]: the highest-scoring images of both sets (best first)
    least_a_like      [ImageScore]: the lowest-scoring images of both sets (lowest first)
    searches          [VisualSearch]: the zoom crops that led to it (searches of the iteration that
                      proposed it by refinement); empty for findings of a first iteration

An IterationResult:

    index             1-based
    feedback          [RankedBrief]: the previous iteration's top-k fed to the proposer (empty for 1)
    searches          [VisualSearch]: the targeted visual search run before this iteration's proposals
    rounds            [ProposalRound]: each round's samples, grids and proposals
    deduplicated      [str]: the rounds' pooled findings after deduplication
    ranked            [RankedBrief]: this iteration's ranking, best first
    evaluation        Evaluation of this iteration's ranking, or null

A VisualSearch (one box for one top finding, cropped from the sampled images):

    finding, auroc    the finding that was boxed and its AUROC at the time
    box               {"x0", "y0", "x1", "y1"}: normalised to a single X-ray
    backend           the Localize backend that drew it ("llm", "vlm" or "model")
    grid_uri          the 8x5 zoom grid of the crops (A's crops first, then B's): scratch:// uri
    crop_uris         {"a": [...], "b": [...]}: one crop per sampled image
    captions          {"a": [...], "b": [...]}: the VLM's descriptions of the crops (offline refinement),
                      or empty lists

A ProposalRound:

    round             1-based
    sample_a, sample_b  the sampled uris
    grid_a, grid_b    the 4x5 grids of the samples given to a multimodal proposer, or ""
    proposed          [str]: the findings this round proposed

Image uris are file:///... (the inputs) or scratch://<sha256>.png (grids and crops in the shared
scratch store, RADDIFF_SCRATCH_DIR/<sha256>.png).
"""

from __future__ import annotations

from dataclasses import asdict, field
from functools import cache
from typing import Any, Literal, Self

from pydantic import ConfigDict, TypeAdapter
from pydantic.dataclasses import dataclass

SCHEMA = "raddiff.result/1"

# Unknown keys are dropped rather than refused: a result stored by a newer agent (say, before a rollback)
# must still be served and rendered, with the fields this version knows.
_LENIENT = ConfigDict(extra="ignore")


@dataclass(frozen=True, config=_LENIENT)
class BoxOut:
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True, config=_LENIENT)
class ImageScore:
    uri: str
    group: str  # "a" or "b"
    score: float


@dataclass(frozen=True, config=_LENIENT)
class Histogram:
    edges: list[float]
    a: list[int]
    b: list[int]


@dataclass(frozen=True, config=_LENIENT)
class VisualSearch:
    finding: str
    auroc: float
    box: BoxOut
    backend: str
    grid_uri: str
    crop_uris: dict[str, list[str]]
    captions: dict[str, list[str]] = field(default_factory=lambda: {"a": [], "b": []})


@dataclass(frozen=True, config=_LENIENT)
class RankedBrief:
    finding: str
    auroc: float


@dataclass(frozen=True, config=_LENIENT)
class Evaluation:
    scores: list[int]
    acc_at_1: float
    acc_at_5: float
    backend: str
    rationales: list[str] = field(default_factory=list)


@dataclass(frozen=True, config=_LENIENT)
class FindingResult:
    rank: int
    finding: str
    auroc: float
    auroc_ci: list[float]
    ci_level: float
    p_value: float
    q_value: float
    t_statistic: float
    # Keyword-only so that it can default (results stored before Cohen's d lack it) while keeping its place
    # in the field order, which is the JSON's key order, and every other field's position in the constructor.
    effect_size: float | None = field(default=None, kw_only=True)
    t_p_value: float
    mean_a: float
    mean_b: float
    chexzero_auroc: float | None
    iteration: int
    origin: str
    histogram: Histogram
    scores: dict[str, list[float]] | None
    most_a_like: list[ImageScore]
    least_a_like: list[ImageScore]
    searches: list[VisualSearch] = field(default_factory=list)
    specific_auroc: float | None = None
    specific_auroc_ci: list[float] | None = None
    specific_effect_size: float | None = None
    specific_p_value: float | None = None
    specific_q_value: float | None = None
    supported: bool = False
    support: str = ""

    @property
    def specificity_tested(self) -> bool:
        """Whether `supported` is a verdict: false for results stored before the specificity test and for runs
        scored without the control statements, where `supported` is only its default."""
        return self.specific_auroc is not None


@dataclass(frozen=True, config=_LENIENT)
class ProposalRound:
    round: int
    sample_a: list[str]
    sample_b: list[str]
    grid_a: str
    grid_b: str
    proposed: list[str]


@dataclass(config=_LENIENT)
class IterationResult:
    index: int
    feedback: list[RankedBrief] = field(default_factory=list)
    searches: list[VisualSearch] = field(default_factory=list)
    rounds: list[ProposalRound] = field(default_factory=list)
    deduplicated: list[str] = field(default_factory=list)
    ranked: list[RankedBrief] = field(default_factory=list)
    evaluation: Evaluation | None = None


@dataclass(config=_LENIENT)
class AnalysisResult:
    # First in the field order, so first in the JSON as it always was; keyword-only, so `config` stays the
    # first positional argument.
    schema: Literal["raddiff.result/1"] = field(default=SCHEMA, kw_only=True)
    config: dict[str, Any]
    proposer: str = ""
    embedding_model: str = ""
    ranked_images: dict[str, int] = field(default_factory=lambda: {"a": 0, "b": 0})
    ranked_uris: dict[str, list[str]] = field(default_factory=lambda: {"a": [], "b": []})
    findings: list[FindingResult] = field(default_factory=list)
    supported: int = 0
    verdict: str = ""
    iterations: list[IterationResult] = field(default_factory=list)
    evaluation: Evaluation | None = None
    samples: dict[str, list[dict[str, str]]] = field(default_factory=lambda: {"a": [], "b": []})
    notes: list[str] = field(default_factory=list)
    cache: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return _rounded(asdict(self))  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: Any) -> Self:
        """A result as JSON (to_json's output, as stored) back into the model; raises pydantic.ValidationError
        (a ValueError) where it is not a raddiff.result/1."""
        return _adapter(cls).validate_python(data)  # type: ignore[no-any-return]


@dataclass(config=_LENIENT)
class StoredResult(AnalysisResult):
    """The result as the orchestrator stores and serves it: the agent's, plus the worker's time per stage."""

    stage_seconds: dict[str, float] = field(default_factory=dict)


@cache
def _adapter(cls: type) -> TypeAdapter[Any]:
    # Building a validator is costly; one per class, on first use.
    return TypeAdapter(cls)


def _rounded(value: Any) -> Any:
    """Floats to 6 places (scores are float32 at best); keeps the JSON small and stable."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value
