"""The final ranking with its statistics, and the result built from the state."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np

from raddiff_orchestrator.agent.dedup import normal_form
from raddiff_orchestrator.agent.results import (
    AnalysisResult,
    FindingResult,
    Histogram,
    ImageScore,
    IterationResult,
    ProposalRound,
    RankedBrief,
)
from raddiff_orchestrator.agent.specificity import ControlBank, SpecificStats, default_bank, specific_p_value, verdict
from raddiff_orchestrator.agent.statistics import (
    benjamini_hochberg,
    bootstrap_auroc_ci,
    finding_stats,
    histogram,
    honest_intervals,
    permutation_p_values,
)
from raddiff_orchestrator.agent.steps.ranking import held_out, ranked, settle_newcomers
from raddiff_orchestrator.agent.steps.state import AnalysisState, Scored, StageReport


class SummarizeFindings:
    """The final ranking (the last iteration's, or every iteration's merged) with its statistics; the
    permutation p-values and the specificity p-values cover every finding ranked in the run, so the q-values
    control the FDR over them. A finding is supported where both hold (specificity.verdict)."""

    stage = "statistics"
    weight = 0.05

    def __init__(self, bank: ControlBank | None = None) -> None:
        self._bank = bank or default_bank()

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        config = state.task.config
        if config.merge:
            # Every iteration's findings together; the last iteration's newcomers outrank earlier findings only
            # on images no proposal was read from, as within an iteration.
            merged = ranked(state.tested.values(), config.ranker.order)
            last = state.current.index if state.iterations else 1
            state.final = settle_newcomers(merged, last, held_out(state), state.positive, config.ranker.order)
        elif state.iterations:
            state.final = list(state.current.ranking)
            if not state.final:
                earlier = next((w for w in reversed(state.iterations) if w.ranking), None)
                if earlier is not None:
                    state.final = list(earlier.ranking)
                    state.note(
                        f"iteration {state.current.index} ranked no finding; the result is iteration "
                        f"{earlier.index}'s ranking"
                    )
        if not state.final:
            return
        positive = state.positive
        ranker = config.ranker
        everything = list(state.tested.values())
        p_all = await asyncio.to_thread(
            permutation_p_values, np.stack([s.scores for s in everything]), positive, ranker.permutations, config.seed
        )
        q_all = benjamini_hochberg(p_all)
        state.q_values = {normal_form(s.finding): float(q) for s, q in zip(everything, q_all, strict=True)}
        p_of = {normal_form(s.finding): float(p) for s, p in zip(everything, p_all, strict=True)}
        state.final_stats = await asyncio.to_thread(
            finding_stats,
            np.stack([s.scores for s in state.final]),
            positive,
            np.array([p_of[normal_form(s.finding)] for s in state.final]),
            ranker.bootstrap,
            ranker.ci_level,
            config.seed,
        )
        state.specificity = await asyncio.to_thread(self._specificity, state, everything)

    def _specificity(self, state: AnalysisState, everything: list[Scored]) -> dict[str, SpecificStats]:
        shift, ranker, seed = state.shift, state.task.config.ranker, state.task.config.seed
        if shift is None or any(s.specific is None for s in everything):
            return {}  # scored without the control statements (a state built by hand): nothing is supported
        p_all = np.array(
            [
                specific_p_value(s.specific_effect or 0.0, shift.null_effects(self._bank.controls_for(s.finding)))
                for s in everything
            ]
        )
        q_of = {normal_form(s.finding): float(q) for s, q in zip(everything, benjamini_hochberg(p_all), strict=True)}
        p_of = {normal_form(s.finding): float(p) for s, p in zip(everything, p_all, strict=True)}
        residuals = np.stack([s.specific for s in state.final if s.specific is not None])
        positive = state.positive
        a, b = residuals[:, positive], residuals[:, ~positive]
        aurocs = np.array([s.specific_auroc or 0.0 for s in state.final])
        low, high = bootstrap_auroc_ci(a, b, ranker.bootstrap, ranker.ci_level, seed)
        low, high = honest_intervals(aurocs, low, high, a.shape[1], b.shape[1], ranker.ci_level)
        out = {}
        for i, scored in enumerate(state.final):
            key = normal_form(scored.finding)
            supported, why = verdict(scored.auroc, state.q_values[key], aurocs[i], q_of[key], ranker.fdr)
            out[key] = SpecificStats(
                auroc=float(aurocs[i]),
                ci_low=float(low[i]),
                ci_high=float(high[i]),
                effect_size=scored.specific_effect or 0.0,
                p_value=p_of[key],
                q_value=q_of[key],
                supported=supported,
                support=why,
            )
        return out


# -- the result ---------------------------------------------------------------------------------------------
def build_result(state: AnalysisState) -> AnalysisResult:
    config = state.task.config
    n_a, n_b = len(state.rank_a), len(state.rank_b)
    keep_scores = max(n_a, n_b) <= config.ranker.max_scores_in_result
    result = AnalysisResult(
        config=config.to_json(),
        proposer=state.proposer,
        embedding_model=state.embedding_model,
        ranked_images={"a": n_a, "b": n_b},
        ranked_uris={"a": list(state.rank_a), "b": list(state.rank_b)} if keep_scores else {"a": [], "b": []},
        evaluation=state.evaluation,
        notes=list(state.notes),
        cache=dict(state.cache),
    )
    for rank, (scored, st) in enumerate(zip(state.final, state.final_stats, strict=False), 1):
        a, b = scored.scores[:n_a], scored.scores[n_a:]
        edges, hist_a, hist_b = histogram(a, b)
        result.findings.append(
            FindingResult(
                rank=rank,
                finding=scored.finding,
                auroc=scored.auroc,
                auroc_ci=[st.ci_low, st.ci_high],
                ci_level=config.ranker.ci_level,
                p_value=st.p_value,
                q_value=state.q_values.get(normal_form(scored.finding), 1.0),
                t_statistic=_finite(st.t_statistic),
                effect_size=_finite(scored.effect_size),
                t_p_value=st.t_p_value,
                mean_a=st.mean_a,
                mean_b=st.mean_b,
                chexzero_auroc=scored.chexzero_auroc,
                iteration=scored.iteration,
                origin="refinement" if scored.searches else "proposal",
                histogram=Histogram(edges, hist_a, hist_b),
                scores={"a": a.tolist(), "b": b.tolist()} if keep_scores else None,
                most_a_like=_extremes(state, scored.scores, config.ranker.extremes, highest=True),
                least_a_like=_extremes(state, scored.scores, config.ranker.extremes, highest=False),
                searches=list(scored.searches),
                **_specific_fields(state.specificity.get(normal_form(scored.finding))),
            )
        )
    result.supported = sum(f.supported for f in result.findings)
    result.verdict = _verdict(result.supported, len(result.findings), config.ranker.fdr)
    for work in state.iterations:
        result.iterations.append(
            IterationResult(
                index=work.index,
                feedback=list(work.feedback),
                searches=[s for r in work.rounds for s in r.searches],
                rounds=[
                    ProposalRound(r.index, r.sample_a, r.sample_b, r.grid_a, r.grid_b, [p.text for p in r.proposals])
                    for r in work.rounds
                ],
                deduplicated=list(work.deduplicated),
                ranked=[RankedBrief(s.finding, s.auroc) for s in work.ranking],
                evaluation=work.evaluation,
            )
        )
    if state.iterations and state.iterations[0].rounds:
        first = state.iterations[0].rounds[0]
        result.samples = {
            group: [{"uri": e.uri, "caption": e.caption, "report": e.report} for e in state.evidence(sample)]
            for group, sample in (("a", first.sample_a), ("b", first.sample_b))
        }
    return result


def _specific_fields(st: SpecificStats | None) -> dict[str, Any]:
    if st is None:
        return {}
    return {
        "specific_auroc": st.auroc,
        "specific_auroc_ci": [st.ci_low, st.ci_high],
        "specific_effect_size": _finite(st.effect_size),
        "specific_p_value": st.p_value,
        "specific_q_value": st.q_value,
        "supported": st.supported,
        "support": st.support,
    }


def _verdict(supported: int, findings: int, fdr: float) -> str:
    if not findings:
        return "no supported difference found: no finding was proposed as more common in A"
    if not supported:
        return (
            f"no supported difference found: none of {findings} findings is both more common in A and specific "
            f"to the difference at FDR {fdr:g}"
        )
    return f"{supported} of {findings} findings supported at FDR {fdr:g}"


def _finite(value: float) -> float:
    """JSON has no infinity: a t with no variance on either side is reported as +-1e308."""
    return value if math.isfinite(value) else math.copysign(1e308, value)


def _extremes(state: AnalysisState, scores: np.ndarray, count: int, highest: bool) -> list[ImageScore]:
    uris = [*state.rank_a, *state.rank_b]
    groups = ["a"] * len(state.rank_a) + ["b"] * len(state.rank_b)
    order = np.argsort(-scores if highest else scores, kind="mergesort")[:count]
    return [ImageScore(uris[i], groups[i], float(scores[i])) for i in order]
