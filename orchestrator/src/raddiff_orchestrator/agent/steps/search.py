"""RadDiff's targeted visual search: one box per previous top finding, cropped from the sampled images."""

from __future__ import annotations

import math
from collections.abc import Sequence

from raddiff_orchestrator.agent.ports import Box, Captioner, DependencyError, Localizer, Sampling
from raddiff_orchestrator.agent.proposers import Proposer
from raddiff_orchestrator.agent.results import BoxOut, VisualSearch
from raddiff_orchestrator.agent.steps.sampling import describe, shown
from raddiff_orchestrator.agent.steps.state import AnalysisState, StageReport

WHOLE_IMAGE = Box(0.0, 0.0, 1.0, 1.0)
MIN_BOX_SIDE = 0.05  # a thinner box is widened around its centre: a sliver shows nothing when zoomed


# -- targeted visual search -------------------------------------------------------------------------
def repair_boxes(boxes: Sequence[Box], findings: Sequence[str], notes: list[str]) -> list[Box]:
    """Exactly one usable box per finding: extra boxes dropped, missing ones the whole image, values clamped
    into [0, 1], reversed corners swapped, slivers widened; every repair noted."""
    count = len(findings)
    if len(boxes) != count:
        remedy = "extra ones ignored" if len(boxes) > count else "the whole image used for the missing"
        notes.append(f"search: {len(boxes)} boxes came back for {count} findings; {remedy}")
    out: list[Box] = []
    for i, finding in enumerate(findings):
        if i >= len(boxes):
            out.append(WHOLE_IMAGE)
            continue
        box = boxes[i]
        values = [box.x0, box.y0, box.x1, box.y1]
        if not all(math.isfinite(v) for v in values):
            notes.append(f"search: the box for {finding!r} has a non-finite value; used the whole image")
            out.append(WHOLE_IMAGE)
            continue
        x0, y0, x1, y1 = (min(1.0, max(0.0, v)) for v in values)
        if [x0, y0, x1, y1] != values:
            notes.append(
                f"search: the box for {finding!r} {tuple(round(v, 3) for v in values)} was clamped into [0, 1]"
            )
        if x0 > x1 or y0 > y1:
            notes.append(f"search: the box for {finding!r} had reversed corners; swapped them")
            x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
        if x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
            notes.append(f"search: the box for {finding!r} was thinner than {MIN_BOX_SIDE}; widened it")
            x0, x1 = _widen(x0, x1)
            y0, y1 = _widen(y0, y1)
        out.append(Box(x0, y0, x1, y1))
    return out


def _widen(low: float, high: float) -> tuple[float, float]:
    if high - low >= MIN_BOX_SIDE:
        return low, high
    centre = min(1 - MIN_BOX_SIDE / 2, max(MIN_BOX_SIDE / 2, (low + high) / 2))
    return centre - MIN_BOX_SIDE / 2, centre + MIN_BOX_SIDE / 2


class SearchRegions:
    """RadDiff's targeted visual search, per round: one box per previous top finding (Localize with the
    configured backend), that box cropped from the round's sampled images into an 8x5 zoom grid, and for
    the offline proposer the crops re-described by the VLM."""

    stage = "search"
    weight = 0.12

    def __init__(
        self,
        localizer: Localizer | None,
        captioner: Captioner | None,
        proposer: Proposer,
        concurrency: int,
        max_tokens: int,
    ) -> None:
        self._localizer = localizer
        self._captioner = captioner
        self._proposer = proposer
        self._concurrency = concurrency
        self._max_tokens = max_tokens

    def backend(self, state: AnalysisState) -> str:
        chosen = state.task.config.proposer.box_source
        if chosen == "auto":
            return "llm" if self._proposer.uses_llm else "model"
        return chosen

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        work = state.current
        if not work.feedback:
            state.note(f"iteration {work.index}: no findings from the previous iteration to search")
            return
        if self._localizer is None:
            raise DependencyError("iterative_cropping needs the localize service (RADDIFF_LOCALIZE_TARGET)")
        findings = [f.finding for f in work.feedback]
        aurocs = {f.finding: f.auroc for f in work.feedback}
        backend = self.backend(state)
        for i, rnd in enumerate(work.rounds, 1):
            shown_a, shown_b = shown(rnd.sample_a, state), shown(rnd.sample_b, state)
            answer = await self._localizer.localize(shown_a, shown_b, findings, backend)
            for repair in answer.repairs:
                state.note(f"search ({answer.backend or backend}): {repair}")
            boxes = repair_boxes(answer.boxes, findings, state.notes)
            for finding, box in zip(findings, boxes, strict=True):
                grid, crops = await self._localizer.crop([*shown_a, *shown_b], box)
                if len(crops) != len(shown_a) + len(shown_b):
                    raise DependencyError(
                        f"localize Crop returned {len(crops)} crops for {len(shown_a) + len(shown_b)} images"
                    )
                crops_a, crops_b = crops[: len(shown_a)], crops[len(shown_a) :]
                captions = await self._describe_crops(crops_a, crops_b, state)
                rnd.searches.append(
                    VisualSearch(
                        finding=finding,
                        auroc=aurocs[finding],
                        box=BoxOut(box.x0, box.y0, box.x1, box.y1),
                        backend=answer.backend or backend,
                        grid_uri=grid,
                        crop_uris={"a": crops_a, "b": crops_b},
                        captions=captions,
                    )
                )
            await report(i / len(work.rounds))

    async def _describe_crops(
        self, crops_a: list[str], crops_b: list[str], state: AnalysisState
    ) -> dict[str, list[str]]:
        """The offline proposer refines from words: the VLM describes a few crops of each set."""
        config = state.task.config
        n = 0 if self._proposer.uses_llm else min(config.proposer.describe_crops, len(crops_a), len(crops_b))
        if n == 0:
            return {"a": [], "b": []}
        if self._captioner is None:
            raise DependencyError("describing the zoom crops needs the VLM (RADDIFF_VLM_TARGET)")

        async def ignore(_: float) -> None:
            return None

        sampling = Sampling(self._max_tokens, 0.0, config.seed)
        texts = await describe(
            self._captioner, [*crops_a[:n], *crops_b[:n]], config.captioner.prompt, sampling, self._concurrency, ignore
        )
        return {"a": texts[:n], "b": texts[n:]}
