"""Proposals per round and their deduplication."""

from __future__ import annotations

from raddiff_orchestrator.agent.dedup import Deduplicator
from raddiff_orchestrator.agent.proposers import ProposalInput, Proposer
from raddiff_orchestrator.agent.steps.state import AnalysisState, StageReport


# -- proposals, deduplication, ranking ----------------------------------------------------------------
class ProposeFindings:
    stage = "propose"
    weight = 0.12

    def __init__(self, proposer: Proposer) -> None:
        self._proposer = proposer

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        work = state.current
        config = state.task.config
        for i, rnd in enumerate(work.rounds, 1):
            given = ProposalInput(
                a=state.evidence(rnd.sample_a),
                b=state.evidence(rnd.sample_b),
                grid_a=rnd.grid_a,
                grid_b=rnd.grid_b,
                feedback=work.feedback,
                searches=rnd.searches,
                described_a=state.described(state.task.set_a.uris),
                described_b=state.described(state.task.set_b.uris),
            )
            rnd.proposals = await self._proposer.propose(given, config, state.notes)
            state.proposer = self._proposer.name
            if not rnd.proposals:
                state.note(
                    f"iteration {work.index} round {rnd.index}: the {self._proposer.name} proposer found no "
                    "finding more common in A than in B"
                )
            await report(i / len(work.rounds))


class DeduplicateFindings:
    stage = "dedup"
    weight = 0.03

    def __init__(self, deduplicator: Deduplicator) -> None:
        self._deduplicator = deduplicator

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        work = state.current
        pooled = [p.text for r in work.rounds for p in r.proposals]
        work.deduplicated = await self._deduplicator.deduplicate(pooled, state.notes) if pooled else []
