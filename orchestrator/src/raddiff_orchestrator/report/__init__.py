"""The HTML evidence report of an analysis (issue 4): rendering (render.py, templates.py, plots.py),
the images it may show (images.py) and its routes (routes.py)."""

from raddiff_orchestrator.report.render import render_report, render_status

__all__ = ["render_report", "render_status"]
