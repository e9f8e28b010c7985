"""The vlm backend: the grounding parser on well-formed answers, the combination across images, and the
backend over gRPC with the real VLM service (a tiny randomly initialised model, whose answers are what
they are: the test asks the VLM the same questions itself and checks that Localize used the answers)."""

from __future__ import annotations

from dataclasses import astuple

import numpy as np
import pytest

from raddiff.v1 import localize_pb2
from raddiff_kit.grounding import encode_box
from raddiff_localize.engine import NormBox, Ref
from raddiff_localize.vlm_backend import (
    GroundingAnswer,
    ImageOutcome,
    VLMBackend,
    grounding_prompt,
    grounding_request,
    median_box,
    read_grounding,
    spread_sample,
)
from tests.localize.conftest import Data, ModelStack

FINDINGS = ["Right upper lobe opacity.", "cardiomegaly"]


def test_one_box_is_read_at_bin_centres() -> None:
    answer = read_grounding("The opacity is at <loc064><loc032><loc128><loc160>.")
    assert answer.boxes_in_answer == 1
    assert answer.box == NormBox(64.5 / 256, 32.5 / 256, 128.5 / 256, 160.5 / 256)
    # What the VLM writes for a box is read back to within one bin.
    box = read_grounding(encode_box(0.1, 0.2, 0.55, 0.9)).box
    assert box is not None and np.allclose([box.x0, box.y0, box.x1, box.y1], [0.1, 0.2, 0.55, 0.9], atol=1 / 256)


def test_several_boxes_become_the_box_around_them() -> None:
    answer = read_grounding("both bases: <loc010><loc150><loc100><loc240> and <loc150> <loc140> <loc250> <loc230>")
    assert answer.boxes_in_answer == 2
    assert answer.box == NormBox(10.5 / 256, 140.5 / 256, 250.5 / 256, 240.5 / 256)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Cardiomegaly is seen in the left lower lobe.",
        "<loc010><loc020><loc030>",  # three tokens
        "<loc010> scattered <loc020> tokens <loc030> are not <loc040> a box",
        "<loc100><loc020><loc050><loc040>",  # x0 > x1
        "<loc010><loc020><loc300><loc040>",  # beyond the 256 bins
    ],
)
def test_answers_without_a_well_formed_box_have_none(text: str) -> None:
    assert read_grounding(text) == GroundingAnswer(None, 0)


def test_the_prompt_reads_the_finding_as_a_noun_phrase() -> None:
    expected = "Locate the right upper lobe opacity and give its bounding box."
    assert grounding_prompt("Right upper lobe opacity.") == expected
    assert grounding_prompt(" cardiomegaly ") == "Locate the cardiomegaly and give its bounding box."
    assert grounding_prompt("ET tube") == "Locate the ET tube and give its bounding box."


def test_retries_sample_with_their_own_seed() -> None:
    first = grounding_request("cardiomegaly", Ref("file:///x.png"), 0, 24)
    second = grounding_request("cardiomegaly", Ref("file:///x.png"), 1, 24)
    assert first.sampling.temperature == 0 and second.sampling.temperature > 0
    assert second.sampling.seed == 1 and first.prompt == second.prompt and len(second.images) == 1


def test_the_median_box_is_per_coordinate() -> None:
    boxes = [NormBox(0.1, 0.2, 0.4, 0.5), NormBox(0.2, 0.1, 0.6, 0.4), NormBox(0.9, 0.8, 1.0, 0.9)]
    assert median_box(boxes) == NormBox(0.2, 0.2, 0.6, 0.5)
    assert astuple(median_box(boxes[:2])) == pytest.approx((0.15, 0.15, 0.5, 0.45))  # an even count averages


def test_a_spread_sample_keeps_the_ends_and_the_order() -> None:
    assert spread_sample(3, 8) == [0, 1, 2]
    assert spread_sample(20, 4) == [0, 6, 13, 19]
    assert spread_sample(20, 1) == [0]


def test_the_combination_says_what_was_missing_retried_or_merged() -> None:
    backend = VLMBackend("", 1.0, retries=1, max_images=8, max_tokens=24, concurrency=1)
    box = NormBox(0.1, 0.1, 0.5, 0.5)
    outcomes = [
        ImageOutcome(0, GroundingAnswer(box, 1), 1),
        ImageOutcome(3, GroundingAnswer(None, 0), 2),
        ImageOutcome(5, GroundingAnswer(NormBox(0.3, 0.2, 0.7, 0.6), 2), 2),
    ]
    combined, notes = backend._combine(outcomes)
    assert astuple(combined) == pytest.approx((0.2, 0.15, 0.6, 0.55))  # the median of the two boxes found
    assert notes == [
        "set_a[5] gave a box only when asked again",
        "set_a[5] answered several boxes; used the box around them",
        "set_a[3] had no box after 2 attempts each; the box is the median of the other 2",
    ]
    whole, notes = backend._combine([ImageOutcome(0, GroundingAnswer(None, 0), 2)])
    assert whole == NormBox(0.0, 0.0, 1.0, 1.0)
    assert notes == ["none of the 1 answers had a box after 2 attempts each; using the whole image"]


async def test_localize_uses_what_the_real_vlm_answers(model_stack: ModelStack, data: Data) -> None:
    set_a = [f"blob{i}.png" for i in range(6)]
    request = localize_pb2.LocalizeRequest(
        set_a=data.refs(*set_a), set_b=data.refs("clear0.png", "clear1.png"), findings=FINDINGS, backend="vlm"
    )
    reply = await model_stack.localize.Localize(request, timeout=120)
    assert reply.backend == "vlm" and len(reply.boxes) == len(FINDINGS)

    # Ask the VLM the same questions (greedy first, then the seeded retry) and combine the answers by hand.
    settings = model_stack.settings
    asked = spread_sample(len(set_a), settings.vlm_max_images)
    assert asked == [0, 2, 3, 5]
    for number, finding in enumerate(FINDINGS):
        found: list[NormBox] = []
        for index in asked:
            for attempt in range(settings.vlm_retries + 1):
                sent = grounding_request(finding, Ref(data.ref(set_a[index]).uri), attempt, settings.vlm_max_tokens)
                answer = read_grounding((await model_stack.vlm.Generate(sent, timeout=60)).text)
                if answer.box is not None:
                    found.append(answer.box)
                    break
        box = reply.boxes[number]
        label = f"finding {number + 1} ({finding!r})"
        if found:
            expected = np.median([[b.x0, b.y0, b.x1, b.y1] for b in found], axis=0)
            np.testing.assert_allclose([box.x0, box.y0, box.x1, box.y1], expected, atol=1e-6)
        else:
            # A random-init model rarely writes four location tokens in a row: the repair path.
            assert (box.x0, box.y0, box.x1, box.y1) == (0, 0, 1, 1)
            assert f"{label}: none of the 4 answers had a box after 2 attempts each; using the whole image" in (
                reply.repairs
            )
