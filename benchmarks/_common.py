"""Shared pieces of the label-transfer benchmarks: splits, baselines, isolated timed runs."""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
import traceback
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

import sctransfer as st
from sctransfer.model._transform import InputTransform

LIBRARIES = tuple(f"09{c}" for c in "ABCDEFGHIJKL")
SPLITS = {
    "A-F->G-L": (LIBRARIES[:6], LIBRARIES[6:]),
    "G-L->A-F": (LIBRARIES[6:], LIBRARIES[:6]),
    "even->odd": (LIBRARIES[0::2], LIBRARIES[1::2]),
}


#: Label levels of MOp: the 14 coarse types and the 23 fine ones (``--fine``).
LEVELS = {"coarse": "cell_type", "fine": "cell_type_fine"}


def load_split(name: str, labels_key: str = "cell_type"):
    """The unpaired MOp split and the ATAC truth at level ``labels_key``; both label columns leave the ATAC cells."""
    rna_libraries, atac_libraries = SPLITS[name]
    mdata = st.datasets.mop_label_transfer(rna_libraries=rna_libraries, atac_libraries=atac_libraries)
    truth = mdata["atac"].obs[labels_key].astype(str).to_numpy()
    for column in LEVELS.values():
        mdata["atac"].obs.pop(column)
    return mdata, truth


def scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float | dict[str, float]]:
    """Accuracy, macro-F1, the F1 of each true type (the terms macro-F1 averages) and its number of query cells."""
    types, counts = np.unique(truth, return_counts=True)
    types = types.tolist()
    per_type = f1_score(truth, pred, labels=types, average=None, zero_division=0.0)
    return {
        "accuracy": st.metrics.accuracy(truth, pred),
        "macro_f1": st.metrics.macro_f1(truth, pred),
        "f1_per_type": dict(zip(types, per_type.tolist(), strict=True)),
        "query_cells_per_type": dict(zip(types, counts.tolist(), strict=True)),
    }


# --------------------------------------------------------------------------------------------
# baselines (gene space: RNA vs gene activity of the ATAC cells)
# --------------------------------------------------------------------------------------------
def _standardised_inputs(mdata, labels_key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rna = mdata["rna"]
    activity = st.pp.gene_activity(mdata["atac"], "mm10", genes=rna.var_names)  # an AnnData for an AnnData
    genes = np.asarray([g for g in rna.var_names if g in set(activity.var_names)])
    x_rna = sp.csr_matrix(rna[:, genes].X)
    x_atac = sp.csr_matrix(activity[:, genes].X)
    z_rna = InputTransform.fit(x_rna)(x_rna)
    z_atac = InputTransform.fit(x_atac)(x_atac)
    return z_rna, z_atac, rna.obs[labels_key].astype(str).to_numpy()


def _knn_vote(z_ref: np.ndarray, y_ref: np.ndarray, z_query: np.ndarray, k: int = 15) -> np.ndarray:
    """Majority type among each query cell's k most cosine-similar reference cells."""
    a = z_query / np.linalg.norm(z_query, axis=1, keepdims=True)
    b = z_ref / np.linalg.norm(z_ref, axis=1, keepdims=True)
    nearest = np.argpartition(-(a @ b.T), k, axis=1)[:, :k]
    types, codes = np.unique(y_ref, return_inverse=True)
    votes = np.stack([np.bincount(row, minlength=len(types)) for row in codes[nearest]])
    return types[votes.argmax(axis=1)]


def baseline_rna_classifier(mdata, random_state: int = 0, labels_key: str = "cell_type") -> np.ndarray:
    """Logistic regression trained on the RNA reference, applied to the gene activity."""
    z_rna, z_atac, y = _standardised_inputs(mdata, labels_key)
    clf = LogisticRegression(C=0.1, max_iter=500, random_state=random_state).fit(z_rna, y)
    return clf.predict(z_atac)


def baseline_joint_pca_knn(mdata, random_state: int = 0, labels_key: str = "cell_type") -> np.ndarray:
    """PCA of RNA and gene activity together (30 PCs), then 15-NN vote among RNA cells."""
    z_rna, z_atac, y = _standardised_inputs(mdata, labels_key)
    pcs = PCA(30, random_state=random_state).fit_transform(np.vstack([z_rna, z_atac]))
    return _knn_vote(pcs[: len(z_rna)], y, pcs[len(z_rna) :])


def baseline_harmony_knn(mdata, random_state: int = 0, labels_key: str = "cell_type") -> np.ndarray:
    """Joint PCA, Harmony over the modality, then 15-NN vote among RNA cells."""
    import harmonypy

    z_rna, z_atac, y = _standardised_inputs(mdata, labels_key)
    pcs = PCA(30, random_state=random_state).fit_transform(np.vstack([z_rna, z_atac]))
    meta = pd.DataFrame({"modality": ["rna"] * len(z_rna) + ["atac"] * len(z_atac)})
    corrected = harmonypy.run_harmony(pcs, meta, ["modality"], random_state=random_state, verbose=False).Z_corr
    corrected = np.asarray(corrected)
    if corrected.shape[0] != pcs.shape[0]:
        corrected = corrected.T
    return _knn_vote(corrected[: len(z_rna)], y, corrected[len(z_rna) :])


def ceiling_atac_classifier(
    mdata, random_state: int = 0, labels_key: str = "cell_type", *, balanced: bool = False
) -> np.ndarray:
    """Not a transfer method: a classifier trained on the reference cells' own ATAC with their labels.

    SNARE-seq measures both modalities in every cell, so the RNA reference cells' ATAC profiles
    exist. A logistic regression on their LSI (TF-IDF + SVD of all ATAC cells, first component
    dropped, rows scaled to unit length) with the reference labels shows what ATAC alone supports
    on this data: a ceiling for RNA -> ATAC transfer, which never sees a labelled ATAC profile.
    The number of LSI components and the regularisation are chosen by 3-fold cross-validation
    accuracy on the reference cells (never on the query). ``balanced=True`` weights each type by the
    inverse of its reference count and chooses by cross-validated macro-F1 instead: the same ceiling
    for the rare types, i.e. for macro-F1.
    """
    from sklearn.model_selection import GridSearchCV

    paired = st.datasets.mop_snareseq()
    reference = paired["atac"][mdata["rna"].obs_names.str.removeprefix("rna:")]
    peaks = sp.vstack([sp.csr_matrix(reference.X), sp.csr_matrix(mdata["atac"].X)])
    labels = mdata["rna"].obs[labels_key].astype(str).to_numpy()
    best_score, best = -1.0, None
    for n_components in (50, 100):
        lsi = st.pp.tfidf_lsi(peaks, n_components=n_components, random_state=random_state)
        lsi /= np.linalg.norm(lsi, axis=1, keepdims=True).clip(min=1e-12)
        search = GridSearchCV(
            LogisticRegression(max_iter=2000, class_weight="balanced" if balanced else None),
            {"C": [0.1, 1.0, 10.0]},
            cv=3,
            scoring="f1_macro" if balanced else "accuracy",
        )
        search.fit(lsi[: reference.n_obs], labels)
        if search.best_score_ > best_score:
            best_score, best = search.best_score_, (search.best_estimator_, lsi)
    classifier, lsi = best
    return classifier.predict(lsi[reference.n_obs :])


def sctransfer_default(
    mdata, random_state: int = 0, labels_key: str = "cell_type", **kwargs
) -> tuple[np.ndarray, np.ndarray]:
    """``st.tl.label_transfer`` with its defaults (gene activity, LSI, kNN, training); labels and confidence."""
    st.tl.label_transfer(mdata, labels_key=labels_key, annotation="mm10", random_state=random_state, **kwargs)
    obs = mdata["atac"].obs
    return obs["sctransfer_label"].astype(str).to_numpy(), obs["sctransfer_confidence"].to_numpy()


METHODS: dict[str, Callable] = {
    "sctransfer (default)": sctransfer_default,
    "RNA classifier on gene activity": baseline_rna_classifier,
    "joint PCA + kNN": baseline_joint_pca_knn,
    "PCA + Harmony + kNN": baseline_harmony_knn,
}
#: Reference points that are not transfer methods (they use labels a transfer does not have).
CEILINGS: dict[str, Callable] = {
    "ceiling: ATAC classifier with ATAC labels": ceiling_atac_classifier,
    "ceiling: class-balanced ATAC classifier (macro-F1)": partial(ceiling_atac_classifier, balanced=True),
}


# --------------------------------------------------------------------------------------------
# fresh processes: wall time and peak resident memory of one run alone
# --------------------------------------------------------------------------------------------
def _call(queue, function: Callable, threads: int, args: tuple, kwargs: dict) -> None:
    try:
        import torch

        torch.set_num_threads(threads)
        queue.put({"ok": True, "value": function(*args, **kwargs)})
    except Exception:  # noqa: BLE001 - reported to the parent
        queue.put({"ok": False, "error": traceback.format_exc()})


def in_fresh_process(function: Callable, *args, threads: int = 2, **kwargs):
    """``function(*args, **kwargs)`` in a fresh spawned process with ``threads`` torch threads; its return value.

    ``function`` must be importable by name (a module-level function, also of a benchmark run as a script);
    its return value must pickle. An exception in the child is raised here as a RuntimeError with the child's
    traceback.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_call, args=(queue, function, threads, args, kwargs))
    proc.start()
    result = queue.get()
    proc.join()
    if not result["ok"]:
        raise RuntimeError(f"{function.__name__} failed in its process:\n{result['error']}")
    return result["value"]


def measure_method(method_name: str, split: str, random_state: int, labels_key: str, kwargs: dict) -> dict:
    """One method on one split in this process: scores, confidence calibration, labels, times, peak memory."""
    mdata, truth = load_split(split, labels_key)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    fn = {**METHODS, **CEILINGS}.get(method_name, sctransfer_default)
    cpu_start = time.process_time()
    pred = fn(mdata, random_state=random_state, labels_key=labels_key, **kwargs)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pred, confidence = pred if isinstance(pred, tuple) else (pred, None)
    calibration = {}
    if confidence is not None:
        calibration = {
            "ece": st.metrics.expected_calibration_error(truth, pred, confidence),
            "mean_confidence": float(np.nanmean(confidence)),
        }
    return {
        **scores(truth, pred),
        **calibration,
        "labels": [str(p) for p in pred],
        "cpu_s": cpu,
        "wall_s": wall,
        "peak_rss_gb": peak / 1e6,
        "data_rss_gb": base_rss / 1e6,
    }


def run_isolated(
    method_name: str, split: str, random_state: int = 0, labels_key: str = "cell_type", threads: int = 2, **kwargs
) -> dict:
    """Run one method on one split in a fresh process (``threads`` torch threads).

    Returns scores (accuracy, macro-F1; ECE and mean confidence for methods that give a confidence),
    the predicted ``labels`` (list, ATAC cell order), wall time, CPU time of the process and peak RSS.
    """
    return in_fresh_process(measure_method, method_name, split, random_state, labels_key, kwargs, threads=threads)
