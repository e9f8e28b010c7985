"""The generator: deterministic per seed, every finding visible inside its box, boxes inside the image."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from raddiff_synth.catalog import KINDS
from raddiff_synth.findings import LOBE_NAMES, Finding, SpecError
from raddiff_synth.render import Generator, image_rng

# One representative per kind and per attribute value that changes the drawing.
CASES: list[tuple[str, dict[str, str]]] = [
    ("pleural_effusion", {"side": "right", "severity": "small"}),
    ("pleural_effusion", {"side": "left", "severity": "large"}),
    ("cardiomegaly", {"severity": "mild"}),
    ("cardiomegaly", {"severity": "severe"}),
    *[("consolidation", {"lobe": lobe}) for lobe in LOBE_NAMES],
    *[("atelectasis", {"lobe": lobe}) for lobe in LOBE_NAMES],
    ("nodule", {"size": "nodule", "lobe": "right_upper"}),
    ("nodule", {"size": "mass", "lobe": "left_lower"}),
    ("pneumothorax", {"side": "right", "size": "small"}),
    ("pneumothorax", {"side": "left", "size": "large"}),
    ("edema", {"severity": "mild"}),
    ("edema", {"severity": "severe"}),
    *[("endotracheal_tube", {"position": p}) for p in ("normal", "low", "right_bronchus")],
    *[("enteric_tube", {"position": p}) for p in ("stomach", "esophagus_coiled", "bronchus")],
    ("central_line", {"type": "cvc", "side": "right", "tip": "right_atrium"}),
    ("central_line", {"type": "cvc", "side": "left", "tip": "svc"}),
    ("central_line", {"type": "picc", "side": "left", "tip": "brachiocephalic"}),
    ("cardiac_device", {"type": "pacemaker", "side": "left"}),
    ("cardiac_device", {"type": "icd", "side": "right"}),
]
SIZE = 160


def _finding(kind: str, attributes: dict[str, str], seed: int) -> Finding:
    return KINDS[kind].resolve(attributes, image_rng(seed, 3))


def _box_mask(box: tuple[float, float, float, float], size: int) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros((size, size), dtype=bool)
    mask[int(y0 * size) : int(np.ceil(y1 * size)), int(x0 * size) : int(np.ceil(x1 * size))] = True
    return mask


def test_same_seed_same_image(generator: Generator) -> None:
    findings = [_finding("pleural_effusion", {"side": "right", "severity": "moderate"}, 5)]
    first = generator.render(5, findings, size=128)
    second = generator.render(5, findings, size=128)
    assert np.array_equal(first.pixels, second.pixels)
    assert first.metadata() == second.metadata()


def test_different_seeds_vary_pose_and_exposure(generator: Generator) -> None:
    images = [generator.render(seed, [], size=128) for seed in range(4)]
    for a, b in itertools.pairwise(images):
        assert np.abs(a.pixels.astype(int) - b.pixels.astype(int)).mean() > 1.0
    rotations = {round(image.acquisition.rotation_deg, 3) for image in images}
    assert len(rotations) == 4


def test_output_is_8_bit_square_of_the_requested_size(generator: Generator) -> None:
    for size in (64, 200):
        image = generator.render(3, [], size=size)
        assert image.pixels.shape == (size, size)
        assert image.pixels.dtype == np.uint8
        assert image.png_bytes().startswith(b"\x89PNG")
    # The lungs are dark and the mediastinum and abdomen bright: a radiograph, not noise or a flat field.
    assert image.pixels.std() > 30


@pytest.mark.parametrize(("kind", "attributes"), CASES, ids=[f"{k}-{'-'.join(a.values())}" for k, a in CASES])
def test_finding_changes_its_box_far_more_than_the_rest(
    generator: Generator, kind: str, attributes: dict[str, str]
) -> None:
    seed = 21
    finding = _finding(kind, attributes, seed)
    # Same seed: same pose, exposure and noise, so any change is the finding's.
    plain = generator.render(seed, [], size=SIZE).pixels.astype(float)
    marked = generator.render(seed, [finding], size=SIZE)
    change = np.abs(marked.pixels.astype(float) - plain)
    inside = _box_mask(marked.findings[0].box, SIZE)
    assert inside.any()
    assert change[inside].mean() > 0.3, "the finding is not visible"
    assert change[inside].mean() > 4 * change[~inside].mean()


def test_boxes_stay_inside_the_image(generator: Generator) -> None:
    rng = np.random.default_rng(0)
    for seed in range(30):
        kind, attributes = CASES[int(rng.integers(len(CASES)))]
        image = generator.render(seed, [_finding(kind, attributes, seed)], size=96)
        placed = image.findings[0]
        for box in filter(None, (placed.box, placed.tip_box)):
            x0, y0, x1, y1 = box
            assert 0.0 <= x0 < x1 <= 1.0
            assert 0.0 <= y0 < y1 <= 1.0


def test_right_sided_findings_lie_on_the_viewers_left(generator: Generator) -> None:
    for side in ("right", "left"):
        image = generator.render(4, [_finding("pleural_effusion", {"side": side, "severity": "moderate"}, 4)], size=96)
        x0, _, x1, _ = image.findings[0].box
        centre = (x0 + x1) / 2
        assert centre < 0.5 if side == "right" else centre > 0.5


def test_severity_orders_the_size_of_the_change(generator: Generator) -> None:
    plain = generator.render(8, [], size=SIZE).pixels.astype(float)
    totals = []
    for severity in ("mild", "moderate", "severe"):
        image = generator.render(8, [_finding("cardiomegaly", {"severity": severity}, 8)], size=SIZE)
        totals.append(np.abs(image.pixels.astype(float) - plain).sum())
    assert totals[0] < totals[1] < totals[2]


def test_ap_view_magnifies_the_heart(generator: Generator) -> None:
    pa = generator.render(9, [], size=128, view="PA")
    ap = generator.render(9, [], size=128, view="AP")
    assert pa.acquisition.view == "PA" and ap.acquisition.view == "AP"
    assert not np.array_equal(pa.pixels, ap.pixels)


def test_bad_requests_name_the_problem(generator: Generator) -> None:
    with pytest.raises(SpecError, match="size"):
        generator.render(1, [], size=8)
    with pytest.raises(SpecError, match="view"):
        generator.render(1, [], size=64, view="lateral")
    with pytest.raises(SpecError, match="seed"):
        generator.render(-1, [], size=64)
    with pytest.raises(SpecError, match=r"finding\.severity"):
        KINDS["cardiomegaly"].resolve({"severity": "huge"}, image_rng(1, 3))
    with pytest.raises(SpecError, match=r"finding\.colour"):
        KINDS["cardiomegaly"].resolve({"colour": "red"}, image_rng(1, 3))


def test_open_attributes_are_drawn_per_image_and_recorded(generator: Generator) -> None:
    sides = {KINDS["pneumothorax"].resolve({}, image_rng(seed, 3)).get("side") for seed in range(20)}
    assert sides == {"right", "left"}
    nodule = KINDS["nodule"].resolve({"size": "nodule"}, image_rng(2, 3))
    assert 8.0 <= nodule.get("diameter_mm") <= 24.0
    metadata = generator.render(2, [nodule], size=64).metadata()
    assert metadata["findings"][0]["attributes"]["diameter_mm"] == nodule.get("diameter_mm")
    assert metadata["findings"][0]["label"].endswith("pulmonary nodule")
