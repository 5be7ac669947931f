"""Evidence for SCNCL's defaults: each setting changed alone, over three MOp library splits.

Splits: RNA 09A-09F -> ATAC 09G-09L, the reverse, and even -> odd libraries (``_common.SPLITS``).
Each row is ``st.tl.label_transfer`` with the defaults except the named change, run in a fresh
process. Prints accuracy and macro-F1 per split and their means, and writes a JSON table.

Run: ``python benchmarks/scncl_defaults.py [--seeds 0 1]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from _common import SPLITS, run_isolated

VARIANTS = {
    "default (joint PCA 30, peak view 50, vote k=30, prior 0.5)": {},
    "genes as input (n_pcs=None, original scNCL)": {"model_kwargs": {"n_pcs": None}},
    "no peak view (n_peak_components=None)": {"model_kwargs": {"n_peak_components": None}},
    "classifier only (reference_neighbors=0)": {"predict_kwargs": {"reference_neighbors": 0}},
    "no prior correction (prior_correction=0)": {"predict_kwargs": {"prior_correction": 0.0}},
    "full prior correction (prior_correction=1)": {"predict_kwargs": {"prior_correction": 1.0}},
    "binary input": {"model_kwargs": {"input_transform": "binary"}},
    "MLP encoder": {"model_kwargs": {"encoder": "mlp"}},
    "temperature 0.4": {"model_kwargs": {"temperature": 0.4}},
    "no NCL": {"model_kwargs": {"weight_ncl": 0.0}},
    "no feature alignment": {"model_kwargs": {"weight_fa": 0.0}},
    "400 steps": {"max_steps": 400},
    "2000 steps": {"max_steps": 2000},
    "class-balanced RNA sampling": {"train_kwargs": {"class_balance": 1.0}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "scncl_defaults.json")
    args = parser.parse_args()
    rows = []
    for variant in args.variants:
        for split in SPLITS:
            for seed in args.seeds:
                result = run_isolated("sctransfer (default)", split, random_state=seed, **VARIANTS[variant])
                result.pop("labels")
                rows.append({"variant": variant, "split": split, "seed": seed, **result})
                print(
                    f"{variant:60s} {split:10s} seed {seed}: acc {result['accuracy']:.3f} "
                    f"macro-F1 {result['macro_f1']:.3f} ({result['wall_s']:.0f} s)",
                    flush=True,
                )
    table = pd.DataFrame(rows)
    wide = table.pivot_table(index="variant", columns="split", values=["accuracy", "macro_f1"], sort=False)
    wide[("accuracy", "mean")] = table.groupby("variant", sort=False)["accuracy"].mean()
    wide[("macro_f1", "mean")] = table.groupby("variant", sort=False)["macro_f1"].mean()
    print(wide.round(3).to_string())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
