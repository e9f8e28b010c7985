"""The agent's steps. Each reads and extends one AnalysisState; a pipeline runs them in order.

One iteration is: draw the rounds' samples, describe them (VLM), draw their grids, search the
previous top findings' regions (iteration 2 on), propose per round, deduplicate the pooled
proposals, rank them by AUROC and by specificity, judge them. After the last iteration the summary
step builds the final ranking with its confidence intervals, p- and q-values and support verdicts.
Read the modules in that order: state, sampling, search, proposing, ranking, judging, summary.
"""

from raddiff_orchestrator.agent.steps.judging import JudgeFindings, ranked_by
from raddiff_orchestrator.agent.steps.proposing import DeduplicateFindings, ProposeFindings
from raddiff_orchestrator.agent.steps.ranking import RankFindings, ranked
from raddiff_orchestrator.agent.steps.sampling import (
    GRID_CAPACITY,
    DescribeImages,
    DrawGrids,
    DrawSamples,
    describe,
    shown,
)
from raddiff_orchestrator.agent.steps.search import MIN_BOX_SIDE, WHOLE_IMAGE, SearchRegions, repair_boxes
from raddiff_orchestrator.agent.steps.state import (
    AnalysisState,
    IterationWork,
    RoundWork,
    Scored,
    StageReport,
    Step,
    accuracy_at,
    seeded_sample,
)
from raddiff_orchestrator.agent.steps.summary import SummarizeFindings, build_result

__all__ = [
    "GRID_CAPACITY",
    "MIN_BOX_SIDE",
    "WHOLE_IMAGE",
    "AnalysisState",
    "DeduplicateFindings",
    "DescribeImages",
    "DrawGrids",
    "DrawSamples",
    "IterationWork",
    "JudgeFindings",
    "ProposeFindings",
    "RankFindings",
    "RoundWork",
    "Scored",
    "SearchRegions",
    "StageReport",
    "Step",
    "SummarizeFindings",
    "accuracy_at",
    "build_result",
    "describe",
    "ranked",
    "ranked_by",
    "repair_boxes",
    "seeded_sample",
    "shown",
]
