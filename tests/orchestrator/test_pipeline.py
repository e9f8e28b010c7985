"""The pipeline's own logic, with steps that are not models: order, progress, cancellation at the
next step, seeded samples, Acc@k, the checks on vectors a service returns, and proposer choice."""

from __future__ import annotations

import numpy as np
import pytest

from raddiff_orchestrator.agent.config import AgentConfig
from raddiff_orchestrator.agent.embeddings import unit_rows
from raddiff_orchestrator.agent.pipeline import Models, Pipeline, PipelineOptions, build_pipeline, choose_proposer
from raddiff_orchestrator.agent.ports import AnalysisCancelled, DependencyError, NotConfigured
from raddiff_orchestrator.agent.proposers import (
    ContrastProposer,
    Evidence,
    FallbackProposer,
    LLMProposer,
    ProposalInput,
)
from raddiff_orchestrator.agent.steps import (
    AnalysisState,
    IterationWork,
    JudgeFindings,
    Scored,
    StageReport,
    SummarizeFindings,
    accuracy_at,
    ranked,
    seeded_sample,
)
from raddiff_orchestrator.agent.task import AnalysisTask, GroundTruth, ImageSet

TASK = AnalysisTask(ImageSet("A", [f"file:///a{i}.png" for i in range(9)]), ImageSet("B", ["file:///b.png"]))


class RecordingStep:
    def __init__(self, stage: str, weight: float, log: list[str]) -> None:
        self.stage, self.weight, self.log = stage, weight, log

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        self.log.append(self.stage)
        await report(0.5)
        await report(7.0)  # out-of-range fractions are clamped


async def test_steps_run_in_order_with_weighted_progress() -> None:
    log: list[str] = []
    seen: list[tuple[str, float]] = []

    async def progress(stage: str, fraction: float) -> None:
        seen.append((stage, round(fraction, 6)))

    await Pipeline([RecordingStep("one", 1, log), RecordingStep("two", 3, log)]).run(TASK, progress)
    assert log == ["one", "two"]
    assert seen == [
        ("one", 0.0), ("one", 0.125), ("one", 0.25),
        ("two", 0.25), ("two", 0.625), ("two", 1.0),
        ("done", 1.0),
    ]  # fmt: skip


async def test_a_cancel_stops_the_run_before_its_next_step() -> None:
    log: list[str] = []

    async def progress(stage: str, fraction: float) -> None:
        if stage == "two":
            raise AnalysisCancelled("cancelled")

    with pytest.raises(AnalysisCancelled):
        await Pipeline([RecordingStep("one", 1, log), RecordingStep("two", 1, log)]).run(TASK, progress)
    assert log == ["one"]


def test_seeded_samples_repeat_and_cover_small_sets() -> None:
    uris = [f"u{i}" for i in range(50)]
    first = seeded_sample(uris, 10, "1:caption:a")
    assert first == seeded_sample(uris, 10, "1:caption:a") and len(set(first)) == 10
    assert first != seeded_sample(uris, 10, "2:caption:a")
    assert seeded_sample(uris[:3], 10, "1:caption:a") == ["u0", "u1", "u2"]


def test_accuracy_at_k_is_the_best_of_the_top_k_over_two() -> None:
    assert accuracy_at([0, 1, 2, 0], 1) == 0.0
    assert accuracy_at([0, 1, 2, 0], 5) == 1.0
    assert accuracy_at([1, 0, 0, 0, 0, 2], 5) == 0.5  # the 2 is sixth
    assert accuracy_at([], 5) == 0.0


def test_vectors_from_a_service_are_checked_and_normalised() -> None:
    rows = unit_rows(np.array([[3.0, 4.0], [0.0, 2.0]]), 2, "image")
    assert rows.tolist() == [[0.6, 0.8], [0.0, 1.0]]
    with pytest.raises(DependencyError, match=r"returned \(1, 2\) for 2 images"):
        unit_rows(np.array([[1.0, 0.0]]), 2, "image")
    with pytest.raises(DependencyError, match="zero or non-finite text vector"):
        unit_rows(np.array([[0.0, 0.0]]), 1, "text")


async def test_ground_truth_without_an_evaluator_is_noted_not_failed() -> None:
    task = AnalysisTask(TASK.set_a, TASK.set_b, ground_truth=GroundTruth("effusion", "normal"))
    scored = Scored("effusion", np.array([0.3, 0.1]), 0.9, 1.5, None, iteration=1)
    state = AnalysisState(task, iterations=[IterationWork(1, ranking=[scored])])

    async def report(fraction: float) -> None:
        return None

    await JudgeFindings(None).run(state, report)
    assert state.evaluation is None and "RADDIFF_EVALUATOR_TARGET" in state.notes[0]
    empty = AnalysisState(task, iterations=[IterationWork(1)])
    await JudgeFindings(None).run(empty, report)
    assert empty.evaluation is not None and empty.evaluation.acc_at_1 == 0.0  # no findings: nothing is right


def _config(method: str) -> AgentConfig:
    return AgentConfig.model_validate({"proposer": {"method": method}})


def test_proposer_choice_and_missing_models() -> None:
    chat = object()
    assert isinstance(choose_proposer(_config("auto"), None), ContrastProposer)
    assert isinstance(choose_proposer(_config("auto"), chat), FallbackProposer)  # type: ignore[arg-type]
    for method in ("raddiff", "visdiff", "reports"):
        chosen = choose_proposer(_config(method), chat)  # type: ignore[arg-type]
        assert isinstance(chosen, LLMProposer) and chosen.name == method
    assert choose_proposer(_config("VLMANDLLMProposer"), chat).name == "raddiff"  # type: ignore[arg-type]
    assert isinstance(choose_proposer(_config("offline"), chat), ContrastProposer)  # type: ignore[arg-type]
    with pytest.raises(DependencyError, match="RADDIFF_LLM_TARGET"):
        choose_proposer(_config("raddiff"), None)
    with pytest.raises(DependencyError, match="RADDIFF_VLM_TARGET"):
        build_pipeline(AgentConfig(), Models(), PipelineOptions())


class _ProxyWithoutUpstream:
    """The LLM proxy's real answer when no upstream is configured: FAILED_PRECONDITION."""

    calls = 0

    async def chat(self, *args: object, **kwargs: object) -> str:
        self.calls += 1
        raise NotConfigured("LLMProxyService Chat failed: FAILED_PRECONDITION: no LLM upstream configured")


async def test_auto_proposer_falls_back_to_offline_when_the_llm_has_no_upstream() -> None:
    chat = _ProxyWithoutUpstream()
    proposer = choose_proposer(_config("auto"), chat)  # type: ignore[arg-type]
    assert proposer.name == "raddiff" and proposer.uses_llm and proposer.needs_grids
    a = [Evidence("file:///a.png", "moderate right pleural effusion. heart size normal.")] * 6
    b = [Evidence("file:///b.png", "no pleural effusion. heart size normal.")] * 6
    notes: list[str] = []
    findings = await proposer.propose(ProposalInput(a, b), _config("auto"), notes)
    assert chat.calls == 1
    assert proposer.name == "offline" and not proposer.uses_llm and "not available" in notes[0]
    assert any("effusion" in f.text for f in findings)
    # once fallen back, it stays on the offline proposer: the LLM is not asked again
    await proposer.propose(ProposalInput(a, b), _config("auto"), notes)
    assert chat.calls == 1 and len(notes) == 1


def test_a_task_survives_its_json_round_trip() -> None:
    task = AnalysisTask(
        TASK.set_a,
        TASK.set_b,
        AgentConfig.model_validate({"seed": 4, "proposer": {"num_rounds": 2}}),
        {"file:///a0.png": "effusion"},
        GroundTruth("a", "b"),
    )
    assert AnalysisTask.from_json(task.to_json()) == task


def test_deduplication_choice_follows_the_config_and_the_proposer() -> None:
    from raddiff_orchestrator.agent.dedup import EmbeddingDeduplicator, LexicalDeduplicator, LLMDeduplicator
    from raddiff_orchestrator.agent.embeddings import CachedEmbedder, EmbeddingCache
    from raddiff_orchestrator.agent.pipeline import choose_deduplicator

    chat = object()
    embedder = CachedEmbedder(object(), EmbeddingCache())  # type: ignore[arg-type]

    def chosen(config: dict, with_chat: bool = True):  # type: ignore[no-untyped-def]
        agent = AgentConfig.model_validate(config)
        llm = chat if with_chat else None
        return choose_deduplicator(agent, choose_proposer(agent, llm), llm, embedder)  # type: ignore[arg-type]

    assert isinstance(chosen({"proposer": {"method": "offline"}}), EmbeddingDeduplicator)
    assert isinstance(chosen({"proposer": {"method": "offline"}, "dedup": {"method": "llm"}}), LLMDeduplicator)
    assert isinstance(chosen({"proposer": {"method": "raddiff"}}), LLMDeduplicator)
    assert isinstance(chosen({"dedup": {"method": "none"}}), LexicalDeduplicator)
    assert isinstance(chosen({}, with_chat=False), EmbeddingDeduplicator)
    assert chosen({}).name == "llm"  # auto: the LLM's while the auto proposer still has one
    with pytest.raises(DependencyError, match="RADDIFF_LLM_TARGET"):
        chosen({"proposer": {"method": "offline"}, "dedup": {"method": "llm"}}, with_chat=False)


def test_ranking_by_auroc_breaks_ties_by_effect_size_and_effect_size_order_ignores_auroc() -> None:
    def scored(name: str, auroc: float, d: float) -> Scored:
        return Scored(name, np.zeros(2), auroc, d, None, iteration=1)

    findings = [scored("device", 1.0, 3.0), scored("effusion", 1.0, 9.0), scored("heart", 0.99, 12.0)]
    assert [s.finding for s in ranked(findings, "auroc")] == ["effusion", "device", "heart"]
    assert [s.finding for s in ranked(findings, "effect_size")] == ["heart", "effusion", "device"]


def _last_iteration_ranked_nothing(task: AnalysisTask) -> tuple[AnalysisState, Scored]:
    """Two iterations: the first ranked one finding, "effusion", the second nothing."""
    scored = Scored("effusion", np.array([0.3, 0.2, 0.1, 0.0]), 1.0, 2.0, None, iteration=1)
    state = AnalysisState(task, iterations=[IterationWork(1, ranking=[scored]), IterationWork(2)])
    state.tested = {"effusion": scored}
    state.rank_a, state.rank_b = ["file:///a0.png", "file:///a1.png"], ["file:///b0.png", "file:///b1.png"]
    return state, scored


async def _no_report(fraction: float) -> None:
    return None


async def test_a_last_iteration_that_ranks_nothing_leaves_the_earlier_ranking_as_the_result() -> None:
    state, scored = _last_iteration_ranked_nothing(TASK)
    await SummarizeFindings().run(state, _no_report)
    assert state.final == [scored] and len(state.final_stats) == 1
    assert "iteration 2 ranked no finding; the result is iteration 1's ranking" in state.notes


async def test_what_is_judged_is_the_ranking_reported() -> None:
    from raddiff_orchestrator.agent.ports import Judgement

    class CountingJudge:
        def __init__(self) -> None:
            self.asked: list[list[str]] = []

        async def judge(self, predictions: list[str], truth_a: str, truth_b: str, backend: str) -> Judgement:
            self.asked.append(list(predictions))
            return Judgement([2 if "effusion" in p else 0 for p in predictions], "semantic")

    task = AnalysisTask(TASK.set_a, TASK.set_b, ground_truth=GroundTruth("pleural effusion", "normal"))
    state, _ = _last_iteration_ranked_nothing(task)
    judge = CountingJudge()
    await JudgeFindings(judge).run(state, _no_report)  # the last iteration ranked nothing: nothing is right
    assert state.iterations[1].evaluation is not None and state.iterations[1].evaluation.acc_at_1 == 0.0
    await SummarizeFindings().run(state, _no_report)  # the result falls back to iteration 1's ranking
    await JudgeFindings(judge, final=True).run(state, _no_report)
    assert judge.asked == [["effusion"]] and state.evaluation is not None and state.evaluation.acc_at_1 == 1.0
    assert state.iterations[0].evaluation == state.evaluation  # iteration 1's own ranking, judged once
    # judged already as an iteration's ranking: not asked again
    await JudgeFindings(judge, final=True).run(state, _no_report)
    assert len(judge.asked) == 1
