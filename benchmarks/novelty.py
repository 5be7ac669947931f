"""Open-set benchmark on MOp SNARE-seq: novel-type detection and annotation refinement.

For each hold-out setting, the held-out types are removed from the RNA reference of the
label-transfer split (RNA 09A-09F -> ATAC 09G-09L by default), ``tl.label_transfer`` runs with its
defaults, and the ATAC cells of the held-out types are the novel ones. Reported for the novelty
score written by sctransfer (``sctransfer_novelty``) next to the baseline ``1 - max softmax``
(``1 - sctransfer_confidence``) of the same run: AUROC, AUPR, OSCR, the closed-set accuracy, and
for the automatic threshold the recall of novel cells and the share of known cells flagged.

``--refine`` adds the refinement check: with every type in the reference, 10% of the ATAC cells'
labels are replaced by a random other type, and ``tl.refine_annotation`` has to flag them
(precision and recall at several margins).

The setting ``none`` holds nothing out and reports only the share of cells called novel.

Run: ``python benchmarks/novelty.py [--settings Astro Pvalb Astro+Sst none] [--all-splits] [--refine]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import SPLITS, load_split

import sctransfer as st

DEFAULT_SETTINGS = ("Astro", "Pvalb", "Astro+Sst")
MARGINS = (0.2, 0.3, 0.5)


def open_set_run(split: str, held_out: list[str], seed: int) -> dict:
    """Label transfer without the held-out types in the reference; open-set metrics of both scores."""
    mdata, truth = load_split(split)
    held_out = [t for t in held_out if t != "none"]
    missing = set(held_out) - set(mdata["rna"].obs["cell_type"].astype(str))
    if missing:
        raise ValueError(f"Types {sorted(missing)} are not in the reference of split {split}.")
    keep = ~mdata["rna"].obs["cell_type"].astype(str).isin(held_out).to_numpy()
    mdata.mod["rna"] = mdata["rna"][keep].copy()
    mdata.update()
    start = time.perf_counter()
    st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", random_state=seed)
    wall = time.perf_counter() - start
    obs = mdata["atac"].obs
    known = mdata.uns["sctransfer"]["reference_types"]
    novel = ~np.isin(truth, known)
    pred = obs["sctransfer_label"].astype(str).to_numpy()
    row = {
        "split": split,
        "held_out": "+".join(held_out),
        "seed": seed,
        "n_novel": int(novel.sum()),
        "n_known": int((~novel).sum()),
        "closed_set_accuracy": st.metrics.accuracy(truth, pred, known_types=known),
        "wall_s": wall,
    }
    scores = {
        "sctransfer_novelty": obs["sctransfer_novelty"].to_numpy(),
        "1 - max softmax": 1 - obs["sctransfer_confidence"].to_numpy(),
    }
    called = obs["sctransfer_novel"].to_numpy()
    row["threshold"] = mdata.uns["sctransfer"]["params"]["novelty_threshold"]
    row["known flagged"] = float(called[~novel].mean())
    if not novel.any():  # nothing held out: only the false calls are defined
        return row
    for name, score in scores.items():
        row[f"{name}: AUROC"] = st.metrics.novelty_auroc(truth, score, known_types=known)
        row[f"{name}: AUPR"] = st.metrics.novelty_aupr(truth, score, known_types=known)
        row[f"{name}: OSCR"] = st.metrics.oscr(truth, pred, score, known_types=known)
    row["novel recall"] = float(called[novel].mean())
    unknown = np.where(called, "Unknown", pred)
    row["closed_set_accuracy with Unknown"] = st.metrics.accuracy(truth, unknown, known_types=known)
    return row


def refine_run(split: str, seed: int, fraction: float = 0.1) -> list[dict]:
    """Corrupt ``fraction`` of the ATAC labels; precision and recall of refine_annotation's flags."""
    mdata, truth = load_split(split)
    st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", random_state=seed)
    rng = np.random.default_rng(seed)
    types = np.unique(truth)
    corrupted = np.zeros(len(truth), dtype=bool)
    corrupted[rng.choice(len(truth), int(round(fraction * len(truth))), replace=False)] = True
    existing = truth.copy()
    for i in np.flatnonzero(corrupted):
        existing[i] = rng.choice(types[types != truth[i]])
    mdata["atac"].obs["existing"] = pd.Categorical(existing)
    rows = []
    for margin in MARGINS:
        st.tl.refine_annotation(mdata, "existing", min_margin=margin, overwrite=True)
        obs = mdata["atac"].obs
        flag = obs["sctransfer_refine_flag"].to_numpy()
        proposed = obs["sctransfer_refine_label"].astype(str).to_numpy()
        rows.append(
            {
                "split": split,
                "seed": seed,
                "corrupted": int(corrupted.sum()),
                "min_margin": margin,
                "flagged": int(flag.sum()),
                "precision": float(corrupted[flag].mean()) if flag.any() else float("nan"),
                "recall": float(flag[corrupted].mean()),
                "proposal correct (flagged corrupted cells)": float((proposed == truth)[flag & corrupted].mean()),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--settings", nargs="+", default=list(DEFAULT_SETTINGS), help="held-out types per setting, '+' joins several"
    )
    parser.add_argument("--all-splits", action="store_true", help="also the reverse and even/odd library splits")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--refine", action="store_true", help="add the annotation-refinement check")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "novelty.json")
    args = parser.parse_args()
    splits = list(SPLITS) if args.all_splits else ["A-F->G-L"]
    rows = []
    for split in splits:
        for seed in args.seeds:
            for setting in args.settings:
                row = open_set_run(split, setting.split("+"), seed)
                rows.append(row)
                if "novel recall" not in row:
                    print(f"{split:10s} seed {seed} nothing held out: known flagged {row['known flagged']:.3f}")
                    continue
                print(
                    f"{split:10s} seed {seed} held out {setting:12s} ({row['n_novel']} novel cells)  "
                    f"AUROC {row['sctransfer_novelty: AUROC']:.3f} vs {row['1 - max softmax: AUROC']:.3f}  "
                    f"OSCR {row['sctransfer_novelty: OSCR']:.3f} vs {row['1 - max softmax: OSCR']:.3f}  "
                    f"closed-set acc {row['closed_set_accuracy']:.3f}  novel recall {row['novel recall']:.2f}  "
                    f"known flagged {row['known flagged']:.3f}",
                    flush=True,
                )
    table = pd.DataFrame([row for row in rows if "novel recall" in row])
    columns = [c for c in table.columns if ":" in c] + [
        "closed_set_accuracy",
        "closed_set_accuracy with Unknown",
        "novel recall",
        "known flagged",
    ]
    groups = {"all settings": table} if len(table) else {}
    if groups and set(table["held_out"]) - set(DEFAULT_SETTINGS) and table["held_out"].isin(DEFAULT_SETTINGS).any():
        groups = {"settings " + ", ".join(DEFAULT_SETTINGS): table[table["held_out"].isin(DEFAULT_SETTINGS)], **groups}
    for name, part in groups.items():
        print(f"\nMean over {name} ({len(part)} runs: splits x seeds x settings):")
        print(part[columns].mean().round(3).to_string())
        for metric in ("AUROC", "OSCR"):
            ours, base = part[f"sctransfer_novelty: {metric}"].mean(), part[f"1 - max softmax: {metric}"].mean()
            print(f"ratio {metric} sctransfer_novelty / 1 - max softmax: {ours / base:.2f}")
    result = {"open_set": rows}
    if args.refine:
        refine_rows = [r for split in splits for seed in args.seeds for r in refine_run(split, seed)]
        print("\nRefinement (10% of ATAC labels corrupted):")
        print(pd.DataFrame(refine_rows).round(3).to_string(index=False))
        result["refine"] = refine_rows
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
