"""``tl.label_transfer``: scNCL label transfer from an RNA reference to ATAC cells, written into the MuData."""

from __future__ import annotations

import inspect
import logging
import os
import warnings
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from sctransfer._constants import ATAC, GENE_ACTIVITY, KEY_ADDED, LSI_KEY, NEIGHBORS_KEY, RNA, SCNCL_EMBEDDING_KEY
from sctransfer._profiling import stage
from sctransfer._validation import (
    MISSING_LABELS,
    ReferenceLabelWarning,
    check_count,
    check_flag,
    check_kwargs,
    check_labels,
    check_unpaired,
    get_modality,
    rare_types,
    user_stacklevel,
    warn_rare_types,
    working_mudata,
)
from sctransfer.model import DECOMPOSITION_SEED, DEFAULT_NOVELTY_THRESHOLD, SCNCL, TransferResult
from sctransfer.pp._gene_activity import compute_gene_activity
from sctransfer.pp._neighbors import neighbor_indices, peak_neighbors

from ._common import (
    Field,
    ResultWriter,
    check_free,
    check_max_steps,
    check_model,
    model_params,
    tool_result,
    training_arguments,
    working_modality,
)

logger = logging.getLogger(__name__)

MIN_ATAC_CELLS = 31
"""Fewest ATAC cells label transfer builds a peak-space graph for (the graph uses 30 LSI components)."""


def _output_names(key_added: str) -> dict[str, str]:
    """Fields written: ``{key_added}_label|confidence|novelty|novel``, ``{key_added}_probabilities`` and ``X_scncl``."""
    names = {part: f"{key_added}_{part}" for part in ("label", "confidence", "novelty", "novel", "probabilities")}
    names["embedding"] = SCNCL_EMBEDDING_KEY if key_added == KEY_ADDED else f"{SCNCL_EMBEDDING_KEY}_{key_added}"
    return names


def _fields(key_added: str, rna_key: str | None, atac_key: str) -> list[Field]:
    names = _output_names(key_added)
    fields: list[Field] = [("obs", atac_key, names[p]) for p in ("label", "confidence", "novelty", "novel")]
    fields += [
        ("obsm", atac_key, names["probabilities"]),
        ("obsm", atac_key, names["embedding"]),
        ("uns", None, key_added),
    ]
    return fields + ([("obsm", rna_key, names["embedding"])] if rna_key is not None else [])


def _checked_kwargs(
    model_kwargs: dict[str, Any] | None,
    train_kwargs: dict[str, Any] | None,
    predict_kwargs: dict[str, Any] | None,
    train_args: dict[str, int],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Check the three keyword dicts against what they are passed to, before any work.

    ``model_kwargs`` go to :class:`~sctransfer.model.SCNCL` and on to its module, ``train_kwargs`` to
    :meth:`~sctransfer.model.SCNCL.train` and on to scvi-tools' and Lightning's trainers,
    ``predict_kwargs`` to :meth:`~sctransfer.model.SCNCL.transfer`; ``train_args`` are what the tool passes to
    ``train`` itself (:func:`training_arguments`).
    """
    model_options = SCNCL.check_model_kwargs(model_kwargs, set_by_caller=("random_state",))
    train_options = SCNCL.check_train_kwargs(train_kwargs, tool_arguments=tuple(train_args))
    predict_options = check_kwargs(predict_kwargs, SCNCL.transfer, argument="predict_kwargs", reserved=("adata",))
    check_flag("self_training", predict_options.get("self_training", True))
    return model_options, train_options, predict_options


def _reference_sizes(model: SCNCL) -> pd.Series:
    """Labelled reference cells per type of a trained model (index: its reference types)."""
    counts = np.bincount(model.reference_labels_, minlength=len(model.label_categories_))
    return pd.Series(counts, index=[str(t) for t in model.label_categories_], dtype=np.int64)


def _check_inputs(
    mdata: MuData,
    *,
    labels_key: str | None,
    model: SCNCL | None,
    rna_key: str,
    atac_key: str,
    rna_layer: str | None,
    atac_layer: str | None,
    novelty_threshold: float,
    novel_label: str | None,
    annotation,
    overwrite: bool,
) -> tuple[AnnData, np.ndarray]:
    """Every check that needs no training; returns the ATAC modality and the mask of its cells without counts."""
    if isinstance(novelty_threshold, bool) or not isinstance(novelty_threshold, int | float | np.integer | np.floating):
        raise TypeError(f"novelty_threshold must be a number (robust z units), got {novelty_threshold!r}.")
    if not np.isfinite(novelty_threshold):
        raise ValueError(f"novelty_threshold must be a finite number (robust z units), got {novelty_threshold}.")
    atac, summary = get_modality(
        mdata, atac_key, role="ATAC peaks", layer=atac_layer, counts_argument="atac_layer", with_summary=True
    )
    if model is None:
        if labels_key is None:
            raise ValueError("labels_key is required to train (the RNA .obs column with cell types); or pass model=.")
        rna = get_modality(mdata, rna_key, role="RNA reference", layer=rna_layer, counts_argument="rna_layer")
        check_unpaired(rna, atac, rna_key=rna_key, atac_key=atac_key)
        known = set(check_labels(rna, labels_key, key=rna_key).categories)
    else:
        known = set(model.label_categories_)
        warn_rare_types(_reference_sizes(model), source="the model's reference")
    if novel_label is not None and novel_label in known:
        raise ValueError(f"novel_label={novel_label!r} is a reference cell type; choose another name.")
    if novel_label is not None and (not isinstance(novel_label, str) or novel_label.strip() in MISSING_LABELS):
        raise ValueError(
            f"novel_label={novel_label!r} reads as a missing label; choose a name such as 'Unknown' or 'Novel'."
        )
    existing = mdata.mod.get(GENE_ACTIVITY)
    if existing is not None and not existing.obs_names.equals(atac.obs_names) and not overwrite:
        raise ValueError(
            f"The MuData has a {GENE_ACTIVITY!r} modality for other cells than mdata[{atac_key!r}]; "
            "label_transfer would replace it. Pass overwrite=True, or remove or rename that modality."
        )
    if (existing is None or not existing.obs_names.equals(atac.obs_names)) and annotation is None:
        raise ValueError(
            "annotation= is needed to compute the gene activity of the ATAC cells: a GTF/GFF3/BED/TSV path, "
            "a DataFrame, or a built-in genome name such as 'mm10' / 'hg38'."
        )
    has_graph = NEIGHBORS_KEY in atac.uns and f"{NEIGHBORS_KEY}_distances" in atac.obsp
    if has_graph:
        neighbor_indices(atac, NEIGHBORS_KEY)
    elif atac.n_obs < MIN_ATAC_CELLS:
        fix = (
            "or label these with a trained model on a larger data set first: label_transfer(mdata, model=...)."
            if model is None
            else "or build the graph yourself with fewer components than cells first, e.g. "
            f"sctransfer.pp.peak_neighbors(mdata, n_components={max(2, atac.n_obs // 2)}, "
            f"n_neighbors={max(1, min(10, atac.n_obs // 3))})."
        )
        raise ValueError(
            f"mdata[{atac_key!r}] has {atac.n_obs} ATAC cells; label_transfer needs at least {MIN_ATAC_CELLS} to build "
            "their peak-space neighbour graph (30 LSI components), which the novelty score and the self-training "
            f"use. Label more cells at once (e.g. pool samples), {fix}"
        )
    elif LSI_KEY in atac.obsm and not overwrite:
        raise ValueError(
            f"mdata[{atac_key!r}].obsm[{LSI_KEY!r}] exists but there is no peak-space graph; computing one would "
            f"replace that LSI. Build the graph on it first with sctransfer.pp.peak_neighbors(mdata, "
            f"use_rep={LSI_KEY!r}), or pass overwrite=True."
        )
    empty = summary.empty_rows  # from the counts check's pass over the values
    if empty.all():
        raise ValueError(f"No cell of mdata[{atac_key!r}] has any count; there is nothing to label.")
    if empty.any():
        warnings.warn(
            f"{int(empty.sum()):,} of {atac.n_obs:,} cells of mdata[{atac_key!r}] have no counts: they are left "
            "unlabelled (NaN label, confidence and novelty). Remove them first with sc.pp.filter_cells(atac, "
            "min_counts=1) to keep them out of the peak-space graph too.",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    return atac, empty


#: An existing gene-activity modality that reaches fewer of the genes the model reads is reported.
MIN_ACTIVITY_GENE_SHARE = 0.9


def _reusable_activity(mdata: MuData, atac: AnnData, genes: pd.Index, *, annotation, overwrite: bool) -> AnnData | None:
    """The existing gene-activity modality to use, or None to compute it; checked before any work.

    It is used when it holds the ATAC cells, unless ``overwrite`` and an ``annotation`` ask to compute it
    again (it may be left from an earlier call on other genes). When it reaches fewer than
    ``MIN_ACTIVITY_GENE_SHARE`` of the ``genes`` the model reads, a warning names the share and the fix.
    """
    existing = mdata.mod.get(GENE_ACTIVITY)
    if existing is None or not existing.obs_names.equals(atac.obs_names) or (overwrite and annotation is not None):
        return None
    held = genes.isin(existing.var_names)
    share = float(held.mean()) if len(genes) else 1.0
    if share < MIN_ACTIVITY_GENE_SHARE:
        fix = (
            "pass overwrite=True (with annotation=)"
            if annotation is not None
            else "pass annotation= and overwrite=True"
        )
        warnings.warn(
            f"The existing mdata[{GENE_ACTIVITY!r}] modality holds {share:.0%} of the {len(genes):,} genes the model "
            f"reads ({int(held.sum()):,}); the others are treated as missing, which lowers "
            f"accuracy. It may be left from an earlier call or computed for other genes: {fix} to compute it again "
            f"from the peaks, or delete it (del mdata.mod[{GENE_ACTIVITY!r}]; mdata.update()).",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    return existing


def _model_inputs(
    mdata: MuData,
    atac: AnnData,
    writer: ResultWriter,
    *,
    activity: AnnData | None,
    annotation,
    genes,
    atac_key: str,
    atac_layer: str | None,
) -> tuple[AnnData, AnnData]:
    """Light gene-activity and ATAC modalities for the model; what is computed here is queued in ``writer``.

    A peak-space graph computed here uses the model's fixed decomposition seed, not ``random_state``:
    the graph feeds the training (contrastive positives), the self-training (novelty) and the novelty
    smoothing, and a graph that changed with the seed made a third of the label changes between seeds.
    """
    if activity is not None:
        logger.info("Using the existing %r modality.", GENE_ACTIVITY)
    else:
        with stage("gene activity"):
            activity = compute_gene_activity(
                atac,
                annotation,
                genes=genes,
                layer=atac_layer,
                modality=atac_key,
                layer_argument="atac_layer",
                empty_cells_reported=True,  # _check_inputs warned about them
            )
        writer.modalities[GENE_ACTIVITY] = activity
    work_atac = working_modality(atac, [], layer=atac_layer)
    graph = f"{NEIGHBORS_KEY}_distances"
    if NEIGHBORS_KEY in atac.uns and graph in atac.obsp:
        work_atac.obsp[graph] = atac.obsp[graph]
        work_atac.uns[NEIGHBORS_KEY] = atac.uns[NEIGHBORS_KEY]
    else:
        peak_neighbors(work_atac, key_added=NEIGHBORS_KEY, random_state=DECOMPOSITION_SEED)
        for key, value in work_atac.obsp.items():
            writer.obsp[atac_key, key] = value
        writer.obsm[atac_key, LSI_KEY] = work_atac.obsm[LSI_KEY]
        writer.mod_uns[atac_key, NEIGHBORS_KEY] = work_atac.uns[NEIGHBORS_KEY]
    return working_modality(activity, [], keep_var=True), work_atac


def _fit(work: MuData, labels_key: str, model_kwargs: dict, train_args: dict, train_kwargs: dict) -> SCNCL:
    """Set up and train :class:`~sctransfer.model.SCNCL` on the working MuData."""
    with stage("model set-up"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ReferenceLabelWarning)  # reported by the input checks already
        SCNCL.setup_mudata(work, labels_key=labels_key)
        model = SCNCL(work, random_state=train_args["random_state"], **model_kwargs)
    with stage("training"):
        model.train(**train_args, **train_kwargs)
    return model


def _queue_results(
    writer: ResultWriter,
    result: TransferResult,
    model: SCNCL,
    *,
    key_added: str,
    atac_key: str,
    novelty_threshold: float,
    novel_label: str | None,
    empty: np.ndarray,
    params: dict[str, Any],
) -> pd.Series:
    """Queue the label-transfer fields of ``result`` in ``writer``; returns the novel calls.

    Cells without counts (``empty``) get no label, NaN confidence, novelty and probabilities, and are not novel.
    """
    names = _output_names(key_added)
    proba = result.probabilities.to_numpy(dtype=np.float32)
    broken = ~np.isfinite(proba[~empty]).all(axis=1) | ~np.isfinite(result.embedding[~empty]).all(axis=1)
    if broken.any():
        raise FloatingPointError(
            f"The model gave non-finite probabilities or embeddings for {int(broken.sum()):,} ATAC cells, so no label "
            "is written. Training probably diverged: retrain with a lower learning rate, e.g. "
            "train_kwargs={'plan_kwargs': {'lr': 1e-3}}."
        )
    proba[empty] = np.nan
    novelty = np.where(empty, np.nan, result.novelty.to_numpy(dtype=np.float32)).astype(np.float32)
    novel = np.nan_to_num(novelty, nan=-np.inf) > novelty_threshold
    label_names = result.probabilities.columns.to_numpy(dtype=object)[np.nan_to_num(proba, nan=0).argmax(axis=1)]
    categories = [str(t) for t in model.label_categories_]
    if novel_label is not None:
        label_names = np.where(novel, novel_label, label_names)
        categories.append(novel_label)
    labels = pd.Categorical(np.where(empty, None, label_names), categories=categories)
    writer.obs[atac_key, names["label"]] = labels
    writer.obs[atac_key, names["confidence"]] = np.where(empty, np.nan, proba.max(axis=1, initial=0)).astype(np.float32)
    writer.obs[atac_key, names["novelty"]] = novelty
    writer.obs[atac_key, names["novel"]] = novel
    writer.obsm[atac_key, names["probabilities"]] = proba
    writer.obsm[atac_key, names["embedding"]] = result.embedding
    counts = pd.Series(labels).value_counts(sort=False, dropna=False)
    rare = rare_types(_reference_sizes(model))
    writer.uns[key_added] = {
        "params": params,
        "reference_types": [str(t) for t in model.label_categories_],
        "n_cells": len(labels),
        "label_counts": pd.DataFrame({"label": counts.index.astype(str), "n_cells": counts.to_numpy(np.int64)}),
        "n_unlabelled": int(empty.sum()),
        "novel_fraction": float(novel.mean()),
        "rare_types": pd.DataFrame({"label": rare.index.astype(str), "n_cells": rare.to_numpy(np.int64)}),
    }
    return pd.Series(novel, index=result.probabilities.index)


def label_transfer(
    mdata: MuData,
    *,
    labels_key: str | None = None,
    annotation: str | os.PathLike | pd.DataFrame | None = None,
    model: SCNCL | None = None,
    rna_key: str = RNA,
    atac_key: str = ATAC,
    rna_layer: str | None = None,
    atac_layer: str | None = None,
    key_added: str = KEY_ADDED,
    novelty_threshold: float = DEFAULT_NOVELTY_THRESHOLD,
    novel_label: str | None = None,
    overwrite: bool = False,
    max_steps: int | None = None,
    random_state: int = 0,
    model_kwargs: dict[str, Any] | None = None,
    train_kwargs: dict[str, Any] | None = None,
    predict_kwargs: dict[str, Any] | None = None,
    return_model: bool = False,
    copy: bool = False,
) -> SCNCL | MuData | None:
    """Transfer cell-type labels from an RNA reference to ATAC cells (scNCL).

    Runs whatever is missing of :func:`~sctransfer.pp.gene_activity` and
    :func:`~sctransfer.pp.peak_neighbors`, trains :class:`~sctransfer.model.SCNCL` (or uses
    ``model``), and writes the results into the MuData. Every input is checked before any work, and
    nothing is written until every step has succeeded, so an error leaves the MuData as it was.

    Parameters
    ----------
    mdata
        MuData with an RNA modality (``rna_key``, counts, cell types in ``.obs[labels_key]``) and an
        ATAC modality (``atac_key``, peak counts of *other* cells). With ``model=``, only the ATAC
        modality is needed. Cell and feature names must be unique within each modality.
    labels_key
        Column of ``mdata[rna_key].obs`` with the reference cell types (training only). Cells with a
        missing label (NaN, None, ``"nan"``) are not used for training; categories no cell carries are
        not reference types.
    annotation
        Gene coordinates for the gene activity: GTF/GFF3, BED or TSV path, a DataFrame, or a built-in
        genome name (see :func:`~sctransfer.pp.read_gene_annotation`). Not needed when the MuData already
        has a ``"gene_activity"`` modality for the same cells, or with ``model=`` (the model keeps the
        coordinates of its genes).
    model
        A trained :class:`~sctransfer.model.SCNCL` to apply to the ATAC cells of ``mdata`` without
        training (new cells; gene activity computed with the model's genes).
    rna_key, atac_key
        Modality names.
    rna_layer, atac_layer
        Layers with raw counts; ``None`` uses ``.X``.
    key_added
        Prefix of the ``.obs`` columns written, suffix of the embedding key and key of ``mdata.uns``;
        it must be storable in ``.h5mu``/``.zarr`` (no ``/``).
    novelty_threshold
        Cells whose novelty score (:attr:`~sctransfer.model.TransferResult.novelty`, robust z units)
        exceeds this value are called novel (``{key_added}_novel``). Lower it to find more novel cells
        at the cost of more false calls.
    novel_label
        Label written to ``{key_added}_label`` for the cells called novel, e.g. ``"Unknown"`` (added as
        a category); ``None`` keeps their best reference type, so the call is only in ``{key_added}_novel``.
    overwrite
        Replace fields written by an earlier call; otherwise existing fields are an error.
    max_steps
        Training steps (``None``: :meth:`~sctransfer.model.SCNCL.train`'s default).
    random_state
        Seed of the training's sampler. The peak-space graph computed here, the model's own decompositions and
        the start of its linear encoder do not depend on it (they use a fixed seed, see
        :class:`~sctransfer.model.SCNCL`), so runs with different seeds differ only in the order in which
        training draws cells: on MOp SNARE-seq (RNA 09A-F -> ATAC 09G-L, 14 types) seeds 0-2 give the same
        label to 97.8% of the cells (:doc:`/benchmarks`).
    model_kwargs, train_kwargs, predict_kwargs
        Passed to :class:`~sctransfer.model.SCNCL` (and its :class:`~sctransfer.module.SCNCLModule`),
        :meth:`~sctransfer.model.SCNCL.train` (and scvi-tools' and Lightning's trainers, e.g.
        ``{"max_epochs": 10, "accelerator": "cpu"}``) and :meth:`~sctransfer.model.SCNCL.transfer`;
        checked before any work.
    return_model
        Return the model (trained or given).
    copy
        Work on a copy of ``mdata`` and return it.

    Returns
    -------
    The model if ``return_model``; the new MuData if ``copy``; both, as ``(mdata, model)``, with both; else
    None. Writes:

    - ``mdata[atac_key].obs[f"{key_added}_label"]``: predicted type (categorical, reference types as
      strings, e.g. ``"3"`` for an integer label ``3``, plus ``novel_label`` if given);
    - ``mdata[atac_key].obs[f"{key_added}_confidence"]``: highest class probability, in [0, 1]: a calibrated
      probability that the label is right. The probabilities are those of
      :meth:`~sctransfer.model.SCNCL.transfer`, whose self-training step pools the model's ensemble with a
      classifier that learns the ensemble's labels of the other ATAC cells from their peaks (cross-fitted;
      cells called novel do not teach it); on MOp SNARE-seq (three library splits, 14 and 23 types, three
      seeds) the expected calibration error is at most 0.05, i.e. among cells with confidence about 0.8 about
      80% are right (:doc:`/benchmarks`). Check it on data with known labels with
      :func:`~sctransfer.pl.reliability_diagram`. It also held with two types missing from the reference (whose
      cells stay unsure) and a query of three types. Trained on a query whose type mix differs strongly from the
      reference's, the confidence is too high (query without the reference's largest type, or a reference with
      15 cells of the query's: ECE 0.14-0.15, against 0.04-0.05 with ``predict_kwargs={"self_training":
      False}``; 0.26 in a new-user trial on 227 cells of five small types, RNA 09A-B -> ATAC 09I-J), and a
      query of a single type is mislabelled (accuracy 0.02 for Astro cells alone, 0.53 for L2/3
      cells alone, against recalls of 0.76 and 0.82 in the full query). Label such a query together with other
      cells (pool samples), or with a model trained on a fuller one (``model=``): new ATAC cells are transformed
      with the input statistics of the cells the model was trained with (``SCNCL.query_statistics_``), so their
      types keep what sets them apart. Measured on MOp (model trained on RNA 09A-F and ATAC 09G-I, queries from
      ATAC 09J-L, ``benchmarks/label_transfer_shift.py --model-query``): ECE 0.04-0.06 for a query without L2/3,
      of three types or of a random type mix (0.06-0.12 with each query's own statistics), 0.02 without shift, and
      a query of Astro cells only labelled with accuracy 0.80 (ECE 0.18; 0.08 before). Cells relabelled
      ``novel_label`` keep the confidence of their most likely reference type (the probability that this
      type would be right, not that the cell is novel: see ``_novelty`` for that);
    - ``mdata[atac_key].obs[f"{key_added}_novelty"]``: novelty score (float32);
    - ``mdata[atac_key].obs[f"{key_added}_novel"]``: ``novelty > novelty_threshold`` (bool);
    - ``mdata[atac_key].obsm[f"{key_added}_probabilities"]``: cells x reference types (float32; columns in
      the order of ``mdata.uns[key_added]["reference_types"]``);
    - ``mdata[atac_key].obsm["X_scncl"]`` and (training) ``mdata[rna_key].obsm["X_scncl"]``: the shared
      embedding (``"X_scncl_{key_added}"`` when ``key_added`` is not ``"sctransfer"``);
    - ``mdata.mod["gene_activity"]`` when it was computed here (see :func:`~sctransfer.pp.gene_activity`;
      an existing one for the same cells is used, unless ``overwrite`` and ``annotation`` are given);
    - ``mdata[atac_key].obsm["X_lsi"]``, ``.obsp["peak_neighbors_*"]``, ``.uns["peak_neighbors"]`` when the
      graph was computed here (see :func:`~sctransfer.pp.peak_neighbors`);
    - ``mdata.uns[key_added]``: ``params``, ``reference_types`` (array of str), ``n_cells``,
      ``label_counts`` (a DataFrame with columns ``label`` and ``n_cells``), ``n_unlabelled``,
      ``novel_fraction`` and ``rare_types`` (the reference types with fewer than 15 labelled cells and
      their counts, columns ``label`` and ``n_cells``; see Warns).

    ATAC cells without any count are left unlabelled (NaN label, confidence, novelty and
    probabilities; not novel), with a warning; ``n_unlabelled`` counts them.

    Every field survives ``mdata.write()`` / ``write_zarr()`` and reading back unchanged; settings that are
    ``None`` (e.g. ``novel_label`` by default) are left out of ``params`` (the files have no null), so read
    them with ``params.get(...)``.

    Warns
    -----
    RareTypeWarning
        (``sctransfer.tl.RareTypeWarning``) Before any work, once, when reference types have fewer than 15
        labelled cells, naming them: such types are rarely predicted (on MOp SNARE-seq, 17 of 19 such types
        across six library splits and label levels went to at most 10% of their query cells, most to none, with
        the label of a similar larger type and no reliably lower confidence; types with 15-99 cells reached a
        median recall of 0.12-0.23, types with 100 or more 0.55-0.67). Add reference cells of these types,
        merge them into coarser labels, or drop them when the query should not have them. With ``model=``,
        about the model's reference.
    UserWarning
        ATAC cells without counts (left unlabelled); an existing ``mdata["gene_activity"]`` (used as it is
        unless ``overwrite`` and ``annotation`` ask to compute it again) that holds fewer than 90% of the
        genes the model reads.

    Raises
    ------
    KeyError, ValueError, TypeError
        Before any work, for a missing modality, layer or label column, duplicate names, values that
        are not counts, a reference with fewer than two types, a ``key_added`` that cannot be stored,
        fields that exist already (without ``overwrite``), or ``model_kwargs``, ``train_kwargs``
        or ``predict_kwargs`` with a key that what they are passed to does not take (the message names
        the closest valid key).
    """
    training = model is None
    check_model(model, SCNCL)
    check_max_steps(max_steps)
    check_count("random_state", random_state, minimum=0)
    if not training and labels_key is not None:
        warnings.warn(
            f"labels_key={labels_key!r} is ignored with model= (the model's reference types are used).",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    train_args = training_arguments(random_state, max_steps)
    model_kwargs, train_kwargs, predict_kwargs = _checked_kwargs(model_kwargs, train_kwargs, predict_kwargs, train_args)
    checks = {"labels_key": labels_key, "model": model, "rna_key": rna_key, "atac_key": atac_key}
    checks |= {"rna_layer": rna_layer, "atac_layer": atac_layer, "novelty_threshold": novelty_threshold}
    annotation = annotation if training or annotation is not None else model.gene_coordinates_
    atac, empty = _check_inputs(mdata, **checks, novel_label=novel_label, annotation=annotation, overwrite=overwrite)
    fields = _fields(key_added, rna_key if training else None, atac_key)
    check_free(mdata, fields, tool="label_transfer", key_added=key_added, overwrite=overwrite)
    target = mdata.copy() if copy else mdata
    writer = ResultWriter()
    genes = mdata[rna_key].var_names if training else pd.Index(model.gene_names_)
    reused = _reusable_activity(mdata, atac, genes, annotation=annotation, overwrite=overwrite)
    inputs = {"annotation": annotation, "genes": genes, "atac_key": atac_key, "atac_layer": atac_layer}
    activity, work_atac = _model_inputs(mdata, atac, writer, activity=reused, **inputs)
    modalities = {GENE_ACTIVITY: activity, ATAC: work_atac}
    if training:
        modalities[RNA] = working_modality(mdata[rna_key], [labels_key], layer=rna_layer)
    work = working_mudata(modalities)
    if training:
        model = _fit(work, labels_key, model_kwargs, train_args, train_kwargs)
        writer.obsm[rna_key, _output_names(key_added)["embedding"]] = model.get_latent_representation(modality=RNA)
    with stage("prediction"):
        result = model.transfer(work, **predict_kwargs)
    predict_params = {"self_training": inspect.signature(SCNCL.transfer).parameters["self_training"].default}
    params = {"labels_key": labels_key, "rna_key": rna_key if training else None, "atac_key": atac_key}
    params |= {"trained_here": training, "novelty_threshold": float(novelty_threshold), "novel_label": novel_label}
    params |= {
        "random_state": int(random_state),
        "model": model_params(model),
        "predict": predict_params | predict_kwargs,
    }
    params["train"] = dict(getattr(model, "train_params_", {}))
    calls = {"novelty_threshold": novelty_threshold, "novel_label": novel_label, "empty": empty}
    novel = _queue_results(writer, result, model, key_added=key_added, atac_key=atac_key, **calls, params=params)
    with stage("writing results"):
        writer.write(target)
    logger.info("Label transfer: %d ATAC cells labelled; %.1f%% called novel.", len(novel), 100 * novel.mean())
    return tool_result(target, model, copy=copy, return_model=return_model)
