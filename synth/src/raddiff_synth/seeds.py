"""Image seed ranges. Training images and benchmark images never share a seed.

- TRAINING_SEEDS, [0, 1e9): what the project's own models (CLIP, captioner) are trained and validated on.
- BENCHMARK_SEEDS, [1e9, 2e9): every image of a cohort or benchmark written by `raddiff-synth cohort|benchmark`.

A benchmark image's seed is BENCHMARK_SEEDS.start + pair_index * SEEDS_PER_PAIR + side * SEEDS_PER_SIDE + i,
so a pair's images stay the same when other pairs are added after it or when sets are cut with --per-set.
"""

from __future__ import annotations

TRAINING_SEEDS = range(0, 1_000_000_000)
BENCHMARK_SEEDS = range(1_000_000_000, 2_000_000_000)
SEEDS_PER_SIDE = 10_000
SEEDS_PER_PAIR = 2 * SEEDS_PER_SIDE
MAX_PAIRS = len(BENCHMARK_SEEDS) // SEEDS_PER_PAIR


def benchmark_seed(pair_index: int, side: int, index: int) -> int:
    if not 0 <= index < SEEDS_PER_SIDE:
        raise ValueError(f"image index {index} is outside 0..{SEEDS_PER_SIDE - 1}")
    if not 0 <= pair_index < MAX_PAIRS or side not in (0, 1):
        raise ValueError(f"pair {pair_index} side {side} is outside the benchmark seed range")
    return BENCHMARK_SEEDS.start + pair_index * SEEDS_PER_PAIR + side * SEEDS_PER_SIDE + index


def is_training_seed(seed: int) -> bool:
    return seed in TRAINING_SEEDS
