"""GET /v1/analyses/{id}/report and /images/{n}: what the page shows, the images it may serve, and the
answers for analyses without a report."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from raddiff_orchestrator.report.images import analysis_images
from raddiff_orchestrator.report.plots import score_histogram
from tests.report.conftest import AUROCS, FINDINGS, Analyses

IMAGE_LINK = re.compile(r'src="images/(\d+)\?size=(\d+)"')


def _page(analyses: Analyses, analysis_id: str) -> tuple[int, str, str]:
    reply = analyses.client.get(f"/v1/analyses/{analysis_id}/report")
    return reply.status_code, reply.headers["content-type"], reply.text


def test_the_report_shows_every_finding_in_rank_order_with_its_statistics(analyses: Analyses) -> None:
    status, kind, page = _page(analyses, analyses.finished)
    assert status == 200 and kind.startswith("text/html")
    assert "<script" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; opacity" in page
    escaped = [f.replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;") for f in FINDINGS]
    places = [page.index(f"<a href=\"#finding-{rank}\">{text}</a>") for rank, text in enumerate(escaped, 1)]
    assert places == sorted(places)
    for finding in analyses.result["findings"]:
        low, high = finding["auroc_ci"]
        assert f"{finding['auroc']:.3f}" in page and f"{low:.3f}–{high:.3f}" in page
    assert "&lt; 0.001" in page  # the first finding's p of 0.0009, as HTML
    assert "0.060" in page and "0.090" in page  # the second finding's p (0.06) and q (0.09)
    # Each finding says whether it is supported, and why not where it is not; the result has a verdict.
    assert page.count("✓ supported") == 1 and page.count("✗ not supported") == len(FINDINGS) - 1
    assert "moves with every text: specific AUROC 0.520, q 0.6 (FDR 0.05)" in page
    assert f"1 of {len(FINDINGS)} findings supported at FDR 0.05." in page
    assert "0.910 (0.860–0.950)" in page  # the specific AUROC and its interval, with the evidence
    # Plain words for a clinician, next to the numbers.
    assert f"better than one of set B {round(100 * AUROCS[0])}% of the time" in page
    assert "2 · matches the ground truth" in page and "0 · does not match" in page
    # Sets, history, settings and notes.
    assert "Set A · effusion · 8 images" in page and "Set B · no effusion · 8 images" in page
    assert "Iteration 1" in page and "Iteration 2" in page and "Started from the previous iteration" in page
    assert "proposer.num_rounds" in page and "the A-versus-B similarity map is flat" in page


def test_each_finding_has_its_distribution_its_extreme_images_and_its_zoom_crops(analyses: Analyses) -> None:
    _, _, page = _page(analyses, analyses.finished)
    sections = [part.split("</article>")[0] for part in page.split('<article class="finding"')[1:]]
    assert len(sections) == len(FINDINGS)
    for section, finding in zip(sections, analyses.result["findings"], strict=True):
        assert section.count("<svg") == 1 and section.count("<polygon") == 2  # A and B distributions
        thumbs = IMAGE_LINK.findall(section.split("Zoomed crops")[0])
        assert len(thumbs) == len(finding["most_a_like"]) + len(finding["least_a_like"])
        for entry in finding["most_a_like"]:
            assert f"{entry['score']:.4f}" in section
    first, second = sections[0], sections[1]
    assert "x 0.10–0.50, y 0.55–0.90" in first and "cut from 4 images of A (top rows) and 4 of B" in first
    assert "differed most between A and B" in first  # the model backend, in words
    assert "Proposed from whole images" in second


def test_every_image_the_page_links_is_served_and_is_the_right_image(analyses: Analyses) -> None:
    _, _, page = _page(analyses, analyses.finished)
    listed = analysis_images(analyses.store.get(analyses.finished).task, analyses.result)
    links = set(IMAGE_LINK.findall(page))
    assert links, "the report shows no image"
    for n, size in links:
        reply = analyses.client.get(f"/v1/analyses/{analyses.finished}/images/{n}?size={size}")
        assert reply.status_code == 200 and reply.headers["content-type"] == "image/jpeg"
        served = Image.open(io.BytesIO(reply.content))
        original = analyses.images.load(listed[int(n)], mode="L")
        assert max(served.size) <= int(size)
        # The same picture: the original brought to the served size differs only by JPEG's loss.
        expected = np.asarray(original.resize(served.size, Image.Resampling.LANCZOS), dtype=np.float32)
        assert np.abs(np.asarray(served.convert("L"), dtype=np.float32) - expected).mean() < 4.0
    assert analyses.zoom_grid in [listed[int(n)] for n, _ in links]


def test_only_the_analysis_own_images_can_be_addressed(analyses: Analyses) -> None:
    listed = analysis_images(analyses.store.get(analyses.finished).task, analyses.result)
    scratch = [u for u in listed if u.startswith("scratch://")]
    assert listed[:16] == analyses.set_a + analyses.set_b
    assert analyses.zoom_grid in scratch and len(scratch) == 1 + 8  # the zoom grid and its eight crops
    assert analyses.stray_scratch not in listed
    reply = analyses.client.get(f"/v1/analyses/{analyses.finished}/images/{len(listed)}")
    assert reply.status_code == 404
    assert reply.json()["detail"] == (
        f"analysis {analyses.finished!r} has {len(listed)} images; there is no image {len(listed)}"
    )
    # An analysis without a result shows its inputs only.
    assert analysis_images(analyses.store.get(analyses.queued).task, None) == analyses.set_a + analyses.set_b


@pytest.mark.parametrize(
    "path, status",
    [
        ("/v1/analyses/{finished}/images/-1", 422),
        ("/v1/analyses/{finished}/images/0?size=4096", 422),
        ("/v1/analyses/{finished}/images/0?size=8", 422),
        ("/v1/analyses/{finished}/images/passwd", 422),
        ("/v1/analyses/{finished}/images/..%2F..%2Fetc%2Fpasswd", 404),  # no route takes a path
        ("/v1/analyses/no-such-id/images/0", 404),
    ],
)
def test_bad_image_requests(analyses: Analyses, path: str, status: int) -> None:
    reply = analyses.client.get(path.format(finished=analyses.finished))
    assert reply.status_code == status, reply.text


def test_an_image_gone_since_the_analysis_is_a_clear_404(analyses: Analyses, tmp_path) -> None:
    listed = analysis_images(analyses.store.get(analyses.finished).task, analyses.result)
    n = listed.index(analyses.set_b[-1])
    path = analyses.images.resolve(analyses.set_b[-1])
    moved = tmp_path / "moved.png"
    path.rename(moved)
    try:
        reply = analyses.client.get(f"/v1/analyses/{analyses.finished}/images/{n}")
    finally:
        moved.rename(path)
    assert reply.status_code == 404
    assert reply.json()["detail"].startswith(f"image {n} of analysis {analyses.finished!r} cannot be read any more")


@pytest.mark.parametrize(
    "state, heading, words, refreshes",
    [
        ("queued", "The report is not ready yet", "This analysis is queued (waiting)", True),
        ("running", "The report is not ready yet", "This analysis is running (now at “rank”, 40% done)", True),
        ("failed", "This analysis failed", "What went wrong: embedding EmbedImages failed: UNAVAILABLE", False),
        ("cancelled", "This analysis was cancelled", "it has no evidence report", False),
    ],
)
def test_an_analysis_without_a_result_gets_409_and_a_page_that_says_why(
    analyses: Analyses, state: str, heading: str, words: str, refreshes: bool
) -> None:
    status, kind, page = _page(analyses, getattr(analyses, state))
    assert status == 409 and kind.startswith("text/html")
    assert f"<h1>{heading}</h1>" in page and words in page
    assert ('http-equiv="refresh"' in page) == refreshes


def test_unknown_id_is_a_404_page(analyses: Analyses) -> None:
    status, kind, page = _page(analyses, "no-such-id")
    assert status == 404 and kind.startswith("text/html")
    assert "No analysis has the id &#39;no-such-id&#39;." in page


def test_the_histogram_draws_each_set_as_a_share_of_its_own_images() -> None:
    svg = score_histogram([0.0, 0.1, 0.2, 0.3], [0, 2, 2], [4, 0, 0], mean_a=0.2, mean_b=0.05, width=400, height=200)
    polygons = re.findall(r'<polygon points="([^"]+)" fill="(#[0-9a-f]+)"', svg)
    assert [colour for _, colour in polygons] == ["#0072b2", "#d55e00"]  # B drawn first, A on top

    def heights(points: str) -> list[float]:
        ys = [float(p.split(",")[1]) for p in points.split()]
        return ys[1:-1:2]  # one y per bin (each bin is two points at the same height)

    baseline = 200 - 40  # Frame's bottom margin
    b_heights, a_heights = (heights(p) for p, _ in polygons)
    # B has all 4 images in bin 1 (100% -> the top of the axis); A splits 2 and 2 (50% each).
    top = 12
    assert b_heights[0] == pytest.approx(top) and b_heights[1:] == [baseline, baseline]
    assert a_heights[0] == baseline and a_heights[1] == pytest.approx((top + baseline) / 2)
    assert svg.count("stroke-dasharray") == 2  # both means
