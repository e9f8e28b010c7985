"""RadDiff's accuracy harness (raddiff-bench) and `make demo` (python -m raddiff_bench.demo)."""
