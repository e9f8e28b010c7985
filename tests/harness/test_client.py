"""The REST client against the real orchestrator (served in process): refusals, vanished analyses, cancel."""

from __future__ import annotations

import pytest

from raddiff_bench.client import Orchestrator, Rejected, Unavailable
from tests.harness.conftest import Bare


async def test_a_refused_submission_names_every_bad_field(bare: Bare) -> None:
    body = {
        "input": {"kind": "sets", "set_a": bare.images_a, "set_b": bare.images_b},
        "config": {"proposer": {"num_rounds": 0}, "colour": "blue"},
    }
    async with Orchestrator(bare.url) as orch:
        with pytest.raises(Rejected) as refused:
            await orch.submit(body)
    assert refused.value.status == 422
    assert "config.proposer.num_rounds" in refused.value.detail and "config.colour" in refused.value.detail


async def test_an_analysis_that_cannot_be_read_is_unavailable_not_bad_input(bare: Bare) -> None:
    async with Orchestrator(bare.url) as orch:
        with pytest.raises(Unavailable, match="analysis nope can no longer be read: rejected with HTTP 404"):
            await orch.wait("nope", timeout_s=30, poll_s=0.01, max_errors=2)
        with pytest.raises(Rejected, match="HTTP 404"):
            await orch.cancel("nope")


async def test_an_unreachable_orchestrator_is_unavailable() -> None:
    async with Orchestrator("http://127.0.0.1:9", timeout_s=2) as orch:
        with pytest.raises(Unavailable, match="ConnectError"):
            await orch.submit({})
