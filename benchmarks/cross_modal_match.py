"""Cross-modal matching benchmark: scCLIP (``st.tl.cross_modal_match``) next to a paired linear CCA baseline.

MOp SNARE-seq: train on libraries 09D-09L (paired RNA + ATAC), embed 09A-09C zero-shot and score
FOSCTTM (both directions), top-1 accuracy, the NeurIPS 2021 matching score, the cell-type
silhouette and two measures of how well RNA and ATAC cells mix in the joint embedding: the
batch-entropy mixing (``st.metrics.batch_entropy_mixing``) and the plain neighbour mixing
(``st.metrics.neighbor_mixing``: twice the share of a cell's 30 nearest neighbours from the other
modality; 1.0 is perfect mixing). ``--held-out`` picks other held-out libraries (e.g. 09J-09L),
training on the other nine. The same trained model
also embeds 09A-09C through a re-called peak set (``st.datasets.recall_peaks``: 10% of the peaks
dropped, the rest shifted by 10-50 bp and renamed), which should change FOSCTTM by at most 0.02.
BMMC starter, official match split: train on the ``train`` split (paired here through the
solution), apply to the unpaired, shuffled ``test`` split and score against the solution.

Baseline in the same run and on the same split: PCA of log-normalised RNA and LSI of the ATAC
peaks, both fitted on the training cells, then scikit-learn's ``CCA`` fitted on the training
pairs and applied to the test cells. Every number of CCA components is reported. "The in-run
baseline" is the number chosen without looking at the test cells: the one with the lowest FOSCTTM
on a validation fifth of the training cells (CCA fitted on the other four fifths), as a user would
tune it; the best number by test FOSCTTM (an oracle choice) is reported too. The baseline's
pairing temperature is chosen on training cells. The targets (MOp): scCLIP's FOSCTTM at most 0.10 and at
least 25% below the in-run baseline, neighbour mixing at least 0.5, cell-type silhouette at least 0.48;
the re-called peak set within 0.02 of the original.

Every scCLIP run (training + embedding the test cells + pairing) runs in a fresh spawned process,
so its wall time and peak resident memory are its own; data loading is excluded from the wall time
(``data_rss_gb`` is the memory after loading). The CCA variants of one data set share one process:
each one's wall time is the shared PCA/LSI time plus its own CCA fit, transform and pairing, and
its peak RSS is that of the process. ``--quick`` uses the ``tiny`` preset and 100 steps (about a
minute in all) and writes ``cross_modal_match_quick.json``. ``--embedding-samples K`` averages each
cell's embedding over ``K`` thinned copies (``SCCLIP(embedding_samples=K)``; results file suffix
``_samplesK``). ``--linear-weight W`` joins the linear member to the joint embedding with weight ``W``
(``SCCLIP(linear_weight=W)``; results file suffix ``_linearW``).

Run: ``python benchmarks/cross_modal_match.py [--quick] [--seeds 0 1 2] [--held-out 09J 09K 09L] [--preset small]
[--max-steps 1000] [--embedding-samples 16] [--linear-weight 0.3]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
import warnings
from pathlib import Path

import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from _common import in_fresh_process
from mudata import MuData
from sklearn.cross_decomposition import CCA
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.extmath import randomized_svd

import sctransfer as st
from sctransfer.pp._lsi import inverse_document_frequency, tfidf
from sctransfer.tl._matching import topk_pairing

LIBRARIES = tuple(f"09{c}" for c in "ABCDEFGHIJKL")
TEST_LIBRARIES = ("09A", "09B", "09C")
RECALL = {"drop_fraction": 0.1, "shift": (10, 50), "name_style": "colon"}
#: PCA / LSI components and CCA components of the baseline, per data set.
CCA_SETTINGS = {
    "MOp": {"n_pcs": 50, "n_lsi": 50, "components": (3, 5, 10, 20)},
    "BMMC": {"n_pcs": 20, "n_lsi": 20, "components": (3, 5, 10)},
}
#: Candidate softmax temperatures of the baseline's pairing (chosen on training cells).
TEMPERATURES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 1 / np.e)
MAX_PAIRING_K = 1000
ISSUE_BASELINE = 0.22
TARGET_FOSCTTM = 0.10
TARGET_RATIO = 0.75
TARGET_RECALL_DIFF = 0.02
TARGET_MIXING = 0.5
TARGET_SILHOUETTE = 0.48
MIXING_NEIGHBORS = 30
DATASETS = ("MOp", "BMMC")


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------
def _unit(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float32)
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def paired_scores(z_rna: np.ndarray, z_atac: np.ndarray, cell_types: np.ndarray | None, seed: int) -> dict:
    """FOSCTTM and top-1 (both directions), silhouette, mixing, modality gap; row i of both is one cell."""
    fos = st.metrics.foscttm(z_rna, z_atac)
    top1 = st.metrics.top1_accuracy(z_rna, z_atac)
    joint = np.vstack([z_rna, z_atac])
    n = z_rna.shape[0]
    silhouette = (
        st.metrics.silhouette_cell_type(joint, np.concatenate([cell_types, cell_types]))
        if cell_types is not None
        else float("nan")
    )
    modality = ["rna"] * n + ["atac"] * n
    mixing = st.metrics.batch_entropy_mixing(joint, modality, random_state=seed)
    neighbor_mixing = st.metrics.neighbor_mixing(joint, modality, n_neighbors=MIXING_NEIGHBORS)
    gap = float(np.linalg.norm(_unit(z_rna).mean(axis=0) - _unit(z_atac).mean(axis=0)))
    return {
        "foscttm": fos.mean,
        "foscttm_rna_to_atac": fos.rna_to_atac,
        "foscttm_atac_to_rna": fos.atac_to_rna,
        "top1": top1.mean,
        "top1_rna_to_atac": top1.rna_to_atac,
        "top1_atac_to_rna": top1.atac_to_rna,
        "silhouette": silhouette,
        "mixing": mixing,
        "neighbor_mixing": neighbor_mixing,
        # distance between the modalities' centroids on the unit sphere (CLIP's "modality gap")
        "modality_gap": gap,
    }


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def _mudata(rna, atac) -> MuData:
    with mudata.set_options(pull_on_update=False):
        return MuData({"rna": rna, "atac": atac})


def load(dataset: str, held_out: tuple[str, ...] = TEST_LIBRARIES) -> dict:
    """Training MuData (paired), test MuData, the test ATAC row of each test RNA row, test cell types.

    MOp: ``held_out`` libraries are the test cells, the other nine train.
    """
    if dataset == "MOp":
        train = st.datasets.mop_snareseq(tuple(lib for lib in LIBRARIES if lib not in held_out))
        test = st.datasets.mop_snareseq(held_out)
        if not test["rna"].obs_names.equals(test["atac"].obs_names):
            raise RuntimeError("The MOp test cells are not paired row by row.")
        partner = np.arange(test["rna"].n_obs)
        types = test["rna"].obs["cell_type"].astype(str).to_numpy()
        return {"train": train, "test": test, "partner": partner, "cell_types": types}
    if dataset == "BMMC":
        source = st.datasets.bmmc_multiome_match("train")
        rna = source["rna"].copy()
        atac = source["atac"][rna.obs["true_match"].to_numpy()].copy()
        atac.obs_names = rna.obs_names
        train = _mudata(rna, atac)
        test = st.datasets.bmmc_multiome_match("test")
        partner = test["atac"].obs_names.get_indexer(test["rna"].obs["true_match"])
        if (partner < 0).any() or len(np.unique(partner)) != len(partner):
            raise RuntimeError("The BMMC test solution is not a permutation of the ATAC rows.")
        # cell types only for scoring (silhouette): from the paired starter files, by barcode
        starter = st.datasets.bmmc_multiome_starter()["rna"].obs["cell_type"].astype(str)
        types = starter.reindex(test["rna"].obs_names.str.removeprefix("rna:"))
        types = None if types.isna().any() else types.to_numpy()
        return {"train": train, "test": test, "partner": partner, "cell_types": types}
    raise ValueError(f"unknown data set {dataset!r}")


# --------------------------------------------------------------------------------------------
# methods
# --------------------------------------------------------------------------------------------
class Clock:
    """Wall time from ``start``; peak RSS of the process (Linux ``ru_maxrss`` is in kB)."""

    def start(self) -> None:
        self.data_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        self.t0 = time.perf_counter()

    def stop(self) -> dict:
        return {
            "wall_s": time.perf_counter() - self.t0,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
            "data_rss_gb": self.data_rss_gb,
        }


def run_scclip(dataset: str, seed: int, model_args: dict, held_out: tuple[str, ...]) -> list[dict]:
    """Train scCLIP on the training cells, embed and pair the test cells (timed), then score."""
    data = load(dataset, held_out)
    test, partner = data["test"], data["partner"]
    annotation = {"MOp": "mm10", "BMMC": "hg38"}[dataset]
    recalled = None
    if dataset == "MOp":
        atac = st.datasets.recall_peaks(test["atac"], **RECALL)
        recalled = _mudata(test["rna"].copy(), atac)
    k = min(MAX_PAIRING_K, test["atac"].n_obs)
    clock = Clock()
    clock.start()
    model = st.tl.cross_modal_match(data["train"], annotation=annotation, return_model=True, **model_args)
    st.tl.cross_modal_match(test, model=model, pairing_top_k=k)
    timing = clock.stop()

    def score(mdata: MuData) -> dict:
        z_rna = mdata["rna"].obsm["X_scclip"]
        z_atac = mdata["atac"].obsm["X_scclip"][partner]
        info = mdata.uns["sctransfer_match"]
        return {
            **paired_scores(z_rna, z_atac, data["cell_types"], seed),
            "matching_score": st.metrics.matching_score(mdata["rna"].obsm["sctransfer_pairing"], partner),
            "coverage": info.get("coverage"),
        }

    common = {
        "kind": "scclip",
        "temperature": model.temperature,
        "pairing_k": k,
        "model": model.init_params_["non_kwargs"]["preset"],
        "embedding_samples": model.embedding_samples,
        "train_params": dict(model.train_params_),
        "n_train": int(data["train"]["rna"].n_obs),
        "n_test": int(test["rna"].n_obs),
    }
    rows = [{**common, **score(test), **timing}]
    if recalled is not None:
        start = time.perf_counter()
        st.tl.cross_modal_match(recalled, model=model, pairing_top_k=k)
        wall = time.perf_counter() - start
        mapped = model.feature_mapping(recalled, "atac")
        recall_row = {
            **common,
            "kind": "scclip_recalled",
            **score(recalled),
            "wall_s": wall,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
            "data_rss_gb": timing["data_rss_gb"],
            "n_peaks_recalled": int(recalled["atac"].n_vars),
            "atac_coverage": float(mapped.coverage),
        }
        recall_row["foscttm_change"] = recall_row["foscttm"] - rows[0]["foscttm"]
        rows.append(recall_row)
    return rows


def _log_normalised(counts) -> sp.csr_matrix:
    x = sp.csr_matrix(counts, dtype=np.float64)
    totals = np.asarray(x.sum(axis=1)).ravel()
    x = sp.diags(np.divide(1e4, totals, out=np.zeros_like(totals), where=totals > 0)) @ x
    x.data = np.log1p(x.data)
    return sp.csr_matrix(x)


def baseline_inputs(train: MuData, test: MuData, n_pcs: int, n_lsi: int, seed: int):
    """PCA of log-normalised RNA and LSI of the peaks (components 2..n_lsi), fitted on the training cells."""
    pca = PCA(n_pcs, random_state=seed).fit(_log_normalised(train["rna"].X).toarray())
    rna = [pca.transform(_log_normalised(m["rna"].X).toarray()) for m in (train, test)]
    train_peaks = sp.csr_matrix(train["atac"].X)
    idf = inverse_document_frequency(train_peaks)
    train_tfidf = tfidf(train_peaks, idf=idf)
    _, _, vt = randomized_svd(train_tfidf, n_components=n_lsi, n_iter=4, random_state=seed)
    components = vt[1:].T  # the first component tracks depth
    atac = [np.asarray(train_tfidf @ components), np.asarray(tfidf(test["atac"].X, idf=idf) @ components)]
    return rna, atac


def _choose_temperature(z_rna: np.ndarray, z_atac: np.ndarray, n_cells: int, seed: int) -> float:
    """Pairing temperature with the best matching score on `n_cells` training pairs."""
    rows = np.random.default_rng(seed).choice(z_rna.shape[0], size=min(n_cells, z_rna.shape[0]), replace=False)
    a, b = z_rna[rows], z_atac[rows]
    k = min(MAX_PAIRING_K, len(rows))
    return max(TEMPERATURES, key=lambda t: st.metrics.matching_score(topk_pairing(a, b, k=k, temperature=t)))


def run_cca(dataset: str, seed: int, model_args: dict, held_out: tuple[str, ...]) -> list[dict]:
    """The CCA baseline for every number of components (one process, shared PCA/LSI)."""
    data = load(dataset, held_out)
    test, partner = data["test"], data["partner"]
    settings = CCA_SETTINGS[dataset]
    k = min(MAX_PAIRING_K, test["atac"].n_obs)
    clock = Clock()
    clock.start()
    (rna_train, rna_test), (atac_train, atac_test) = baseline_inputs(
        data["train"], test, settings["n_pcs"], settings["n_lsi"], seed
    )
    shared = clock.stop()
    order = np.random.default_rng(seed).permutation(rna_train.shape[0])
    fit_rows, validation_rows = order[len(order) // 5 :], order[: len(order) // 5]
    rows = []
    for c in settings["components"]:
        held_out = CCA(n_components=c, max_iter=2000).fit(rna_train[fit_rows], atac_train[fit_rows])
        z_validation = held_out.transform(rna_train[validation_rows], atac_train[validation_rows])
        validation_foscttm = st.metrics.foscttm(*[_unit(z) for z in z_validation]).mean
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            cca = CCA(n_components=c, max_iter=2000).fit(rna_train, atac_train)
        z_train = [_unit(z) for z in cca.transform(rna_train, atac_train)]
        temperature = _choose_temperature(*z_train, n_cells=test["rna"].n_obs, seed=seed)
        raw_rna, raw_atac = cca.transform(rna_test, atac_test)
        z_rna, z_atac = _unit(raw_rna), _unit(raw_atac)
        pairing = topk_pairing(z_rna, z_atac, k=k, temperature=temperature)
        wall = shared["wall_s"] + time.perf_counter() - start
        rows.append(
            {
                "kind": "cca",
                "cca_components": c,
                "validation_foscttm": validation_foscttm,
                **paired_scores(z_rna, z_atac[partner], data["cell_types"], seed),
                "foscttm_euclidean": st.metrics.foscttm(raw_rna, raw_atac[partner], metric="euclidean").mean,
                "matching_score": st.metrics.matching_score(pairing, partner),
                "temperature": temperature,
                "pairing_k": k,
                "converged": not any(issubclass(w.category, ConvergenceWarning) for w in caught),
                "n_pcs": settings["n_pcs"],
                "n_lsi": settings["n_lsi"] - 1,
                "n_train": int(data["train"]["rna"].n_obs),
                "n_test": int(test["rna"].n_obs),
                "wall_s": wall,
                "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                "data_rss_gb": shared["data_rss_gb"],
            }
        )
    return rows


RUNNERS = {"scclip": run_scclip, "cca": run_cca}


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------
COLUMNS = {
    "foscttm": "FOSCTTM",
    "top1": "top-1",
    "matching_score": "matching",
    "silhouette": "silhouette",
    "mixing": "entropy mixing",
    "neighbor_mixing": "neighbour mixing",
    "wall_s": "wall s",
    "peak_rss_gb": "peak RSS GB",
}


def summarise(table: pd.DataFrame, dataset: str, scclip_name: str) -> dict:
    """Means over seeds, the in-run baseline (CCA tuned on validation cells), the test-oracle CCA, the targets."""
    means = table[table["dataset"] == dataset].groupby("method", sort=False)["foscttm"].mean()
    cca = table[(table["dataset"] == dataset) & (table["kind"] == "cca")]
    by_c = cca.groupby("cca_components")["foscttm"].mean()
    chosen_c = int(cca.groupby("cca_components")["validation_foscttm"].mean().idxmin())
    oracle_c = int(by_c.idxmin())
    ours = float(means[scclip_name])
    scclip = table[(table["dataset"] == dataset) & (table["method"] == scclip_name)]
    out = {
        "scclip_foscttm": ours,
        "scclip_neighbor_mixing": float(scclip["neighbor_mixing"].mean()),
        "scclip_entropy_mixing": float(scclip["mixing"].mean()),
        "scclip_silhouette": float(scclip["silhouette"].mean()),
        "cca_foscttm_by_components": {int(c): float(v) for c, v in by_c.items()},
        "baseline_components": chosen_c,
        "baseline_foscttm": float(by_c[chosen_c]),
        "ratio_to_baseline": ours / float(by_c[chosen_c]),
        "oracle_components": oracle_c,
        "oracle_foscttm": float(by_c[oracle_c]),
        "ratio_to_oracle": ours / float(by_c[oracle_c]),
    }
    if 10 in by_c.index:
        out["cca10_foscttm"] = float(by_c[10])
        out["ratio_to_cca10"] = ours / float(by_c[10])
    if dataset == "MOp":
        recalled = table[(table["dataset"] == dataset) & (table["kind"] == "scclip_recalled")]
        change = float(recalled["foscttm_change"].mean())
        out["recalled_foscttm"] = float(recalled["foscttm"].mean())
        out["recalled_foscttm_change"] = change
        out["recalled_atac_coverage"] = float(recalled["atac_coverage"].mean())
        out["targets"] = {
            f"FOSCTTM <= {TARGET_FOSCTTM}": ours <= TARGET_FOSCTTM,
            f"FOSCTTM at least {1 - TARGET_RATIO:.0%} below the in-run baseline": out["ratio_to_baseline"]
            <= TARGET_RATIO,
            f"re-called peaks within {TARGET_RECALL_DIFF}": abs(change) <= TARGET_RECALL_DIFF,
            f"neighbour mixing >= {TARGET_MIXING}": out["scclip_neighbor_mixing"] >= TARGET_MIXING,
            f"cell-type silhouette >= {TARGET_SILHOUETTE}": out["scclip_silhouette"] >= TARGET_SILHOUETTE,
        }
    return out


def print_report(table: pd.DataFrame, seeds: list[int], scclip_name: str, datasets: list[str]) -> dict:
    summaries = {}
    for dataset in datasets:
        part = table[table["dataset"] == dataset]
        print(f"\n=== {dataset} ===")
        for seed in seeds:
            rows = part[part["seed"] == seed].set_index("method")[list(COLUMNS)].rename(columns=COLUMNS)
            print(f"seed {seed}:")
            print(rows.round(3).to_string())
        if len(seeds) > 1:
            mean = part.groupby("method", sort=False)[list(COLUMNS)].mean().rename(columns=COLUMNS)
            print(f"mean over seeds {seeds}:")
            print(mean.round(3).to_string())
        summary = summarise(table, dataset, scclip_name)
        summaries[dataset] = summary
        note = f" (the issue quotes about {ISSUE_BASELINE} for such a baseline)" if dataset == "MOp" else ""
        print(
            f"in-run baseline: CCA with {summary['baseline_components']} components (chosen on validation cells), "
            f"FOSCTTM {summary['baseline_foscttm']:.3f}{note}"
        )
        print(f"scCLIP FOSCTTM / in-run baseline: {summary['ratio_to_baseline']:.2f}")
        print(
            f"scCLIP FOSCTTM / best CCA by test FOSCTTM (oracle, {summary['oracle_components']} components, "
            f"{summary['oracle_foscttm']:.3f}): {summary['ratio_to_oracle']:.2f}"
        )
        if "ratio_to_cca10" in summary:
            print(f"scCLIP FOSCTTM / CCA c=10 ({summary['cca10_foscttm']:.3f}): {summary['ratio_to_cca10']:.2f}")
        if "recalled_foscttm_change" in summary:
            print(
                f"re-called peaks: FOSCTTM {summary['recalled_foscttm']:.3f}, change "
                f"{summary['recalled_foscttm_change']:+.3f}, ATAC coverage {summary['recalled_atac_coverage']:.3f}"
            )
        for target, met in summary.get("targets", {}).items():
            print(f"  target {target}: {'met' if met else 'NOT met'}")
    return summaries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="preset 'tiny' and 100 steps (about a minute)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--preset", default=None, help="scCLIP preset (default: the package default)")
    parser.add_argument("--max-steps", type=int, default=None, help="training steps (default: the package default)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument(
        "--held-out", nargs="+", default=list(TEST_LIBRARIES), choices=LIBRARIES, help="MOp test libraries"
    )
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 2)))
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--embedding-samples", type=int, default=None, help="SCCLIP(embedding_samples=...) (default: the package's)"
    )
    parser.add_argument(
        "--linear-weight", type=float, default=None, help="SCCLIP(linear_weight=...) (default: the package's)"
    )
    args = parser.parse_args()
    if args.quick:
        args.preset = args.preset or "tiny"
        args.max_steps = args.max_steps or 100
    results = Path(__file__).parent / "results"
    split = "" if args.held_out == list(TEST_LIBRARIES) else f"_held_out_{args.held_out[0]}-{args.held_out[-1]}"
    samples = "" if args.embedding_samples is None else f"_samples{args.embedding_samples}"
    linear = "" if args.linear_weight is None else f"_linear{args.linear_weight:g}"
    output = args.output or results / f"cross_modal_match{split}{samples}{linear}{'_quick' if args.quick else ''}.json"
    # as the Makefile: the shared data folder next to the repository, unless SCTRANSFER_DATA_DIR is set
    shared_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not os.environ.get("SCTRANSFER_DATA_DIR") and shared_data.is_dir():
        os.environ["SCTRANSFER_DATA_DIR"] = str(shared_data)

    base_args = {}
    if args.preset is not None:
        base_args["preset"] = args.preset
    if args.max_steps is not None:
        base_args["max_steps"] = args.max_steps
    changed = ", ".join(f"{key} {value}" for key, value in base_args.items())
    model_kwargs = {}
    if args.embedding_samples is not None:
        model_kwargs["embedding_samples"] = args.embedding_samples
    if args.linear_weight is not None:
        model_kwargs["linear_weight"] = args.linear_weight
    if model_kwargs:
        base_args["model_kwargs"] = model_kwargs
        changed = ", ".join(filter(None, [changed, *(f"{key} {value:g}" for key, value in model_kwargs.items())]))
    scclip_name = f"scCLIP ({changed or 'default'})"

    rows = []
    for seed in args.seeds:
        model_args = {**base_args, **({"random_state": seed} if seed else {})}
        for dataset in args.datasets:
            for runner in ("scclip", "cca"):
                runs = in_fresh_process(
                    RUNNERS[runner], dataset, seed, model_args, tuple(args.held_out), threads=args.threads
                )
                for row in runs:
                    name = {
                        "scclip": scclip_name,
                        "scclip_recalled": "same scCLIP model, re-called peaks (zero-shot only)",
                        "cca": f"CCA c={row.get('cca_components')}",
                    }[row["kind"]]
                    rows.append({"dataset": dataset, "seed": seed, "method": name, **row})
                    print(
                        f"{dataset:5s} seed {seed}  {name:52s} FOSCTTM {row['foscttm']:.3f}  top-1 {row['top1']:.3f}  "
                        f"silhouette {row['silhouette']:.3f}  neighbour mixing {row['neighbor_mixing']:.3f}  "
                        f"matching {row['matching_score']:.4f}  {row['wall_s']:6.1f} s  "
                        f"peak RSS {row['peak_rss_gb']:.2f} GB",
                        flush=True,
                    )
    table = pd.DataFrame(rows)
    summaries = print_report(table, args.seeds, scclip_name, args.datasets)
    output.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": {
            "quick": args.quick,
            "seeds": args.seeds,
            "scclip_args": base_args,
            "threads": args.threads,
            "train_libraries": [lib for lib in LIBRARIES if lib not in args.held_out],
            "test_libraries": args.held_out,
            "recall_peaks": RECALL,
            "cca": CCA_SETTINGS,
            "temperature_grid": TEMPERATURES,
        },
        "summary": summaries,
        "rows": rows,
    }
    output.write_text(json.dumps(payload, indent=1, default=_json_default))
    print(f"\nwrote {output}")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


if __name__ == "__main__":
    main()
