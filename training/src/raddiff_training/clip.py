"""The project's CheXzero-style CLIP: a small open_clip ViT and text transformer, trained on (image, sentence) pairs.

Architecture (clip_config): a 160 px ViT with 16 px patches (a 10 x 10 grid plus the class token, no pre-LN so the
tower maps one to one onto the VLM's SigLIP-style tower), width 128, 4 layers of four 32-wide heads; a causal text
transformer, width 128, 3 layers, over a lower-cased byte-level BPE (1,331 tokens) trained on radiology text, pooled
at its end token; a 128-d joint space. 1.7 M parameters.

Training is contrastive with SigLIP's pairwise sigmoid loss. Each image in a batch brings one true sentence about
itself (statements.py), half the images bring a hard negative (the same finding with one attribute changed), and
the probe sentences (every label at every level of detail) are in every batch. Because the generator's metadata
says which sentences hold for which images, a pair is positive whenever the sentence holds for the image, not only
for the image that brought it: "no pleural effusion" drawn for one image is a positive for every image without an
effusion, and a negative for the rest. Beside it, a dense loss pulls the ViT's patch tokens towards a small CNN
teacher's features (teacher.py says why), and an attribute-contrast term (attribute_contrast), ramped in after the
first 200 steps, makes each image's true attribute value outscore the same label with another value ("right" vs
"left pleural effusion"), which the sigmoid loss alone left at chance (docs/models/clip.md).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from safetensors.torch import save_file
from tqdm import tqdm

from raddiff_embedding.checkpoints import CONFIG_NAME, WEIGHTS_NAME
from raddiff_training.statements import (
    Statement,
    attribute_groups,
    attribute_targets,
    counterfactual,
    probe_statements,
    statement_for,
    truth_matrix,
)
from raddiff_training.teacher import TeacherConfig, train_teacher
from raddiff_training.world import ImageSet
from raddiff_vlm.corpus import corpus

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

MODEL_NAME = "raddiff-clip-synth"
PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
VOCAB_SIZE = 2048
IMAGE_SIZE = 160
CONTEXT_LENGTH = 48
PROVENANCE_NAME = "raddiff_checkpoint.json"
PROBES = probe_statements()
ATTRIBUTE_GROUPS = attribute_groups()


def build_tokenizer(extra_texts: list[str]) -> PreTrainedTokenizerFast:
    """Lower-cased byte-level BPE, "<bos> text <eos>", right-padded with <pad> (id 0); deterministic."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator([*corpus(), *extra_texts], trainer)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, backend.token_to_id(BOS)), (EOS, backend.token_to_id(EOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        padding_side="right",
        truncation_side="right",
        model_max_length=CONTEXT_LENGTH,
    )


def clip_config(
    tokenizer: PreTrainedTokenizerFast,
    image_size: int = IMAGE_SIZE,
    width: int = 128,
    vision_layers: int = 4,
    text_layers: int = 3,
) -> dict:
    """The open_clip_config.json of the model (the folder format raddiff_embedding.checkpoints loads); the
    defaults are the trained model's, smaller ones are for tests."""
    return {
        "model_name": MODEL_NAME,
        "model_cfg": {
            "embed_dim": width,
            "quick_gelu": False,
            "init_logit_scale": math.log(10.0),
            "init_logit_bias": -2.0,
            "vision_cfg": {
                "image_size": image_size,
                "patch_size": 16,
                "width": width,
                "layers": vision_layers,
                "head_width": 32,
                "mlp_ratio": 4.0,
                "no_ln_pre": True,
            },
            "text_cfg": {
                "context_length": CONTEXT_LENGTH,
                "vocab_size": len(tokenizer),
                "width": width,
                "heads": width // 32,
                "layers": text_layers,
                # Any non-empty name makes open_clip read the tokenizer saved in the checkpoint folder.
                "hf_tokenizer_name": MODEL_NAME,
                "pool_type": "eos",
                "eos_id": tokenizer.eos_token_id,
                "pad_id": tokenizer.pad_token_id,
            },
        },
        "preprocess_cfg": {
            "mean": list(open_clip.OPENAI_DATASET_MEAN),
            "std": list(open_clip.OPENAI_DATASET_STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    }


def build_model(config: dict, seed: int) -> CLIP:
    torch.manual_seed(seed)
    return CLIP(**config["model_cfg"])


def image_batch(pixels: np.ndarray) -> torch.Tensor:
    """(n, S, S) uint8 grey -> (n, 3, S, S) normalised as the embedding service's "raddiff" preprocessing does."""
    grey = torch.tensor(pixels, dtype=torch.float32).div_(255.0)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (grey.unsqueeze(1).expand(-1, 3, -1, -1) - mean) / std


def encode_text_trimmed(model: CLIP, tokens: torch.Tensor) -> torch.Tensor:
    """model.encode_text for tokens padded only to the batch's longest text (open_clip wants the full context).

    Equal to encode_text on the full padding: the mask is causal and pooling takes the end token, so padding
    after it changes nothing. Training reads ~12 tokens a sentence instead of 48.
    """
    length = tokens.shape[1]
    x = model.token_embedding(tokens) + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    pooled = x[torch.arange(x.shape[0]), (tokens == model.text_eos_id).int().argmax(-1)]
    return pooled @ model.text_projection


@dataclass(frozen=True)
class ClipTrainConfig:
    steps: int = 700
    batch: int = 32
    hard_negatives: int = 16  # extra counterfactual sentences per batch
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 50
    distill_weight: float = 1.0  # the dense loss towards the teacher's patch features (teacher.py)
    # The attribute-contrast term (attribute_contrast); 0 turns it off. It is off for the first attribute_start
    # steps and ramps up linearly over attribute_ramp more: until the towers tell the kinds apart its gradient is
    # noise, and at full weight from step 0 it slowed the rest of the training (see docs/models/clip.md). Off by
    # default: the default checkpoint is trained without it until the agent is measured on the variant
    # (weights/clip-attribute: --attribute-weight 0.1).
    attribute_weight: float = 0.0
    attribute_start: int = 200
    attribute_ramp: int = 150
    teacher_steps: int = 250
    seed: int = 0
    threads: int = 1


@dataclass
class ClipTrainResult:
    losses: list[float]  # the contrastive loss per step
    distill_losses: list[float]
    seconds: float
    teacher_seconds: float
    images_seen: int
    attribute_losses: list[float] = field(default_factory=list)  # the attribute-contrast term per step


def batch_statements(
    images: ImageSet, indices: np.ndarray, rng: np.random.Generator, hard_negatives: int
) -> tuple[list[Statement], np.ndarray]:
    """One true sentence per image, hard negatives and the probe sentences, deduplicated by text; and their truth
    for each image."""
    findings = [images.kinds(i) for i in indices]
    statements = [statement_for(f, rng) for f in findings]
    with_findings = [f for f in findings if f]
    for _ in range(hard_negatives if with_findings else 0):
        own = with_findings[int(rng.integers(len(with_findings)))]
        statements.append(counterfactual(own[int(rng.integers(len(own)))], rng))
    statements += PROBES
    unique = list({s.text: s for s in statements}.values())
    return unique, truth_matrix(findings, unique)


def attribute_contrast(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    scale: torch.Tensor,
    columns: dict[str, int],
    findings: list[list],
) -> torch.Tensor:
    """The attribute-contrast term: for each image and each attribute group its findings fall in (statements.
    attribute_groups), a softmax over the group's labels ("right pleural effusion" vs "left pleural effusion"), the
    true value(s) to win: -log of the softmax mass on the true values. Unlike the pairwise sigmoid loss, where these
    pairs are a few hundredths of the batch's pairs and "pleural effusion vs not" already explains most of each
    logit, it asks of the image and the text tower exactly the hard benchmark pairs. Zero when no image qualifies."""
    rows, cols, valid, positive = [], [], [], []
    width = max(len(g.values) for g in ATTRIBUTE_GROUPS)
    for row, image_findings in enumerate(findings):
        for index, present in attribute_targets(image_findings, ATTRIBUTE_GROUPS):
            group = ATTRIBUTE_GROUPS[index]
            pad = width - len(group.values)
            rows.append(row)
            cols.append([columns[t] for t in group.texts] + [0] * pad)
            valid.append([True] * len(group.values) + [False] * pad)
            positive.append([*present, *([False] * pad)])
    if not rows:
        return image_features.sum() * 0.0
    logits = torch.einsum("md,mkd->mk", image_features[rows], text_features[torch.tensor(cols)]) * scale
    valid_mask, positive_mask = torch.tensor(valid), torch.tensor(positive)
    everything = logits.masked_fill(~valid_mask, float("-inf")).logsumexp(-1)
    true = logits.masked_fill(~positive_mask, float("-inf")).logsumexp(-1)
    return (everything - true).mean()


def train_clip(
    model: CLIP,
    tokenizer: PreTrainedTokenizerFast,
    images: ImageSet,
    config: ClipTrainConfig,
    progress: bool = True,
) -> ClipTrainResult:
    """Train in place: first the teacher, then the CLIP; the data order is fixed by config.seed (torch's own
    randomness is seeded too)."""
    torch.set_num_threads(config.threads)
    started = time.monotonic()
    teacher_config = TeacherConfig(steps=config.teacher_steps, seed=config.seed)
    teacher, teacher_seconds = train_teacher(
        images, PROBES, teacher_config, lambda idx: image_batch(images.clip_pixels[idx]), progress
    )
    torch.manual_seed(config.seed)
    rng = np.random.default_rng([config.seed, 1])
    # Maps the ViT's patch tokens onto the teacher's features; a training aid, not saved.
    distill_head = torch.nn.Linear(model.visual.transformer.width, teacher.channels)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW(
        [
            {"params": [*decay, distill_head.weight], "weight_decay": config.weight_decay},
            {"params": [*rest, distill_head.bias], "weight_decay": 0.0},
        ],
        lr=config.lr,
        betas=(0.9, 0.98),
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(config.warmup, config.steps))
    order = _epochs(len(images), rng)
    losses: list[float] = []
    distill_losses: list[float] = []
    attribute_losses: list[float] = []
    model.train()
    model.visual.output_tokens = True  # (pooled, patch tokens after ln_post)
    try:
        bar = tqdm(range(config.steps), desc="training the CLIP", unit="step", disable=not progress)
        for step in bar:
            indices = np.array([next(order) for _ in range(config.batch)])
            statements, truth = batch_statements(images, indices, rng, config.hard_negatives)
            tokens = tokenizer([s.text for s in statements], padding="longest", truncation=True, return_tensors="pt")
            pixels = image_batch(images.clip_pixels[indices])
            pooled, patches = model.visual(pixels)
            image_features = F.normalize(pooled, dim=-1)
            text_features = F.normalize(encode_text_trimmed(model, tokens["input_ids"]), dim=-1)
            logits = image_features @ text_features.T * model.logit_scale.exp() + model.logit_bias
            contrastive = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(truth).float())
            attribute_factor = config.attribute_weight * min(
                1.0, max(0.0, (step - config.attribute_start + 1) / max(1, config.attribute_ramp))
            )
            attribute = (
                attribute_contrast(
                    image_features,
                    text_features,
                    model.logit_scale.exp(),
                    {s.text: j for j, s in enumerate(statements)},
                    [images.kinds(i) for i in indices],
                )
                if attribute_factor
                else torch.zeros(())
            )
            distill = F.mse_loss(distill_head(patches), teacher.patch_targets(pixels))
            loss = contrastive + config.distill_weight * distill + attribute_factor * attribute
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([*model.parameters(), *distill_head.parameters()], 1.0)
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(contrastive.item())
            distill_losses.append(distill.item())
            attribute_losses.append(attribute.item())
            bar.set_postfix(
                loss=f"{np.mean(losses[-20:]):.3f}",
                distill=f"{np.mean(distill_losses[-20:]):.3f}",
                attribute=f"{np.mean(attribute_losses[-20:]):.3f}",
            )
    finally:
        model.visual.output_tokens = False
    model.eval()
    return ClipTrainResult(
        losses,
        distill_losses,
        time.monotonic() - started,
        teacher_seconds,
        config.steps * config.batch,
        attribute_losses,
    )


def _warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _epochs(n: int, rng: np.random.Generator) -> Iterator[int]:
    """Image indices, each epoch a fresh seeded permutation."""
    while True:
        yield from rng.permutation(n).tolist()


def save_clip(model: CLIP, tokenizer: PreTrainedTokenizerFast, config: dict, folder: Path, provenance: dict) -> Path:
    """Write the checkpoint folder the embedding service loads: config, float16 weights, tokenizer, provenance."""
    staging = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    # float16 halves the file; open_clip loads it into its float32 model, and the card's figures are measured so.
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(staging / WEIGHTS_NAME))
    tokenizer.save_pretrained(staging)
    (staging / PROVENANCE_NAME).write_text(json.dumps(provenance, indent=2) + "\n")
    for path in staging.iterdir():
        path.chmod(0o644)  # safetensors writes owner-only; the service may run as another user
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def provenance(config: ClipTrainConfig, images: ImageSet, result: ClipTrainResult, **extra: object) -> dict:
    return {
        "kind": "trained",
        "model": MODEL_NAME,
        "train": asdict(config),
        "train_seeds": [int(images.seeds[0]), int(images.seeds[-1]) + 1],
        "seconds": round(result.seconds, 1),
        "teacher_seconds": round(result.teacher_seconds, 1),
        "final_loss": round(float(np.mean(result.losses[-20:])), 4),
        "final_distill_loss": round(float(np.mean(result.distill_losses[-20:])), 4),
        "final_attribute_loss": round(float(np.mean(result.attribute_losses[-20:])), 4)
        if result.attribute_losses
        else None,
        **extra,
    }
