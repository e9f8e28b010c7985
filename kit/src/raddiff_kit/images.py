"""Image references: the only way images cross a service boundary.

A reference is file:///abs/path under a configured data root, or
scratch://<sha256>.png in the content-addressed scratch store where the
services put the grids and crops they make. Resolution refuses anything that
escapes the roots (.. or a symlink pointing out), and loading refuses files
that are missing, not images, or truncated, each with an error naming the
problem.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from PIL import Image, UnidentifiedImageError

from raddiff_kit.errors import InvalidArgument, NotFound

SCRATCH_SCHEME = "scratch"
_SCRATCH_NAME = re.compile(r"^[0-9a-f]{64}\.png$")
_WIDE_GRAY_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
# Refuse decompression bombs well before PIL's own warning threshold.
MAX_PIXELS = 64_000_000


def file_uri(path: str | os.PathLike[str]) -> str:
    return Path(path).resolve().as_uri()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ImageStore:
    def __init__(self, data_roots: list[Path], scratch_dir: Path) -> None:
        self.scratch_dir = Path(scratch_dir)
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        self.scratch_real = self.scratch_dir.resolve()
        self.roots = [Path(r).resolve() for r in data_roots]

    # -- resolution -------------------------------------------------------
    def resolve(self, uri: str) -> Path:
        """The real path a reference names, after every safety check but decoding."""
        if not uri:
            raise InvalidArgument("empty image uri")
        parsed = urlparse(uri)
        if parsed.scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise InvalidArgument(f"image uri {uri!r} names a remote host; only local file:/// uris are served")
            return self._resolve_under(Path(unquote(parsed.path)), self.roots, uri, "data roots")
        if parsed.scheme == SCRATCH_SCHEME:
            name = parsed.netloc + parsed.path
            if not _SCRATCH_NAME.match(name):
                raise InvalidArgument(f"scratch uri {uri!r} is not scratch://<sha256>.png")
            return self._resolve_under(self.scratch_dir / name, [self.scratch_real], uri, "scratch store")
        raise InvalidArgument(f"image uri {uri!r} has unsupported scheme {parsed.scheme!r}; use file:/// or scratch://")

    def resolve_data_file(self, path: Path, noun: str = "file") -> Path:
        """The real path of a non-image file (a CSV or JSONL manifest) under the data roots, checked like an image."""
        return self._resolve_under(Path(path), self.roots, str(path), "data roots", noun)

    def _resolve_under(self, path: Path, roots: list[Path], uri: str, what: str, noun: str = "image") -> Path:
        if not path.is_absolute():
            raise InvalidArgument(f"{noun} uri {uri!r} is not an absolute path")
        # resolve() follows symlinks and .., so a link pointing out of a root is caught here.
        real = path.resolve()
        if not any(real == root or root in real.parents for root in roots):
            raise InvalidArgument(f"{noun} {uri!r} is outside the {what}")
        if not real.is_file():
            raise NotFound(f"{noun} {uri!r} does not exist")
        return real

    # -- loading ----------------------------------------------------------
    def load(self, uri: str, sha256: str = "", mode: str = "RGB") -> Image.Image:
        path = self.resolve(uri)
        if sha256 and sha256_file(path) != sha256.lower():
            raise InvalidArgument(f"image {uri!r} does not match its sha256")
        return decode_image(path.read_bytes(), uri, mode)

    def check(self, uri: str, sha256: str = "") -> None:
        """Validate a reference fully (exists, inside roots, decodes) without keeping pixels."""
        self.load(uri, sha256, mode="L")

    # -- writing ----------------------------------------------------------
    def put_png(self, image: Image.Image) -> tuple[str, str]:
        """Store an image in the scratch store; returns (uri, sha256)."""
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=False)
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        target = self.scratch_dir / f"{digest}.png"
        if not target.exists():
            # Write then rename, so a reader never sees half a file.
            fd, tmp = tempfile.mkstemp(dir=self.scratch_dir, suffix=".part")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        return f"{SCRATCH_SCHEME}://{digest}.png", digest


def decode_image(data: bytes, name: str, mode: str = "RGB") -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.width * probe.height > MAX_PIXELS:
                raise InvalidArgument(f"image {name!r} has {probe.width}x{probe.height} pixels, over the limit")
            probe.load()  # raises on truncated data
            if probe.mode in _WIDE_GRAY_MODES:
                # 16-bit radiographs: keep the top 8 bits, as OpenCV's imread does; PIL's convert would clip to white.
                return probe.convert("I").point(lambda v: v / 256).convert("L").convert(mode)
            return probe.convert(mode)
    except UnidentifiedImageError:
        raise InvalidArgument(f"file {name!r} is not an image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidArgument(f"image {name!r} is truncated or corrupt: {exc}") from None
