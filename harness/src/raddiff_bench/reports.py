"""The report benchmark (real OpenI report texts, no images).

The orchestrator cannot analyse reports-only sets: every analysis needs images, because findings are
ranked by the AUROC of image-text similarity (RadDiff's report mode, too, ranks images). So this runs the
agent's offline proposer (ContrastProposer with its defaults, the embedded default's) on the report texts
themselves, in its report mode: findings are the whole findings (never fragments like "change" or "tip") that
A's reports affirm clearly more often than B's, in the proposer's own order (its contrast statistic), and the
evaluation service judges them against the pair's set1/set2 like any other result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from raddiff_bench.pairs import BadInput, ReportPair
from raddiff_bench.results import PairResult, RankedFinding
from raddiff_bench.runner import PairDone
from raddiff_orchestrator.agent.ports import DependencyError, Judge
from raddiff_orchestrator.agent.proposers import ContrastProposer

TITLE = (
    "Report benchmark: the offline ContrastProposer on the report texts (the orchestrator takes no "
    "reports-only sets), in the proposer's order, judged by the evaluator"
)
DEFAULT_MAX_FINDINGS = 10


def max_findings(config: dict[str, Any]) -> int:
    """How many findings to propose: proposer.num_hypotheses, or the flat max_findings, else 10."""
    proposer = config.get("proposer")
    value = proposer.get("num_hypotheses") if isinstance(proposer, dict) else config.get("max_findings")
    if value is None:
        return DEFAULT_MAX_FINDINGS
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadInput(f"config: the number of findings must be a positive integer, not {value!r}")
    return value


def propose(pair: ReportPair, limit: int, proposer: ContrastProposer | None = None) -> list[RankedFinding]:
    rows = (proposer or ContrastProposer()).select(pair.texts_a, pair.texts_b, limit, reports=True)
    return [
        RankedFinding(rank=i, finding=r.phrase, share_a=round(r.share_a, 6), share_b=round(r.share_b, 6))
        for i, r in enumerate(rows, 1)
    ]


async def run_report_pair(pair: ReportPair, judge: Judge, limit: int, backend: str = "") -> PairResult:
    result = PairResult(pair.index, pair.id, pair.difficulty, pair.set1, pair.set2, proposer="offline")
    began = time.monotonic()
    try:
        result.findings = await asyncio.to_thread(propose, pair, limit)
        if not result.findings:
            result.notes.append("the offline proposer found no phrase more common in A's reports than in B's")
            return result.judged([], "none", "harness")
        verdict = await judge.judge([f.finding for f in result.findings], pair.set1, pair.set2, backend)
        return result.judged(verdict.scores, verdict.backend, "harness")
    except DependencyError as exc:
        return result.fail(f"judging failed: {exc}")
    finally:
        result.seconds = time.monotonic() - began


async def run_report_pairs(
    pairs: Sequence[ReportPair],
    judge: Judge,
    config: dict[str, Any],
    backend: str = "",
    concurrency: int = 1,
    on_done: PairDone | None = None,
) -> list[PairResult]:
    limit = max_findings(config)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(pair: ReportPair) -> PairResult:
        async with gate:
            result = await run_report_pair(pair, judge, limit, backend)
        if on_done is not None:
            maybe = on_done(result)
            if maybe is not None:
                await maybe
        return result

    return list(await asyncio.gather(*(one(p) for p in pairs)))


def openi_texts(ids: Sequence[str]) -> list[str]:
    """Report texts by OpenI id, read from torchxrayvision's installed wheel by raddiff-synth."""
    try:
        from raddiff_synth.openi import report_texts
        from raddiff_synth.source import SourceMissingError
    except ImportError:
        raise BadInput(
            "reading OpenI report ids needs raddiff-synth: pip install -e synth (or raddiff-bench[synth])"
        ) from None
    try:
        return report_texts(ids)
    except SourceMissingError as exc:
        raise BadInput(str(exc)) from None
