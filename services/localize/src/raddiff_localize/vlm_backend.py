"""The "vlm" backend: the VLM's grounding answer (RADDIFF_VLM_TARGET).

For each finding, the VLM is asked where it is on each of (up to vlm_max_images of) A's images, one
image per question, with the grounding prompt its tokenizer was built around. An answer's box is
four location tokens (raddiff_kit.grounding). An answer without a box is asked again, sampled with a
new seed, up to vlm_retries times; the finding's box is the per-coordinate median over the images
that gave one, and the whole image when none did. Every such step is said in the repairs.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass

from raddiff.v1 import common_pb2, vlm_pb2, vlm_pb2_grpc
from raddiff_kit.deadlines import Deadline
from raddiff_kit.grounding import decode_boxes
from raddiff_localize.backends import Localization, LocalizeJob, RemoteBackend, call_upstream
from raddiff_localize.boxes import finding_label
from raddiff_localize.engine import WHOLE_IMAGE, NormBox, Ref

VLM_SERVICE = "raddiff.v1.VLMService"
WHO = "the VLM"
RETRY_TEMPERATURE = 0.8
RETRY_TOP_P = 0.95


def grounding_prompt(finding: str) -> str:
    """The VLM's grounding question, as its training corpus phrases it."""
    text = finding.strip().rstrip(".")
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]  # a sentence-case finding reads as a noun phrase after "the"
    return f"Locate the {text} and give its bounding box."


def grounding_request(finding: str, image: Ref, attempt: int, max_tokens: int) -> vlm_pb2.GenerateRequest:
    """Attempt 0 is greedy; each retry samples with its own seed, so a retry can answer differently."""
    sampling = (
        common_pb2.SamplingParams(max_tokens=max_tokens, temperature=0.0)
        if attempt == 0
        else common_pb2.SamplingParams(
            max_tokens=max_tokens, temperature=RETRY_TEMPERATURE, top_p=RETRY_TOP_P, seed=attempt
        )
    )
    return vlm_pb2.GenerateRequest(
        prompt=grounding_prompt(finding), images=[common_pb2.ImageRef(uri=image.uri, sha256=image.sha256)],
        sampling=sampling,
    )


@dataclass(frozen=True)
class GroundingAnswer:
    box: NormBox | None
    boxes_in_answer: int


def read_grounding(text: str) -> GroundingAnswer:
    """The box of one answer: its only box, the union of several, or None."""
    boxes = decode_boxes(text)
    if not boxes:
        return GroundingAnswer(None, 0)
    x0s, y0s, x1s, y1s = zip(*boxes, strict=True)
    return GroundingAnswer(NormBox(min(x0s), min(y0s), max(x1s), max(y1s)), len(boxes))


def median_box(boxes: list[NormBox]) -> NormBox:
    """Per-coordinate median. Each box has x0 < x1, so the k-th smallest x0 is below the k-th smallest x1,
    and the medians keep x0 < x1 (and y0 < y1)."""
    return NormBox(
        statistics.median(b.x0 for b in boxes),
        statistics.median(b.y0 for b in boxes),
        statistics.median(b.x1 for b in boxes),
        statistics.median(b.y1 for b in boxes),
    )


def spread_sample(count: int, limit: int) -> list[int]:
    """Up to `limit` indices of `count`, evenly spread and in order (all of them when count <= limit)."""
    if count <= limit:
        return list(range(count))
    return sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)}) if limit > 1 else [0]


@dataclass(frozen=True)
class ImageOutcome:
    index: int  # in set_a
    answer: GroundingAnswer
    attempts: int  # asked this many times


class VLMBackend(RemoteBackend):
    name = "vlm"
    service, stub_class = VLM_SERVICE, vlm_pb2_grpc.VLMServiceStub
    target_var, what = "RADDIFF_VLM_TARGET", "VLM"

    def __init__(
        self, target: str, timeout_s: float, retries: int, max_images: int, max_tokens: int, concurrency: int
    ) -> None:
        super().__init__(target, timeout_s)
        self._attempts = retries + 1
        self._max_images = max_images
        self._max_tokens = max_tokens
        self._concurrency = concurrency

    async def localize(self, job: LocalizeJob, deadline: Deadline) -> Localization:
        client = self.client()
        indices = spread_sample(len(job.set_a), self._max_images)
        gate = asyncio.Semaphore(self._concurrency)

        async def ground(finding: str, index: int) -> ImageOutcome:
            async with gate:
                for attempt in range(self._attempts):
                    request = grounding_request(finding, job.set_a[index], attempt, self._max_tokens)
                    reply = await call_upstream(client, "Generate", request, deadline, WHO, loads_images=True)
                    answer = read_grounding(reply.text)
                    if answer.box is not None:
                        return ImageOutcome(index, answer, attempt + 1)
                return ImageOutcome(index, answer, self._attempts)

        outcomes = await asyncio.gather(*(ground(f, i) for f in job.findings for i in indices))
        boxes: list[NormBox] = []
        repairs: list[str] = []
        for number in range(len(job.findings)):
            mine = outcomes[number * len(indices) : (number + 1) * len(indices)]
            box, notes = self._combine(mine)
            boxes.append(box)
            repairs.extend(f"{finding_label(number, job.findings)}: {note}" for note in notes)
        return Localization(boxes, repairs)

    def _combine(self, outcomes: list[ImageOutcome]) -> tuple[NormBox, list[str]]:
        found = [o for o in outcomes if o.answer.box is not None]
        notes = []
        retried = [o.index for o in found if o.attempts > 1]
        if retried:
            notes.append(f"set_a{retried} gave a box only when asked again")
        several = [o.index for o in found if o.answer.boxes_in_answer > 1]
        if several:
            notes.append(f"set_a{several} answered several boxes; used the box around them")
        if not found:
            notes.append(
                f"none of the {len(outcomes)} answers had a box after {self._attempts} attempts each; "
                "using the whole image"
            )
            return WHOLE_IMAGE, notes
        missing = [o.index for o in outcomes if o.answer.box is None]
        if missing:
            notes.append(
                f"set_a{missing} had no box after {self._attempts} attempts each; the box is the median of the "
                f"other {len(found)}"
            )
        return median_box([o.answer.box for o in found if o.answer.box is not None]), notes
