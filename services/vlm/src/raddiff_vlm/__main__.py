"""raddiff-vlm: serve the VLM over gRPC."""

from __future__ import annotations

from raddiff_kit.server import main
from raddiff_vlm.app import build_app


def run() -> None:
    main(build_app)


if __name__ == "__main__":
    run()
