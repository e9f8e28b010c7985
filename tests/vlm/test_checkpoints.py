"""The random-init checkpoint: complete, loadable offline by the Auto classes, deterministic, vLLM-shaped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor

from raddiff_kit.grounding import LOC_BINS, decode_boxes, encode_box, loc_token
from raddiff_vlm.checkpoints import END_OF_UTTERANCE, IMAGE_TOKEN, TinyVLMShape, build_model, main
from tests.vlm.conftest import radiograph


@pytest.fixture(scope="module")
def loaded(checkpoint: Path):
    processor = AutoProcessor.from_pretrained(checkpoint, backend="pil")
    model = AutoModelForImageTextToText.from_pretrained(checkpoint).eval()
    return processor, model


def test_the_folder_is_complete(checkpoint: Path) -> None:
    names = {p.name for p in checkpoint.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json"} <= names
    assert {"processor_config.json", "chat_template.jinja", "raddiff_checkpoint.json"} <= names
    provenance = json.loads((checkpoint / "raddiff_checkpoint.json").read_text())
    assert provenance["kind"] == "random-init"
    assert provenance["seed"] == 0


def test_auto_classes_load_it_offline(loaded) -> None:
    processor, model = loaded
    assert type(processor).__name__ == "Idefics3Processor"
    assert type(model).__name__ == "Idefics3ForConditionalGeneration"
    assert processor.image_seq_len == TinyVLMShape().image_seq_len == 64
    assert len(processor.tokenizer) == model.config.text_config.vocab_size
    assert sum(p.numel() for p in model.parameters()) < 10_000_000


def test_every_attention_head_is_wide_enough_for_vllm_cpu(loaded) -> None:
    _, model = loaded
    text, vision = model.config.text_config, model.config.vision_config
    assert text.head_dim >= 32
    assert text.hidden_size // text.num_attention_heads >= 32
    assert vision.hidden_size // vision.num_attention_heads >= 32


def test_tokenizer_has_the_tokens_the_processor_and_grounding_need(loaded) -> None:
    processor, _ = loaded
    tokenizer = processor.tokenizer
    for token in (IMAGE_TOKEN, END_OF_UTTERANCE, "<fake_token_around_image>", "<global-img>", "<row_6_col_6>"):
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1
    box = encode_box(0.1, 0.2, 0.6, 0.9)
    ids = tokenizer(box, add_special_tokens=False)["input_ids"]
    assert len(ids) == 4
    assert tokenizer.decode(ids, skip_special_tokens=True) == box
    # Radiology words are whole tokens, not bytes.
    assert len(tokenizer(" pleural effusion", add_special_tokens=False)["input_ids"]) <= 3


def test_the_chat_template_places_images_and_the_prompt(loaded) -> None:
    processor, model = loaded
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where is the effusion?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.endswith("Assistant:")
    inputs = processor(text=[text], images=[[radiograph(1)]], return_tensors="pt")
    assert (inputs["input_ids"] == model.config.image_token_id).sum() == 64
    assert tuple(inputs["pixel_values"].shape[-2:]) == (256, 256)
    with torch.inference_mode():
        logits = model(**inputs).logits
    assert logits.shape[-1] == model.config.text_config.vocab_size
    assert torch.isfinite(logits).all()


def test_the_cli_rebuilds_the_same_checkpoint_and_refuses_a_full_folder(checkpoint: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert main(["init-random", str(again), "--seed", "0"]) == 0
    assert (again / "tokenizer.json").read_bytes() == (checkpoint / "tokenizer.json").read_bytes()
    first, second = load_file(checkpoint / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert main(["init-random", str(again)]) == 2


def test_another_seed_gives_other_weights(loaded) -> None:
    processor, model = loaded
    other = build_model(processor.tokenizer, TinyVLMShape(), seed=1)
    name = "model.text_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(other.state_dict()[name], model.state_dict()[name])


def test_grounding_boxes_round_trip() -> None:
    text = "Effusion at " + encode_box(0.25, 0.5, 0.75, 1.0) + " and " + encode_box(0.0, 0.0, 0.1, 0.1)
    boxes = decode_boxes(text)
    assert len(boxes) == 2
    for got, want in zip(boxes[0], (0.25, 0.5, 0.75, 1.0), strict=True):
        assert abs(got - want) <= 1 / LOC_BINS
    assert decode_boxes(loc_token(10) + loc_token(5)) == []  # an incomplete box is no box
    with pytest.raises(ValueError, match="not 0 <= x0 < x1"):
        encode_box(0.5, 0.1, 0.4, 0.2)

