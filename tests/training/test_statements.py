"""Sentences whose truth is known for every image: what the CLIP's sigmoid loss takes as positives."""

from __future__ import annotations

import numpy as np

from raddiff_synth import Finding
from raddiff_training.statements import (
    attribute_groups,
    attribute_targets,
    corpus_sentences,
    counterfactual,
    label_statement,
    negative_statements,
    probe_statements,
    statement_for,
    truth_matrix,
)
from raddiff_training.world import draw_findings

RIGHT_EFFUSION = [Finding("pleural_effusion", {"side": "right", "severity": "moderate"})]
ETT_IN_BRONCHUS = [Finding("endotracheal_tube", {"position": "right_bronchus"})]


def texts_holding(findings: list[Finding], statements) -> set[str]:
    return {s.text for s in statements if s.holds(findings)}


def test_labels_hold_by_their_attributes() -> None:
    statements = [
        label_statement("pleural_effusion", {"side": "right", "severity": "moderate"}),
        label_statement("pleural_effusion", {"side": "right"}),
        label_statement("pleural_effusion", {}),
        label_statement("pleural_effusion", {"side": "left"}),
        label_statement("pleural_effusion", {"severity": "large"}),
        label_statement("endotracheal_tube", {"position": "right_bronchus"}),
    ]
    assert [s.text for s in statements[:3]] == [
        "moderate right pleural effusion",
        "right pleural effusion",
        "pleural effusion",
    ]
    assert texts_holding(RIGHT_EFFUSION, statements) == {s.text for s in statements[:3]}
    assert texts_holding(ETT_IN_BRONCHUS, statements) == {"endotracheal tube in the right main bronchus"}


def test_negative_sentences_hold_only_without_their_findings() -> None:
    normal = negative_statements([])
    texts = {s.text for s in normal}
    assert {"no pleural effusion", "normal heart size", "No support devices.", "Normal chest radiograph."} <= texts
    assert all(s.holds([]) for s in normal)
    with_effusion = texts_holding(RIGHT_EFFUSION, normal)
    assert "no pleural effusion" not in with_effusion
    assert "No pleural effusion or pneumothorax." not in with_effusion
    assert "No support devices." in with_effusion and "Normal chest radiograph." not in with_effusion
    assert "No support devices." not in texts_holding(ETT_IN_BRONCHUS, normal)


def test_the_sentence_drawn_for_an_image_is_true_of_it() -> None:
    rng = np.random.default_rng(0)
    drawn = 0
    for seed in range(300):
        findings = draw_findings(seed)
        statement = statement_for(findings, rng)
        assert statement.holds(findings), (statement, findings)
        drawn += bool(statement.claims[0].present)
    assert 100 < drawn < 250  # both positive and negative sentences are drawn


def test_a_counterfactual_changes_one_attribute() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        fake = counterfactual(RIGHT_EFFUSION[0], rng)
        assert not fake.holds(RIGHT_EFFUSION), fake
        assert fake.holds([Finding("pleural_effusion", {"side": "left", "severity": "moderate"})]) or fake.holds(
            [Finding("pleural_effusion", {"side": "right", "severity": s}) for s in ("small", "large")]
        )


def test_truth_matrix_and_corpus() -> None:
    statements = [label_statement("pleural_effusion", {}), *negative_statements([])[:2]]
    truth = truth_matrix([RIGHT_EFFUSION, [], ETT_IN_BRONCHUS], statements)
    assert truth.shape == (3, 3)
    assert truth[:, 0].tolist() == [True, False, False]
    corpus = corpus_sentences(3)
    assert "moderate right pleural effusion" in corpus or any("pleural effusion" in s for s in corpus)
    assert corpus == corpus_sentences(3)


def test_attribute_groups_are_probe_labels_differing_in_one_attribute() -> None:
    groups = attribute_groups()
    probes = {s.text: s for s in probe_statements()}
    for group in groups:
        assert len(group.values) >= 2 and len(set(group.texts)) == len(group.texts)
        for value, text in zip(group.values, group.texts, strict=True):
            # each label holds exactly for its own value
            finding = Finding(group.kind, {**dict(group.base), group.key: value})
            assert [probes[t].holds([finding]) for t in group.texts] == [t == text for t in group.texts]
    side = next(g for g in groups if (g.kind, g.key) == ("pleural_effusion", "side"))
    assert side.texts == ("right pleural effusion", "left pleural effusion")


def test_attribute_targets_mark_the_values_an_image_has() -> None:
    groups = attribute_groups()
    targets = {(groups[i].kind, groups[i].key): present for i, present in attribute_targets(RIGHT_EFFUSION, groups)}
    assert targets == {
        ("pleural_effusion", "side"): (True, False),
        ("pleural_effusion", "severity"): (False, True, False),
    }
    both_sides = [*RIGHT_EFFUSION, Finding("pleural_effusion", {"side": "left", "severity": "moderate"})]
    kinds = {(groups[i].kind, groups[i].key) for i, _ in attribute_targets(both_sides, groups)}
    assert kinds == {("pleural_effusion", "severity")}  # both sides true: no side contrast to learn
    picc = [Finding("central_line", {"type": "picc", "side": "left", "tip": "svc"})]
    bases = {groups[i].base for i, _ in attribute_targets(picc, groups)}
    assert bases == {(("type", "picc"),)}  # a PICC is contrasted with PICCs, not with central venous catheters
    assert attribute_targets([], groups) == []
