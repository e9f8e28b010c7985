"""Small pieces several test areas share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class DataDirs:
    """A data root the service may read, a folder outside it (for escape attempts), and a scratch store."""

    root: Path
    outside: Path
    scratch: Path

    def uri(self, name: str) -> str:
        return (self.root / name).as_uri()
