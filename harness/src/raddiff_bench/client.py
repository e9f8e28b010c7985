"""The orchestrator's REST API, as the harness uses it: submit, poll until final, cancel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

FINAL = frozenset({"succeeded", "failed", "cancelled"})


class Rejected(Exception):
    """The orchestrator answered 4xx: the request itself is wrong and will not improve on retry."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"rejected with HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class Unavailable(Exception):
    """The orchestrator could not be reached, answered 5xx, or did not finish in time."""


def describe(reply: httpx.Response) -> str:
    """The `detail` of an error reply: the orchestrator's message, or FastAPI's validation errors by field."""
    try:
        body = reply.json()
    except ValueError:
        return reply.text[:500] or reply.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{where}: {item.get('msg', item)}" if where else str(item.get("msg", item)))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


ProgressCallback = Callable[[dict[str, Any]], Awaitable[None]]


class Orchestrator:
    def __init__(self, url: str, timeout_s: float = 30.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout_s, transport=transport)

    async def __aenter__(self) -> Orchestrator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    def report_url(self, analysis_id: str) -> str:
        return f"{self.url}/v1/analyses/{analysis_id}/report"

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            reply = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise Unavailable(f"{method} {self.url}{path} failed: {type(exc).__name__}: {exc}") from None
        if 400 <= reply.status_code < 500:
            raise Rejected(reply.status_code, describe(reply))
        if reply.status_code >= 500:
            raise Unavailable(f"{method} {self.url}{path} answered HTTP {reply.status_code}: {describe(reply)}")
        return reply

    async def _json(self, method: str, path: str, key: str, **kwargs: Any) -> dict[str, Any]:
        """A 2xx reply's JSON object, which must hold `key`; anything else is the orchestrator's fault."""
        reply = await self._request(method, path, **kwargs)
        try:
            body = reply.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or key not in body:
            raise Unavailable(
                f"{method} {self.url}{path} answered {reply.status_code} without {key!r}: {reply.text[:200]}"
            )
        return body

    async def submit(self, body: dict[str, Any]) -> str:
        """POST /v1/analyses; the new analysis's id. Not retried: a retry could queue the analysis twice."""
        return str((await self._json("POST", "/v1/analyses", "id", json=body))["id"])

    async def get(self, analysis_id: str) -> dict[str, Any]:
        try:
            return await self._json("GET", f"/v1/analyses/{analysis_id}", "status")
        except Rejected as exc:  # the analysis was accepted, so this is not the pair's fault
            raise Unavailable(f"analysis {analysis_id} can no longer be read: {exc}") from None

    async def cancel(self, analysis_id: str) -> None:
        """DELETE; an analysis that already finished (409) is left as it is."""
        try:
            await self._request("DELETE", f"/v1/analyses/{analysis_id}")
        except Rejected as exc:
            if exc.status != 409:
                raise

    async def wait(
        self,
        analysis_id: str,
        timeout_s: float,
        poll_s: float = 1.0,
        max_errors: int = 10,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Poll until the analysis is final. Up to max_errors failed polls in a row are waited out (an
        orchestrator restarting); after timeout_s the analysis is cancelled and Unavailable raised."""
        deadline = time.monotonic() + timeout_s
        errors = 0
        while True:
            try:
                view = await self.get(analysis_id)
                errors = 0
            except Unavailable:
                errors += 1
                if errors >= max_errors:
                    raise
                view = None
            if view is not None:
                if view["status"] in FINAL:
                    return view
                if on_progress is not None:
                    await on_progress(view)
            if time.monotonic() > deadline:
                await self.cancel(analysis_id)
                raise Unavailable(f"analysis {analysis_id} did not finish within {timeout_s:g} s; cancelled it")
            await asyncio.sleep(poll_s)
