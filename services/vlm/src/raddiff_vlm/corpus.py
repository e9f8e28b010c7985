"""Radiology-style text the VLM's tokenizer is trained on.

Written here (no report is copied from anywhere), and generated in a fixed
order, so the same tokenizer comes out of every build. It covers the words a
chest X-ray captioner and grounding model reads and writes: findings, where
they are, how severe, devices, normal statements, and the prompts the
pipeline asks.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import product

FINDINGS = [
    "pleural effusion",
    "pneumothorax",
    "consolidation",
    "atelectasis",
    "cardiomegaly",
    "pulmonary edema",
    "interstitial opacities",
    "airspace opacity",
    "ground-glass opacity",
    "pulmonary nodule",
    "lung mass",
    "hilar enlargement",
    "mediastinal widening",
    "hyperinflation",
    "emphysema",
    "fibrosis",
    "bronchiectasis",
    "rib fracture",
    "subcutaneous emphysema",
    "pneumomediastinum",
    "pneumoperitoneum",
    "hiatal hernia",
    "calcified granuloma",
    "aortic calcification",
    "tortuous aorta",
    "pleural thickening",
    "blunting of the costophrenic angle",
    "elevated hemidiaphragm",
    "vascular congestion",
    "lymphadenopathy",
    "cavitary lesion",
    "scoliosis",
    "degenerative changes of the spine",
]

LOCATIONS = [
    "right upper lobe",
    "right middle lobe",
    "right lower lobe",
    "left upper lobe",
    "lingula",
    "left lower lobe",
    "right lung base",
    "left lung base",
    "both lung bases",
    "right apex",
    "left apex",
    "right hilum",
    "left hilum",
    "perihilar region",
    "retrocardiac region",
    "right costophrenic angle",
    "left costophrenic angle",
    "mediastinum",
    "upper zones",
    "lower zones",
]

SEVERITIES = ["trace", "small", "mild", "moderate", "large", "severe", "minimal", "extensive"]

DEVICES = [
    "endotracheal tube",
    "nasogastric tube",
    "right internal jugular central venous catheter",
    "left subclavian catheter",
    "peripherally inserted central catheter",
    "cardiac pacemaker",
    "sternotomy wires",
    "chest tube",
    "surgical clips",
]

NORMAL_STATEMENTS = [
    "The lungs are clear.",
    "No focal consolidation, pleural effusion, or pneumothorax.",
    "The cardiomediastinal silhouette is within normal limits.",
    "Heart size is normal.",
    "The osseous structures are intact.",
    "No acute cardiopulmonary process.",
    "The pulmonary vasculature is normal.",
    "No free air under the diaphragm.",
    "The trachea is midline.",
    "Both hemidiaphragms are well defined.",
    "No radiographic evidence of active disease.",
    "Stable appearance compared with the prior study.",
]

COMPARISONS = [
    "compared with the prior radiograph",
    "unchanged from the previous examination",
    "new since the prior study",
    "improved compared with the last film",
    "worsened since yesterday",
    "interval increase",
    "interval decrease",
]

VIEWS = ["PA and lateral", "AP portable", "AP supine", "PA", "lateral"]

PROMPTS = [
    "Describe the findings in this chest X-ray.",
    "Write the findings section of the radiology report.",
    "Write the impression.",
    "What is abnormal in this image?",
    "Is there a {finding}?",
    "Where is the {finding}?",
    "Locate the {finding} and give its bounding box.",
    "Compare these two chest radiographs.",
    "List the differences between group A and group B.",
    "Which findings are more common in the first set of images?",
    "Is the {device} in a good position?",
]


def _sentences() -> Iterator[str]:
    for severity, finding, location in product(SEVERITIES, FINDINGS, LOCATIONS):
        yield f"There is a {severity} {finding} in the {location}."
    for finding, location in product(FINDINGS, LOCATIONS):
        yield f"{finding.capitalize()} is seen in the {location}."
        yield f"No {finding} in the {location}."
        yield f"Findings: {finding} of the {location}. Impression: {finding}."
    for finding, comparison in product(FINDINGS, COMPARISONS):
        yield f"The {finding} is {comparison}."
    for device, location in product(DEVICES, LOCATIONS):
        yield f"The {device} terminates near the {location}."
        yield f"The tip of the {device} projects over the {location}."
    for view, statement in product(VIEWS, NORMAL_STATEMENTS):
        yield f"{view} view of the chest. {statement}"
    for template, finding in product(PROMPTS, FINDINGS):
        yield template.format(finding=finding, device=DEVICES[len(finding) % len(DEVICES)])
    # Numbers appear in measurements and coordinates.
    for value in range(0, 1001):
        yield f"{value} {value / 1000:.3f} {value % 100} mm {value % 60} cm"


def corpus() -> list[str]:
    """The whole training text, one sentence a line, in a fixed order."""
    return list(_sentences())
