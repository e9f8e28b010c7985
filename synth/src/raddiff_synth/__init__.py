"""Synthetic chest radiographs with controlled findings, projected from a real CT, and RadDiffBench-format
benchmarks built from them (see docs/synth.md)."""

from raddiff_synth.findings import Finding, SpecError
from raddiff_synth.render import Generator, Radiograph

__all__ = ["Finding", "Generator", "Radiograph", "SpecError"]
