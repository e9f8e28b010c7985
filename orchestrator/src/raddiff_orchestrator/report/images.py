"""The images one analysis may show, and their thumbnails.

GET /v1/analyses/{id}/images/{n} serves the n-th entry of `analysis_images`: the analysis's own input
images (set A, then set B, as submitted) and then every scratch:// grid or crop its result names, in the
order the result names them. Nothing else can be addressed, whatever n is: the caller never gives a
path, and the ImageStore still refuses anything outside the data roots and the scratch store.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from PIL import Image

from raddiff_kit.images import ImageStore

SCRATCH_PREFIX = "scratch://"
THUMBNAIL_QUALITY = 88
# The result's keys whose values are image uris (raddiff_orchestrator.agent.results); free text (findings,
# captions, notes) is never read as a uri, whatever it says.
URI_KEYS = frozenset({"uri", "grid_uri", "crop_uris", "grid_a", "grid_b", "sample_a", "sample_b", "ranked_uris"})


def analysis_images(task: dict[str, Any] | None, result: dict[str, Any] | None) -> list[str]:
    """Every image uri the analysis may show, each once, in a fixed order (so that n is stable)."""
    seen: dict[str, None] = {}
    for key in ("set_a", "set_b"):
        for uri in ((task or {}).get(key) or {}).get("uris", []):
            seen.setdefault(uri, None)
    inputs = set(seen)
    for uri in _uris(result or {}):
        # Result uris are either inputs (already listed) or the scratch store's grids and crops.
        if uri.startswith(SCRATCH_PREFIX) and uri not in inputs:
            seen.setdefault(uri, None)
    return list(seen)


def _uris(value: Any, is_uri: bool = False) -> Iterator[str]:
    """The strings under URI_KEYS anywhere in the result, in document order."""
    if isinstance(value, str):
        if is_uri:
            yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _uris(item, is_uri or key in URI_KEYS)
    elif isinstance(value, list):
        for item in value:
            yield from _uris(item, is_uri)


def thumbnail(store: ImageStore, uri: str, size: int) -> bytes:
    """The image scaled so that its longest side is at most `size`, as JPEG (grayscale stays grayscale).

    Blocking (it decodes the image): call it in a thread. Raises the kit's NotFound/InvalidArgument for
    an image that is gone or unreadable.
    """
    image = store.load(uri, mode="RGB")
    if _is_gray(image):
        image = image.convert("L")
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return buffer.getvalue()


def _is_gray(image: Image.Image) -> bool:
    """True when the three channels are equal (a radiograph loaded as RGB); checked on a small copy."""
    probe = image.copy()
    probe.thumbnail((64, 64))
    red, green, blue = probe.split()
    return red.tobytes() == green.tobytes() == blue.tobytes()
