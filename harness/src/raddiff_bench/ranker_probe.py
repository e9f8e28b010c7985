"""raddiff-bench probe-ranker: the ranker alone, on a benchmark's pairs, without the proposer's noise.

    python -m raddiff_bench.ranker_probe --jsonl .data/bench/RadDiffSynth.jsonl [--pairs id,id] [--cache DIR]

For each pair the embedding model (in-process, the embedding service's engine and preprocessing) scores every
image against the pair's true finding (set1) and against decoys: one label of each other finding kind, texts
that name things which do not differ between the sets. It prints, per ranking statistic, how often the truth
ranks first among them (Acc@1 of the ranker alone) and, for the support rule, the share of truths supported
(power) and of decoys supported (false support). Null pairs (`"null": true`) count only decoys. Tune on the
dev split; report the others.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raddiff_orchestrator.agent.auroc import auroc_rows
from raddiff_orchestrator.agent.specificity import ShiftModel, default_bank, specific_p_value
from raddiff_orchestrator.agent.statistics import benjamini_hochberg, effect_sizes, permutation_p_values

# One label per kind at the benchmark's level of detail: the decoys (those naming the truth's concept are dropped).
DECOYS = (
    "moderate right pleural effusion",
    "severe cardiomegaly",
    "right upper lobe consolidation",
    "left lower lobe atelectasis",
    "right upper lobe mass",
    "large right pneumothorax",
    "moderate pulmonary edema",
    "endotracheal tube",
    "nasogastric tube",
    "right central venous catheter",
    "left chest wall pacemaker",
)
ORDERS = ("auroc", "specific", "effect_size")


@dataclass
class PairProbe:
    id: str
    null: bool
    texts: list[str]  # the truth first (absent for a null pair), then the decoys
    auroc: np.ndarray
    specific: np.ndarray
    effect: np.ndarray
    supported: np.ndarray  # the agent's rule at FDR 0.05
    raw_significant: np.ndarray  # the old rule: permutation q < 0.05 alone


def _engine() -> object:
    from raddiff_embedding.engine import OpenClipEngine
    from raddiff_embedding.settings import EmbeddingSettings
    from raddiff_kit.settings import SharedSettings, load_settings

    settings, shared = load_settings(EmbeddingSettings), load_settings(SharedSettings)
    return OpenClipEngine.from_checkpoint(settings.checkpoint_path(shared), settings.preprocessing, settings.device)


def _image_vectors(engine: object, paths: Sequence[Path], cache: Path | None, key: str) -> np.ndarray:
    from PIL import Image

    target = cache / f"{key}.npy" if cache else None
    if target is not None and target.is_file():
        return np.load(target)
    out = []
    for start in range(0, len(paths), 32):
        images = [Image.open(p).convert("RGB") for p in paths[start : start + 32]]
        out.append(engine.embed_images(images))  # type: ignore[attr-defined]
    vectors = np.concatenate(out)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        np.save(target, vectors)
    return vectors


def probe_pair(pair: dict, root: Path, engine: object, cache: Path | None, fdr: float = 0.05) -> PairProbe:
    bank = default_bank()
    null = bool(pair.get("null"))
    truth = [] if null else [pair["set1"]]
    concepts = set() if null else bank.concepts_of(pair["set1"])
    decoys = [d for d in DECOYS if not bank.concepts_of(d) & concepts]
    texts = truth + decoys
    paths_a = [root / p for p in pair["set1_images"]]
    paths_b = [root / p for p in pair["set2_images"]]
    images = _image_vectors(engine, paths_a + paths_b, cache, pair.get("pair_id", pair["set1"]).replace("/", "_"))
    positive = np.r_[np.ones(len(paths_a), bool), np.zeros(len(paths_b), bool)]
    text_vectors = engine.embed_texts(texts)  # type: ignore[attr-defined]
    cosine = text_vectors @ images.T
    shift = ShiftModel(engine.embed_texts(bank.texts) @ images.T, positive)  # type: ignore[attr-defined]
    controls = [bank.controls_for(t) for t in texts]
    specific = np.concatenate([shift.residuals(cosine[i], c) for i, c in enumerate(controls)])
    auroc = auroc_rows(cosine, positive)
    specific_auroc = auroc_rows(specific, positive)
    specific_effect = effect_sizes(specific, positive)
    raw_q = benjamini_hochberg(permutation_p_values(cosine, positive, 1000, 0))
    spec_p = np.array(
        [specific_p_value(float(specific_effect[i]), shift.null_effects(c)) for i, c in enumerate(controls)]
    )
    spec_q = benjamini_hochberg(spec_p)
    supported = (auroc > 0.5) & (raw_q < fdr) & (specific_auroc > 0.5) & (spec_q < fdr)
    return PairProbe(
        pair.get("pair_id", ""),
        null,
        texts,
        auroc,
        specific_auroc,
        effect_sizes(cosine, positive),
        supported,
        (auroc > 0.5) & (raw_q < fdr),
    )


def summarize(probes: Sequence[PairProbe]) -> str:
    positives = [p for p in probes if not p.null]
    lines = [f"{len(positives)} positive pairs, {len(probes) - len(positives)} null pairs"]
    for order in ORDERS:
        key = {"auroc": "auroc", "specific": "specific", "effect_size": "effect"}[order]
        first = [int(np.argmax(getattr(p, key)) == 0) for p in positives]
        lines.append(f"  truth ranked first by {order:<12} {np.mean(first) if first else 0:.3f}")
    for rule in ("raw_significant", "supported"):
        power = [bool(getattr(p, rule)[0]) for p in positives]
        decoys = [int(getattr(p, rule)[(0 if p.null else 1) :].sum()) for p in probes]
        any_null = [bool(getattr(p, rule).any()) for p in probes if p.null]
        lines.append(
            f"  {rule:<16} truth supported {np.mean(power) if power else 0:.3f}   decoys supported per pair "
            f"{np.mean(decoys):.2f}   null pairs with any {np.mean(any_null) if any_null else float('nan'):.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="raddiff-bench probe-ranker", description=__doc__)
    parser.add_argument("--jsonl", type=Path, required=True)
    parser.add_argument("--pairs", help="comma-separated pair ids (default: all)")
    parser.add_argument("--cache", type=Path, help="keep each pair's image vectors here")
    parser.add_argument("--verbose", action="store_true", help="one line per pair and text")
    args = parser.parse_args(argv)
    wanted = set(args.pairs.split(",")) if args.pairs else None
    engine = _engine()
    probes = []
    for line in args.jsonl.read_text().splitlines():
        pair = json.loads(line)
        if wanted and pair.get("pair_id") not in wanted:
            continue
        probe = probe_pair(pair, args.jsonl.parent, engine, args.cache)
        probes.append(probe)
        if args.verbose:
            for i, text in enumerate(probe.texts):
                print(
                    f"{probe.id:<28} {text:<34} auroc {probe.auroc[i]:.3f} specific {probe.specific[i]:.3f} "
                    f"d {probe.effect[i]:+.2f} supported {bool(probe.supported[i])}",
                    file=sys.stderr,
                )
    print(summarize(probes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
