"""Radiology-style reports (FINDINGS and IMPRESSION) that say exactly what an image holds.

Every present finding gets a positive sentence; every absent non-device finding gets a negative one (grouped the
way radiologists group them: "No pleural effusion or pneumothorax."); absent devices are negated together only
when the image has no device at all ("No support devices."). Positive sentences never contain a negation word,
so a reader (or a test) can tell them apart. Wording is drawn from several templates and synonyms per finding
with the image's own random stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from raddiff_synth.catalog import KINDS
from raddiff_synth.findings import LOBE_WORDS, Finding

Pick = Callable[[Sequence[str]], str]

SEVERITY_ADVERB = {"mild": "mildly", "moderate": "moderately", "severe": "severely"}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _effusion(f: Finding, pick: Pick) -> str:
    sev, side = f.get("severity"), f.get("side")
    return pick(
        [
            f"There is a {sev} {side} pleural effusion.",
            f"{_cap(sev)} {side} pleural effusion with blunting of the {side} costophrenic angle.",
            f"A {sev} {side}-sided pleural effusion is present, with a meniscus along the lateral chest wall.",
            f"{_cap(sev)} {side} pleural effusion layering at the {side} base.",
        ]
    )


def _cardiomegaly(f: Finding, pick: Pick) -> str:
    sev = f.get("severity")
    return pick(
        [
            f"The heart is {SEVERITY_ADVERB[sev]} enlarged.",
            f"{_cap(sev)} cardiomegaly.",
            f"The cardiac silhouette is {SEVERITY_ADVERB[sev]} enlarged, consistent with {sev} cardiomegaly.",
            f"{_cap(sev)} enlargement of the cardiac silhouette.",
        ]
    )


def _consolidation(f: Finding, pick: Pick) -> str:
    lobe = LOBE_WORDS[f.get("lobe")]
    return pick(
        [
            f"There is airspace consolidation in the {lobe}.",
            f"Focal consolidation in the {lobe}, concerning for pneumonia.",
            f"{_cap(lobe)} airspace opacity consistent with consolidation.",
            f"Dense consolidation of the {lobe} with air bronchograms.",
        ]
    )


def _atelectasis(f: Finding, pick: Pick) -> str:
    lobe = LOBE_WORDS[f.get("lobe")]
    return pick(
        [
            f"Volume loss and opacification of the {lobe}, consistent with atelectasis.",
            f"{_cap(lobe)} atelectasis.",
            f"There is {lobe} collapse (atelectasis) with volume loss.",
        ]
    )


def _nodule(f: Finding, pick: Pick) -> str:
    lobe = LOBE_WORDS[f.get("lobe")]
    diameter = f.get("diameter_mm")
    if f.get("size") == "nodule":
        return pick(
            [
                f"A {diameter:.0f} mm pulmonary nodule projects over the {lobe}.",
                f"There is a {diameter:.0f} mm nodule in the {lobe}.",
                f"Rounded {diameter:.0f} mm nodular opacity in the {lobe}.",
            ]
        )
    return pick(
        [
            f"A {diameter / 10:.1f} cm mass is seen in the {lobe}.",
            f"There is a {diameter / 10:.1f} cm rounded mass in the {lobe}.",
            f"Large {diameter / 10:.1f} cm pulmonary mass in the {lobe}.",
        ]
    )


def _pneumothorax(f: Finding, pick: Pick) -> str:
    size, side = f.get("size"), f.get("side")
    return pick(
        [
            f"There is a {size} {side} pneumothorax with a visible visceral pleural line.",
            f"{_cap(size)} {side} apical pneumothorax.",
            f"A {size} {side}-sided pneumothorax is present; the lung edge is retracted from the chest wall.",
        ]
    )


def _edema(f: Finding, pick: Pick) -> str:
    sev = f.get("severity")
    if sev == "mild":
        return pick(
            [
                "There is mild pulmonary vascular congestion.",
                "Pulmonary vascular congestion with indistinct perihilar vessels.",
                "Mild vascular congestion.",
            ]
        )
    return pick(
        [
            f"{_cap(sev)} pulmonary edema with bilateral perihilar haziness.",
            f"There is {sev} pulmonary edema.",
            f"Bilateral perihilar opacities consistent with {sev} pulmonary edema.",
        ]
    )


def _ett(f: Finding, pick: Pick) -> str:
    return {
        "normal": pick(
            [
                "Endotracheal tube in standard position, tip about 5 cm above the carina.",
                "The endotracheal tube terminates in the mid trachea, in appropriate position.",
            ]
        ),
        "low": pick(
            [
                "Endotracheal tube tip is low, about 1 cm above the carina; recommend withdrawal by 3 cm.",
                "The endotracheal tube terminates just above the carina and could be withdrawn.",
            ]
        ),
        "right_bronchus": pick(
            [
                "Endotracheal tube tip is in the right main bronchus; recommend retraction.",
                "The endotracheal tube extends into the right main bronchus.",
            ]
        ),
    }[f.get("position")]


def _enteric(f: Finding, pick: Pick) -> str:
    tube = pick(["Enteric tube", "Nasogastric tube", "NG tube"])
    return {
        "stomach": pick(
            [
                f"{tube} courses below the diaphragm with tip in the stomach.",
                f"{tube} terminates in the stomach.",
            ]
        ),
        "esophagus_coiled": pick(
            [
                f"{tube} is coiled in the esophagus; recommend repositioning.",
                f"{tube} loops within the upper esophagus, short of the stomach.",
            ]
        ),
        "bronchus": pick(
            [
                f"{tube} courses into the right main bronchus, tip in the right lower lobe bronchus; remove it.",
                f"{tube} is malpositioned in the right bronchial tree.",
            ]
        ),
    }[f.get("position")]


def _central_line(f: Finding, pick: Pick) -> str:
    side = f.get("side")
    if f.get("type") == "picc":
        line = pick([f"{_cap(side)} PICC", f"{_cap(side)} upper extremity PICC line"])
    else:
        access = "internal jugular" if side == "right" else "subclavian"
        line = pick([f"{_cap(side)} {access} central venous catheter", f"{_cap(side)} {access} central line"])
    tip = {
        "svc": pick(["with tip in the low SVC", "terminating at the cavoatrial junction"]),
        "right_atrium": pick(["with tip in the right atrium", "extending into the right atrium"]),
        "brachiocephalic": pick(["with tip in the brachiocephalic vein", "terminating in the brachiocephalic vein"]),
    }[f.get("tip")]
    return f"{line} {tip}."


def _cardiac_device(f: Finding, pick: Pick) -> str:
    side = f.get("side")
    if f.get("type") == "pacemaker":
        return pick(
            [
                f"{_cap(side)}-sided dual-chamber pacemaker with leads in the right atrium and right ventricle.",
                f"{_cap(side)} chest wall pacemaker, leads in expected position.",
            ]
        )
    return pick(
        [
            f"{_cap(side)}-sided ICD with a single lead in the right ventricle.",
            f"{_cap(side)} chest wall defibrillator (ICD), lead tip at the right ventricular apex.",
        ]
    )


POSITIVE: dict[str, Callable[[Finding, Pick], str]] = {
    "pleural_effusion": _effusion,
    "cardiomegaly": _cardiomegaly,
    "consolidation": _consolidation,
    "atelectasis": _atelectasis,
    "nodule": _nodule,
    "pneumothorax": _pneumothorax,
    "edema": _edema,
    "endotracheal_tube": _ett,
    "enteric_tube": _enteric,
    "central_line": _central_line,
    "cardiac_device": _cardiac_device,
}

# Negative statements: for one kind alone, and for groups of kinds that are absent together.
NEGATIVE: dict[frozenset[str], tuple[str, ...]] = {
    frozenset({"pleural_effusion", "pneumothorax"}): (
        "No pleural effusion or pneumothorax.",
        "There is no pleural effusion or pneumothorax.",
        "The costophrenic angles are sharp; no pleural effusion or pneumothorax.",
    ),
    frozenset({"pleural_effusion"}): ("No pleural effusion.", "There is no pleural effusion."),
    frozenset({"pneumothorax"}): ("No pneumothorax.", "There is no pneumothorax."),
    frozenset({"consolidation", "atelectasis", "nodule", "edema"}): (
        "The lungs are clear, with no consolidation, atelectasis, nodule or edema.",
        "No focal consolidation, atelectasis, pulmonary nodule or pulmonary edema.",
    ),
    frozenset({"consolidation"}): ("No focal consolidation.", "No focal airspace consolidation."),
    frozenset({"atelectasis"}): ("No atelectasis.", "There is no atelectasis."),
    frozenset({"nodule"}): ("No pulmonary nodule or mass.", "No suspicious pulmonary nodule."),
    frozenset({"edema"}): ("No pulmonary edema.", "No pulmonary edema or vascular congestion."),
    frozenset({"cardiomegaly"}): (
        "Heart size is normal.",
        "The cardiac silhouette is normal in size.",
        "Normal heart size; no cardiomegaly.",
    ),
}
DEVICE_KINDS = ("endotracheal_tube", "enteric_tube", "central_line", "cardiac_device")
NO_DEVICES = ("No support devices.", "No lines, tubes or devices are present.")
NO_ACUTE = ("No acute cardiopulmonary process.", "No acute cardiopulmonary abnormality.", "Normal chest radiograph.")
ORDER = (
    "endotracheal_tube",
    "enteric_tube",
    "central_line",
    "cardiac_device",
    "consolidation",
    "atelectasis",
    "nodule",
    "edema",
    "pleural_effusion",
    "pneumothorax",
    "cardiomegaly",
)


def write_report(findings: Sequence[Finding], view: str, rng: np.random.Generator) -> str:
    def pick(options: Sequence[str]) -> str:
        return options[int(rng.integers(len(options)))]

    present = {f.kind for f in findings}
    ordered = sorted(findings, key=lambda f: ORDER.index(f.kind))
    positives = [POSITIVE[f.kind](f, pick) for f in ordered]
    negatives: list[str] = []
    if not present & set(DEVICE_KINDS):
        negatives.append(pick(NO_DEVICES))
    covered: set[str] = set()
    for group, options in NEGATIVE.items():
        if not group & present and not group & covered:
            negatives.append(pick(options))
            covered |= group
    view_words = "PA" if view == "PA" else pick(["AP portable", "portable AP", "AP"])
    body = " ".join([*positives, *negatives, pick(["No acute osseous abnormality.", "Osseous structures intact."])])
    impression = " ".join(_cap(KINDS[f.kind].label(f)) + "." for f in ordered) if ordered else pick(NO_ACUTE)
    return f"EXAMINATION: Chest radiograph, {view_words} view.\n\nFINDINGS: {body}\n\nIMPRESSION: {impression}\n"
