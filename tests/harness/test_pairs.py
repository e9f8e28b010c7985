"""Reading benchmark JSONLs and configs, and the request each pair becomes."""

from __future__ import annotations

from pathlib import Path

import pytest

from raddiff_bench.config import judge_backend, read_config, wants_reports, with_judge_backend
from raddiff_bench.pairs import (
    BadInput,
    image_reports,
    load_image_pair,
    load_image_pairs,
    load_report_pairs,
)
from raddiff_bench.reports import max_findings
from raddiff_bench.runner import analysis_request
from tests.harness.conftest import write_jsonl


def pair_line(pair_id: str | None, a: list[str], b: list[str], difficulty: str | None = "easy") -> dict:
    line: dict = {"set1": f"{pair_id} present", "set2": "normal", "set1_images": a, "set2_images": b}
    if pair_id is not None:
        line["pair_id"] = pair_id
    if difficulty is not None:
        line["difficulty"] = difficulty
    return line


def test_pairs_are_indexed_among_non_blank_lines_and_relative_paths_start_at_the_jsonl(tmp_path: Path) -> None:
    jsonl = write_jsonl(
        tmp_path / "bench.jsonl",
        [
            pair_line("p0", ["images/p0/A/0.png"], ["/abs/b0.png"]),
            "",
            "   ",
            pair_line(None, ["file:///data/a.png"], ["x/b.png"], difficulty=None),
        ],
    )
    first, second = load_image_pairs(jsonl)
    assert (first.index, first.id, first.difficulty) == (0, "p0", "easy")
    assert first.images_a == (str(tmp_path / "images/p0/A/0.png"),) and first.images_b == ("/abs/b0.png",)
    assert (second.index, second.id, second.difficulty) == (1, "pair-1", "unknown")
    assert second.images_a == ("file:///data/a.png",)  # a uri is the orchestrator's to read
    assert load_image_pair(jsonl, 1) == second
    # The orchestrator may see the images under another root than this machine (a Job's pod).
    moved = load_image_pair(jsonl, 0, image_root=Path("/data/bench"))
    assert moved.images_a == ("/data/bench/images/p0/A/0.png",)


def test_choosing_pairs_by_id_keeps_file_order_and_names_unknown_ids(tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path / "b.jsonl", [pair_line(f"p{i}", [f"a{i}.png"], [f"b{i}.png"]) for i in range(4)])
    assert [p.id for p in load_image_pairs(jsonl, ["p3", "p1"])] == ["p1", "p3"]
    assert [p.index for p in load_image_pairs(jsonl, ["p3", "p1"])] == [1, 3]
    with pytest.raises(BadInput, match=r"has no pair\(s\) nope; its pairs are p0, p1, p2, p3"):
        load_image_pairs(jsonl, ["p1", "nope"])


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"set1": "a"', ""], r"b.jsonl:1: not JSON"),
        ([pair_line("ok", ["a"], ["b"]), "[1, 2]"], r"b.jsonl:2: a pair must be a JSON object, not list"),
        (["", " "], "holds no pairs"),
        ([{"set1": "a", "set2": "b", "set1_images": ["a.png"]}], r"b.jsonl:1: set2_images must be a non-empty list"),
        ([pair_line("e", [], ["b.png"])], "set1_images must be a non-empty list"),
        ([pair_line("e", ["a.png", 3], ["b.png"])], "set1_images must be a non-empty list of strings"),
        ([{**pair_line("e", ["a"], ["b"]), "set1": " "}], "set1 must be a non-empty string"),
        ([{**pair_line("e", ["a"], ["b"]), "difficulty": 3}], "difficulty must be a non-empty string"),
    ],
)
def test_malformed_pairs_are_bad_input_naming_the_line(tmp_path: Path, lines: list, message: str) -> None:
    jsonl = write_jsonl(tmp_path / "b.jsonl", lines)
    with pytest.raises(BadInput, match=message):
        load_image_pairs(jsonl)


def test_an_index_out_of_range_and_a_missing_file_are_bad_input(tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path / "b.jsonl", [pair_line("p0", ["a"], ["b"]), "", pair_line("p1", ["a"], ["b"])])
    with pytest.raises(BadInput, match=r"index 2 is out of range: .* holds 2 pair\(s\), indexed from 0"):
        load_image_pair(jsonl, 2)
    with pytest.raises(BadInput, match="out of range"):
        load_image_pair(jsonl, -1)
    with pytest.raises(BadInput, match=r"cannot read .*absent\.jsonl"):
        load_image_pairs(tmp_path / "absent.jsonl")
    (tmp_path / "latin.jsonl").write_bytes(b'{"set1": "caf\xe9"}\n')
    with pytest.raises(BadInput, match="not UTF-8"):
        load_image_pairs(tmp_path / "latin.jsonl")


def test_reports_are_read_beside_each_image(tmp_path: Path) -> None:
    for name, text in (("a.png", "Moderate right pleural effusion."), ("b.png", "No pleural effusion.")):
        (tmp_path / name).write_bytes(b"png")
        (tmp_path / name).with_suffix(".txt").write_text(text)
    jsonl = write_jsonl(tmp_path / "b.jsonl", [pair_line("p", ["a.png"], ["b.png"])])
    (pair,) = load_image_pairs(jsonl)
    assert image_reports(pair) == {
        str(tmp_path / "a.png"): "Moderate right pleural effusion.",
        str(tmp_path / "b.png"): "No pleural effusion.",
    }
    (tmp_path / "b.txt").unlink()
    with pytest.raises(BadInput, match=r"pair p: the config asks for reports but .*b\.txt cannot be read"):
        image_reports(pair)


def test_the_request_carries_ground_truth_the_config_unchanged_and_reports_only_when_asked(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"png")
    (tmp_path / "a.txt").write_text("Small left pneumothorax.")
    (tmp_path / "b.png").write_bytes(b"png")
    (tmp_path / "b.txt").write_text("No pneumothorax.")
    jsonl = write_jsonl(tmp_path / "b.jsonl", [pair_line("ptx", ["a.png"], ["b.png"])])
    (pair,) = load_image_pairs(jsonl)
    config = {"num_iterations": 1, "proposer": {"method": "offline", "num_rounds": 1}}
    body = analysis_request(pair, config)
    assert body["config"] is config and "reports" not in body
    assert body["ground_truth"] == {"a": "ptx present", "b": "normal"}
    assert body["input"] == {
        "kind": "sets",
        "set_a": [str(tmp_path / "a.png")],
        "set_b": [str(tmp_path / "b.png")],
        "name_a": "ptx present",
        "name_b": "normal",
    }
    with_reports = analysis_request(pair, {"proposer": {"method": "RadiologyReports"}})
    assert with_reports["reports"] == {
        str(tmp_path / "a.png"): "Small left pneumothorax.",
        str(tmp_path / "b.png"): "No pneumothorax.",
    }


@pytest.mark.parametrize(
    ("config", "wanted"),
    [
        ({}, False),
        ({"proposer": {"method": "reports"}}, True),
        ({"proposer": {"method": "RadiologyReports"}}, True),
        ({"proposer": "reports"}, True),  # the first API version's flat key
        ({"proposer": {"method": "raddiff"}}, False),
        ({"proposer": "offline"}, False),
    ],
)
def test_which_configs_want_reports(config: dict, wanted: bool) -> None:
    assert wants_reports(config) is wanted


def test_the_judge_backend_goes_where_the_config_keeps_it() -> None:
    nested = {"evaluator": {"n_hypotheses": 50}, "seed": 1}
    changed = with_judge_backend(nested, "llm")
    assert changed == {"evaluator": {"n_hypotheses": 50, "backend": "llm"}, "seed": 1}
    assert nested == {"evaluator": {"n_hypotheses": 50}, "seed": 1}  # the caller's config is not touched
    assert with_judge_backend({"sample_size": 8}, "semantic") == {"sample_size": 8, "judge_backend": "semantic"}
    assert with_judge_backend(nested, None) is nested
    assert judge_backend(changed) == "llm" and judge_backend({"judge_backend": "semantic"}) == "semantic"
    assert judge_backend({}) == ""


def test_config_files_are_read_as_given_and_bad_ones_are_bad_input(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("num_iterations: 1\nproposer:\n  method: offline\n")
    assert read_config(good) == {"num_iterations": 1, "proposer": {"method": "offline"}}
    assert read_config(None) == {}
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(BadInput, match="must be a mapping"):
        read_config(listed)
    broken = tmp_path / "broken.yaml"
    broken.write_text("proposer: [unclosed\n")
    with pytest.raises(BadInput, match="not valid YAML"):
        read_config(broken)
    with pytest.raises(BadInput, match="cannot read config"):
        read_config(tmp_path / "absent.yaml")


def test_report_pairs_take_embedded_texts_or_read_them_by_id(tmp_path: Path) -> None:
    texts = {"CXR1": "Cardiomegaly.", "CXR2": "Normal heart size.", "CXR3": "Mild cardiomegaly."}

    def reader(ids: list[str]) -> list[str]:
        missing = [i for i in ids if i not in texts]
        if missing:
            raise KeyError(f"no OpenI report with id {', '.join(missing)}")
        return [texts[i] for i in ids]

    jsonl = write_jsonl(
        tmp_path / "r.jsonl",
        [
            {"set1": "cardiomegaly", "set2": "normal", "set1_reports": ["CXR1", "CXR3"], "set2_reports": ["CXR2"],
             "pair_id": "cm", "difficulty": "easy"},
            {"set1": "x", "set2": "y", "set1_texts": ["t1"], "set2_texts": ["t2"], "set1_reports": ["NOPE"]},
        ],
    )  # fmt: skip
    by_id, embedded = load_report_pairs(jsonl, read_texts=reader)
    assert by_id.texts_a == ("Cardiomegaly.", "Mild cardiomegaly.") and by_id.texts_b == ("Normal heart size.",)
    assert embedded.texts_a == ("t1",) and embedded.id == "pair-1"  # embedded texts win over ids
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"set1": "x", "set2": "y", "set1_reports": ["CXR1"],
                                                "set2_reports": ["CXR9"]}])  # fmt: skip
    with pytest.raises(BadInput, match=r"bad.jsonl:1: no OpenI report with id CXR9"):
        load_report_pairs(bad, read_texts=reader)
    with pytest.raises(BadInput, match="no reader of report texts"):
        load_report_pairs(bad)


def test_the_number_of_report_findings_comes_from_the_config() -> None:
    assert max_findings({}) == 10
    assert max_findings({"proposer": {"num_hypotheses": 4}}) == 4
    assert max_findings({"max_findings": 6}) == 6
    with pytest.raises(BadInput, match="positive integer"):
        max_findings({"proposer": {"num_hypotheses": 0}})
