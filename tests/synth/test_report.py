"""Reports say exactly what the image holds: each present finding stated, each absent one negated."""

from __future__ import annotations

import re

import numpy as np
import pytest

from raddiff_synth.catalog import KINDS
from raddiff_synth.findings import Finding
from raddiff_synth.render import image_rng
from raddiff_synth.report import DEVICE_KINDS, write_report

# Independent of the templates: how a reader finds each finding in a sentence.
TERMS = {
    "pleural_effusion": r"pleural effusion",
    "cardiomegaly": r"cardiomegaly|heart is \w+ly enlarged|cardiac silhouette is \w+ly enlarged|heart size|"
    r"cardiac silhouette is normal|enlargement of the cardiac silhouette",
    "consolidation": r"consolidation",
    "atelectasis": r"atelectasis",
    "nodule": r"nodul|mass",
    "pneumothorax": r"pneumothorax",
    "edema": r"edema|congestion",
    "endotracheal_tube": r"endotracheal tube",
    "enteric_tube": r"enteric tube|nasogastric tube|ng tube",
    "central_line": r"central venous catheter|central line|picc",
    "cardiac_device": r"pacemaker|icd|defibrillator",
}
NEGATION = re.compile(r"\b(no|not|without|normal)\b", re.IGNORECASE)


def _sentences(report: str, section: str) -> list[str]:
    body = report.split(f"{section}:")[1].split("\n\n")[0]
    return [s.strip() for s in re.split(r"(?<=\.)\s+", body) if s.strip()]


def _random_findings(rng: np.random.Generator) -> list[Finding]:
    kinds = [k for k in KINDS if rng.random() < 0.3]
    return [KINDS[k].resolve({}, rng) for k in kinds]


@pytest.mark.parametrize("seed", range(40))
def test_report_states_present_and_negates_absent(seed: int) -> None:
    rng = np.random.default_rng(seed)
    findings = _random_findings(rng)
    report = write_report(findings, "PA" if seed % 2 else "AP", image_rng(seed, 4))
    sentences = _sentences(report, "FINDINGS")
    present = {f.kind for f in findings}
    for kind, pattern in TERMS.items():
        mentions = [s for s in sentences if re.search(pattern, s, re.IGNORECASE)]
        positive = [s for s in mentions if not NEGATION.search(s)]
        negative = [s for s in mentions if NEGATION.search(s)]
        if kind in present:
            assert positive, f"{kind} is present but no sentence states it:\n{report}"
            assert not negative, f"{kind} is present but negated:\n{report}"
        elif kind in DEVICE_KINDS:
            assert not positive, f"{kind} is absent but stated:\n{report}"
        else:
            assert not positive, f"{kind} is absent but stated:\n{report}"
            assert negative, f"{kind} is absent and never negated:\n{report}"
    if not present & set(DEVICE_KINDS):
        assert any(re.search(r"\bno (support devices|lines)", s, re.IGNORECASE) for s in sentences)


def test_report_has_both_sections_and_impression_names_findings() -> None:
    rng = image_rng(3, 3)
    findings = [
        KINDS["pleural_effusion"].resolve({"side": "left", "severity": "large"}, rng),
        KINDS["enteric_tube"].resolve({"position": "bronchus"}, rng),
    ]
    report = write_report(findings, "AP", image_rng(3, 4))
    assert "FINDINGS:" in report and "IMPRESSION:" in report
    impression = report.split("IMPRESSION:")[1]
    assert "Large left pleural effusion." in impression
    assert "NG tube in bronchus." in impression
    assert "AP" in report.split("FINDINGS:")[0]


def test_normal_study_impression() -> None:
    report = write_report([], "PA", image_rng(1, 4))
    assert re.search(r"no acute|normal chest", report.split("IMPRESSION:")[1], re.IGNORECASE)


def test_wording_varies_with_the_seed_but_not_the_facts() -> None:
    finding = KINDS["cardiomegaly"].resolve({"severity": "moderate"}, image_rng(0, 3))
    reports = {write_report([finding], "PA", image_rng(seed, 4)) for seed in range(20)}
    assert len(reports) > 3
    assert all("moderate" in r.lower() for r in reports)
    assert write_report([finding], "PA", image_rng(5, 4)) == write_report([finding], "PA", image_rng(5, 4))
