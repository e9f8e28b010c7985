"""The test protocol's splits: seed blocks, per-pair sizes, null pairs, and the shipped dev/test/generalisation/null
specs (disjoint seeds, the pair kinds each promises)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from raddiff_synth.cli import SPLIT_SPECS, builtin_spec, split_spec
from raddiff_synth.cohort import plan_pair, write_cohort
from raddiff_synth.findings import SpecError
from raddiff_synth.render import Generator
from raddiff_synth.seeds import PAIRS_PER_BLOCK, benchmark_seed, pair_slot
from raddiff_synth.spec import NULL_DIFFICULTY, NULL_SET1, NULL_SET2, load_spec, parse_spec

EFFUSION = {"kind": "pleural_effusion", "side": "right", "severity": "moderate"}


def _spec(*pairs: dict, **top: object) -> dict:
    return {**top, "pairs": list(pairs)}


def test_seed_block_moves_every_seed_and_block_0_keeps_the_index() -> None:
    pair = {"id": "p", "a": [EFFUSION]}
    dev = parse_spec(_spec(pair, pair | {"id": "q"}))
    moved = parse_spec(_spec(pair, pair | {"id": "q"}, seed_block=2))
    assert [p.slot for p in dev.pairs] == [0, 1]
    assert [p.slot for p in moved.pairs] == [2 * PAIRS_PER_BLOCK, 2 * PAIRS_PER_BLOCK + 1]
    assert plan_pair(dev.pairs[1], 3)[0].seed == benchmark_seed(1, 0, 0)
    assert plan_pair(moved.pairs[1], 3)[0].seed == benchmark_seed(2 * PAIRS_PER_BLOCK + 1, 0, 0)


def test_seed_block_moves_which_images_carry_a_finding() -> None:
    pair = {"id": "p", "a": [EFFUSION | {"prevalence": 0.5}]}
    carriers = [
        [bool(image.findings) for image in plan_pair(parse_spec(_spec(pair, seed_block=block)).pairs[0], 40)[:40]]
        for block in (0, 1)
    ]
    assert sum(carriers[0]) == sum(carriers[1]) == 20
    assert carriers[0] != carriers[1]  # the plan's permutation follows the block too


def test_a_null_pair_may_be_empty_or_the_same_on_both_sides() -> None:
    spec = parse_spec(
        _spec(
            {"id": "normal", "null": True},
            {"id": "same", "null": True, "a": [EFFUSION | {"prevalence": 0.3}], "b": [EFFUSION | {"prevalence": 0.3}]},
        )
    )
    for pair in spec.pairs:
        assert pair.null and pair.difficulty == NULL_DIFFICULTY
        assert (pair.set1, pair.set2) == (NULL_SET1, NULL_SET2)
    assert sum(bool(i.findings) for i in plan_pair(spec.pairs[1], 10)) == 6  # 3 a side


def test_null_key_works_unquoted_in_yaml(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("pairs:\n  - id: n\n    null: true\n")
    assert load_spec(path).pairs[0].null


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ({"null": True, "a": [EFFUSION]}, r"pairs\[0\]\.b: a null pair's sides must carry the same findings"),
        (
            {"null": True, "a": [EFFUSION | {"prevalence": 0.3}], "b": [EFFUSION | {"prevalence": 0.4}]},
            r"pairs\[0\]\.b: a null pair",
        ),
        ({"null": True, "difficulty": "easy"}, r"pairs\[0\]\.difficulty: 'easy' is not one of null"),
        ({"null": "yes"}, r"pairs\[0\]\.null"),
        ({"a": [EFFUSION], "b": [EFFUSION]}, r"pairs\[0\]: a and b carry the same findings.*null: true"),
        ({}, r"pairs\[0\]: both a and b are empty.*null: true"),
        ({"difficulty": "null", "a": [EFFUSION]}, r"pairs\[0\]\.difficulty: 'null'"),
        ({"a": [EFFUSION], "size": 4096}, r"pairs\[0\]\.size"),
    ],
)
def test_bad_null_pairs_and_sizes_name_the_key(pair: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(_spec({"id": "p", **pair}))


@pytest.mark.parametrize(("top", "key"), [({"seed_block": -1}, "^seed_block"), ({"seed_block": 50}, "^seed_block")])
def test_bad_seed_block_names_the_key(top: dict, key: str) -> None:
    with pytest.raises(SpecError, match=key):
        parse_spec(_spec({"id": "p", "a": [EFFUSION]}, **top))


def test_a_spec_holds_at_most_one_seed_block_of_pairs() -> None:
    pairs = [{"id": f"p{i}", "a": [EFFUSION]} for i in range(PAIRS_PER_BLOCK + 1)]
    with pytest.raises(SpecError, match="seed block"):
        parse_spec(_spec(*pairs))
    assert pair_slot(0, PAIRS_PER_BLOCK - 1) < pair_slot(1, 0)


def test_written_null_pairs_and_size_overrides(tmp_path: Path, generator: Generator) -> None:
    spec = parse_spec(
        _spec(
            {"id": "big", "a": [EFFUSION], "size": 80},
            {"id": "nothing", "null": True},
            size=64,
            per_set=2,
            seed_block=3,
        )
    )
    lines = [json.loads(line) for line in write_cohort(spec, tmp_path, generator=generator).read_text().splitlines()]
    assert "null" not in lines[0] and lines[1]["null"] is True
    assert (lines[1]["set1"], lines[1]["set2"]) == (NULL_SET1, NULL_SET2)
    assert Image.open(tmp_path / lines[0]["set1_images"][0]).size == (80, 80)
    assert Image.open(tmp_path / lines[1]["set1_images"][0]).size == (64, 64)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["seed_block"] == 3 and manifest["size"] == 64
    assert manifest["pairs"][0]["size"] == 80 and manifest["pairs"][1]["null"] is True
    # A size given to the writer (--size) overrides the pair's own, so trial runs stay small.
    again = write_cohort(spec, tmp_path / "small", size=48, generator=generator)
    first = json.loads(again.read_text().splitlines()[0])
    assert Image.open(tmp_path / "small" / first["set1_images"][0]).size == (48, 48)


SHIPPED = {split: load_spec(split_spec(split)) for split in SPLIT_SPECS}


def test_dev_is_the_shipped_benchmark_with_its_seeds() -> None:
    assert split_spec("dev") == builtin_spec()
    assert SHIPPED["dev"].seed_block == 0
    assert [p.slot for p in SHIPPED["dev"].pairs] == list(range(len(SHIPPED["dev"].pairs)))


def test_shipped_splits_share_no_seed() -> None:
    owner: dict[int, str] = {}
    for split, spec in SHIPPED.items():
        for pair in spec.pairs:
            for image in plan_pair(pair):
                assert image.seed not in owner, f"{split}/{pair.id} reuses a seed of {owner[image.seed]}"
                owner[image.seed] = f"{split}/{pair.id}"
    assert len({spec.seed_block for spec in SHIPPED.values()}) == len(SHIPPED)


def test_test_split_has_dev_kinds_mixed_difficulty_and_no_dev_pair() -> None:
    test, dev = SHIPPED["test"], SHIPPED["dev"]
    assert 20 <= len(test.pairs) <= 26
    assert {p.difficulty for p in test.pairs} == {"easy", "medium", "hard"}
    assert all(p.per_set == 150 and p.size is None and not p.null for p in test.pairs) and test.size == 512
    assert {f.kind for p in test.pairs for f in p.a + p.b} <= {f.kind for p in dev.pairs for f in p.a + p.b}
    dev_contrasts = {(tuple(f.key() for f in p.a), tuple(f.key() for f in p.b)) for p in dev.pairs}
    for pair in test.pairs:
        assert (tuple(f.key() for f in pair.a), tuple(f.key() for f in pair.b)) not in dev_contrasts, pair.id


def test_generalisation_split_has_the_kinds_dev_lacks() -> None:
    pairs = SHIPPED["generalisation"].pairs
    rates = {(tuple(f.rate for f in p.a), tuple(f.rate for f in p.b)) for p in pairs}
    assert ((0.6,), ()) in rates and ((0.6,), (0.4,)) in rates
    assert any(len(p.a) >= 2 and len({f.kind for f in p.a}) >= 2 for p in pairs)  # combinations
    assert any(p.a and p.b and p.a[0].kind != p.b[0].kind for p in pairs)  # one finding against another
    lateral = {
        p.a[0].kind for p in pairs if p.a and p.b and p.a[0].kind == p.b[0].kind and _side(p.a[0]) != _side(p.b[0])
    }
    assert {"atelectasis", "nodule", "central_line", "cardiac_device"} <= lateral
    assert any(f.kind == "cardiac_device" and f.attributes.get("side") == "right" for p in pairs for f in p.a)
    assert sum(p.per_set == 30 for p in pairs) >= 2
    assert sum(p.size == 1024 for p in pairs) == 2
    assert 14 <= len(pairs) <= 18


def _side(finding: object) -> str:
    attributes = finding.attributes  # type: ignore[attr-defined]
    return attributes.get("side") or attributes.get("lobe", "").split("_")[0]


def test_null_split_has_twenty_null_pairs_of_several_kinds() -> None:
    pairs = SHIPPED["null"].pairs
    assert len(pairs) >= 20 and all(p.null for p in pairs)
    normal = [p for p in pairs if not p.a and not p.background]
    same_finding = [p for p in pairs if p.a and not any(f.kind in _DEVICES for f in p.a)]
    devices = [p for p in pairs if p.a and all(f.kind in _DEVICES for f in p.a)]
    mixes = [p for p in pairs if not p.a and p.background]
    assert min(len(normal), len(same_finding), len(devices), len(mixes)) >= 3


_DEVICES = {"endotracheal_tube", "enteric_tube", "central_line", "cardiac_device"}
