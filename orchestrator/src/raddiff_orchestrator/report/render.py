"""Rendering: the evidence report of a finished analysis, and the short page shown instead of it."""

from __future__ import annotations

import math
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from raddiff_orchestrator.report import templates
from raddiff_orchestrator.report.view import JUDGE_WORDS, Finding, ReportView, Search, Thumb, build_view

BACKEND_WORDS = {
    "model": "where the image model's similarity to the finding differed most between A and B",
    "vlm": "the vision-language model's answer to where the finding is",
    "llm": "the language model, looking at the two sets side by side",
}

BACKEND_SHORT = {"model": "image model's similarity map", "vlm": "vision-language model", "llm": "language model"}


def _num(value: float | None, places: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{places}f}"


def _pvalue(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if value < 0.001:
        return "< 0.001"
    return f"{value:.3f}" if value < 0.1 else f"{value:.2f}"


def _interval(ci: list[float]) -> str:
    return f"{ci[0]:.3f}–{ci[1]:.3f}" if len(ci) == 2 else "–"


def _pct(value: float) -> str:
    return f"{100 * min(1.0, max(0.0, value)):.2f}%"


def _region_words(search: Search) -> str:
    if search.whole_image:
        return "the whole X-ray (no smaller region stood out)"
    box = search.box
    return (
        f"the region x {box['x0']:.2f}–{box['x1']:.2f}, y {box['y0']:.2f}–{box['y1']:.2f} of each X-ray "
        "(0 is the left or top edge, 1 the right or bottom)"
    )


def _bar_width(auroc: float | None) -> int:
    """0.5 (no separation) draws nothing; 1.0 draws 60 px."""
    return 0 if auroc is None else round(max(0.0, auroc - 0.5) * 120)


def _plain_words(finding: Finding) -> str:
    auroc = finding.auroc
    if auroc is None:
        return "This finding was not scored."
    share = round(100 * auroc)
    if auroc >= 0.5:
        sentence = (
            f"A randomly chosen image of set A matches this finding better than one of set B {share}% of the time"
        )
    else:
        sentence = (
            f"Set B's images match this finding better: an image of A beats one of B only {share}% of the time"
        )
    if len(finding.ci) == 2:
        level = round(100 * finding.ci_level)
        sentence += f" ({level}% interval {round(100 * finding.ci[0])}–{round(100 * finding.ci[1])}%)"
    sentence += "."
    if finding.p_value is not None:
        odds = "less than 1 in 1,000" if finding.p_value < 0.001 else f"about {_pvalue(finding.p_value)}"
        sentence += f" If the finding did not separate the sets, a result this strong would have a chance of {odds}"
        if finding.q_value is not None:
            sentence += f" ({_pvalue(finding.q_value)} after allowing for all the findings tested)"
        sentence += "."
    return sentence


def _environment() -> Environment:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=_num, pvalue=_pvalue, interval=_interval)
    thumb_template = env.from_string(templates.THUMB)
    search_template = env.from_string(templates.SEARCH)

    def thumb(t: Thumb) -> Markup:
        return Markup(thumb_template.render(t=t))

    def search_block(s: Search) -> Markup:
        return Markup(search_template.render(s=s, pct=_pct, backend_words=BACKEND_WORDS, region_words=_region_words))

    env.globals.update(
        bar_width=_bar_width,
        region_words=_region_words,
        backend_short=BACKEND_SHORT,
        plain_words=_plain_words,
        thumb=thumb,
        search_block=search_block,
        judge_words=JUDGE_WORDS,
        style=Markup(templates.STYLE),
    )
    return env


_ENV = _environment()
_REPORT = _ENV.from_string(templates.REPORT)
_STATUS = _ENV.from_string(templates.STATUS)


def render_report(record: Any) -> str:
    """The evidence report of a succeeded analysis (a store.AnalysisRecord with its task and result)."""
    return render_view(build_view(record))


def render_view(view: ReportView) -> str:
    return _REPORT.render(v=view)


def render_status(heading: str, message: str, name: str | None = None, refresh: int = 0) -> str:
    """A short page in the report's style: why there is no report (yet)."""
    return _STATUS.render(heading=heading, message=message, name=name, refresh=refresh)
