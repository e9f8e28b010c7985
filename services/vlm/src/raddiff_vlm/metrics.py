"""The VLM service's own Prometheus metrics, registered once."""

from __future__ import annotations

from prometheus_client import Counter

PROMPT_TOKENS = Counter("raddiff_vlm_prompt_tokens_total", "Prompt tokens decoded, images included", ["engine"])
GENERATED_TOKENS = Counter("raddiff_vlm_generated_tokens_total", "Tokens generated", ["engine"])
ABANDONED = Counter(
    "raddiff_vlm_abandoned_requests_total",
    "Requests whose decoding was stopped early because the caller's deadline passed or the caller went away",
    ["engine", "reason"],
)
