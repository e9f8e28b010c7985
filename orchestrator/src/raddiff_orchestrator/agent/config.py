"""The agent's configuration: RadDiff's config keys (configs/raddiff_base.yaml in its repository), with
the defaults reproducing RadDiff's, plus the strategies this agent adds.

One model serves everywhere: the REST API's `config` object, the CLI's YAML file, and the task the
worker runs. Unknown keys and bad values are errors that name the key (pydantic's `loc`).

    seed: 0
    num_iterations: 2          # any number; iteration k+1 is fed the top-k of iteration k
    merge: false               # rank every iteration's findings together (RadDiff: no)
    captioner: {prompt}
    proposer:  {method, num_rounds, num_samples, num_hypotheses, min_hypotheses, topk,
                iterative_cropping, box_source, resample, describe_crops, model, sampling_method}
    dedup:     {method, threshold}
    ranker:    {max_num_samples, scoring, order, fdr, permutations, bootstrap, ci_level, max_scores_in_result,
                extremes}
    evaluator: {n_hypotheses, backend, each_iteration}

The flat keys of the first API version (sample_size, rank_cap, proposer: "auto", min_findings,
max_findings, judge_backend) are still accepted and mapped onto these, so existing clients keep working.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

# RadDiff's class names for its proposers, accepted as synonyms of ours.
_METHOD_ALIASES = {
    "VLMANDLLMProposer": "raddiff",
    "LLMProposer": "visdiff",
    "RadiologyReports": "reports",
    "llm": "visdiff",  # the first API version's descriptions-only LLM proposer
}

ProposerMethod = Literal["auto", "raddiff", "visdiff", "reports", "offline"]
LLM_METHODS: frozenset[str] = frozenset({"raddiff", "visdiff", "reports"})


def _method_alias(value: Any) -> Any:
    return _METHOD_ALIASES.get(value, value) if isinstance(value, str) else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CaptionerConfig(_Strict):
    prompt: str = Field(default="Describe this image in detail.", min_length=1, max_length=2000)


class ProposerConfig(_Strict):
    method: Annotated[ProposerMethod, BeforeValidator(_method_alias)] = Field(
        default="auto",
        description="raddiff: descriptions + the two 4x5 grids to a multimodal LLM (RadDiff); visdiff: "
        "descriptions only, general-domain prompt (VisDiff); reports: reports + grids; offline: phrase "
        "contrast, no LLM; auto: raddiff when the LLM answers, else offline",
    )
    num_rounds: int = Field(default=3, ge=1, le=20, description="proposal rounds per iteration")
    num_samples: int = Field(default=20, ge=1, le=200, description="images of each set sampled per round")
    num_hypotheses: int = Field(default=10, ge=1, le=50, description="findings asked for per round")
    min_hypotheses: int = Field(default=5, ge=1, le=50, description="fewest findings an LLM may answer")
    topk: int = Field(default=5, ge=1, le=20, description="top findings fed back (and searched) next iteration")
    iterative_cropping: bool = Field(default=True, description="targeted visual search from iteration 2 on")
    box_source: Literal["auto", "llm", "vlm", "model"] = Field(
        default="auto", description="the Localize backend; auto: llm for LLM proposers, model for offline"
    )
    resample: bool = Field(default=False, description="draw new samples each iteration (RadDiff: the same)")
    describe_crops: int = Field(
        default=10, ge=0, le=40, description="crops per set the VLM re-describes for the offline refinement"
    )
    model: str = Field(default="", max_length=200, description="the LLM; empty: the deployment's default")
    sampling_method: Literal["random"] = "random"

    @model_validator(mode="after")
    def _bounds(self) -> ProposerConfig:
        if self.min_hypotheses > self.num_hypotheses:
            raise ValueError("min_hypotheses must not exceed num_hypotheses")
        return self


class DedupConfig(_Strict):
    method: Literal["auto", "llm", "embedding", "none"] = Field(
        default="auto", description="auto: the LLM for LLM proposers (RadDiff), embedding similarity otherwise"
    )
    threshold: float = Field(
        default=0.95, gt=0.0, le=1.0, description="cosine similarity of two findings' text vectors that merges them"
    )


class RankerConfig(_Strict):
    max_num_samples: int | None = Field(
        default=None, ge=2, description="images of each set scored; default: RadDiff's 5000 or the deployment's ceiling"
    )
    scoring: Literal["cosine", "softmax", "both"] = Field(
        default="cosine",
        description="cosine: CLIP similarity (RadDiff); softmax: CheXzero's finding vs 'no <finding>'; "
        "both: rank by cosine and report the softmax AUROC beside it",
    )
    order: Literal["auroc", "effect_size", "specific"] = Field(
        default="auroc",
        description="auroc: by AUROC (RadDiff), ties broken by the effect size; effect_size: by Cohen's d of "
        "the scores, A minus B, which still orders findings once several reach AUROC 1; specific: by the "
        "specific AUROC (scores less each image's similarity to control statements about other things)",
    )
    fdr: float = Field(
        default=0.05, gt=0.0, lt=1.0, description="false discovery rate at which a finding is called supported"
    )
    permutations: int = Field(default=1000, ge=100, le=100_000, description="for the permutation p-value")
    bootstrap: int = Field(default=1000, ge=100, le=100_000, description="resamples for the AUROC interval")
    ci_level: float = Field(default=0.95, gt=0.5, lt=1.0)
    max_scores_in_result: int = Field(
        default=1000, ge=0, description="per-image scores are put in the result up to this many images per set"
    )
    extremes: int = Field(default=5, ge=0, le=50, description="most and least A-like images listed per finding")


class EvaluatorConfig(_Strict):
    n_hypotheses: int = Field(default=100, ge=1, le=1000, description="top findings judged")
    backend: Literal["", "semantic", "llm"] = Field(default="", description="empty: the evaluator's default")
    each_iteration: bool = Field(default=True, description="judge every iteration's ranking, not only the last")


class AgentConfig(_Strict):
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    num_iterations: int = Field(default=2, ge=1, le=20)
    merge: bool = Field(default=False, description="rank all iterations' findings together in the end")
    captioner: CaptionerConfig = Field(default_factory=CaptionerConfig)
    proposer: ProposerConfig = Field(default_factory=ProposerConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    ranker: RankerConfig = Field(default_factory=RankerConfig)
    evaluator: EvaluatorConfig = Field(default_factory=EvaluatorConfig)

    @model_validator(mode="before")
    @classmethod
    def _first_version_keys(cls, data: Any) -> Any:
        """The first API version's flat keys, moved to where they live now."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("proposer"), str):  # first: the other moves make "proposer" a section
            data["proposer"] = {"method": data["proposer"]}
        moves = {
            "sample_size": ("proposer", "num_samples"),
            "min_findings": ("proposer", "min_hypotheses"),
            "max_findings": ("proposer", "num_hypotheses"),
            "rank_cap": ("ranker", "max_num_samples"),
            "judge_backend": ("evaluator", "backend"),
        }
        for old, (section, key) in moves.items():
            if old in data:
                value = data.pop(old)
                current = data.get(section)
                target = dict(current) if isinstance(current, dict) else {}
                target[key] = value
                data[section] = target
        return data

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class ConfigError(ValueError):
    """A config file or object that cannot be used; the message names every bad key."""


def describe_errors(error: ValidationError, prefix: str = "") -> str:
    """pydantic's errors as 'proposer.num_rounds: Input should be ...; ...'."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        parts.append(f"{prefix}{where}: {item['msg']}")
    return "; ".join(parts)


def parse_config(data: Any, source: str = "config") -> AgentConfig:
    try:
        return AgentConfig.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_errors(exc)}") from None


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of keys, not {type(data).__name__}")
    return data
