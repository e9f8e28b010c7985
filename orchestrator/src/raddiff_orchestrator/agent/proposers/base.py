"""What every proposer shares: the evidence a round reads, its input and output, the interface."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from raddiff_orchestrator.agent.config import AgentConfig
from raddiff_orchestrator.agent.results import RankedBrief, VisualSearch


@dataclass(frozen=True)
class Evidence:
    """What is known about one sampled image: its caption and, when given, its report."""

    uri: str
    caption: str
    report: str = ""

    def text(self) -> str:
        return f"{self.caption}\n{self.report}" if self.report else self.caption


@dataclass(frozen=True)
class ProposalInput:
    """One round's material: the samples' evidence, their grids, and from iteration 2 the feedback."""

    a: Sequence[Evidence]
    b: Sequence[Evidence]
    grid_a: str = ""  # 4x5 grid of A's sample (multimodal proposers), scratch:// uri
    grid_b: str = ""
    feedback: Sequence[RankedBrief] = ()  # the previous iteration's top-k with their AUROC
    searches: Sequence[VisualSearch] = ()  # one zoom grid per top finding, when cropping
    # Every image of each set described so far in the analysis (earlier rounds and iterations too).
    described_a: Sequence[Evidence] = ()
    described_b: Sequence[Evidence] = ()


@dataclass(frozen=True)
class Proposal:
    text: str
    searches: tuple[int, ...] = ()  # indices into ProposalInput.searches of the zoom crops that led to it


class Proposer(Protocol):
    name: str
    needs_grids: bool  # whether rounds must draw the 4x5 grids of their samples
    needs_captions: bool  # whether sampled images must be described by the VLM
    uses_llm: bool

    async def propose(self, given: ProposalInput, config: AgentConfig, notes: list[str]) -> list[Proposal]:
        """The round's findings; every retry, repair or fallback is appended to notes."""
        ...


def clean_findings(raw: Sequence[object], limit: int) -> list[str]:
    """Trimmed, whitespace-collapsed, case-insensitively unique strings, at most `limit`."""
    seen: set[str] = set()
    out: list[str] = []
    for item in raw:
        if not isinstance(item, str):
            continue
        text = " ".join(item.split()).strip(" .;,")
        if text and text.lower() not in seen:
            seen.add(text.lower())
            out.append(text)
    return out[:limit]
