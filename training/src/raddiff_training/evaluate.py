"""Quality of a saved checkpoint on held-out training-range images, loaded as the services load it.

CLIP: zero-shot AUROC of the cosine similarity between each image and a finding's text, images with the finding
against images without it (kind rows); for attributes, images with the finding and that attribute value against
images with the finding and another value (attribute rows, the benchmark's hard pairs); and for the negated
text ("no pleural effusion"), images without the finding against images with it.

VLM: per kind, precision and recall of the findings its captions name (parsed back by exact label), both for the
kind alone and for the full label (every attribute right); mean IoU of the first box it answers to "Where is the
<label>?" against the finding's box; and how often it answers "Not seen." about a kind the image does not have.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.stats import mannwhitneyu
from tqdm import tqdm

from raddiff_kit.grounding import decode_boxes
from raddiff_synth import Finding
from raddiff_synth.catalog import KINDS
from raddiff_synth.render import PlacedFinding
from raddiff_training.captions import (
    CAPTION_PROMPT,
    NOT_SEEN,
    GroundingQuery,
    box_iou,
    parse_caption,
    query_for,
)
from raddiff_training.statements import categorical
from raddiff_training.world import ImageSet


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties counting one half (the Mann-Whitney U)."""
    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        raise ValueError("AUROC needs at least one positive and one negative")
    return float(mannwhitneyu(scores[positive], scores[~positive]).statistic / (positive.sum() * (~positive).sum()))


# -- CLIP -------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AurocRow:
    group: str  # "finding", "attribute" or "negation"
    name: str
    text: str
    positives: int
    negatives: int
    auroc: float


@dataclass(frozen=True)
class _RowSpec:
    group: str
    name: str
    text: str
    positive: Callable[[Sequence[Finding]], bool]
    counted: Callable[[Sequence[Finding]], bool]  # which images take part at all


def _has(kind: str, **attributes: str) -> Callable[[Sequence[Finding]], bool]:
    return lambda fs: any(f.kind == kind and all(f.attributes.get(k) == v for k, v in attributes.items()) for f in fs)


def _everyone(findings: Sequence[Finding]) -> bool:
    return True


def _label(kind: str, **attributes: str) -> str:
    return KINDS[kind].label(Finding(kind, attributes))


# One row per finding as a benchmark names it; nodules, edema and lines have two names each.
FINDING_ROWS = [
    ("pleural effusion", "pleural_effusion", {}),
    ("cardiomegaly", "cardiomegaly", {}),
    ("consolidation", "consolidation", {}),
    ("atelectasis", "atelectasis", {}),
    ("pulmonary nodule", "nodule", {"size": "nodule"}),
    ("mass", "nodule", {"size": "mass"}),
    ("pneumothorax", "pneumothorax", {}),
    ("vascular congestion (mild edema)", "edema", {"severity": "mild"}),
    ("pulmonary edema", "edema", {"severity": "moderate"}),
    ("endotracheal tube", "endotracheal_tube", {}),
    ("NG tube", "enteric_tube", {}),
    ("central venous catheter", "central_line", {"type": "cvc"}),
    ("PICC", "central_line", {"type": "picc"}),
    ("pacemaker or ICD", "cardiac_device", {}),
]
# Attributes a hard benchmark pair differs in, each value against the kind's other values.
ATTRIBUTE_ROWS = [
    ("pleural_effusion", "side"),
    ("pleural_effusion", "severity"),
    ("cardiomegaly", "severity"),
    ("consolidation", "lobe"),
    ("atelectasis", "lobe"),
    ("pneumothorax", "side"),
    ("pneumothorax", "size"),
    ("endotracheal_tube", "position"),
    ("enteric_tube", "position"),
    ("central_line", "tip"),
    ("central_line", "side"),
    ("cardiac_device", "type"),
    ("cardiac_device", "side"),
]


def clip_row_specs() -> list[_RowSpec]:
    specs = []
    for name, kind, attributes in FINDING_ROWS:
        text = _label(kind, **attributes)
        if kind == "edema" and attributes["severity"] == "moderate":
            # "pulmonary edema": moderate or severe, against no edema at all
            positive = lambda fs: any(f.kind == "edema" and f.get("severity") != "mild" for f in fs)  # noqa: E731
            text = "pulmonary edema"
        else:
            positive = _has(kind, **attributes)
        has_kind = _has(kind)
        specs.append(_RowSpec("finding", name, text, positive, lambda fs, p=positive, h=has_kind: p(fs) or not h(fs)))
    for kind, key in ATTRIBUTE_ROWS:
        for value in KINDS[kind].choices[key]:
            attributes = {key: value}
            if kind == "central_line":
                attributes["type"] = "cvc"  # "central venous catheter ..." (PICCs are their own words)
            text = _label(kind, **attributes)
            specs.append(
                _RowSpec(
                    "attribute",
                    f"{kind}.{key}={value}",
                    text,
                    _has(kind, **attributes),
                    _has(kind, **({"type": "cvc"} if kind == "central_line" else {})),
                )
            )
    for kind, spec in KINDS.items():
        has_kind = _has(kind)
        specs.append(_RowSpec("negation", kind, spec.negative, lambda fs, h=has_kind: not h(fs), _everyone))
    return specs


def clip_rows(
    image_vectors: np.ndarray, embed_texts: Callable[[list[str]], np.ndarray], images: ImageSet
) -> list[AurocRow]:
    """AUROC rows for L2-normalised image vectors (n, d) of `images` and a text embedder."""
    specs = clip_row_specs()
    texts = sorted({s.text for s in specs})
    text_vectors = dict(zip(texts, embed_texts(texts), strict=True))
    findings = [images.kinds(i) for i in range(len(images))]
    rows = []
    for spec in specs:
        counted = np.array([spec.counted(f) for f in findings])
        positive = np.array([spec.positive(f) for f in findings])[counted]
        if positive.all() or not positive.any():
            continue
        scores = image_vectors[counted] @ text_vectors[spec.text]
        rows.append(
            AurocRow(
                spec.group, spec.name, spec.text, int(positive.sum()), int((~positive).sum()), auroc(scores, positive)
            )
        )
    return rows


def evaluate_clip(folder: Path, images: ImageSet, threads: int = 1) -> list[AurocRow]:
    """Load the checkpoint folder with the embedding service's own engine and score `images` (held out)."""
    from raddiff_embedding.engine import OpenClipEngine
    from raddiff_training.clip import image_batch

    # One thread: on a shared two-core machine a second one mostly spins, waiting for the first.
    torch.set_num_threads(threads)
    engine = OpenClipEngine.from_checkpoint(folder, "raddiff")
    vectors = np.concatenate(
        [engine.embed_prepared(list(image_batch(images.clip_pixels[i : i + 64]))) for i in range(0, len(images), 64)]
    )
    return clip_rows(vectors, engine.embed_texts, images)


def clip_summary(rows: list[AurocRow]) -> dict[str, float]:
    by_group: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        by_group[row.group].append(row.auroc)
    attribute_means: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row.group == "attribute":
            attribute_means[row.name.split("=")[0]].append(row.auroc)
    summary = {f"mean_{group}_auroc": round(float(np.mean(values)), 3) for group, values in by_group.items()}
    summary.update({f"{name}_mean_auroc": round(float(np.mean(v)), 3) for name, v in attribute_means.items()})
    return summary


def clip_markdown(rows: list[AurocRow]) -> str:
    lines = []
    titles = {
        "finding": "Findings (with vs without)",
        "attribute": "Attributes (this value vs the kind's other values)",
        "negation": "Negations (without vs with)",
    }
    for group, title in titles.items():
        lines += [f"**{title}**", "", "| row | text | positives | negatives | AUROC |", "|---|---|---|---|---|"]
        lines += [
            f"| {r.name} | {r.text} | {r.positives} | {r.negatives} | {r.auroc:.3f} |" for r in rows if r.group == group
        ]
        lines.append("")
    return "\n".join(lines)


# -- VLM --------------------------------------------------------------------------------------------------------------


class Captioner:
    """A saved VLM checkpoint loaded as the VLM service loads it, answering prompts about images greedily."""

    def __init__(self, folder: Path, threads: int = 1) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        torch.set_num_threads(threads)
        self.processor = AutoProcessor.from_pretrained(folder, backend="pil")
        self.processor.tokenizer.padding_side = "left"
        self.model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()

    def answer(self, images: list[Image.Image], prompts: list[str], max_new_tokens: int) -> list[str]:
        texts = [
            self.processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": p}]}],
                add_generation_prompt=True,
                tokenize=False,
            )
            for p in prompts
        ]
        inputs = self.processor(text=texts, images=[[im] for im in images], return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1] :]
        return [self.processor.tokenizer.decode(row, skip_special_tokens=True).strip() for row in new]


@dataclass
class VlmQuality:
    images: int
    caption_kind: dict[str, dict[str, float]]  # kind -> precision, recall, support
    caption_label: dict[str, dict[str, float]]  # kind -> precision, recall of the full label
    normal_accuracy: float  # normal images captioned "No acute cardiopulmonary process."
    unparsed_sentences: int
    grounding_iou: dict[str, dict[str, float]]  # kind -> mean IoU, share >= 0.5, queries
    not_seen_accuracy: float  # "Not seen." for a kind the image does not have
    examples: list[dict[str, str]]

    def overall(self) -> dict[str, float]:
        def micro(table: dict[str, dict[str, float]], key: str) -> float:
            return round(float(np.mean([v[key] for v in table.values() if v["support"]])), 3)

        ious = [v["mean_iou"] for v in self.grounding_iou.values() if v["queries"]]
        return {
            "caption_kind_precision": micro(self.caption_kind, "precision"),
            "caption_kind_recall": micro(self.caption_kind, "recall"),
            "caption_label_precision": micro(self.caption_label, "precision"),
            "caption_label_recall": micro(self.caption_label, "recall"),
            "mean_box_iou": round(float(np.mean(ious)), 3),
            "normal_accuracy": round(self.normal_accuracy, 3),
            "not_seen_accuracy": round(self.not_seen_accuracy, 3),
        }

    def to_json(self) -> dict:
        return {"overall": self.overall(), **asdict(self)}


def _counts_table(tp: dict[str, int], fp: dict[str, int], fn: dict[str, int]) -> dict[str, dict[str, float]]:
    table = {}
    for kind in KINDS:
        t, p, n = tp[kind], fp[kind], fn[kind]
        table[kind] = {
            "precision": round(t / (t + p), 3) if t + p else 0.0,
            "recall": round(t / (t + n), 3) if t + n else 0.0,
            "support": t + n,
        }
    return table


def _label_key(finding: Finding) -> tuple[str, tuple[tuple[str, str], ...]]:
    return finding.kind, tuple(sorted(categorical(finding).items()))


@dataclass(frozen=True)
class CaptionScores:
    kind: dict[str, dict[str, float]]  # kind -> precision, recall, support (images with it)
    label: dict[str, dict[str, float]]  # the same for the full label (every attribute right)
    normal_accuracy: float
    unparsed_sentences: int


def score_captions(captions: Sequence[str], truths: Sequence[Sequence[Finding]]) -> CaptionScores:
    """Per kind precision and recall of the findings each caption names against each image's true findings."""
    kind_tp, kind_fp, kind_fn = defaultdict(int), defaultdict(int), defaultdict(int)
    label_tp, label_fp, label_fn = defaultdict(int), defaultdict(int), defaultdict(int)
    normal_right = normal_total = unparsed = 0
    for text, truth in zip(captions, truths, strict=True):
        parsed = parse_caption(text)
        unparsed += len(parsed.unparsed)
        said_kinds, true_kinds = {f.kind for f in parsed.findings}, {f.kind for f in truth}
        for kind in KINDS:
            kind_tp[kind] += kind in said_kinds and kind in true_kinds
            kind_fp[kind] += kind in said_kinds and kind not in true_kinds
            kind_fn[kind] += kind not in said_kinds and kind in true_kinds
        said_labels, true_labels = {_label_key(f) for f in parsed.findings}, {_label_key(f) for f in truth}
        for key in said_labels | true_labels:
            label_tp[key[0]] += key in said_labels and key in true_labels
            label_fp[key[0]] += key in said_labels and key not in true_labels
            label_fn[key[0]] += key not in said_labels and key in true_labels
        if not truth:
            normal_total += 1
            normal_right += parsed.normal and not parsed.findings
    return CaptionScores(
        _counts_table(kind_tp, kind_fp, kind_fn),
        _counts_table(label_tp, label_fp, label_fn),
        normal_right / normal_total if normal_total else 0.0,
        unparsed,
    )


@dataclass(frozen=True)
class GroundingCase:
    image: int
    query: GroundingQuery
    present: bool  # the image has the finding asked about


def grounding_cases(images: ImageSet, seed: int = 0) -> list[GroundingCase]:
    """Per image: "where is <full label>?" for each of its findings, and one question about a kind it lacks."""
    rng = np.random.default_rng([seed, 3])
    cases = []
    for index in range(len(images)):
        seen = set()
        for placed in images.findings[index]:
            query = query_for(placed.finding, rng, full=True)
            if query.phrase not in seen:
                seen.add(query.phrase)
                cases.append(GroundingCase(index, query, True))
        present = {f.kind for f in images.kinds(index)}
        absent = [k for k in KINDS if k not in present]
        if absent:
            kind = absent[int(rng.integers(len(absent)))]
            cases.append(GroundingCase(index, query_for(KINDS[kind].resolve({}, rng), rng, full=True), False))
    return cases


def score_grounding(
    cases: Sequence[GroundingCase], answers: Sequence[str], images: ImageSet
) -> tuple[dict[str, dict[str, float]], float]:
    """Per kind: mean IoU of the answer's first box with the finding's box (0 when no box), the share of answers
    at IoU >= 0.5, the number of questions; and the share of "Not seen." answers about absent kinds."""
    ious: dict[str, list[float]] = defaultdict(list)
    not_seen_right = not_seen_total = 0
    for case, answer in zip(cases, answers, strict=True):
        if case.present:
            ious[case.query.kind].append(_best_iou(answer, case.query, images.findings[case.image]))
        else:
            not_seen_total += 1
            not_seen_right += answer.strip() == NOT_SEEN
    table = {
        kind: {
            "mean_iou": round(float(np.mean(ious[kind])), 3) if ious[kind] else 0.0,
            "iou_at_0_5": round(float(np.mean([v >= 0.5 for v in ious[kind]])), 3) if ious[kind] else 0.0,
            "queries": len(ious[kind]),
        }
        for kind in KINDS
    }
    return table, not_seen_right / not_seen_total if not_seen_total else 0.0


def evaluate_vlm(folder: Path, images: ImageSet, batch: int = 16, progress: bool = True) -> VlmQuality:
    """Caption and ground every held-out image with the saved checkpoint, greedy, as the service would."""
    captioner = Captioner(folder)
    pil = [Image.fromarray(images.vlm_pixels[i]).convert("RGB") for i in range(len(images))]
    captions: list[str] = []
    for start in tqdm(range(0, len(pil), batch), desc="captions", disable=not progress):
        chunk = pil[start : start + batch]
        captions += captioner.answer(chunk, [CAPTION_PROMPT] * len(chunk), 96)
    scores = score_captions(captions, [images.kinds(i) for i in range(len(images))])
    cases = grounding_cases(images)
    answers: list[str] = []
    for start in tqdm(range(0, len(cases), batch), desc="grounding", disable=not progress):
        chunk = cases[start : start + batch]
        answers += captioner.answer([pil[c.image] for c in chunk], [c.query.prompt() for c in chunk], 12)
    grounding, not_seen = score_grounding(cases, answers, images)
    examples = [
        {
            "seed": str(int(images.seeds[i])),
            "truth": "; ".join(KINDS[f.kind].label(f) for f in images.kinds(i)) or "normal",
            "caption": captions[i],
        }
        for i in range(min(6, len(images)))
    ]
    return VlmQuality(
        images=len(images),
        caption_kind=scores.kind,
        caption_label=scores.label,
        normal_accuracy=scores.normal_accuracy,
        unparsed_sentences=scores.unparsed_sentences,
        grounding_iou=grounding,
        not_seen_accuracy=not_seen,
        examples=examples,
    )


def _best_iou(answer: str, query: GroundingQuery, placed: Sequence[PlacedFinding]) -> float:
    boxes = decode_boxes(answer)
    truth = query.boxes(placed)
    if not boxes or not truth:
        return 0.0
    return max(box_iou(boxes[0], t) for t in truth)


def vlm_markdown(quality: VlmQuality) -> str:
    lines = [
        "| finding | caption precision | recall | full-label precision | recall | images | box IoU | IoU >= 0.5 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        k, lab, g = quality.caption_kind[kind], quality.caption_label[kind], quality.grounding_iou[kind]
        lines.append(
            f"| {kind} | {k['precision']:.2f} | {k['recall']:.2f} | {lab['precision']:.2f} | {lab['recall']:.2f} "
            f"| {k['support']} | {g['mean_iou']:.2f} | {g['iou_at_0_5']:.2f} |"
        )
    return "\n".join(lines)
