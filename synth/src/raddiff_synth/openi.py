"""The report benchmark: sets of real OpenI (Indiana University) chest X-ray reports that differ by a MeSH finding.

The 3,955 report XMLs ship in torchxrayvision's wheel (data/NLMCXR_reports.tgz). Their texts are CC BY-NC-ND 4.0:
they are read from the installed wheel at run time and never copied into the repository. The benchmark JSONL
holds report ids (the XML's uId, e.g. "CXR1"); `report_texts` turns ids back into texts, and `--include-text`
writes them into a run-time output (keep such a file out of the repository).

Each pair selects set A and set B by predicates over a report's MeSH major tags ("Pleural Effusion/left/small"
is the finding, then its qualifiers), samples up to `per_set` reports per side with a fixed seed, and carries
ground-truth strings in RadDiffBench's style.
"""

from __future__ import annotations

import json
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from raddiff_synth.source import openi_reports_archive

Tags = frozenset[str]
Predicate = Callable[[Tags], bool]
MIN_PER_SET = 15  # a pair with fewer reports on either side is left out (its absence is reported)
SAMPLE_SEED = 20_260_103


@dataclass(frozen=True)
class Report:
    id: str
    findings: str
    impression: str
    tags: Tags

    @property
    def text(self) -> str:
        return f"FINDINGS: {self.findings}\n\nIMPRESSION: {self.impression}\n"


@lru_cache(maxsize=1)
def load_reports() -> dict[str, Report]:
    """Every report that has a FINDINGS or IMPRESSION text, by id."""
    reports: dict[str, Report] = {}
    with tarfile.open(openi_reports_archive()) as archive:
        for member in archive.getmembers():
            if not member.name.endswith(".xml"):
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            root = ET.fromstring(handle.read())
            sections = {e.get("Label"): " ".join((e.text or "").split()) for e in root.iter("AbstractText")}
            findings, impression = sections.get("FINDINGS", ""), sections.get("IMPRESSION", "")
            uid = root.find("uId")
            if uid is None or not (findings or impression):
                continue
            tags = frozenset(e.text.strip() for e in root.iter("major") if e.text)
            reports[uid.get("id", member.name)] = Report(uid.get("id", member.name), findings, impression, tags)
    return reports


def report_texts(ids: Iterable[str]) -> list[str]:
    reports = load_reports()
    missing = [i for i in ids if i not in reports]
    if missing:
        raise KeyError(f"no OpenI report with id {', '.join(missing[:5])}")
    return [reports[i].text for i in ids]


# Predicates over MeSH major tags.
def tag(*prefixes: str) -> Predicate:
    return lambda tags: any(t == p or t.startswith(p + "/") for t in tags for p in prefixes)


def normal(tags: Tags) -> bool:
    return tags == frozenset({"normal"})


def abnormal(tags: Tags) -> bool:
    return bool(tags) and "normal" not in tags and "No Indexing" not in tags


def both(*predicates: Predicate) -> Predicate:
    return lambda tags: all(p(tags) for p in predicates)


def without(predicate: Predicate) -> Predicate:
    return lambda tags: not predicate(tags)


CARDIOMEGALY = tag("Cardiomegaly", "Cardiac Shadow/enlarged")
EFFUSION = tag("Pleural Effusion")
EDEMA = tag("Pulmonary Edema", "Pulmonary Congestion", "Heart Failure")
ATELECTASIS = tag("Pulmonary Atelectasis", "Volume Loss")
OPACITY = tag("Opacity", "Airspace Disease", "Consolidation", "Infiltrate", "Pneumonia", "Density")
PNEUMONIA = tag("Pneumonia", "Consolidation")
NODULE = tag("Nodule", "Mass")
HYPERINFLATION = tag(
    "Emphysema", "Pulmonary Emphysema", "Pulmonary Disease, Chronic Obstructive", "Lung/hyperdistention"
)
HYPOINFLATION = tag("Lung/hypoinflation")
DEGENERATIVE = tag("Spine/degenerative", "Thoracic Vertebrae/degenerative", "Spondylosis", "Osteophyte")


def sided(prefix: str, side: str) -> Predicate:
    """`prefix` on `side` only: tagged with that side and never with the other side or bilateral."""
    other = "right" if side == "left" else "left"
    return lambda tags: (
        any(t.startswith(prefix) and f"/{side}" in t for t in tags)
        and not any(t.startswith(prefix) and (f"/{other}" in t or "/bilateral" in t) for t in tags)
    )


@dataclass(frozen=True)
class ReportPair:
    id: str
    difficulty: str
    set1: str
    set2: str
    a: Predicate
    b: Predicate


PAIRS: tuple[ReportPair, ...] = (
    # easy: a finding against normal studies
    ReportPair("cardiomegaly-vs-normal", "easy", "cardiomegaly", "normal heart size", CARDIOMEGALY, normal),
    ReportPair("effusion-vs-normal", "easy", "pleural effusion", "no pleural effusion", EFFUSION, normal),
    ReportPair(
        "edema-vs-normal", "easy", "pulmonary edema or vascular congestion", "no pulmonary edema", EDEMA, normal
    ),
    ReportPair("atelectasis-vs-normal", "easy", "atelectasis", "no atelectasis", ATELECTASIS, normal),
    ReportPair("opacity-vs-normal", "easy", "airspace opacity", "clear lungs", OPACITY, normal),
    ReportPair("pneumonia-vs-normal", "easy", "pneumonia or consolidation", "no pneumonia", PNEUMONIA, normal),
    ReportPair(
        "device-vs-normal",
        "easy",
        "implanted cardiac device",
        "no implanted device",
        tag("Implanted Medical Device"),
        normal,
    ),
    ReportPair(
        "catheter-vs-normal",
        "easy",
        "indwelling catheter or tube",
        "no lines or tubes",
        tag("Catheters, Indwelling", "Tube, Inserted"),
        normal,
    ),
    ReportPair(
        "surgical-hardware-vs-normal",
        "easy",
        "sternotomy wires or surgical clips",
        "no surgical hardware",
        tag("Surgical Instruments", "Sutures"),
        normal,
    ),
    ReportPair(
        "hyperinflation-vs-normal", "easy", "hyperinflated lungs", "normal lung volumes", HYPERINFLATION, normal
    ),
    ReportPair("hypoinflation-vs-normal", "easy", "low lung volumes", "normal lung volumes", HYPOINFLATION, normal),
    ReportPair(
        "granuloma-vs-normal",
        "easy",
        "calcified granulomas",
        "no granulomas",
        tag("Calcified Granuloma", "Granulomatous Disease", "Granuloma"),
        normal,
    ),
    ReportPair("nodule-vs-normal", "easy", "pulmonary nodule", "no pulmonary nodule", NODULE, normal),
    # medium: a finding against other abnormal studies, or subtler findings
    ReportPair(
        "cardiomegaly-vs-other-abnormal",
        "medium",
        "cardiomegaly",
        "normal heart size",
        CARDIOMEGALY,
        both(abnormal, without(CARDIOMEGALY)),
    ),
    ReportPair(
        "effusion-vs-other-abnormal",
        "medium",
        "pleural effusion",
        "no pleural effusion",
        EFFUSION,
        both(abnormal, without(EFFUSION), without(tag("Costophrenic Angle"))),
    ),
    ReportPair(
        "cardiomegaly-edema-vs-cardiomegaly",
        "medium",
        "cardiomegaly with pulmonary edema",
        "cardiomegaly without pulmonary edema",
        both(CARDIOMEGALY, EDEMA),
        both(CARDIOMEGALY, without(EDEMA)),
    ),
    ReportPair(
        "degenerative-spine-vs-normal",
        "medium",
        "degenerative changes of the thoracic spine",
        "normal spine",
        DEGENERATIVE,
        normal,
    ),
    ReportPair(
        "tortuous-aorta-vs-normal",
        "medium",
        "tortuous aorta",
        "normal aorta",
        tag("Aorta/tortuous", "Aorta, Thoracic/tortuous"),
        normal,
    ),
    ReportPair(
        "fracture-vs-normal", "medium", "rib or vertebral fracture", "no fracture", tag("Fractures, Bone"), normal
    ),
    ReportPair("hiatal-hernia-vs-normal", "medium", "hiatal hernia", "no hiatal hernia", tag("Hernia, Hiatal"), normal),
    ReportPair("scoliosis-vs-normal", "medium", "scoliosis", "normal spinal alignment", tag("Scoliosis"), normal),
    ReportPair(
        "hyperinflation-vs-hypoinflation",
        "medium",
        "hyperinflated lungs",
        "low lung volumes",
        both(HYPERINFLATION, without(HYPOINFLATION)),
        both(HYPOINFLATION, without(HYPERINFLATION)),
    ),
    # hard: laterality, severity, extent, rare findings
    ReportPair(
        "effusion-left-vs-right",
        "hard",
        "left pleural effusion",
        "right pleural effusion",
        sided("Pleural Effusion", "left"),
        sided("Pleural Effusion", "right"),
    ),
    ReportPair(
        "opacity-left-vs-right-base",
        "hard",
        "left lower lobe opacity",
        "right lower lobe opacity",
        sided("Opacity/lung/base", "left"),
        sided("Opacity/lung/base", "right"),
    ),
    ReportPair(
        "atelectasis-left-vs-right-base",
        "hard",
        "left basilar atelectasis",
        "right basilar atelectasis",
        sided("Pulmonary Atelectasis/base", "left"),
        sided("Pulmonary Atelectasis/base", "right"),
    ),
    ReportPair(
        "cardiomegaly-mild-vs-moderate",
        "hard",
        "mild cardiomegaly",
        "moderate to severe cardiomegaly",
        both(tag("Cardiomegaly/mild"), without(tag("Cardiomegaly/moderate", "Cardiomegaly/severe"))),
        both(tag("Cardiomegaly/moderate", "Cardiomegaly/severe"), without(tag("Cardiomegaly/mild"))),
    ),
    ReportPair(
        "effusion-bilateral-vs-unilateral",
        "hard",
        "bilateral pleural effusions",
        "unilateral pleural effusion",
        tag("Pleural Effusion/bilateral"),
        lambda tags: sided("Pleural Effusion", "left")(tags) or sided("Pleural Effusion", "right")(tags),
    ),
    ReportPair("pneumothorax-vs-normal", "hard", "pneumothorax", "no pneumothorax", tag("Pneumothorax"), normal),
)

ELEVATED_DIAPHRAGM = tag("Diaphragm/right/elevated", "Diaphragm/left/elevated", "Diaphragm/elevated")
# A second set by MeSH terms that PAIRS does not select on: a check of the proposer on findings nobody tuned it
# for. Chosen by term frequency (at least about 20 reports a side), not by how well any proposer does on them.
HELDOUT_PAIRS: tuple[ReportPair, ...] = (
    ReportPair("scarring-vs-normal", "easy", "pulmonary scarring", "no scarring", tag("Cicatrix"), normal),
    ReportPair(
        "aortic-atherosclerosis-vs-normal",
        "easy",
        "atherosclerotic calcification of the aorta",
        "normal aorta",
        tag(
            "Atherosclerosis/aorta", "Atherosclerosis/aorta, thoracic", "Calcinosis/aorta", "Calcinosis/aorta, thoracic"
        ),
        normal,
    ),
    ReportPair(
        "hilar-calcification-vs-normal",
        "easy",
        "calcified hilar or mediastinal lymph nodes",
        "no calcified lymph nodes",
        tag("Calcinosis/lung/hilum", "Calcinosis/mediastinum"),
        normal,
    ),
    ReportPair(
        "pleural-thickening-vs-normal", "easy", "pleural thickening", "no pleural thickening", tag("Thickening"), normal
    ),
    ReportPair("kyphosis-vs-normal", "easy", "thoracic kyphosis", "normal spinal alignment", tag("Kyphosis"), normal),
    ReportPair(
        "osteopenia-vs-normal", "easy", "osteopenia", "normal bone density", tag("Bone Diseases, Metabolic"), normal
    ),
    ReportPair(
        "spinal-fusion-vs-normal", "easy", "spinal fusion hardware", "no spinal hardware", tag("Spinal Fusion"), normal
    ),
    ReportPair("stent-vs-normal", "easy", "vascular stent", "no stent", tag("Stents"), normal),
    ReportPair("fibrosis-vs-normal", "easy", "pulmonary fibrosis", "no fibrosis", tag("Pulmonary Fibrosis"), normal),
    ReportPair("foreign-body-vs-normal", "easy", "foreign body", "no foreign body", tag("Foreign Bodies"), normal),
    ReportPair(
        "elevated-hemidiaphragm-vs-normal",
        "medium",
        "elevated hemidiaphragm",
        "normal diaphragm",
        ELEVATED_DIAPHRAGM,
        normal,
    ),
    ReportPair(
        "flattened-diaphragm-vs-normal",
        "medium",
        "flattened diaphragms",
        "normal diaphragm",
        tag("Diaphragm/bilateral/flattened", "Diaphragm/flattened"),
        normal,
    ),
    ReportPair(
        "bronchovascular-markings-vs-normal",
        "medium",
        "prominent bronchovascular markings",
        "normal lung markings",
        tag("Markings/bronchovascular"),
        normal,
    ),
    ReportPair(
        "eventration-vs-normal",
        "medium",
        "diaphragmatic eventration",
        "normal diaphragm",
        tag("Diaphragmatic Eventration"),
        normal,
    ),
    ReportPair(
        "costophrenic-blunting-vs-normal",
        "medium",
        "blunted costophrenic angle",
        "sharp costophrenic angles",
        tag("Costophrenic Angle"),
        normal,
    ),
    ReportPair(
        "scarring-vs-atelectasis",
        "hard",
        "pulmonary scarring",
        "atelectasis",
        both(tag("Cicatrix"), without(ATELECTASIS)),
        both(ATELECTASIS, without(tag("Cicatrix"))),
    ),
    ReportPair(
        "elevated-hemidiaphragm-right-vs-left",
        "hard",
        "elevated right hemidiaphragm",
        "elevated left hemidiaphragm",
        both(tag("Diaphragm/right/elevated"), without(tag("Diaphragm/left/elevated"))),
        both(tag("Diaphragm/left/elevated"), without(tag("Diaphragm/right/elevated"))),
    ),
)
PAIR_SETS = {"shipped": PAIRS, "heldout": HELDOUT_PAIRS}


def build_pairs(
    per_set: int = 60, reports: dict[str, Report] | None = None, pairs: Sequence[ReportPair] = PAIRS
) -> tuple[list[dict], list[str]]:
    """The benchmark lines, and the ids of pairs left out for having fewer than MIN_PER_SET reports a side."""
    if per_set < MIN_PER_SET:
        raise ValueError(f"per_set {per_set} is below the minimum of {MIN_PER_SET} reports a side")
    reports = reports if reports is not None else load_reports()
    ordered = sorted(reports.values(), key=lambda r: _numeric_id(r.id))
    lines, skipped = [], []
    for index, pair in enumerate(pairs):
        side_a = {r.id for r in ordered if pair.a(r.tags)}
        side_b = {r.id for r in ordered if pair.b(r.tags)}
        overlap = side_a & side_b  # predicates are meant to be exclusive; never put one report on both sides
        chosen = []
        for side_index, ids in enumerate((side_a - overlap, side_b - overlap)):
            candidates = sorted(ids, key=_numeric_id)
            rng = np.random.default_rng([SAMPLE_SEED, index, side_index])
            picked = [candidates[i] for i in rng.permutation(len(candidates))[:per_set]]
            chosen.append(sorted(picked, key=_numeric_id))
        if min(len(c) for c in chosen) < MIN_PER_SET:
            skipped.append(pair.id)
            continue
        lines.append(
            {
                "set1": pair.set1,
                "set2": pair.set2,
                "set1_reports": chosen[0],
                "set2_reports": chosen[1],
                "pair_id": pair.id,
                "difficulty": pair.difficulty,
                "source": "openi",
            }
        )
    return lines, skipped


def write_report_benchmark(
    out: Path, per_set: int = 60, include_text: bool = False, pair_set: str = "shipped"
) -> tuple[Path, list[dict]]:
    """Writes the pairs of PAIR_SETS[pair_set] ("shipped" by default, or "heldout") as a benchmark JSONL."""
    if pair_set not in PAIR_SETS:
        raise ValueError(f"unknown report pair set {pair_set!r}; one of {', '.join(PAIR_SETS)}")
    lines, _ = build_pairs(per_set, pairs=PAIR_SETS[pair_set])
    if include_text:
        for line in lines:
            line["set1_texts"] = report_texts(line["set1_reports"])
            line["set2_texts"] = report_texts(line["set2_reports"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return out, lines


def _numeric_id(report_id: str) -> tuple[int, str]:
    digits = "".join(ch for ch in report_id if ch.isdigit())
    return (int(digits) if digits else 0, report_id)
