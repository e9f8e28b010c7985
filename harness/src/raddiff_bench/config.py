"""The agent config a run sends: read from YAML and passed to POST /v1/analyses unchanged.

The orchestrator validates it (a bad key is a 422 that names it); the harness only reads two things from
it, whether the proposer wants reports and where the judge backend goes, and accepts both the nested keys
(RadDiff's: proposer.method, evaluator.backend) and the first API version's flat ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raddiff_bench.pairs import BadInput
from raddiff_orchestrator.agent.config import ConfigError, read_yaml

# The proposers that read each image's report (RadDiff's class name included).
REPORT_METHODS = frozenset({"reports", "RadiologyReports"})
# configs/embedded.yaml: the embedded default (no LLM), when the repository has it.
EMBEDDED_CONFIG = Path("configs") / "embedded.yaml"


def read_config(path: Path | None) -> dict[str, Any]:
    """The YAML mapping at `path`; empty (the orchestrator's defaults) when there is none."""
    if path is None:
        return {}
    try:
        return read_yaml(path)
    except ConfigError as exc:
        raise BadInput(str(exc)) from None


def wants_reports(config: dict[str, Any]) -> bool:
    proposer = config.get("proposer")
    method = proposer.get("method") if isinstance(proposer, dict) else proposer
    return method in REPORT_METHODS


def with_judge_backend(config: dict[str, Any], backend: str | None) -> dict[str, Any]:
    """A copy of the config with the judge backend set, in the config's own style; unchanged when None."""
    if not backend:
        return config
    out = dict(config)
    if isinstance(out.get("evaluator"), dict):
        out["evaluator"] = {**out["evaluator"], "backend": backend}
    else:
        out["judge_backend"] = backend  # accepted by every API version (mapped onto evaluator.backend)
    return out


def judge_backend(config: dict[str, Any]) -> str:
    evaluator = config.get("evaluator")
    if isinstance(evaluator, dict) and evaluator.get("backend"):
        return str(evaluator["backend"])
    return str(config.get("judge_backend") or "")
