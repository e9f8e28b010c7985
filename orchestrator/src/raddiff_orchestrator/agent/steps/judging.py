"""Judging a ranking against the ground truth, when there is one."""

from __future__ import annotations

from collections.abc import Sequence

from raddiff_orchestrator.agent.ports import DependencyError, Judge
from raddiff_orchestrator.agent.results import Evaluation
from raddiff_orchestrator.agent.steps.state import AnalysisState, IterationWork, Scored, StageReport, accuracy_at


# -- judging and the final statistics ------------------------------------------------------------------------
class JudgeFindings:
    """Scores a ranking against the ground truth, when there is one: an iteration's, or the final one."""

    stage = "judge"
    weight = 0.04

    def __init__(self, judge: Judge | None, final: bool = False) -> None:
        self._judge = judge
        self._final = final

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        truth = state.task.ground_truth
        if truth is None:
            return
        config = state.task.config
        ranking = state.final if self._final else state.current.ranking
        predictions = [s.finding for s in ranking[: config.evaluator.n_hypotheses]]
        owner = ranked_by(state, ranking) if self._final else state.current
        if self._final and owner is not None and owner.evaluation is not None:
            state.evaluation = owner.evaluation  # judged already, as that iteration's ranking
            return
        if not predictions:
            evaluation = Evaluation(scores=[], acc_at_1=0.0, acc_at_5=0.0, backend="none")
        elif self._judge is None:
            state.note("ground truth was given but no evaluator is configured (RADDIFF_EVALUATOR_TARGET)")
            return
        else:
            verdict = await self._judge.judge(predictions, truth.a, truth.b, config.evaluator.backend)
            if len(verdict.scores) != len(predictions) or any(s not in (0, 1, 2) for s in verdict.scores):
                raise DependencyError(f"the evaluator returned scores {verdict.scores} for {len(predictions)} findings")
            evaluation = Evaluation(
                scores=list(verdict.scores),
                acc_at_1=accuracy_at(verdict.scores, 1),
                acc_at_5=accuracy_at(verdict.scores, 5),
                backend=verdict.backend,
                rationales=list(verdict.rationales),
            )
        state.evaluation = evaluation
        if owner is not None:
            owner.evaluation = evaluation


def ranked_by(state: AnalysisState, ranking: Sequence[Scored]) -> IterationWork | None:
    """The iteration whose ranking this is (the final one is usually the last iteration's), if any."""
    names = [s.finding for s in ranking]
    return next((w for w in reversed(state.iterations) if [s.finding for s in w.ranking] == names), None)
