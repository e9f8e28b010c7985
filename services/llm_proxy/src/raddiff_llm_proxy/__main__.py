"""raddiff-llm-proxy: serve the LLM proxy over gRPC."""

from __future__ import annotations

from raddiff_kit.server import main
from raddiff_llm_proxy.app import build_app


def run() -> None:
    main(build_app)


if __name__ == "__main__":
    run()
