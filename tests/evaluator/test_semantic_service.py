"""The Judge RPC over a real in-process server: Acc@k arithmetic, the semantic judge on clear cases
both ways round, and bad input."""

from __future__ import annotations

import grpc
import pytest

from raddiff_evaluator.engine import Judgement, Verdict, accuracy_at
from tests.evaluator.conftest import Evaluator

EFFUSION = ("moderate right pleural effusion", "no pleural effusion")


def test_accuracy_at_k_follows_raddiff() -> None:
    scores = [0, 1, 0, 0, 0, 2, 1]
    assert accuracy_at(scores, 1) == 0.0
    assert accuracy_at(scores, 5) == 0.5
    assert accuracy_at(scores) == 1.0
    assert accuracy_at([2], 5) == 1.0  # fewer than k predictions: the best of those there are
    judgement = Judgement("semantic", [Verdict(s, "") for s in [1, 0, 2]])
    assert (judgement.acc_at_1, judgement.acc_at_5, judgement.acc_at_n) == (0.5, 1.0, 1.0)


async def test_scores_and_accuracies_come_back_in_request_order(evaluator: Evaluator) -> None:
    predictions = [
        "cardiomegaly",  # 0: unrelated
        "pleural effusion",  # 1: side and severity missing
        "no pleural effusion",  # 0: B's side
        "left pleural effusion",  # 1: wrong side
        "pneumothorax",  # 0
        "moderate right-sided pleural effusion",  # 2, but sixth: outside the top 5
    ]
    response = await evaluator.judge(predictions, *EFFUSION)
    assert list(response.scores) == [0, 1, 0, 1, 0, 2]
    assert (response.acc_at_1, response.acc_at_5, response.acc_at_n) == (0.0, 0.5, 1.0)
    assert response.backend == "semantic"  # the configured default when the request names none
    assert len(response.rationales) == len(predictions)
    assert response.rationales[3].startswith("1:") and "side left (truth: right)" in response.rationales[3]
    assert "[cos to A 0." in response.rationales[0] and ", to B 0." in response.rationales[0]

    best_first = await evaluator.judge(
        ["moderate right pleural effusion", "cardiomegaly"], *EFFUSION, backend="semantic"
    )
    assert list(best_first.scores) == [2, 0]
    assert (best_first.acc_at_1, best_first.acc_at_5, best_first.acc_at_n) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize(
    ("truth_a", "truth_b", "a_side", "b_side"),
    [
        ("moderate right pleural effusion", "no pleural effusion", "moderate right-sided effusion", "no effusion"),
        ("cardiomegaly", "normal heart size", "enlarged cardiac silhouette", "normal cardiac size"),
        (
            "NG tube in bronchus",
            "NG tube in stomach",
            "enteric tube in the right main bronchus",
            "NG tube below the diaphragm",
        ),
        ("left lower lobe consolidation", "no consolidation", "consolidation in the left lower lobe", "clear lungs"),
        (
            "ET tube tip in right main bronchus",
            "ET tube tip above the carina",
            "ETT in the right mainstem bronchus",
            "endotracheal tube in standard position",
        ),
    ],
)
async def test_semantic_judge_tells_a_from_b_both_ways(
    evaluator: Evaluator, truth_a: str, truth_b: str, a_side: str, b_side: str
) -> None:
    forward = await evaluator.judge([a_side, b_side], truth_a, truth_b, backend="semantic")
    assert list(forward.scores) == [2, 0], list(forward.rationales)
    # Swap the sets: the same phrases must swap scores, so similarity to B counts, not only to A.
    backward = await evaluator.judge([a_side, b_side], truth_b, truth_a, backend="semantic")
    assert list(backward.scores) == [0, 2], list(backward.rationales)


async def test_semantic_judge_reads_outside_its_lexicon_by_embedding(evaluator: Evaluator) -> None:
    response = await evaluator.judge(
        ["tortuous thoracic aorta", "no tortuous aorta", "pleural effusion"], "tortuous aorta", "no tortuous aorta"
    )
    assert list(response.scores) == [2, 0, 0], list(response.rationales)
    assert "embedding cos" in response.rationales[0]


async def test_partial_credit_names_what_is_missing(evaluator: Evaluator) -> None:
    response = await evaluator.judge(
        ["malpositioned NG tube", "NG tube", "abnormal cardiac silhouette"], "NG tube in bronchus", "NG tube in stomach"
    )
    assert list(response.scores) == [1, 1, 0]
    assert "position malpositioned (broader" in response.rationales[0]
    assert "position missing" in response.rationales[1]


async def _code_and_details(evaluator: Evaluator, predictions: list[str], a: str, b: str, backend: str = ""):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await evaluator.judge(predictions, a, b, backend=backend)
    return caught.value.code(), caught.value.details()


@pytest.mark.parametrize(
    ("predictions", "truth_a", "truth_b", "named"),
    [
        ([], "cardiomegaly", "normal heart size", "predictions is empty"),
        (["cardiomegaly"], "", "normal heart size", "truth_a is empty"),
        (["cardiomegaly"], "cardiomegaly", "   ", "truth_b is empty"),
        (["cardiomegaly", " "], "cardiomegaly", "normal heart size", "predictions[1] is empty"),
        (["x" * 600], "cardiomegaly", "normal heart size", "predictions[0] has 600 characters"),
        (["cardiomegaly"] * 201, "cardiomegaly", "normal heart size", "201 predictions, over the limit of 200"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    evaluator: Evaluator, predictions: list[str], truth_a: str, truth_b: str, named: str
) -> None:
    code, details = await _code_and_details(evaluator, predictions, truth_a, truth_b)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert named in details


async def test_unknown_backend_names_the_choices(evaluator: Evaluator) -> None:
    evaluator.llm.script()
    code, details = await _code_and_details(evaluator, ["cardiomegaly"], "cardiomegaly", "normal heart size", "gpt4")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "'gpt4'" in details and "llm, semantic" in details
    assert evaluator.llm.requests == []  # refused before any LLM call
