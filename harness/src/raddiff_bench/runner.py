"""Runs benchmark pairs through the orchestrator's REST API, N at a time, and judges what comes back.

Each pair is one analysis: its two image sets, its set1/set2 as the ground truth, the run's config unchanged
and, when that config asks for a reports proposer, each image's report. The orchestrator judges the result
with the evaluator; a result that comes back unjudged is judged here when an evaluator target is given.
A null pair (the sets do not differ) is sent without ground truth and not judged: only its claims count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

from raddiff_bench.client import Orchestrator, ProgressCallback, Rejected, Unavailable
from raddiff_bench.config import judge_backend, wants_reports
from raddiff_bench.pairs import BadInput, ImagePair, image_reports
from raddiff_bench.results import PairResult, ranked_findings, ranker_fdr
from raddiff_orchestrator.agent.ports import DependencyError, Judge
from raddiff_orchestrator.agent.results import StoredResult
from raddiff_orchestrator.clients import ServiceClients


@dataclass(frozen=True)
class RunOptions:
    config: dict[str, Any]  # sent as the analysis's `config`, unchanged
    timeout_s: float = 3600.0  # per pair, from submission to a final status
    poll_s: float = 1.0


@asynccontextmanager
async def evaluator(target: str | None, timeout_s: float = 120.0) -> AsyncIterator[Judge | None]:
    """The evaluation service's Judge over gRPC (the orchestrator's own adapter), or None without a target."""
    if not target:
        yield None
        return
    clients = ServiceClients({"evaluator": target}, timeout_s)
    try:
        yield clients.models().judge
    finally:
        await clients.close()


def analysis_request(pair: ImagePair, config: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"bench {pair.id}",
        "input": {
            "kind": "sets",
            "set_a": list(pair.images_a),
            "set_b": list(pair.images_b),
            "name_a": pair.set1,
            "name_b": pair.set2,
        },
        "config": config,
    }
    if not pair.null:
        body["ground_truth"] = {"a": pair.set1, "b": pair.set2}
    if wants_reports(config):
        body["reports"] = image_reports(pair)
    return body


async def judge_result(result: PairResult, judge: Judge | None, backend: str) -> PairResult:
    """Judge the findings of a result the orchestrator left unjudged."""
    if not result.findings:
        return result.judged([], "none", "harness")
    if judge is None:
        return result.fail("the result has no evaluation and no evaluator target was given (--evaluator)")
    try:
        verdict = await judge.judge([f.finding for f in result.findings], result.set1, result.set2, backend)
    except DependencyError as exc:
        return result.fail(f"judging failed: {exc}")
    return result.judged(verdict.scores, verdict.backend, "harness")


async def run_pair(
    orch: Orchestrator,
    pair: ImagePair,
    options: RunOptions,
    judge: Judge | None = None,
    on_progress: ProgressCallback | None = None,
) -> PairResult:
    """One pair, start to judged result; every failure is recorded in the result, never raised."""
    result = PairResult(pair.index, pair.id, pair.difficulty, pair.set1, pair.set2, null=pair.null)
    began = time.monotonic()
    try:
        return await _run(orch, pair, options, judge, result, on_progress)
    except BadInput as exc:
        return result.fail(str(exc), bad_input=True)
    except Rejected as exc:
        return result.fail(str(exc), bad_input=True)
    except Unavailable as exc:
        return result.fail(str(exc))
    except (KeyError, TypeError, ValueError) as exc:  # a result not in the shape raddiff.result/1 promises
        return result.fail(f"the orchestrator's result cannot be read: {type(exc).__name__}: {exc}")
    finally:
        result.seconds = time.monotonic() - began


async def _run(
    orch: Orchestrator,
    pair: ImagePair,
    options: RunOptions,
    judge: Judge | None,
    result: PairResult,
    on_progress: ProgressCallback | None,
) -> PairResult:
    result.analysis_id = await orch.submit(analysis_request(pair, options.config))
    try:
        view = await orch.wait(result.analysis_id, options.timeout_s, options.poll_s, on_progress=on_progress)
    except asyncio.CancelledError:
        # Interrupted: leave no orphan analysis running in the orchestrator.
        await asyncio.shield(_cancel_quietly(orch, result.analysis_id))
        raise
    if view["status"] != "succeeded":
        return result.fail(f"analysis {view['status']}: {view.get('error') or 'no error recorded'}")
    # The orchestrator's own result model: a result not in its shape raises ValidationError (a ValueError).
    results = StoredResult.from_json(view.get("results"))
    result.proposer = results.proposer
    result.notes = list(results.notes)
    result.findings = ranked_findings(results)
    result.fdr = ranker_fdr(view.get("config"), options.config)
    result.verdict = results.verdict
    if pair.null:
        return result.judged([], "none", "none")
    if results.evaluation is None:
        return await judge_result(result, judge, judge_backend(options.config))
    return result.judged(results.evaluation.scores, results.evaluation.backend, "orchestrator")


async def _cancel_quietly(orch: Orchestrator, analysis_id: str) -> None:
    with suppress(Rejected, Unavailable):
        await orch.cancel(analysis_id)


PairDone = Callable[[PairResult], Awaitable[None] | None]


async def run_pairs(
    orch: Orchestrator,
    pairs: Sequence[ImagePair],
    options: RunOptions,
    concurrency: int,
    judge: Judge | None = None,
    on_done: PairDone | None = None,
) -> list[PairResult]:
    """Every pair, at most `concurrency` at a time; results in the pairs' order."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    gate = asyncio.Semaphore(concurrency)

    async def one(pair: ImagePair) -> PairResult:
        async with gate:
            result = await run_pair(orch, pair, options, judge)
        if on_done is not None:
            maybe = on_done(result)
            if maybe is not None:
                await maybe
        return result

    return list(await asyncio.gather(*(one(p) for p in pairs)))
