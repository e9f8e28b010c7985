"""The offline proposer on report texts proposes whole findings, never the fragments around them.

The sentences are written for these tests (the OpenI texts are CC BY-NC-ND and stay out of the repository).
"""

from __future__ import annotations

import asyncio

import pytest

from raddiff_bench.pairs import ReportPair
from raddiff_bench.reports import propose
from raddiff_orchestrator.agent.config import AgentConfig
from raddiff_orchestrator.agent.proposers import ContrastProposer, Evidence, ProposalInput
from raddiff_orchestrator.agent.proposers.findings import finding_set, is_finding

REPORTS_A = [
    "The tip of the right-sided catheter projects over the SVC. Degenerative changes of the spine. "
    "Calcified granuloma in the right upper lobe. Median sternotomy wires.",
    "Calcified granuloma at the left base. Sternotomy wires are intact. Degenerative changes of the spine. "
    "The tip of the catheter is in the right atrium.",
    "Sternotomy wires. Calcified granuloma in the left upper lobe. No change in heart size. "
    "The lungs are hyperexpanded.",
    "Stable calcified granuloma. Intact sternotomy wires. Degenerative changes of the spine. "
    "The tip of the catheter is unchanged. The aorta is tortuous.",
    "Calcified granuloma again seen. Sternotomy wires in place. Degenerative changes of the spine. "
    "The lungs are hyperexpanded. The aorta is tortuous.",
]
REPORTS_B = [
    "Heart size is normal. The lungs are clear. No pleural effusion or pneumothorax.",
    "The heart is normal in size. Lungs are clear. No acute bony abnormality.",
    "Normal heart size and mediastinal contours. The lungs are clear.",
    "No focal consolidation, effusion or pneumothorax. Heart size is normal.",
    "The cardiomediastinal silhouette is normal. Clear lungs.",
]
FRAGMENTS = {"tip", "spine", "change", "heart size", "size", "catheter is", "wire", "of the spine", "right-sided"}


def test_report_findings_are_whole_and_fragments_are_never_proposed() -> None:
    names = [r.phrase for r in ContrastProposer().select(REPORTS_A, REPORTS_B, limit=10, reports=True)]
    assert not FRAGMENTS & set(names)
    assert "calcified granuloma" in names  # whole, not "calcified" or "granuloma" alone
    assert any(n.endswith("sternotomy wire") for n in names)  # "sternotomy wire" or "median sternotomy wire"
    assert "degenerative change" in names  # the finding that "change" and "spine" stood next to
    assert {"hyperexpanded lung", "tortuous aorta"} <= set(names)  # predicative clauses as noun phrases


def test_caption_phrases_are_unchanged_without_reports() -> None:
    # Captions keep the original phrase contrast: single words can still be chosen there.
    names = [r.phrase for r in ContrastProposer().select(REPORTS_A, REPORTS_B, limit=10)]
    assert FRAGMENTS & set(names)


def test_the_report_benchmark_and_the_pipeline_use_whole_findings() -> None:
    pair = ReportPair(0, "t", "easy", "calcified granuloma", "normal", tuple(REPORTS_A), tuple(REPORTS_B))
    benchmark = [f.finding for f in propose(pair, limit=10)]
    given = ProposalInput(
        [Evidence(f"file:///a{i}.png", "", t) for i, t in enumerate(REPORTS_A)],
        [Evidence(f"file:///b{i}.png", "", t) for i, t in enumerate(REPORTS_B)],
    )
    config = AgentConfig.model_validate({"proposer": {"num_hypotheses": 10}})
    proposed = [p.text for p in asyncio.run(ContrastProposer().propose(given, config, []))]
    for names in (benchmark, proposed):
        assert "calcified granuloma" in names and not FRAGMENTS & set(names)


@pytest.mark.parametrize(
    "phrase, expected",
    [
        ("calcified granuloma", True),
        ("pacemaker", True),
        ("low lung volume", True),
        ("elevated right hemidiaphragm", True),
        ("degenerative change", True),
        ("surgical clip", True),
        ("change", False),
        ("tip", False),
        ("spine", False),
        ("heart size", False),
        ("clip", False),
        ("calcified", False),  # a descriptor with nothing it describes
        ("opacity in the left", False),  # ends on a side
        ("mild elevation", False),  # a severity does not say what is elevated
        ("represent atelectasis", False),
        ("right upper lobe", False),  # a place, not a finding
    ],
)
def test_what_counts_as_a_finding(phrase: str, expected: bool) -> None:
    assert is_finding(phrase) is expected


def test_predicative_clauses_read_as_noun_phrases() -> None:
    found = finding_set("The aorta is tortuous. The heart is mildly enlarged. Heart size is normal.")
    assert {"tortuous aorta", "enlarged heart"} <= found
    assert not any("normal" in p or p == "heart size" for p in found)
    assert not finding_set("No pneumothorax. The effusion has resolved.")  # negations still hold
