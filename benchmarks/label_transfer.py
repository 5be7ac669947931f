"""Label-transfer benchmark on MOp SNARE-seq: sctransfer's defaults next to simple baselines.

RNA of libraries 09A-09F (labelled), ATAC of 09G-09L, ``Mis`` dropped, 14 coarse types
(about 4.6k x 4.6k cells, 25.7k peaks). Every method runs in a fresh process, so its wall time
and peak resident memory are its own. ``--all-splits`` adds the reverse and the even/odd
library splits and ``--seeds`` more seeds (the robustness evidence for the defaults).
``--ceiling`` adds a reference point that is not a transfer method: a classifier trained on the
RNA reference cells' own ATAC profiles with their labels (SNARE-seq measures both), i.e. what the
ATAC data alone supports.

Run: ``python benchmarks/label_transfer.py [--all-splits] [--seeds 0 1 2]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from _common import CEILINGS, METHODS, SPLITS, run_isolated

OURS = "sctransfer (default)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all-splits", action="store_true", help="also run the reverse and even/odd splits")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--ceiling", action="store_true", help="add the ATAC-labels ceiling (not a transfer method)")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "label_transfer.json")
    args = parser.parse_args()
    splits = list(SPLITS) if args.all_splits else ["A-F->G-L"]
    methods = args.methods + (list(CEILINGS) if args.ceiling else [])
    rows = []
    for split in splits:
        for seed in args.seeds:
            for method in methods:
                result = run_isolated(method, split, random_state=seed)
                rows.append({"split": split, "seed": seed, "method": method, **result})
                print(
                    f"{split:10s} seed {seed}  {method:32s} acc {result['accuracy']:.3f}  "
                    f"macro-F1 {result['macro_f1']:.3f}  {result['wall_s']:6.1f} s  "
                    f"peak RSS {result['peak_rss_gb']:.2f} GB",
                    flush=True,
                )
    table = pd.DataFrame(rows)
    summary = table.groupby(["split", "method"], sort=False)[["accuracy", "macro_f1", "wall_s", "peak_rss_gb"]].mean()
    print("\nMean over seeds:")
    print(summary.round(3).to_string())
    if OURS in args.methods:
        print("\nRatio of sctransfer to each baseline (accuracy, macro-F1):")
        for split in splits:
            ours = summary.loc[(split, OURS)]
            for baseline in (m for m in methods if m != OURS):
                base = summary.loc[(split, baseline)]
                print(
                    f"  {split:10s} vs {baseline:32s} {ours['accuracy'] / base['accuracy']:.2f}  "
                    f"{ours['macro_f1'] / base['macro_f1']:.2f}"
                )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=1))
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
