"""The stubs in use are exactly what grpcio-tools generates from protos/ today."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from grpc_tools import protoc

REPO = Path(__file__).resolve().parents[2]
PROTOS = sorted((REPO / "protos" / "raddiff" / "v1").glob("*.proto"))


def test_every_proto_has_its_stubs_and_they_match(tmp_path: Path) -> None:
    assert PROTOS, "no .proto files found"
    args = [
        "protoc",
        f"-I{REPO / 'protos'}",
        f"--python_out={tmp_path}",
        f"--pyi_out={tmp_path}",
        f"--grpc_python_out={tmp_path}",
        *map(str, PROTOS),
    ]
    assert protoc.main(args) == 0
    for proto in PROTOS:
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            module = f"raddiff.v1.{proto.stem}{suffix.split('.')[0]}"
            fresh = (tmp_path / "raddiff" / "v1" / f"{proto.stem}{suffix}").read_bytes()
            in_use = Path(importlib.import_module(module).__file__ or "")
            if suffix.endswith(".pyi"):
                in_use = in_use.with_suffix(".pyi")
            assert in_use.read_bytes() == fresh, f"{in_use} is stale: run `make protos`"


def test_descriptors_in_use_are_those_of_the_protos() -> None:
    # The serialized file descriptors must round-trip, so the wire contract is the one in protos/.
    for proto in PROTOS:
        module = importlib.import_module(f"raddiff.v1.{proto.stem}_pb2")
        assert module.DESCRIPTOR.name == f"raddiff/v1/{proto.name}"
        assert module.DESCRIPTOR.package == "raddiff.v1"
    assert "raddiff.v1.common_pb2" in sys.modules
