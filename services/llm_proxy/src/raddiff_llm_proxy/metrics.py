"""The LLM proxy's Prometheus metrics, registered once."""

from __future__ import annotations

from prometheus_client import Counter

PROMPT_TOKENS = Counter("raddiff_llm_prompt_tokens_total", "Prompt tokens billed by the upstream", ["model"])
COMPLETION_TOKENS = Counter(
    "raddiff_llm_completion_tokens_total", "Completion tokens billed by the upstream", ["model"]
)
COST = Counter("raddiff_llm_cost_usd_total", "Upstream cost at the configured per-1k-token prices", ["model"])
UPSTREAM_CALLS = Counter(
    "raddiff_llm_upstream_calls_total",
    "HTTP calls to the upstream, by outcome: ok, rate_limited, server_error, timeout, connection_error, rejected",
    ["model", "outcome"],
)
CACHE_LOOKUPS = Counter("raddiff_llm_cache_lookups_total", "Response cache lookups, by result: hit or miss", ["result"])
