"""Sentences about an image whose truth is known for every image: the CLIP's text side.

A Statement is a sentence plus the claims it makes (a kind present with some attributes, or a kind absent);
it holds for an image when every claim does. The sentences are the synth's own report sentences (positive
and negative templates), RadDiffBench-style labels ("moderate right pleural effusion", "no pleural effusion"),
and those labels with attributes left open ("right pleural effusion", "pleural effusion"), so that the CLIP
learns the short phrases a proposer writes as well as report prose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations, product

import numpy as np

from raddiff_synth import Finding
from raddiff_synth.catalog import KINDS
from raddiff_synth.report import DEVICE_KINDS, NEGATIVE, NO_ACUTE, NO_DEVICES, POSITIVE

# Attributes a phrase may leave open. The others change the words for the finding itself ("mass" vs "pulmonary
# nodule", "PICC" vs "central venous catheter", "vascular congestion" vs "pulmonary edema").
FIXED_ATTRIBUTES = {"nodule": ("size",), "central_line": ("type",), "edema": ("severity",)}


@dataclass(frozen=True)
class Claim:
    kind: str
    # attribute -> its value, or a tuple of the values it may take ("pulmonary edema": moderate or severe)
    attributes: tuple[tuple[str, str | tuple[str, ...]], ...] = ()
    present: bool = True

    def holds(self, findings: Sequence[Finding]) -> bool:
        found = any(f.kind == self.kind and all(_fits(f.get(k), v) for k, v in self.attributes) for f in findings)
        return found == self.present


def _fits(value: object, wanted: str | tuple[str, ...]) -> bool:
    return value in wanted if isinstance(wanted, tuple) else value == wanted


@dataclass(frozen=True)
class Statement:
    text: str
    claims: tuple[Claim, ...]

    def holds(self, findings: Sequence[Finding]) -> bool:
        return all(claim.holds(findings) for claim in self.claims)


def absent(*kinds: str) -> tuple[Claim, ...]:
    return tuple(Claim(kind, (), False) for kind in kinds)


def categorical(finding: Finding) -> dict[str, str]:
    """The finding's attributes that a phrase names (drawn sizes and anchors left out)."""
    return {k: finding.attributes[k] for k in KINDS[finding.kind].choices if k in finding.attributes}


def label_statement(kind: str, attributes: dict[str, str]) -> Statement:
    """The RadDiffBench-style label of `kind` with these attributes (any left out are open)."""
    text = KINDS[kind].label(Finding(kind, attributes))
    return Statement(text, (Claim(kind, tuple(sorted(attributes.items()))),))


def negative_label(kind: str) -> Statement:
    return Statement(KINDS[kind].negative, absent(kind))


def report_sentence(finding: Finding, rng: np.random.Generator) -> Statement:
    """One of the synth's report sentences for the finding, wording drawn from rng."""
    text = POSITIVE[finding.kind](finding, lambda options: options[int(rng.integers(len(options)))])
    return Statement(text, (Claim(finding.kind, tuple(sorted(categorical(finding).items()))),))


def partial_label(finding: Finding, rng: np.random.Generator) -> Statement:
    """The finding's label with a random subset of its open-able attributes left out."""
    attributes = categorical(finding)
    fixed = FIXED_ATTRIBUTES.get(finding.kind, ())
    kept = {k: v for k, v in attributes.items() if k in fixed or rng.random() < 0.5}
    return label_statement(finding.kind, kept)


def positive_statement(finding: Finding, rng: np.random.Generator) -> Statement:
    draw = rng.random()
    if draw < 0.35:
        return label_statement(finding.kind, categorical(finding))
    if draw < 0.65:
        return partial_label(finding, rng)
    return report_sentence(finding, rng)


def negative_statements(findings: Sequence[Finding]) -> list[Statement]:
    """Every negative sentence that is true of an image with these findings."""
    present = {f.kind for f in findings}
    out = [negative_label(kind) for kind in KINDS if kind not in present]
    for group, options in NEGATIVE.items():
        if not group & present:
            out += [Statement(text, absent(*sorted(group))) for text in options]
    if not present & set(DEVICE_KINDS):
        out += [Statement(text, absent(*DEVICE_KINDS)) for text in NO_DEVICES]
    if not present:
        out += [Statement(text, absent(*KINDS)) for text in NO_ACUTE]
    return out


def statement_for(findings: Sequence[Finding], rng: np.random.Generator, positive_share: float = 0.65) -> Statement:
    """One true sentence about an image: about one of its findings, or a negative one."""
    if findings and rng.random() < positive_share:
        return positive_statement(findings[int(rng.integers(len(findings)))], rng)
    options = negative_statements(findings)
    return options[int(rng.integers(len(options)))]


def counterfactual(finding: Finding, rng: np.random.Generator) -> Statement:
    """A label for the same kind with one attribute changed (right -> left, moderate -> large): a hard negative
    for the image it came from (unless that image also has the changed finding: truth is computed, not assumed)."""
    attributes = categorical(finding)
    choices = KINDS[finding.kind].choices
    if not attributes:
        return negative_label(finding.kind)
    key = sorted(attributes)[int(rng.integers(len(attributes)))]
    others = [v for v in choices[key] if v != attributes[key]]
    attributes[key] = others[int(rng.integers(len(others)))]
    fixed = FIXED_ATTRIBUTES.get(finding.kind, ())
    kept = {k: v for k, v in attributes.items() if k == key or k in fixed or rng.random() < 0.5}
    return label_statement(finding.kind, kept)


def probe_statements() -> list[Statement]:
    """Every finding's label at every level of detail ("pleural effusion", "right pleural effusion", "moderate right
    pleural effusion", ...) and its negation, about 110 sentences. Added to every batch, they tell each image at every
    step which of them hold: a dense multi-label signal for each (costly) image forward."""
    out: dict[str, Statement] = {}
    for kind, spec in KINDS.items():
        fixed = FIXED_ATTRIBUTES.get(kind, ())
        open_keys = [k for k in spec.choices if k not in fixed]
        for fixed_values in product(*(spec.choices[k] for k in fixed)):
            base = dict(zip(fixed, fixed_values, strict=True))
            for size in range(len(open_keys) + 1):
                for keys in combinations(open_keys, size):
                    for values in product(*(spec.choices[k] for k in keys)):
                        statement = label_statement(kind, {**base, **dict(zip(keys, values, strict=True))})
                        out.setdefault(statement.text, statement)
        out.setdefault(spec.negative, negative_label(kind))
    # What a proposer writes for edema without a grade: moderate or severe (mild is "vascular congestion").
    out["pulmonary edema"] = Statement("pulmonary edema", (Claim("edema", (("severity", ("moderate", "severe")),)),))
    return list(out.values())


def truth_matrix(images: Sequence[Sequence[Finding]], statements: Sequence[Statement]) -> np.ndarray:
    """(images, statements) booleans: does statement j hold for image i."""
    return np.array([[s.holds(findings) for s in statements] for findings in images], dtype=bool).reshape(
        len(images), len(statements)
    )


def corpus_sentences(count: int, seed: int = 0) -> list[str]:
    """Sentences of every kind the CLIP and the VLM read and write, for training their tokenizers."""
    rng = np.random.default_rng([seed, 7])
    out: list[str] = []
    for kind, spec in KINDS.items():
        out.append(spec.negative)
        for _ in range(count):
            finding = spec.resolve({}, rng)
            out += [
                label_statement(kind, categorical(finding)).text,
                partial_label(finding, rng).text,
                report_sentence(finding, rng).text,
            ]
    for options in (*NEGATIVE.values(), NO_DEVICES, NO_ACUTE):
        out += list(options)
    return out


@dataclass(frozen=True)
class AttributeGroup:
    """The labels of one kind that differ only in one attribute ("left pleural effusion", "right pleural
    effusion"), the kind's fixed attributes (nodule or mass, CVC or PICC) held at `base`."""

    kind: str
    key: str
    base: tuple[tuple[str, str], ...]
    values: tuple[str, ...]
    texts: tuple[str, ...]  # one label per value, in `values` order


def attribute_groups() -> list[AttributeGroup]:
    """Every (kind, open attribute, fixed base) with two or more values: the attribute-contrast term's choices. Each
    text is a probe sentence (probe_statements), so its embedding is already in every batch."""
    groups = []
    for kind, spec in KINDS.items():
        fixed = FIXED_ATTRIBUTES.get(kind, ())
        for key in (k for k in spec.choices if k not in fixed):
            for fixed_values in product(*(spec.choices[k] for k in fixed)):
                base = dict(zip(fixed, fixed_values, strict=True))
                values = tuple(spec.choices[key])
                texts = tuple(label_statement(kind, {**base, key: v}).text for v in values)
                groups.append(AttributeGroup(kind, key, tuple(sorted(base.items())), values, texts))
    return groups


def attribute_targets(
    findings: Sequence[Finding], groups: Sequence[AttributeGroup]
) -> list[tuple[int, tuple[bool, ...]]]:
    """For an image: (group index, which of the group's values it has) for each group its findings fall in. Two
    instances (a left and a right effusion) make two values true; a group whose every value is true is left out."""
    out = []
    for index, group in enumerate(groups):
        matching = [f for f in findings if f.kind == group.kind and all(f.get(k) == v for k, v in group.base)]
        if not matching:
            continue
        present = tuple(any(f.get(group.key) == v for f in matching) for v in group.values)
        if any(present) and not all(present):
            out.append((index, present))
    return out
