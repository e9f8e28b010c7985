"""Pieces of the JSON schemas that constrain an LLM's answers (the proxy passes them as response_format)."""

from __future__ import annotations

from typing import Any


def short_text(max_length: int = 200) -> dict[str, Any]:
    """A string field with a length bound: under schema-constrained decoding a weak model can otherwise
    keep one string open until its token limit, and the answer ends as invalid JSON."""
    return {"type": "string", "minLength": 1, "maxLength": max_length}
