"""Calibration of label transfer when the query is not like the reference (MOp SNARE-seq, RNA 09A-F -> ATAC 09G-L).

The calibration of ``sctransfer_confidence`` is measured on library splits whose type mix is about
the same in the reference and the query. Here the mix is changed on purpose, and every scenario
reports, for the self-trained confidence (the default) and the ensemble alone
(``self_training=False``, same model): accuracy, expected calibration error (15 bins) and mean
confidence of the cells of reference types, and the mean confidence of the cells of types missing
from the reference (novel cells).

Scenarios: ``none`` (the split as is); the query restricted to three types (``L2/3``, ``Sst``,
``Oligo``), to a random type mix (each type kept with a random share), without its largest type
(``L2/3``), or to one type (``Astro``); the reference short of the query's largest type (15 ``L2/3``
cells) or without two types (``Astro`` and ``Oligo``: novel cells).

``--rare-types`` measures instead how well each reference type is found against its number of
reference cells (per-type recall, precision and mean confidence of its query cells; four library
splits at 14 types, two at 23), the evidence for the rare-type warning of ``tl.label_transfer``
(``MIN_CELLS_PER_TYPE``); it writes ``results/label_transfer_rare_types.csv``.

Run: ``python benchmarks/label_transfer_shift.py [--seed 0] [--scenarios ...] [--threads 1] [--rare-types]``
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _common import LIBRARIES, SPLITS, load_split

import sctransfer as st

SPLIT = "A-F->G-L"


def _random_mix(truth: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(1)
    types = np.unique(truth)
    share = dict(zip(types, rng.uniform(0.05, 1.0, len(types)) ** 2, strict=True))
    return rng.random(len(truth)) < np.array([share[t] for t in truth])


def _short_of(cell_type: str, n_cells: int) -> Callable[[np.ndarray], np.ndarray]:
    def keep(types: np.ndarray) -> np.ndarray:
        kept = np.ones(len(types), dtype=bool)
        kept[np.flatnonzero(types == cell_type)[n_cells:]] = False
        return kept

    return keep


#: name -> (query cells to keep given the query truth, reference cells to keep given the reference types)
SCENARIOS: dict[str, tuple[Callable | None, Callable | None]] = {
    "none": (None, None),
    "query: L2/3, Sst, Oligo only": (lambda t: np.isin(t, ["L2/3", "Sst", "Oligo"]), None),
    "query: random type mix": (_random_mix, None),
    "query: without L2/3": (lambda t: t != "L2/3", None),
    "query: Astro only": (lambda t: t == "Astro", None),
    "reference: 15 L2/3 cells": (None, _short_of("L2/3", 15)),
    "reference: without Astro, Oligo": (None, lambda types: ~np.isin(types, ["Astro", "Oligo"])),
}


def _scores(truth: np.ndarray, labels: np.ndarray, confidence: np.ndarray, known: np.ndarray) -> dict[str, float]:
    row = {
        "accuracy": float(np.mean(labels[known] == truth[known])),
        "ece": st.metrics.expected_calibration_error(truth[known], labels[known], confidence[known]),
        "mean_confidence": float(confidence[known].mean()),
    }
    if (~known).any():
        row["novel_mean_confidence"] = float(confidence[~known].mean())
    return row


def run(name: str, seed: int) -> dict:
    """One scenario: label transfer with the defaults; scores of the self-trained and the ensemble confidence."""
    query_keep, reference_keep = SCENARIOS[name]
    mdata, truth = load_split(SPLIT)
    if query_keep is not None:
        kept = query_keep(truth)
        mdata.mod["atac"], truth = mdata["atac"][kept].copy(), truth[kept]
    if reference_keep is not None:
        mdata.mod["rna"] = mdata["rna"][reference_keep(mdata["rna"].obs["cell_type"].astype(str).to_numpy())].copy()
    mdata.update()
    start = time.perf_counter()
    model = st.tl.label_transfer(
        mdata,
        labels_key="cell_type",
        annotation="mm10",
        random_state=seed,
        return_model=True,
        train_kwargs={"enable_progress_bar": False},
    )
    wall = time.perf_counter() - start
    known = np.isin(truth, model.label_categories_)
    row = {"scenario": name, "seed": seed, "n_cells": len(truth), "n_novel": int((~known).sum()), "wall_s": wall}
    for variant, self_training in (("self-trained", True), ("ensemble", False)):
        result = model.transfer(model.adata, self_training=self_training)
        scores = _scores(truth, np.asarray(result.labels, dtype=str), result.confidence.to_numpy(), known)
        row |= {f"{variant}: {key}": value for key, value in scores.items()}
    return row


#: (split, label column) of the rare-type measurement: the library splits plus two with a small reference.
RARE_TYPE_RUNS = [
    *((split, "cell_type") for split in ("A-F->G-L", "G-L->A-F", "A+B->G", "A->G-L")),
    *((split, "cell_type_fine") for split in ("A-F->G-L", "G-L->A-F")),
]
RARE_TYPE_SPLITS = SPLITS | {"A+B->G": (LIBRARIES[:2], LIBRARIES[6:7]), "A->G-L": (LIBRARIES[:1], LIBRARIES[6:])}


def rare_types(seed: int) -> pd.DataFrame:
    """Per reference type and run: reference cells, query cells, recall, precision, mean confidence of its cells."""
    rows = []
    for split, labels_key in RARE_TYPE_RUNS:
        rna_libraries, atac_libraries = RARE_TYPE_SPLITS[split]
        mdata = st.datasets.mop_label_transfer(rna_libraries=rna_libraries, atac_libraries=atac_libraries)
        truth = mdata["atac"].obs[labels_key].astype(str).to_numpy()
        mdata["atac"].obs = mdata["atac"].obs.drop(columns=["cell_type", "cell_type_fine"])
        mdata.update()
        st.tl.label_transfer(
            mdata,
            labels_key=labels_key,
            annotation="mm10",
            random_state=seed,
            train_kwargs={"enable_progress_bar": False},
        )
        labels = mdata["atac"].obs["sctransfer_label"].astype(str).to_numpy()
        confidence = mdata["atac"].obs["sctransfer_confidence"].to_numpy()
        for cell_type, n_reference in mdata["rna"].obs[labels_key].value_counts().items():
            cells, called = truth == cell_type, labels == cell_type
            rows.append(
                {
                    "split": split,
                    "labels_key": labels_key,
                    "type": cell_type,
                    "n_reference": int(n_reference),
                    "n_query": int(cells.sum()),
                    "recall": float((labels[cells] == cell_type).mean()) if cells.any() else np.nan,
                    "n_called": int(called.sum()),
                    "precision": float((truth[called] == cell_type).mean()) if called.any() else np.nan,
                    "mean_confidence": float(confidence[cells].mean()) if cells.any() else np.nan,
                }
            )
    return pd.DataFrame(rows)


def _print_rare_types(table: pd.DataFrame) -> None:
    table = table[table["n_query"] > 0]
    bins = pd.cut(table["n_reference"], [0, 15, 100, np.inf], right=False, labels=["< 15", "15-99", ">= 100"])
    for level, part in table.groupby("labels_key"):
        print(f"{level}:")
        for name, group in part.groupby(bins[part.index], observed=True):
            print(
                f"  {name:>6s} reference cells: {len(group):3d} types, median recall {group['recall'].median():.2f}, "
                f"{int((group['recall'] <= 0.1).sum())} with recall <= 0.1, mean confidence of their cells "
                f"{group['mean_confidence'].mean():.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a busy machine)")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "label_transfer_shift.json")
    parser.add_argument("--rare-types", action="store_true", help="per-type recall against reference cells instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.rare_types:
        table = rare_types(args.seed)
        _print_rare_types(table)
        output = args.output.with_name("label_transfer_rare_types.csv")
        output.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(output, index=False)
        print(f"\nwrote {output}")
        return
    rows = []
    for name in args.scenarios:
        row = run(name, args.seed)
        rows.append(row)
        novel = ""
        if row["n_novel"]:
            novel = f"  novel conf {row['self-trained: novel_mean_confidence']:.2f}"
            novel += f" (ensemble {row['ensemble: novel_mean_confidence']:.2f})"
        print(
            f"{name:34s} {row['n_cells']:5d} cells  acc {row['self-trained: accuracy']:.3f} "
            f"(ensemble {row['ensemble: accuracy']:.3f})  ECE {row['self-trained: ece']:.3f} "
            f"(ensemble {row['ensemble: ece']:.3f})  conf {row['self-trained: mean_confidence']:.2f} "
            f"(ensemble {row['ensemble: mean_confidence']:.2f}){novel}",
            flush=True,
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"split": SPLIT, "runs": rows}, indent=1))
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
