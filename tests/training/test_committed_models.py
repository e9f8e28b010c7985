"""The committed weights (what `make models` installs) load in both services and see what they were trained to see.

Images here are fresh held-out renders (training-range seeds never trained on), at the benchmark's 512 px.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from raddiff_embedding.engine import OpenClipEngine
from raddiff_kit.deadlines import Deadline
from raddiff_kit.grounding import decode_boxes
from raddiff_synth import Finding, Generator
from raddiff_training.captions import CAPTION_PROMPT, NORMAL_CAPTION, box_iou, parse_caption
from raddiff_training.ensure import CLIP, VLM
from raddiff_training.evaluate import auroc
from raddiff_training.world import held_out_seeds
from raddiff_vlm.engine import GenerationRequest, Sampling
from raddiff_vlm.settings import VLMSettings
from raddiff_vlm.transformers_engine import TransformersEngine

SEEDS = held_out_seeds(2000)[1000:]  # not the model cards' held-out images
LARGE_EFFUSION = Finding("pleural_effusion", {"side": "right", "severity": "large"})


@pytest.fixture(scope="module")
def generator() -> Generator:
    return Generator()


def render(generator: Generator, seeds: range, findings: list[Finding]):
    return [generator.render(seed, findings, size=512) for seed in seeds]


def test_weights_are_committed_and_small() -> None:
    for slot in (CLIP, VLM):
        folder = slot.committed()
        assert folder is not None, f"no committed {slot.name} weights"
        size = (folder / slot.weights_file).stat().st_size
        assert size < 8_000_000, f"{slot.name} weights are {size} bytes"


def test_the_committed_clip_ranks_effusions_and_pacemakers(generator: Generator) -> None:
    engine = OpenClipEngine.from_checkpoint(CLIP.committed(), "raddiff")
    assert engine.patch_grid == (10, 10)
    normal = render(generator, SEEDS[:12], [])
    effusion = render(generator, SEEDS[12:24], [LARGE_EFFUSION])
    pacemaker = render(generator, SEEDS[24:36], [Finding("cardiac_device", {"type": "pacemaker", "side": "left"})])
    vectors = engine.embed_images([Image.fromarray(r.pixels) for r in normal + effusion + pacemaker])
    texts = dict(
        zip(
            ["pleural effusion", "pacemaker or ICD"],
            engine.embed_texts(["pleural effusion", "pacemaker or ICD"]),
            strict=True,
        )
    )
    labels = np.array([False] * 12 + [True] * 12)
    assert auroc(vectors[:24] @ texts["pleural effusion"], labels) >= 0.85
    with_pacemaker = np.concatenate([vectors[:12], vectors[24:]])
    assert auroc(with_pacemaker @ texts["pacemaker or ICD"], labels) >= 0.95


async def test_the_committed_vlm_captions_and_grounds_through_the_service(generator: Generator) -> None:
    folder = VLM.committed()
    engine = TransformersEngine(VLMSettings(checkpoint=folder, metrics_port=0, batch_wait_ms=0.0), folder)
    await engine.start()
    try:

        async def ask(radiograph, prompt: str, max_tokens: int) -> str:
            request = GenerationRequest(prompt, [Image.fromarray(radiograph.pixels)], Sampling(max_tokens=max_tokens))
            return (await engine.generate(request, Deadline())).text

        normal = render(generator, SEEDS[40:44], [])
        pacemaker = render(generator, SEEDS[44:48], [Finding("cardiac_device", {"type": "pacemaker", "side": "left"})])
        assert [await ask(r, CAPTION_PROMPT, 64) for r in normal] == [NORMAL_CAPTION] * 4
        named = [parse_caption(await ask(r, CAPTION_PROMPT, 64)).findings for r in pacemaker]
        assert sum(any(f.kind == "cardiac_device" for f in found) for found in named) >= 3
        ious = []
        for radiograph in pacemaker:
            boxes = decode_boxes(await ask(radiograph, "Where is the left-sided pacemaker?", 12))
            ious.append(box_iou(boxes[0], radiograph.findings[0].box) if boxes else 0.0)
        assert sum(iou >= 0.5 for iou in ious) >= 3, ious
    finally:
        await engine.stop()
