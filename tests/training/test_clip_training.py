"""A tiny CLIP trained for a few steps: the loss falls, and the embedding service's engine loads what was saved."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

from raddiff_embedding.checkpoints import load_checkpoint
from raddiff_embedding.engine import OpenClipEngine
from raddiff_synth import Finding
from raddiff_training import clip
from raddiff_training.statements import corpus_sentences, truth_matrix
from raddiff_training.teacher import Teacher, TeacherConfig, train_teacher
from raddiff_training.world import ImageSet
from tests.training.conftest import TINY_SIZE


@pytest.fixture(scope="module")
def tokenizer():
    return clip.build_tokenizer(corpus_sentences(20))


def tiny_model(tokenizer) -> tuple[dict, torch.nn.Module]:
    config = clip.clip_config(tokenizer, image_size=TINY_SIZE, width=64, vision_layers=2, text_layers=1)
    return config, clip.build_model(config, seed=0)


def test_trimmed_text_encoding_equals_the_services_full_padding(tokenizer) -> None:
    _, model = tiny_model(tokenizer)
    texts = ["Moderate right pleural effusion.", "no pneumothorax", "NG tube coiled in the esophagus"]
    full = tokenizer(texts, padding="max_length", max_length=clip.CONTEXT_LENGTH, return_tensors="pt")["input_ids"]
    trimmed = tokenizer(texts, padding="longest", return_tensors="pt")["input_ids"]
    assert trimmed.shape[1] < full.shape[1]
    with torch.no_grad():
        assert torch.allclose(model.encode_text(full), clip.encode_text_trimmed(model, trimmed), atol=1e-5)


def test_the_tokenizer_lowercases_and_ends_every_text(tokenizer) -> None:
    a = tokenizer("Moderate RIGHT pleural effusion")["input_ids"]
    assert a == tokenizer("moderate right pleural effusion")["input_ids"]
    assert a[0] == tokenizer.bos_token_id and a[-1] == tokenizer.eos_token_id
    assert len(a) <= 7  # radiology words are whole tokens
    long = tokenizer("effusion " * 200, truncation=True, max_length=clip.CONTEXT_LENGTH)["input_ids"]
    assert len(long) == clip.CONTEXT_LENGTH and long[-1] == tokenizer.eos_token_id


def test_batches_pair_each_image_with_a_true_sentence(tiny_images: ImageSet) -> None:
    rng = np.random.default_rng(0)
    indices = np.arange(len(tiny_images))
    statements, truth = clip.batch_statements(tiny_images, indices, rng, hard_negatives=6)
    assert truth.shape == (len(indices), len(statements))
    assert len({s.text for s in statements}) == len(statements)
    for row, index in enumerate(indices):
        assert truth[row].any()  # its own sentence at least
        for column, statement in enumerate(statements):
            assert truth[row, column] == statement.holds(tiny_images.kinds(index))


def test_the_attribute_contrast_rewards_the_true_value() -> None:
    texts = {t: j for j, t in enumerate(["right pleural effusion", "left pleural effusion", "pleural effusion"])}
    right = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    image = torch.tensor([[1.0, 0.0]])
    findings = [[Finding("pleural_effusion", {"side": "right", "severity": "moderate"})]]
    # only the side group has both its texts in the batch here: the severity labels are missing, so add them
    for name in ("small pleural effusion", "moderate pleural effusion", "large pleural effusion"):
        texts[name] = 2
    good = clip.attribute_contrast(image, right, torch.tensor(10.0), texts, findings)
    bad = clip.attribute_contrast(torch.tensor([[0.0, 1.0]]), right, torch.tensor(10.0), texts, findings)
    assert good < bad
    none = clip.attribute_contrast(image, right, torch.tensor(10.0), texts, [[]])
    assert none.item() == 0.0


def test_training_lowers_the_loss_and_the_service_loads_the_checkpoint(
    tiny_images: ImageSet, tokenizer, tmp_path: Path
) -> None:
    config, model = tiny_model(tokenizer)
    settings = clip.ClipTrainConfig(
        steps=40,
        batch=8,
        hard_negatives=4,
        lr=3e-3,
        warmup=5,
        teacher_steps=10,
        threads=1,
        attribute_weight=0.1,
        attribute_start=10,
        attribute_ramp=10,
    )
    result = clip.train_clip(model, tokenizer, tiny_images, settings, progress=False)
    assert len(result.losses) == len(result.distill_losses) == len(result.attribute_losses) == 40
    assert not any(result.attribute_losses[:10]) and any(result.attribute_losses[20:])  # off, then ramped in
    assert np.mean(result.distill_losses[-10:]) < np.mean(result.distill_losses[:10])
    assert np.mean(result.losses[-10:]) < 0.8 * np.mean(result.losses[:10])

    folder = clip.save_clip(model, tokenizer, config, tmp_path / "clip", {"kind": "trained", "test": True})
    assert json.loads((folder / clip.PROVENANCE_NAME).read_text())["kind"] == "trained"
    saved = load_file(str(folder / "open_clip_model.safetensors"))
    assert all(t.dtype == torch.float16 for t in saved.values())
    loaded = load_checkpoint(folder)
    assert loaded.name == clip.MODEL_NAME and loaded.image_size == TINY_SIZE
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor.half().float()), name

    engine = OpenClipEngine(loaded, "raddiff")
    assert engine.patch_grid == (2, 2)  # a plain class-token ViT: the patch method works on it
    texts = engine.embed_texts(["Pleural Effusion", "pleural effusion", "no pneumothorax"])
    assert np.allclose(texts[0], texts[1]) and not np.allclose(texts[0], texts[2])
    image = Image.fromarray(tiny_images.clip_pixels[0])
    served = engine.embed_images([image])[0]
    with torch.no_grad():
        mine = torch.nn.functional.normalize(loaded.model.encode_image(clip.image_batch(tiny_images.clip_pixels[:1])))
    assert np.allclose(served, mine[0].numpy(), atol=1e-5)


def test_training_is_reproducible(tiny_images: ImageSet, tokenizer) -> None:
    settings = clip.ClipTrainConfig(
        steps=3, batch=4, hard_negatives=2, warmup=1, teacher_steps=2, threads=1,
        attribute_weight=0.1, attribute_start=0, attribute_ramp=1
    )
    runs = []
    for _ in range(2):
        _, model = tiny_model(tokenizer)
        runs.append((clip.train_clip(model, tokenizer, tiny_images, settings, progress=False).losses, model))
    assert runs[0][0] == runs[1][0]
    assert all(
        torch.equal(a, b)
        for a, b in zip(runs[0][1].state_dict().values(), runs[1][1].state_dict().values(), strict=True)
    )


def test_the_teacher_learns_and_gives_one_standardised_target_per_patch(tiny_images: ImageSet) -> None:
    probes = clip.PROBES
    config = TeacherConfig(steps=25, batch=8, lr=3e-3)
    pixels_of = lambda idx: clip.image_batch(tiny_images.clip_pixels[idx])  # noqa: E731
    truth = torch.from_numpy(truth_matrix([tiny_images.kinds(i) for i in range(len(tiny_images))], probes)).float()
    untrained = Teacher(len(probes))
    untrained.eval()
    teacher, _ = train_teacher(tiny_images, probes, config, pixels_of, progress=False)
    everything = pixels_of(np.arange(len(tiny_images)))
    with torch.no_grad():
        before = F.binary_cross_entropy_with_logits(untrained(everything), truth)
        after = F.binary_cross_entropy_with_logits(teacher(everything), truth)
    assert after < before
    targets = teacher.patch_targets(everything[:3])
    grid = TINY_SIZE // 16
    assert targets.shape == (3, grid * grid, teacher.channels)
    assert torch.allclose(targets.mean(-1), torch.zeros(3, grid * grid), atol=1e-4)
    # Row-major patches, like the ViT's tokens: patch (row 0, col 1) is feature map column 1.
    feature_map = teacher.feature_map(everything[:1])[0]
    column = feature_map[:, 0, 1]
    assert torch.allclose(targets[0, 1], (column - column.mean()) / (column.std() + 1e-5), atol=1e-4)
