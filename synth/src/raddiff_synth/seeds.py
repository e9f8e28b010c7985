"""Image seed ranges. Training images and benchmark images never share a seed.

- TRAINING_SEEDS, [0, 1e9): what the project's own models (CLIP, captioner) are trained and validated on.
- BENCHMARK_SEEDS, [1e9, 2e9): every image of a cohort or benchmark written by `raddiff-synth cohort|benchmark`.

A benchmark image's seed is BENCHMARK_SEEDS.start + slot * SEEDS_PER_PAIR + side * SEEDS_PER_SIDE + i, where a
pair's slot is seed_block * PAIRS_PER_BLOCK + its index in the spec. So a pair's images stay the same when other
pairs are added after it or when sets are cut with --per-set, and specs with different `seed_block`s (the dev,
test, generalisation and null splits) never share a seed.
"""

from __future__ import annotations

TRAINING_SEEDS = range(0, 1_000_000_000)
BENCHMARK_SEEDS = range(1_000_000_000, 2_000_000_000)
SEEDS_PER_SIDE = 10_000
SEEDS_PER_PAIR = 2 * SEEDS_PER_SIDE
MAX_PAIRS = len(BENCHMARK_SEEDS) // SEEDS_PER_PAIR
PAIRS_PER_BLOCK = 1_000  # pairs a spec may hold: one seed block
SEED_BLOCKS = MAX_PAIRS // PAIRS_PER_BLOCK


def pair_slot(seed_block: int, pair_index: int) -> int:
    """The pair's place in the benchmark seed range; block 0 keeps the index (the dev split's seeds)."""
    if not 0 <= seed_block < SEED_BLOCKS:
        raise ValueError(f"seed block {seed_block} is outside 0..{SEED_BLOCKS - 1}")
    if not 0 <= pair_index < PAIRS_PER_BLOCK:
        raise ValueError(f"pair index {pair_index} is outside 0..{PAIRS_PER_BLOCK - 1}")
    return seed_block * PAIRS_PER_BLOCK + pair_index


def benchmark_seed(pair_slot: int, side: int, index: int) -> int:
    if not 0 <= index < SEEDS_PER_SIDE:
        raise ValueError(f"image index {index} is outside 0..{SEEDS_PER_SIDE - 1}")
    if not 0 <= pair_slot < MAX_PAIRS or side not in (0, 1):
        raise ValueError(f"pair {pair_slot} side {side} is outside the benchmark seed range")
    return BENCHMARK_SEEDS.start + pair_slot * SEEDS_PER_PAIR + side * SEEDS_PER_SIDE + index


def is_training_seed(seed: int) -> bool:
    return seed in TRAINING_SEEDS
