"""The agent's parts that need no model: the config (RadDiff's keys, defaults, errors naming the key,
the shipped YAML files), deduplication's folding and threshold, the repair of bad boxes, the offline
proposer's refinement, and the LLM deduplication's error paths (the LLM stands for a paid API)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from raddiff_orchestrator.agent.config import AgentConfig, ConfigError, parse_config, read_yaml
from raddiff_orchestrator.agent.dedup import (
    LexicalDeduplicator,
    LLMDeduplicator,
    greedy_representatives,
    lexical_unique,
    normal_form,
)
from raddiff_orchestrator.agent.ports import Box, ChatMessage, Sampling
from raddiff_orchestrator.agent.proposers import (
    ContrastProposer,
    Evidence,
    ProposalInput,
    feedback_block,
    log_odds_z,
    region_words,
)
from raddiff_orchestrator.agent.results import BoxOut, RankedBrief, VisualSearch
from raddiff_orchestrator.agent.steps import WHOLE_IMAGE, repair_boxes

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


# -- config -------------------------------------------------------------------------------------
def test_the_defaults_are_raddiffs() -> None:
    base = parse_config(read_yaml(CONFIGS / "raddiff_base.yaml"))
    defaults = AgentConfig()
    # "auto" resolves to RadDiff's choice whenever an LLM is configured (and to the offline path otherwise)
    assert defaults.proposer.method == "auto" and defaults.proposer.box_source == "auto"
    assert defaults.dedup.method == "auto"
    resolved = defaults.model_copy(
        update={
            "proposer": defaults.proposer.model_copy(update={"method": "raddiff", "box_source": "llm"}),
            "dedup": defaults.dedup.model_copy(update={"method": "llm"}),
            "ranker": defaults.ranker.model_copy(update={"max_num_samples": 5000}),
        }
    )
    assert resolved == base
    assert (base.num_iterations, base.proposer.num_rounds, base.proposer.num_samples) == (2, 3, 20)
    assert (base.proposer.topk, base.proposer.iterative_cropping, base.evaluator.n_hypotheses) == (5, True, 100)


@pytest.mark.parametrize("name", ["raddiff_base", "visdiff_baseline", "embedded", "embedded_baseline"])
def test_the_shipped_configs_load(name: str) -> None:
    config = parse_config(read_yaml(CONFIGS / f"{name}.yaml"))
    assert AgentConfig.model_validate(config.to_json()) == config


def test_shipped_configs_say_what_they_are() -> None:
    visdiff = parse_config(read_yaml(CONFIGS / "visdiff_baseline.yaml"))
    assert (visdiff.num_iterations, visdiff.proposer.method, visdiff.proposer.iterative_cropping) == (
        1,
        "visdiff",
        False,
    )
    embedded = parse_config(read_yaml(CONFIGS / "embedded.yaml"))
    assert (embedded.num_iterations, embedded.proposer.method, embedded.proposer.box_source) == (2, "offline", "model")


@pytest.mark.parametrize(
    "data, named",
    [
        ({"proposer": {"num_round": 3}}, "proposer.num_round: Extra inputs are not permitted"),
        ({"num_iterations": 0}, "num_iterations: Input should be greater than or equal to 1"),
        ({"proposer": {"method": "gpt"}}, "proposer.method: Input should be"),
        ({"ranker": {"scoring": "dot"}}, "ranker.scoring"),
        ({"dedup": {"threshold": 1.5}}, "dedup.threshold"),
        ({"wandb": True}, "wandb: Extra inputs"),
        ({"proposer": {"min_hypotheses": 8, "num_hypotheses": 4}}, "min_hypotheses must not exceed num_hypotheses"),
    ],
)
def test_bad_keys_and_values_are_named(data: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=r"cfg\.yaml: ") as caught:
        parse_config(data, "cfg.yaml")
    assert named in str(caught.value)


def test_raddiffs_class_names_and_the_first_api_keys_are_understood() -> None:
    assert parse_config({"proposer": {"method": "VLMANDLLMProposer"}}).proposer.method == "raddiff"
    assert parse_config({"proposer": {"method": "RadiologyReports"}}).proposer.method == "reports"
    old = parse_config(
        {"sample_size": 7, "rank_cap": 40, "proposer": "offline", "max_findings": 6, "judge_backend": "llm"}
    )
    assert (old.proposer.num_samples, old.ranker.max_num_samples, old.proposer.method) == (7, 40, "offline")
    assert (old.proposer.num_hypotheses, old.evaluator.backend) == (6, "llm")


def test_yaml_problems_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("proposer: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_yaml(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        read_yaml(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        read_yaml(tmp_path / "missing.yaml")


# -- deduplication ---------------------------------------------------------------------------------
def test_trivial_variants_fold_without_a_model() -> None:
    assert normal_form("Pleural effusions.") == normal_form("pleural  effusion") == "pleural effusion"
    assert normal_form("Air-space opacities") == "air space opacity"
    found = lexical_unique(["Pleural effusions.", "pleural effusion", " ", "Cardiomegaly", "cardiomegaly;"])
    assert found == ["Pleural effusions", "Cardiomegaly"]


def test_the_threshold_decides_which_findings_merge() -> None:
    # unit vectors at 0, 10 and 80 degrees: cos(10) = 0.985, cos(70) = 0.342, cos(80) = 0.174
    angles = np.radians([0.0, 10.0, 80.0])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    assert greedy_representatives(vectors, 0.99) == [0, 1, 2]
    assert greedy_representatives(vectors, 0.95) == [0, 2]  # the second joins the first
    assert greedy_representatives(vectors, 0.1) == [0]


class ScriptedChat:
    """An OpenAI-compatible API stand-in for error paths: answers from a list, records requests."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.requests: list[list[ChatMessage]] = []

    async def chat(
        self, messages: Sequence[ChatMessage], json_schema: dict[str, Any] | None, sampling: Sampling
    ) -> str:
        self.requests.append(list(messages))
        return self.answers.pop(0)


async def test_llm_dedup_lists_the_findings_and_takes_its_answer() -> None:
    chat = ScriptedChat([json.dumps({"findings": ["right pleural effusion", "cardiomegaly"]})])
    notes: list[str] = []
    pooled = ["right pleural effusion", "Right pleural effusions", "effusion on the right", "cardiomegaly"]
    merged = await LLMDeduplicator(chat, LexicalDeduplicator()).deduplicate(pooled, notes)
    assert merged == ["right pleural effusion", "cardiomegaly"] and notes == []
    prompt = chat.requests[0][0].text
    assert "1. right pleural effusion\n2. effusion on the right\n3. cardiomegaly" in prompt  # folded before asking


async def test_llm_dedup_retries_then_falls_back_and_says_so() -> None:
    chat = ScriptedChat(["merged: effusion", json.dumps({"findings": ["a", "b", "c", "d"]})])
    notes: list[str] = []
    merged = await LLMDeduplicator(chat, LexicalDeduplicator()).deduplicate(["effusion", "Effusions", "edema"], notes)
    assert merged == ["effusion", "edema"]  # the fallback's answer
    assert "not JSON" in notes[0] and "4 findings, more than the 2 given" in notes[1]
    assert "used none similarity after 2 unusable LLM answers" in notes[2]
    assert "cannot be used" in chat.requests[1][-1].text


# -- bad boxes -------------------------------------------------------------------------------------------
def test_bad_boxes_are_repaired_and_noted() -> None:
    findings = ["effusion", "edema", "nodule", "mass"]
    boxes = [Box(1.2, -0.1, 0.5, 0.6), Box(0.3, 0.3, 0.3001, 0.5), Box(float("nan"), 0, 1, 1)]
    notes: list[str] = []
    fixed = repair_boxes(boxes, findings, notes)
    assert len(fixed) == 4
    assert fixed[0] == Box(0.5, 0.0, 1.0, 0.6)  # clamped, then corners swapped
    assert fixed[1].x1 - fixed[1].x0 == pytest.approx(0.05) and fixed[1].y0 == 0.3  # a sliver widened
    assert fixed[2] == WHOLE_IMAGE and fixed[3] == WHOLE_IMAGE  # non-finite; missing
    text = "\n".join(notes)
    for said in ("3 boxes came back for 4 findings", "clamped", "reversed corners", "thinner", "non-finite"):
        assert said in text
    notes.clear()
    assert repair_boxes([Box(0.1, 0.1, 0.4, 0.4)] * 3, findings[:2], notes) == [Box(0.1, 0.1, 0.4, 0.4)] * 2
    assert notes == ["search: 3 boxes came back for 2 findings; extra ones ignored"]


# -- the offline proposer --------------------------------------------------------------------------------
def test_log_odds_ranks_frequent_separations_above_rare_ones() -> None:
    assert log_odds_z(20, 20, 0, 20, 4.0) > log_odds_z(2, 20, 0, 20, 4.0) > 0
    assert log_odds_z(5, 20, 5, 20, 4.0) == pytest.approx(0.0)
    assert log_odds_z(0, 20, 20, 20, 4.0) == pytest.approx(-log_odds_z(20, 20, 0, 20, 4.0))


def test_region_words_follow_the_radiographic_convention() -> None:
    assert region_words(0.05, 0.6, 0.35, 0.95) == "right lower"  # the image's left is the patient's right
    assert region_words(0.65, 0.05, 0.95, 0.3) == "left upper"
    assert region_words(0.3, 0.3, 0.7, 0.7) == ""


async def test_offline_refinement_uses_the_crops_the_box_and_the_feedback() -> None:
    # Both sets say it of one whole image each: attested, but it separates nothing there.
    said = " Right lower lobe consolidation."
    a = [Evidence(f"file:///a{i}.png", "Heart size is normal." + said * (i == 0)) for i in range(4)]
    b = [Evidence(f"file:///b{i}.png", "Heart size is normal." + said * (i == 0)) for i in range(4)]

    def search(finding: str, auroc: float) -> VisualSearch:
        return VisualSearch(
            finding=finding,
            auroc=auroc,
            box=BoxOut(0.05, 0.6, 0.4, 0.95),
            backend="model",
            grid_uri="scratch://g.png",
            crop_uris={"a": [], "b": []},
            captions={"a": ["Dense right lower lobe consolidation. Left upper lobe mass."] * 3, "b": ["Clear."] * 3},
        )

    feedback = [RankedBrief("consolidation", 0.7), RankedBrief("chest wall", 0.4)]
    searches = [search("consolidation", 0.7), search("chest wall", 0.4)]
    found = await ContrastProposer().propose(
        ProposalInput(a, b, feedback=feedback, searches=searches), AgentConfig(), []
    )
    texts = [p.text for p in found]
    led = {p.text: p.searches for p in found}
    assert led.get("right lower lobe consolidation") == (0,)  # the crops refine the finding searched
    assert not any("mass" in t for t in texts)  # the crops' other findings are not the search's to propose
    assert led["right lower consolidation"] == (0,)  # the box lies low on the patient's right
    assert "consolidation" in texts and not any("chest wall" in t for t in texts)  # only what beat chance
    assert texts[0] == "consolidation"  # the established finding first: deduplication keeps its wording
    assert led["consolidation"] == ()


async def test_offline_refinement_contrasts_every_image_described_so_far() -> None:
    def images(side: str, texts: list[str]) -> list[Evidence]:
        return [Evidence(f"file:///{side}{i}.png", t) for i, t in enumerate(texts)]

    # This round's sample happens to favour a nodule in A; over all 12 images a side it is as common in B.
    round_a = images("a", ["Pleural effusion. Pulmonary nodule."] * 4)
    round_b = images("b", ["Clear lungs."] * 4)
    earlier_a = images("a", ["Pleural effusion."] * 8)
    earlier_b = images("b", ["Pulmonary nodule."] * 8)
    feedback = [RankedBrief("pleural effusion", 0.9)]
    alone = ProposalInput(round_a, round_b, feedback=feedback)
    pooled = ProposalInput(
        round_a, round_b, feedback=feedback, described_a=[*round_a, *earlier_a], described_b=[*round_b, *earlier_b]
    )
    assert "pulmonary nodule" in [p.text for p in await ContrastProposer().propose(alone, AgentConfig(), [])]
    texts = [p.text for p in await ContrastProposer().propose(pooled, AgentConfig(), [])]
    assert "pleural effusion" in texts and not any("nodule" in t for t in texts)


async def test_offline_refinement_drops_top_findings_that_fresh_samples_do_not_replicate() -> None:
    def images(side: str, texts: list[str]) -> list[Evidence]:
        return [Evidence(f"file:///{side}{i}.png", t) for i, t in enumerate(texts)]

    # The first sample favoured "endotracheal tube" in A by chance; in this round's fresh images it is as
    # common in B. The effusion replicates; the LLM's wording is in no description and stays.
    earlier_a = images("a-old", ["Pleural effusion. Endotracheal tube."] * 4)
    earlier_b = images("b-old", ["Clear lungs."] * 4)
    fresh_a = images("a", ["Pleural effusion. Endotracheal tube.", "Pleural effusion."] * 2)
    fresh_b = images("b", ["Endotracheal tube.", "Clear lungs."] * 2)
    feedback = [
        RankedBrief("pleural effusion", 0.9),
        RankedBrief("endotracheal tube", 0.95),
        RankedBrief("blunted costophrenic angles", 0.8),
    ]
    given = ProposalInput(
        fresh_a, fresh_b, feedback=feedback, described_a=[*earlier_a, *fresh_a], described_b=[*earlier_b, *fresh_b]
    )
    assert ContrastProposer().replicated(given) == ["pleural effusion", "blunted costophrenic angles"]
    texts = [p.text for p in await ContrastProposer().propose(given, AgentConfig(), [])]
    assert texts[:2] == ["pleural effusion", "blunted costophrenic angles"] and "endotracheal tube" not in texts


async def test_offline_refinement_proposes_what_the_descriptions_say_more_specifically() -> None:
    def images(side: str, texts: list[str]) -> list[Evidence]:
        return [Evidence(f"file:///{side}{i}.png", t) for i, t in enumerate(texts)]

    a = images(
        "a",
        ["Large bilateral pleural effusions. Endotracheal tube in the right main bronchus."] * 3
        + ["Small left pleural effusion. Moderate cardiomegaly."] * 2
        + ["Moderate right pleural effusion. Severe cardiomegaly.", "Right pleural effusion. Moderate cardiomegaly."],
    )
    b = images("b", ["Clear lungs."] * 4 + ["Small left pleural effusion."] * 3)
    proposer = ContrastProposer()
    # Said of one image of A only: too little; as common in B as in A: not A's; the finding itself: not new.
    # Stated by 3 of A's images against the finding's own words by 1: the better supported wording.
    assert proposer.specifics("right pleural effusion", a, b) == (["large bilateral pleural effusion"], [])
    feedback = [RankedBrief("right pleural effusion", 0.9), RankedBrief("moderate cardiomegaly", 0.8)]
    texts = [p.text for p in await proposer.propose(ProposalInput(a, b, feedback=feedback), AgentConfig(), [])]
    assert texts[:3] == ["large bilateral pleural effusion", "right pleural effusion", "moderate cardiomegaly"]
    assert not any(t.startswith(("moderate right", "small")) for t in texts)
    # Whole statements, beyond the phrases' four words; a fragment no image states is supported less.
    assert proposer.specifics("endotracheal tube", a, b) == (["endotracheal tube in the right main bronchus"], [])
    # What A's images state less often than the finding's own words comes after it, when said often enough.
    a_more = [*a, *images("a-more", ["Severe cardiomegaly."])]
    assert proposer.specifics("moderate cardiomegaly", a_more, b) == ([], ["severe cardiomegaly"])
    assert ContrastProposer(per_finding=0).specifics("cardiomegaly", a, b) == ([], [])


def test_feedback_is_written_as_raddiff_does() -> None:
    block = feedback_block([RankedBrief("pleural effusion", 0.8123), RankedBrief("edema", 0.61)])
    assert (
        block == "Top 1 Difference: pleural effusion\nTop 1 Score: 0.812\nTop 2 Difference: edema\nTop 2 Score: 0.610"
    )


async def test_the_boxs_side_is_added_only_where_the_finding_says_no_side_or_zone() -> None:
    a = [Evidence(f"file:///a{i}.png", "Heart size is normal.") for i in range(2)]
    b = [Evidence(f"file:///b{i}.png", "Heart size is normal.") for i in range(2)]

    def search(finding: str) -> VisualSearch:
        box = BoxOut(0.6, 0.05, 0.9, 0.3)  # the patient's left, high
        return VisualSearch(finding, 0.8, box, "model", "scratch://g.png", {"a": [], "b": []}, {"a": [], "b": []})

    findings = ["pulmonary nodule", "upper lobe pulmonary nodule", "left-sided pacemaker"]
    feedback = [RankedBrief(f, 0.8) for f in findings]
    given = ProposalInput(a, b, feedback=feedback, searches=[search(f) for f in findings])
    texts = [p.text for p in await ContrastProposer().propose(given, AgentConfig(), [])]
    assert "left upper pulmonary nodule" in texts
    assert not any(t.startswith("left upper upper") or t.startswith("left upper left") for t in texts)
