"""Proposers: the offline phrase contrast on hand-written and on real radiology reports, and the
LLM proposer's request shape and error paths (the LLM stands for an external paid API here)."""

from __future__ import annotations

import importlib.util
import json
import random
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from raddiff_orchestrator.agent.config import AgentConfig
from raddiff_orchestrator.agent.ports import ChatMessage, DependencyError, Sampling
from raddiff_orchestrator.agent.proposers import (
    ContrastProposer,
    Evidence,
    LLMProposer,
    ProposalInput,
    contrast_phrases,
    parse_findings,
    phrases,
    refines,
    singular,
    statement_set,
)
from raddiff_orchestrator.agent.results import BoxOut, VisualSearch


def test_negated_findings_are_not_phrases() -> None:
    found = set(phrases("Small right pleural effusion, no pneumothorax or focal consolidation. Heart is enlarged."))
    assert "small right pleural effusion" in found and "pleural effusion" in found
    assert "heart is enlarged" in found
    assert not any("pneumothorax" in p or "consolidation" in p for p in found)
    assert not set(phrases("The left effusion has resolved."))  # a trailing cue negates the sentence
    assert not any("effusion" in p for p in phrases("There is no evidence of pleural effusion."))


def test_phrases_name_a_finding_and_fold_plurals() -> None:
    found = set(phrases("Bilateral pleural effusions. Patchy opacities in the right lower lobe."))
    assert "bilateral pleural effusion" in found and "opacity" in found
    # side, size and anatomy words alone, or phrases bounded by stop words, are not findings
    assert not {"bilateral", "pleural", "right lower", "the right", "lobe"} & found
    assert singular("opacities") == "opacity" and singular("atelectasis") == "atelectasis"


def test_contrast_shares_are_document_frequencies() -> None:
    a = ["Pleural effusion. Pleural effusion again.", "Large pleural effusion.", "Clear lungs."]
    b = ["Clear lungs.", "Pleural effusion.", "Clear lungs.", "Clear lungs."]
    rows = {r.phrase: r for r in contrast_phrases(a, b)}
    assert rows["pleural effusion"].share_a == pytest.approx(2 / 3)  # counted once per document
    assert rows["pleural effusion"].share_b == pytest.approx(1 / 4)
    assert rows["clear lung"].separation == pytest.approx(1 / 3 - 3 / 4)


def test_offline_proposer_keeps_what_separates_and_prefers_the_specific_phrase() -> None:
    a = [
        "There is a large left pleural effusion. The heart size is normal.",
        "Moderate right pleural effusion with adjacent atelectasis. Heart size is normal.",
        "Small bilateral pleural effusions. Heart size is normal.",
        "Pleural effusion on the left. Heart size is normal.",
        "Left pleural effusion and basilar atelectasis. Heart size is normal.",
    ]
    b = [
        "Heart size is normal. No pleural effusion.",
        "The lungs are clear. Heart size is normal.",
        "Heart size is normal. Lungs are clear without effusion.",
        "No acute disease. Heart size is normal.",
    ]
    chosen = ContrastProposer().select(a, b, limit=5)
    assert chosen[0].phrase == "pleural effusion"  # preferred to "effusion", which separates no better
    assert chosen[0].share_a == 1.0 and chosen[0].share_b == 0.0
    names = [c.phrase for c in chosen]
    assert "atelectasis" in names
    assert not any("heart size" in n for n in names)  # in both sets: separates nothing
    assert len(names) == len(set(names))
    assert not any(x != y and f" {x} " in f" {y} " for x in names for y in names)  # no phrase inside another


def test_offline_proposer_finds_nothing_when_nothing_separates() -> None:
    same = ["Heart size is normal. Lungs are clear."] * 4
    assert ContrastProposer().select(same, same, limit=10) == []


# -- real reports (Indiana University / OpenI, inside torchxrayvision's wheel) -------------------
def _reports_by_tag() -> dict[str, list[str]]:
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torchxrayvision (the IU reports) is not installed")
    archive = Path(spec.submodule_search_locations[0]) / "data" / "NLMCXR_reports.tgz"
    by_tag: dict[str, list[str]] = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            root = ET.fromstring(tar.extractfile(member).read())  # type: ignore[union-attr]
            sections = {a.get("Label"): (a.text or "") for a in root.iter("AbstractText")}
            text = f"{sections.get('FINDINGS', '')} {sections.get('IMPRESSION', '')}".strip()
            for tag in {(m.text or "").split("/")[0].lower() for m in root.iter("major")}:
                by_tag.setdefault(tag, []).append(text)
    return by_tag


@pytest.fixture(scope="module")
def real_reports() -> dict[str, list[str]]:
    return _reports_by_tag()


@pytest.mark.parametrize(
    "tag, expected",
    [("pleural effusion", "pleural effusion"), ("cardiomegaly", "cardiomegaly")],
)
def test_offline_proposer_on_real_reports(real_reports: dict[str, list[str]], tag: str, expected: str) -> None:
    a = random.Random(0).sample(real_reports[tag], 20)
    b = random.Random(1).sample(real_reports["normal"], 20)
    chosen = ContrastProposer().select(a, b, limit=10)
    assert chosen[0].phrase == expected
    assert chosen[0].share_a >= 0.75 and chosen[0].share_b <= 0.05
    # and the other way round, the finding is not proposed as more common in the normal set
    assert not any(expected in c.phrase for c in ContrastProposer().select(b, a, limit=10))


# -- the LLM proposer -------------------------------------------------------------------------
class ScriptedChat:
    """An OpenAI-compatible API stand-in for request shapes and error paths: answers from a list."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[list[ChatMessage], dict[str, Any] | None, Sampling]] = []

    async def chat(
        self, messages: Sequence[ChatMessage], json_schema: dict[str, Any] | None, sampling: Sampling
    ) -> str:
        self.requests.append((list(messages), json_schema, sampling))
        return self.answers.pop(0)


EVIDENCE_A = [Evidence("file:///a1.png", "Opacity at the right base.", "Right lower lobe pneumonia.")]
EVIDENCE_B = [Evidence("file:///b1.png", "Clear lungs.")]


GIVEN = ProposalInput(EVIDENCE_A, EVIDENCE_B, grid_a="scratch://a.png", grid_b="scratch://b.png")


def _config(**proposer: Any) -> AgentConfig:
    return AgentConfig.model_validate({"seed": 3, "proposer": proposer})


async def test_each_llm_style_sends_what_its_method_reads() -> None:
    answer = json.dumps({"findings": ["right lower lobe consolidation", "air bronchograms"]})
    config = _config(min_hypotheses=5, num_hypotheses=8)
    sent = {}
    for style in ("visdiff", "raddiff", "reports"):
        chat = ScriptedChat([answer])
        found = await LLMProposer(chat, style).propose(GIVEN, config, [])
        assert [f.text for f in found] == ["right lower lobe consolidation", "air bronchograms"]
        messages, schema, sampling = chat.requests[0]
        assert [m.role for m in messages] == ["system", "user"]
        assert schema is not None and schema["properties"]["findings"]["minItems"] == 5
        assert schema["properties"]["findings"]["maxItems"] == 8
        assert sampling.seed == 3 and sampling.temperature == 0.0
        assert "5 to 8" in messages[1].text
        sent[style] = messages
    # the VisDiff baseline: descriptions only, a general-domain prompt, no images
    assert "Group A: Opacity at the right base.\nGroup B: Clear lungs." in sent["visdiff"][1].text
    assert sent["visdiff"][1].images == () and "radiolog" not in sent["visdiff"][0].text.lower()
    # RadDiff: the same descriptions plus the two grids, in a radiologist's words
    assert "Group A: Opacity at the right base." in sent["raddiff"][1].text
    assert sent["raddiff"][1].images == ("scratch://a.png", "scratch://b.png")
    assert "radiologist" in sent["raddiff"][0].text
    # the reports mode: the reports instead of the descriptions, and the grids
    assert "Group A: Right lower lobe pneumonia." in sent["reports"][1].text
    assert "Opacity at the right base." not in sent["reports"][1].text
    assert sent["reports"][1].images == ("scratch://a.png", "scratch://b.png")


async def test_llm_unusable_answer_is_retried_with_the_reason() -> None:
    fenced = '```json\n{"findings": ["Effusion", "effusion ", ""]}\n```'
    chat = ScriptedChat(["Here are the findings: effusion", fenced])
    notes: list[str] = []
    found = await LLMProposer(chat).propose(GIVEN, AgentConfig(), notes)
    assert [f.text for f in found] == ["Effusion"]  # fenced JSON accepted; blanks and case-duplicates dropped
    retry_messages = chat.requests[1][0]
    assert retry_messages[-2].role == "assistant" and "not JSON" in retry_messages[-1].text
    assert notes == ["raddiff proposer: answer 1 unusable (the answer is not JSON (Expecting value at position 0))"]


async def test_llm_that_never_answers_usably_fails_with_a_clear_error() -> None:
    chat = ScriptedChat(['{"answer": []}', '{"findings": []}'])
    with pytest.raises(DependencyError, match="no usable findings after 2 attempts: the answer lists no findings"):
        await LLMProposer(chat).propose(GIVEN, AgentConfig(), [])


def test_parse_findings_limits_and_cleans() -> None:
    text = json.dumps({"findings": ["  a   b ", "c.", 7, "A B", "d", "e"]})
    assert parse_findings(text, limit=3) == ["a b", "c", "d"]
    with pytest.raises(ValueError, match='"findings" list'):
        parse_findings("[1, 2]", limit=3)


def test_degenerate_output_yields_no_phrases() -> None:
    found = set(phrases("Right- right pleural right pleural standard right tube tube tip<loc016> tube."))
    assert not any(len(set(p.split())) < len(p.split()) for p in found)  # no stutter like "tube tube"
    assert not any("loc" in p for p in found)  # grounding tokens are not words
    assert "right pleural standard" in found  # the words themselves still count, once each


async def test_refinement_keeps_only_crop_phrases_the_vlm_also_says_of_whole_images() -> None:
    whole_a = [Evidence(f"a{i}", "Moderate right pleural effusion. Left-sided pacemaker.") for i in range(4)]
    whole_b = [Evidence(f"b{i}", "Left-sided pacemaker. Clear lungs.") for i in range(4)]
    crops_a = ["Right pleural effusion. Large right pleural standard."] * 4
    crops_b = ["Clear lungs.", "Clear lungs."] * 2
    search = VisualSearch(
        "pleural effusion", 0.9, BoxOut(0.05, 0.6, 0.35, 0.95), "model", "scratch://grid.png",
        {"a": [], "b": []}, {"a": crops_a, "b": crops_b},
    )  # fmt: skip
    pacemaker = VisualSearch(
        "left-sided pacemaker", 0.8, BoxOut(0.7, 0.1, 0.9, 0.3), "model", "scratch://grid.png",
        {"a": [], "b": []}, {"a": [], "b": []},
    )  # fmt: skip
    given = ProposalInput(whole_a, whole_b, searches=[search, pacemaker])
    proposals = await ContrastProposer().propose(given, AgentConfig(), [])
    texts = [p.text for p in proposals]
    from_crops = [p.text for p in proposals if p.searches == (0,)]
    assert "right pleural effusion" in from_crops  # attested: the whole images say it too
    assert not any("standard" in t for t in texts)  # said only of crops: degenerate wording, dropped
    assert "right lower pleural effusion" in texts  # the box's side and zone name the unsided finding
    assert not any(t.endswith("left-sided pacemaker") and t != "left-sided pacemaker" for t in texts)  # sided


@pytest.mark.parametrize(
    ("phrase", "finding", "expected"),
    [
        ("large right pleural effusion", "moderate right pleural effusion", True),  # another grade
        ("left-sided icd", "icd", True),  # the side
        ("effusion", "moderate right pleural effusion", False),  # a part of it says less
        ("cardiomegaly", "mild cardiomegaly", False),
        ("left lower lobe mass", "pleural effusion", False),  # another finding
    ],
)
def test_a_crop_phrase_refines_only_the_finding_searched(phrase: str, finding: str, expected: bool) -> None:
    assert refines(phrase, finding) is expected


def test_a_finding_stated_on_both_sides_of_one_image_is_bilateral() -> None:
    stated = statement_set("Large right pleural effusion. Large left pleural effusion. Right lower lobe mass.")
    assert stated == {"large bilateral pleural effusion", "right lower lobe mass"}
    assert statement_set("Large right pleural effusion. Small left pleural effusion.") == {
        "large right pleural effusion",
        "small left pleural effusion",
    }  # different grades: two findings
    assert statement_set("Endotracheal tube in the right main bronchus. No pneumothorax.") == {
        "endotracheal tube in the right main bronchus"
    }
