"""A tiny VLM started from a tiny CLIP's tower, trained for a few steps, served by the VLM service's engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from raddiff_kit.deadlines import Deadline
from raddiff_training import clip, vlm
from raddiff_training.statements import corpus_sentences
from raddiff_training.world import ImageSet
from raddiff_vlm.checkpoints import build_model
from raddiff_vlm.engine import GenerationRequest, Sampling
from raddiff_vlm.settings import VLMSettings
from raddiff_vlm.transformers_engine import TransformersEngine
from tests.training.conftest import TINY_SIZE, TINY_VLM


@pytest.fixture(scope="module")
def tiny_clip() -> torch.nn.Module:
    tokenizer = clip.build_tokenizer(corpus_sentences(5))
    config = clip.clip_config(tokenizer, image_size=TINY_SIZE, width=64, vision_layers=2, text_layers=1)
    return clip.build_model(config, seed=1).eval()


@pytest.fixture(scope="module")
def built(tiny_clip: torch.nn.Module):
    model, processor = vlm.build_vlm(seed=0, shape=TINY_VLM)
    vlm.copy_clip_tower(model, tiny_clip.visual)
    return model, processor


def test_the_copied_tower_computes_the_clips_patch_tokens(tiny_clip, built, tiny_images: ImageSet) -> None:
    model, _ = built
    pixels = tiny_images.clip_pixels[:3]
    visual = tiny_clip.visual
    with torch.no_grad():
        # The CLIP's own blocks on its patch tokens alone (the VLM's tower has no class token), from the CLIP's input.
        tokens = visual.conv1(clip.image_batch(pixels)).flatten(2).transpose(1, 2) + visual.positional_embedding[1:]
        expected = visual.ln_post(visual.transformer(tokens))
        # The same pixels normalised the VLM's way, through its tower.
        tower = model.model.vision_model(vlm.vlm_pixels(pixels)).last_hidden_state
    assert torch.allclose(tower, expected, atol=1e-4)
    assert model.config.vision_config.hidden_act == "gelu"


def test_training_inputs_are_the_services_and_the_forward_is_the_models(built, tiny_images: ImageSet) -> None:
    model, processor = built
    encoder = vlm.Encoder(processor)
    examples = [
        vlm.Example(0, "Describe this image in detail.", "Moderate right pleural effusion. Mild cardiomegaly."),
        vlm.Example(1, "Where is the pleural effusion?", "<loc010><loc020><loc100><loc200>"),
    ]
    ids, mask, predicts, targets = encoder.batch(examples)
    images = [Image.fromarray(tiny_images.vlm_pixels[i]).convert("RGB") for i in (0, 1)]
    texts = [encoder.prompt_text(e.prompt) + " " + e.answer + "<end_of_utterance>" for e in examples]
    processor.tokenizer.padding_side = "right"
    reference = processor(text=texts, images=[[im] for im in images], return_tensors="pt", padding=True)
    assert torch.equal(reference["input_ids"], ids) and torch.equal(reference["attention_mask"], mask)
    assert processor.tokenizer.decode(targets[-5:]) == "<loc010><loc020><loc100><loc200><end_of_utterance>"
    with torch.no_grad():
        frozen = vlm.frozen_features(model, vlm.vlm_pixels(tiny_images.vlm_pixels[:2]), 1)
        mine = vlm.decoder_logits(model, ids, mask, vlm.image_tokens(model, frozen, 1), predicts)
        theirs = model(**reference).logits[predicts]
    assert torch.allclose(mine, theirs, atol=1e-4)


def test_examples_mix_captions_and_grounding(tiny_images: ImageSet) -> None:
    rng = np.random.default_rng(0)
    examples = [vlm.draw_example(tiny_images, i % len(tiny_images), rng) for i in range(200)]
    captions = [e for e in examples if e.prompt.startswith(("Describe", "What", "List"))]
    assert 70 < len(captions) < 130
    assert all("<loc" in e.answer or e.answer == "Not seen." for e in examples if e not in captions)
    assert any(e.answer == "Not seen." for e in examples) and any("<loc" in e.answer for e in examples)


async def test_training_lowers_the_loss_and_the_service_serves_the_checkpoint(
    built, tiny_images: ImageSet, tmp_path: Path
) -> None:
    model, processor = built
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    settings = vlm.VlmTrainConfig(steps=30, batch=8, lr=3e-3, warmup=3, threads=1)
    result = vlm.train_vlm(model, processor, tiny_images, settings, progress=False)
    assert np.mean(result.losses[-8:]) < 0.7 * np.mean(result.losses[:8])
    after = dict(model.named_parameters())
    frozen = "model.vision_model.encoder.layers.0.self_attn.q_proj.weight"
    trained = "model.vision_model.encoder.layers.1.self_attn.q_proj.weight"
    assert torch.equal(before[frozen], after[frozen])  # the first layer stays the CLIP's
    assert not torch.equal(before[trained], after[trained])

    folder = vlm.save_vlm(model, processor, tmp_path / "vlm", vlm.provenance(settings, tiny_images, result, TINY_VLM))
    assert json.loads((folder / vlm.PROVENANCE_NAME).read_text())["kind"] == "trained"
    engine = TransformersEngine(VLMSettings(checkpoint=folder, metrics_port=0, batch_wait_ms=0.0), folder)
    await engine.start()
    try:
        image = Image.fromarray(tiny_images.vlm_pixels[0]).convert("RGB")
        request = GenerationRequest("Describe this image in detail.", [image], Sampling(max_tokens=12))
        result = await engine.generate(request, Deadline())
    finally:
        await engine.stop()
    assert result.completion_tokens >= 1 and result.prompt_tokens > TINY_VLM.image_seq_len


def test_location_targets_spread_over_neighbouring_bins() -> None:
    loc_ids = torch.arange(10, 20)
    targets = torch.tensor([15, 3])  # a location token, then an ordinary one
    logits = torch.zeros(2, 30)
    assert torch.isclose(vlm.answer_loss(logits, targets, loc_ids, 0.0), F.cross_entropy(logits, targets))
    near, far = logits.clone(), logits.clone()
    near[0, 16] = 8.0  # one bin off
    far[0, 19] = 8.0  # four bins off
    assert F.cross_entropy(near, targets) == F.cross_entropy(far, targets)  # plain cross-entropy cannot tell
    assert vlm.answer_loss(near, targets, loc_ids, 2.0) < vlm.answer_loss(far, targets, loc_ids, 2.0)


def test_training_is_reproducible(tiny_clip, built, tiny_images: ImageSet) -> None:
    _, processor = built
    settings = vlm.VlmTrainConfig(steps=3, batch=4, warmup=1, threads=1)
    runs = []
    for _ in range(2):
        model = build_model(processor.tokenizer, TINY_VLM, seed=0)
        vlm.copy_clip_tower(model, tiny_clip.visual)
        losses = vlm.train_vlm(model, processor, tiny_images, settings, progress=False).losses
        runs.append((losses, model.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][name], tensor) for name, tensor in runs[1][1].items())
