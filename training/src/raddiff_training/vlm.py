"""The project's captioning and grounding VLM: the service's tiny Idefics3, its vision tower taken from the CLIP.

Architecture (VLM_SHAPE): Idefics3 (what the VLM service and vLLM both serve) with a 160 px, 16 px-patch SigLIP-
style tower of the CLIP's exact shape, pixel-shuffled by 2 into 25 image tokens, and a Llama decoder (hidden 192,
4 layers, 6 query and 2 key/value heads of 32). The tokenizer is the service's byte-level BPE trained on its corpus
plus the synth's report and caption wording, with the <locNNN> tokens.

The vision tower starts as the trained CLIP's (copy_clip_tower): same patch embedding (the CLIP's normalisation
folded into it), position embeddings without the class token, blocks and final norm. Its first layers stay frozen
(their outputs are computed once per image); the last layer, the connector and the decoder are trained with
teacher forcing on two tasks mixed per batch: the caption (captions.caption) for a describe-prompt, and the boxes
(captions.grounding_answer) for a where-is prompt. A location token's target is spread over its neighbouring bins
(answer_loss), so that a box one bin off counts as nearly right.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from raddiff_kit.grounding import LOC_BINS, loc_token
from raddiff_synth.catalog import KINDS
from raddiff_training.captions import (
    CAPTION_PROMPTS,
    GROUNDING_TEMPLATES,
    NOT_SEEN,
    GroundingQuery,
    caption,
    grounding_answer,
    query_for,
)
from raddiff_training.statements import corpus_sentences
from raddiff_training.world import ImageSet, draw_findings, training_seeds
from raddiff_vlm.checkpoints import (
    END_OF_UTTERANCE,
    TinyVLMShape,
    build_model,
    build_processor,
    build_tokenizer,
)

if TYPE_CHECKING:
    from open_clip.transformer import VisionTransformer
    from transformers import Idefics3ForConditionalGeneration, Idefics3Processor

MODEL_NAME = "raddiff-vlm-synth"
PROVENANCE_NAME = "raddiff_checkpoint.json"

VLM_SHAPE = TinyVLMShape(
    image_size=160,
    patch_size=16,
    scale_factor=2,
    vision_hidden=128,
    vision_layers=4,
    vision_intermediate=512,
    vision_act="gelu",
    vision_norm_eps=1e-5,
    text_hidden=192,
    text_layers=4,
    text_heads=6,
    text_kv_heads=2,
    text_intermediate=512,
)


def tokenizer_texts() -> list[str]:
    """The wording the trained VLM reads and writes, beside the service's corpus: captions, labels, prompts."""
    texts = corpus_sentences(150)
    texts += [caption(draw_findings(seed)) for seed in training_seeds(2000)]
    texts += [*CAPTION_PROMPTS, NOT_SEEN]
    texts += [
        template.format(KINDS[kind].negative.removeprefix("no ")) for template in GROUNDING_TEMPLATES for kind in KINDS
    ]
    return texts


def build_vlm(seed: int, shape: TinyVLMShape = VLM_SHAPE) -> tuple[Idefics3ForConditionalGeneration, Idefics3Processor]:
    tokenizer = build_tokenizer(tokenizer_texts())
    processor = build_processor(tokenizer, shape)
    return build_model(processor.tokenizer, shape, seed), processor


@torch.no_grad()
def copy_clip_tower(vlm: Idefics3ForConditionalGeneration, clip_visual: VisionTransformer) -> None:
    """Load the CLIP's ViT into the VLM's vision tower (shapes must agree; the class token is left out).

    The CLIP normalises pixels with OpenAI's per-channel mean and std, the VLM's processor with 0.5 and 0.5: both
    are affine in the pixel value, so the patch embedding absorbs the difference exactly (weights rescaled, a bias
    added). Without the class token the patch tokens see one token fewer in attention, so the tower's outputs are
    close to, not equal to, the CLIP's patch tokens.
    """
    tower = vlm.model.vision_model
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    conv = clip_visual.conv1.weight.float()
    # CLIP input (p - m)/s with p = (x + 1)/2, x the VLM input: W.(x/(2s)) + W.((0.5 - m)/s).
    tower.embeddings.patch_embedding.weight.copy_(conv * (0.5 / std))
    tower.embeddings.patch_embedding.bias.copy_((conv * ((0.5 - mean) / std)).sum(dim=(1, 2, 3)))
    tower.embeddings.position_embedding.weight.copy_(clip_visual.positional_embedding[1:])
    blocks = clip_visual.transformer.resblocks
    if len(blocks) != len(tower.encoder.layers):
        raise ValueError(f"the CLIP has {len(blocks)} vision layers, the VLM {len(tower.encoder.layers)}")
    for block, layer in zip(blocks, tower.encoder.layers, strict=True):
        _copy_norm(layer.layer_norm1, block.ln_1)
        _copy_norm(layer.layer_norm2, block.ln_2)
        q, k, v = block.attn.in_proj_weight.chunk(3)
        qb, kb, vb = block.attn.in_proj_bias.chunk(3)
        for target, weight, bias in (
            (layer.self_attn.q_proj, q, qb),
            (layer.self_attn.k_proj, k, kb),
            (layer.self_attn.v_proj, v, vb),
        ):
            target.weight.copy_(weight)
            target.bias.copy_(bias)
        _copy_linear(layer.self_attn.out_proj, block.attn.out_proj)
        _copy_linear(layer.mlp.fc1, block.mlp.c_fc)
        _copy_linear(layer.mlp.fc2, block.mlp.c_proj)
    _copy_norm(tower.post_layernorm, clip_visual.ln_post)


def _copy_norm(target: torch.nn.LayerNorm, source: torch.nn.LayerNorm) -> None:
    target.weight.copy_(source.weight)
    target.bias.copy_(source.bias)


def _copy_linear(target: torch.nn.Linear, source: torch.nn.Linear) -> None:
    target.weight.copy_(source.weight)
    target.bias.copy_(source.bias)


def vlm_pixels(pixels: np.ndarray) -> torch.Tensor:
    """(n, S, S) uint8 grey, as cached by world.py -> (n, 3, S, S) as the VLM's processor normalises them."""
    grey = torch.tensor(pixels, dtype=torch.float32).div_(127.5).sub_(1.0)
    return grey.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def frozen_features(vlm: Idefics3ForConditionalGeneration, pixels: torch.Tensor, frozen_layers: int) -> torch.Tensor:
    """The tower's patch embeddings through its first frozen_layers layers: (n, patches, hidden)."""
    tower = vlm.model.vision_model
    patch = vlm.config.vision_config.patch_size
    mask = torch.ones(pixels.shape[0], *(s // patch for s in pixels.shape[2:]), dtype=torch.bool)
    hidden = tower.embeddings(pixel_values=pixels, patch_attention_mask=mask)
    for layer in tower.encoder.layers[:frozen_layers]:
        hidden = layer(hidden, attention_mask=None)
    return hidden


def image_tokens(vlm: Idefics3ForConditionalGeneration, frozen: torch.Tensor, frozen_layers: int) -> torch.Tensor:
    """From frozen_features to the decoder's image token embeddings: the remaining layers, the norm, the connector."""
    tower = vlm.model.vision_model
    hidden = frozen
    for layer in tower.encoder.layers[frozen_layers:]:
        hidden = layer(hidden, attention_mask=None)
    return vlm.model.connector(tower.post_layernorm(hidden))


def decoder_logits(
    vlm: Idefics3ForConditionalGeneration,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    tokens: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor:
    """Logits at the positions in `targets` (a boolean mask of input_ids' shape), image tokens spliced in as the
    model's own forward does."""
    text_model = vlm.model.text_model
    embeds = text_model.get_input_embeddings()(input_ids)
    image_slots = (input_ids == vlm.config.image_token_id).unsqueeze(-1).expand_as(embeds)
    embeds = embeds.masked_scatter(image_slots, tokens.to(embeds.dtype))
    hidden = text_model(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state
    return vlm.lm_head(hidden[targets])


@dataclass(frozen=True)
class Example:
    image: int  # index into the ImageSet
    prompt: str
    answer: str


def draw_example(images: ImageSet, index: int, rng: np.random.Generator, caption_share: float = 0.5) -> Example:
    """A caption or a grounding question about image `index`, drawn from rng."""
    placed = images.findings[index]
    if rng.random() < caption_share:
        prompt = CAPTION_PROMPTS[0] if rng.random() < 0.7 else CAPTION_PROMPTS[int(rng.integers(len(CAPTION_PROMPTS)))]
        return Example(index, prompt, caption(images.kinds(index)))
    template = GROUNDING_TEMPLATES[int(rng.integers(len(GROUNDING_TEMPLATES)))]
    if placed and rng.random() < 0.85:
        finding = placed[int(rng.integers(len(placed)))].finding
        query = query_for(finding, rng, full=rng.random() < 0.4)
    else:
        query = absent_query(images, index, rng)
    return Example(index, query.prompt(template), grounding_answer(query, placed))


def absent_query(images: ImageSet, index: int, rng: np.random.Generator) -> GroundingQuery:
    """A question about a kind the image does not have (answer: Not seen)."""
    present = {p.finding.kind for p in images.findings[index]}
    kinds = [k for k in KINDS if k not in present]
    kind = kinds[int(rng.integers(len(kinds)))]
    return query_for(KINDS[kind].resolve({}, rng), rng)


class Encoder:
    """Prompt and answer token ids exactly as the service's processor and chat template make them."""

    def __init__(self, processor: Idefics3Processor) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.pad_id = self.tokenizer.pad_token_id
        self.eou_id = self.tokenizer.convert_tokens_to_ids(END_OF_UTTERANCE)
        self._prompts: dict[str, list[int]] = {}
        size = processor.image_processor.max_image_size["longest_edge"]
        self._blank = Image.new("RGB", (size, size))

    def prompt_text(self, prompt: str) -> str:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def prompt_ids(self, prompt: str) -> list[int]:
        if prompt not in self._prompts:
            # The image's pixels do not change the ids; the processor only expands <image> into its tokens.
            ids = self.processor(text=[self.prompt_text(prompt)], images=[[self._blank]])["input_ids"][0]
            self._prompts[prompt] = list(ids)
        return self._prompts[prompt]

    def answer_ids(self, answer: str) -> list[int]:
        # The chat template writes "Assistant:" then " " + the answer; the model stops at <end_of_utterance>.
        return [*self.tokenizer(" " + answer, add_special_tokens=False)["input_ids"], self.eou_id]

    def batch(self, examples: list[Example]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """input_ids, attention_mask (right-padded), the mask of positions whose next token is supervised, and
        those next tokens."""
        rows = [(self.prompt_ids(e.prompt), self.answer_ids(e.answer)) for e in examples]
        length = max(len(p) + len(a) for p, a in rows)
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        predicts = torch.zeros((len(rows), length), dtype=torch.bool)
        for row, (prompt, answer) in enumerate(rows):
            sequence = prompt + answer
            ids[row, : len(sequence)] = torch.tensor(sequence)
            mask[row, : len(sequence)] = 1
            predicts[row, len(prompt) - 1 : len(sequence) - 1] = True  # position t predicts token t+1
        next_tokens = ids[:, 1:][predicts[:, :-1]]
        return ids, mask, predicts, next_tokens


@dataclass(frozen=True)
class VlmTrainConfig:
    steps: int = 1300
    batch: int = 32
    lr: float = 2e-3
    vision_lr_scale: float = 0.3  # the trained vision layer moves slower than the new decoder
    trainable_vision_layers: int = 1
    weight_decay: float = 0.02
    warmup: int = 40
    caption_share: float = 0.5
    loc_sigma: float = 2.0  # bins: a location token's target is spread over its neighbours
    seed: int = 0
    threads: int = 1


@dataclass
class VlmTrainResult:
    losses: list[float]
    seconds: float
    feature_seconds: float


def train_vlm(
    vlm: Idefics3ForConditionalGeneration,
    processor: Idefics3Processor,
    images: ImageSet,
    config: VlmTrainConfig,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> VlmTrainResult:
    """Train in place: the last vision layers, the connector and the decoder; data order fixed by config.seed."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng([config.seed, 2])
    frozen_layers = len(vlm.model.vision_model.encoder.layers) - config.trainable_vision_layers
    started = time.monotonic()
    vlm.eval()
    with torch.no_grad():
        cached = torch.cat(
            [
                frozen_features(vlm, vlm_pixels(images.vlm_pixels[i : i + 64]), frozen_layers).to(torch.bfloat16)
                for i in tqdm(range(0, len(images), 64), desc="vision features", disable=not progress)
            ]
        )
    feature_seconds = time.monotonic() - started
    tower = vlm.model.vision_model
    for p in tower.parameters():
        p.requires_grad_(False)
    vision = [p for layer in tower.encoder.layers[frozen_layers:] for p in layer.parameters()]
    vision += list(tower.post_layernorm.parameters())
    for p in vision:
        p.requires_grad_(True)
    rest = [p for n, p in vlm.named_parameters() if p.requires_grad and not n.startswith("model.vision_model.")]
    optimizer = torch.optim.AdamW(
        [
            {"params": vision, "lr": config.lr * config.vision_lr_scale},
            {"params": rest, "lr": config.lr},
        ],
        weight_decay=config.weight_decay,
        betas=(0.9, 0.98),
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(config.warmup, config.steps))
    encoder = Encoder(processor)
    loc_ids = torch.tensor(processor.tokenizer.convert_tokens_to_ids([loc_token(i) for i in range(LOC_BINS)]))
    order = _epochs(len(images), rng)
    losses: list[float] = []
    vlm.train()
    bar = tqdm(range(config.steps), desc="training the VLM", unit="step", disable=not progress)
    for step in bar:
        examples = [draw_example(images, next(order), rng, config.caption_share) for _ in range(config.batch)]
        ids, mask, predicts, targets = encoder.batch(examples)
        index = torch.tensor([e.image for e in examples])
        tokens = image_tokens(vlm, cached[index].float(), frozen_layers)
        logits = decoder_logits(vlm, ids, mask, tokens, predicts)
        loss = answer_loss(logits.float(), targets, loc_ids, config.loc_sigma)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*vision, *rest], 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        if on_step:
            on_step(step, losses[-1])
    vlm.eval()
    for p in vlm.parameters():
        p.requires_grad_(True)
    return VlmTrainResult(losses, time.monotonic() - started, feature_seconds)


def answer_loss(logits: torch.Tensor, targets: torch.Tensor, loc_ids: torch.Tensor, sigma: float) -> torch.Tensor:
    """Cross-entropy over the answer tokens, where a location token's target is a Gaussian over the nearby bins.

    A coordinate one bin off is almost right; plain cross-entropy counts it as wrong as any other token, so a small
    decoder learns boxes slowly. Spreading the target over neighbouring bins tells it which answers are close.
    """
    log_probs = F.log_softmax(logits, dim=-1)
    soft = torch.zeros_like(log_probs)
    soft[torch.arange(len(targets)), targets] = 1.0
    where = torch.isin(targets, loc_ids)
    if sigma > 0 and where.any():
        bins = targets[where] - loc_ids[0]  # location tokens have consecutive ids
        grid = torch.arange(len(loc_ids), dtype=torch.float32)
        spread = torch.exp(-0.5 * ((grid[None, :] - bins[:, None].float()) / sigma) ** 2)
        rows = torch.zeros(int(where.sum()), logits.shape[-1])
        rows[:, loc_ids] = spread / spread.sum(dim=-1, keepdim=True)
        soft[where] = rows
    return -(soft * log_probs).sum(dim=-1).mean()


def _warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _epochs(n: int, rng: np.random.Generator) -> Iterator[int]:
    while True:
        yield from rng.permutation(n).tolist()


def save_vlm(
    vlm: Idefics3ForConditionalGeneration, processor: Idefics3Processor, folder: Path, provenance: dict
) -> Path:
    """Write the checkpoint folder the VLM service (and vLLM) loads, weights in float16, plus provenance."""
    staging = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    half = vlm.to(torch.float16)
    try:
        half.save_pretrained(staging)
    finally:
        vlm.to(torch.float32)
    processor.save_pretrained(staging)
    (staging / PROVENANCE_NAME).write_text(json.dumps(provenance, indent=2) + "\n")
    for path in staging.iterdir():
        path.chmod(0o644)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def provenance(
    config: VlmTrainConfig, images: ImageSet, result: VlmTrainResult, shape: TinyVLMShape = VLM_SHAPE, **extra: object
) -> dict:
    return {
        "kind": "trained",
        "model": MODEL_NAME,
        "shape": asdict(shape),
        "loc_bins": LOC_BINS,
        "train": asdict(config),
        "train_seeds": [int(images.seeds[0]), int(images.seeds[-1]) + 1],
        "seconds": round(result.seconds, 1),
        "final_loss": round(float(np.mean(result.losses[-20:])), 4),
        **extra,
    }
