"""The engine modules import their base from raddiff_vlm.engine, so it must import none of them (issue 11)."""

from __future__ import annotations

import ast
from pathlib import Path

import raddiff_vlm.engine

ENGINE_MODULES = {"raddiff_vlm.transformers_engine", "raddiff_vlm.vllm_engine", "raddiff_vlm.hf_checkpoint"}


def imported_modules(path: Path) -> set[str]:
    """Every module the file imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_engine_base_imports_no_engine_and_the_app_picks_one() -> None:
    engine_file = Path(raddiff_vlm.engine.__file__)
    assert not imported_modules(engine_file) & (ENGINE_MODULES | {"raddiff_vlm.app"})
    assert not hasattr(raddiff_vlm.engine, "create_engine")
    assert {"raddiff_vlm.transformers_engine", "raddiff_vlm.vllm_engine"} <= imported_modules(
        engine_file.with_name("app.py")
    )
