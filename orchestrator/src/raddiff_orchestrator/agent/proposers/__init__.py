"""Proposers turn what is known about two samples (descriptions, reports, image grids, the previous
iteration's scores and zoom grids) into candidate findings, phrased in radiology language, that are
more common in A than in B.

Each proposer is a strategy behind one small interface:
- LLMProposer in three styles: "visdiff" (descriptions only, a general-domain prompt: the VisDiff
  baseline), "raddiff" (descriptions plus the two 4x5 grids to a multimodal LLM: RadDiff's default),
  "reports" (the sets' reports plus the grids: RadDiff's upper bound);
- ContrastProposer, the offline one (no LLM): phrases whose share of A's documents stands out against
  B's by the log-odds ratio with an informative Dirichlet prior (Monroe et al. 2008), on reports only
  whole findings (findings.py); it refines from the VLM's descriptions of the zoom crops and keeps what
  scored well;
- FallbackProposer ("auto"): the LLM while it has a model behind it, else the offline one.
"""

from raddiff_orchestrator.agent.proposers.base import (
    Evidence,
    Proposal,
    ProposalInput,
    Proposer,
    clean_findings,
)
from raddiff_orchestrator.agent.proposers.contrast import ContrastProposer, region_words
from raddiff_orchestrator.agent.proposers.findings import finding_set, is_finding
from raddiff_orchestrator.agent.proposers.llm import (
    GENERAL_SYSTEM,
    RADIOLOGY_SYSTEM,
    FallbackProposer,
    LLMProposer,
    feedback_block,
    findings_schema,
    group_lines,
    parse_findings,
    proposal_images,
    proposal_prompt,
)
from raddiff_orchestrator.agent.proposers.phrases import (
    PhraseContrast,
    affirmed_runs,
    as_phrase,
    bilateral,
    contains_phrase,
    contrast_phrases,
    core_words,
    log_odds_z,
    names_a_side,
    phrase_set,
    phrases,
    refines,
    singular,
    statement_set,
)

__all__ = [
    "GENERAL_SYSTEM",
    "RADIOLOGY_SYSTEM",
    "ContrastProposer",
    "Evidence",
    "FallbackProposer",
    "LLMProposer",
    "PhraseContrast",
    "Proposal",
    "ProposalInput",
    "Proposer",
    "affirmed_runs",
    "as_phrase",
    "bilateral",
    "clean_findings",
    "contains_phrase",
    "contrast_phrases",
    "core_words",
    "feedback_block",
    "finding_set",
    "findings_schema",
    "group_lines",
    "is_finding",
    "log_odds_z",
    "names_a_side",
    "parse_findings",
    "phrase_set",
    "phrases",
    "proposal_images",
    "proposal_prompt",
    "refines",
    "region_words",
    "singular",
    "statement_set",
]
