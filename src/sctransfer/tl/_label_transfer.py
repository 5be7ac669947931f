"""``tl.label_transfer``: scNCL label transfer from an RNA reference to ATAC cells, written into the MuData."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from sctransfer._profiling import stage
from sctransfer._validation import check_unpaired, get_modality, update_mudata, working_mudata
from sctransfer.model import SCNCL
from sctransfer.model._novelty import DEFAULT_NOVELTY_THRESHOLD, DEFAULT_SMOOTHING_ROUNDS
from sctransfer.model._scncl import (
    DEFAULT_MODALITIES,
    DEFAULT_PRIOR_CORRECTION,
    DEFAULT_REFERENCE_NEIGHBORS,
    PREDICT_BATCH_SIZE,
)
from sctransfer.pp._gene_activity import compute_gene_activity
from sctransfer.pp._neighbors import neighbor_indices, peak_neighbors

from ._common import without_none, working_modality

logger = logging.getLogger(__name__)

EMBEDDING_KEY = "X_scncl"
GENE_ACTIVITY_MODALITY = "gene_activity"
NEIGHBORS_KEY = "peak_neighbors"


def _output_names(key_added: str) -> dict[str, str]:
    """Fields written: ``{key_added}_label|confidence|novelty|novel``, ``{key_added}_probabilities`` and ``X_scncl``."""
    return {
        "label": f"{key_added}_label",
        "confidence": f"{key_added}_confidence",
        "novelty": f"{key_added}_novelty",
        "novel": f"{key_added}_novel",
        "probabilities": f"{key_added}_probabilities",
        "embedding": EMBEDDING_KEY if key_added == "sctransfer" else f"{EMBEDDING_KEY}_{key_added}",
    }


def _check_free(mdata: MuData, rna_key: str | None, atac_key: str, key_added: str, overwrite: bool) -> None:
    """Refuse to replace fields the user already has, before any work is done."""
    if overwrite:
        return
    names = _output_names(key_added)
    embedding = names.pop("embedding")
    probabilities = names.pop("probabilities")
    taken = [f"mdata[{atac_key!r}].obs[{c!r}]" for c in names.values() if c in mdata[atac_key].obs]
    if probabilities in mdata[atac_key].obsm:
        taken.append(f"mdata[{atac_key!r}].obsm[{probabilities!r}]")
    taken += [f"mdata[{m!r}].obsm[{embedding!r}]" for m in (rna_key, atac_key) if m and embedding in mdata[m].obsm]
    if key_added in mdata.uns:
        taken.append(f"mdata.uns[{key_added!r}]")
    if taken:
        raise ValueError(
            f"label_transfer would replace existing fields: {', '.join(taken)}. Pass overwrite=True to replace them, "
            "or key_added='...' to write the labels under other names."
        )


def _gene_coordinates(activity: AnnData) -> pd.DataFrame:
    """Gene table of the gene-activity modality, 1-based like GTF (so it reads back as an annotation)."""
    var = activity.var
    return pd.DataFrame(
        {
            "chrom": var["chrom"].astype(str).to_numpy(),
            "start": var["start"].to_numpy(np.int64) + 1,
            "end": var["end"].to_numpy(np.int64),
            "strand": var["strand"].astype(str).to_numpy(),
            "gene_name": np.asarray(activity.var_names, dtype=str),
        }
    )


def label_transfer(
    mdata: MuData,
    *,
    labels_key: str | None = None,
    annotation: str | os.PathLike | pd.DataFrame | None = None,
    model: SCNCL | None = None,
    rna_key: str = "rna",
    atac_key: str = "atac",
    rna_layer: str | None = None,
    atac_layer: str | None = None,
    key_added: str = "sctransfer",
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
    ``model``), and writes the results into the MuData. Nothing is written until every step has
    succeeded, so an error leaves the MuData as it was.

    Parameters
    ----------
    mdata
        MuData with an RNA modality (``rna_key``, counts, cell types in ``.obs[labels_key]``) and an
        ATAC modality (``atac_key``, peak counts of *other* cells). With ``model=``, only the ATAC
        modality is needed.
    labels_key
        Column of ``mdata[rna_key].obs`` with the reference cell types (training only).
    annotation
        Gene coordinates for the gene activity: GTF/GFF3, BED or TSV path, a DataFrame, or
        ``"mm10"`` / ``"hg38"`` (see :func:`~sctransfer.pp.read_gene_annotation`). Not needed when
        the MuData already has a ``"gene_activity"`` modality, or with ``model=`` (the model keeps the
        coordinates of its genes).
    model
        A trained :class:`~sctransfer.model.SCNCL` to apply to the ATAC cells of ``mdata`` without
        training (new cells; gene activity computed with the model's genes).
    rna_key, atac_key
        Modality names.
    rna_layer, atac_layer
        Layers with raw counts; ``None`` uses ``.X``.
    key_added
        Prefix of the ``.obs`` columns written, suffix of the embedding key and key of ``mdata.uns``.
    novelty_threshold
        Cells whose novelty score (see :meth:`~sctransfer.model.SCNCL.novelty_score`) exceeds this
        value are called novel (``{key_added}_novel``). The score is a robust z-score over the ATAC
        cells, so the threshold is fitted to the data: the default, 2.5, calls novel the cells whose
        novelty evidence lies more than 2.5 robust standard deviations (1.4826 x median absolute
        deviation) above the median cell. On MOp SNARE-seq it flagged 2.5-8% of the cells of
        reference types and 38-78% of the cells of types held out of the reference
        (``benchmarks/novelty.py``); lower it to find more novel cells at the cost of more false
        calls.
    novel_label
        Label written to ``{key_added}_label`` for the cells called novel, e.g. ``"Unknown"`` (added as
        a category); ``None`` keeps their best reference type, so the novel call is only in
        ``{key_added}_novel``.
    overwrite
        Replace fields written by an earlier call; otherwise existing fields are an error.
    max_steps
        Training steps (``None``: :meth:`~sctransfer.model.SCNCL.train`'s default).
    random_state
        Seed for the LSI, the neighbour search, the weight initialisation and the sampler.
    model_kwargs, train_kwargs, predict_kwargs
        Passed to :class:`~sctransfer.model.SCNCL`, :meth:`~sctransfer.model.SCNCL.train`, and the
        prediction (``reference_neighbors``, ``prior_correction``, ``batch_size`` of
        :meth:`~sctransfer.model.SCNCL.predict`).
    return_model
        Return the model (trained or given).
    copy
        Work on a copy of ``mdata`` and return it.

    Returns
    -------
    The model if ``return_model``; else the new MuData if ``copy``; else None. Writes:

    - ``mdata[atac_key].obs[f"{key_added}_label"]``: predicted type (categorical, reference categories,
      plus ``novel_label`` if given);
    - ``mdata[atac_key].obs[f"{key_added}_confidence"]``: highest class probability, in [0, 1];
    - ``mdata[atac_key].obs[f"{key_added}_novelty"]``: novelty score (float32, higher = more likely
      of a type missing from the reference);
    - ``mdata[atac_key].obs[f"{key_added}_novel"]``: ``novelty > novelty_threshold`` (bool);
    - ``mdata[atac_key].obsm[f"{key_added}_probabilities"]``: cells x reference types probabilities
      (float32; columns in the order of ``mdata.uns[key_added]["reference_types"]``);
    - ``mdata[atac_key].obsm["X_scncl"]`` and (training) ``mdata[rna_key].obsm["X_scncl"]``: the shared embedding
      (``"X_scncl_{key_added}"`` when ``key_added`` is not ``"sctransfer"``);
    - ``mdata.mod["gene_activity"]`` when it was computed here (see :func:`~sctransfer.pp.gene_activity`);
    - ``mdata[atac_key].obsm["X_lsi"]``, ``.obsp["peak_neighbors_*"]``, ``.uns["peak_neighbors"]``
      when the graph was computed here (it is used for training and for the novelty score; see
      :func:`~sctransfer.pp.peak_neighbors`);
    - ``mdata.uns[key_added]``: ``{"params": ..., "reference_types": ..., "n_cells": ...,
      "label_counts": ..., "novel_fraction": ...}``.
    """
    if copy:
        mdata = mdata.copy()
    if not np.isfinite(novelty_threshold):
        raise ValueError(f"novelty_threshold must be a finite number (robust z units), got {novelty_threshold}.")
    atac = get_modality(mdata, atac_key, role="ATAC peaks")
    training = model is None
    if training:
        if labels_key is None:
            raise ValueError("labels_key is required to train (the RNA .obs column with cell types); or pass model=.")
        rna = get_modality(mdata, rna_key, role="RNA reference")
        check_unpaired(rna, atac, rna_key=rna_key, atac_key=atac_key)
        if labels_key not in rna.obs:
            raise KeyError(
                f"Label column {labels_key!r} is not in mdata[{rna_key!r}].obs (columns: {list(rna.obs.columns)[:10]})."
            )
    if novel_label is not None:
        known = rna.obs[labels_key].dropna().astype(str) if training else model.label_categories_
        if novel_label in set(known):
            raise ValueError(f"novel_label={novel_label!r} is a reference cell type; choose another name.")
    _check_free(mdata, rna_key if training else None, atac_key, key_added, overwrite)
    existing = mdata.mod.get(GENE_ACTIVITY_MODALITY)
    if existing is not None and not existing.obs_names.equals(atac.obs_names) and not overwrite:
        raise ValueError(
            f"The MuData has a {GENE_ACTIVITY_MODALITY!r} modality for other cells than mdata[{atac_key!r}]; "
            "label_transfer would replace it. Pass overwrite=True, or remove or rename that modality."
        )
    has_graph = NEIGHBORS_KEY in atac.uns and f"{NEIGHBORS_KEY}_distances" in atac.obsp
    if not has_graph and "X_lsi" in atac.obsm and not overwrite:
        raise ValueError(
            f"mdata[{atac_key!r}].obsm['X_lsi'] exists but there is no peak-space graph; computing one would "
            "replace that LSI. Build the graph on it first with sctransfer.pp.peak_neighbors(mdata, "
            "use_rep='X_lsi'), or pass overwrite=True."
        )

    # ---- gene activity --------------------------------------------------------------------
    if existing is not None and existing.obs_names.equals(atac.obs_names):
        activity, computed_activity = existing, False
        logger.info("Using the existing %r modality.", GENE_ACTIVITY_MODALITY)
    else:
        if annotation is None and model is not None:
            annotation = getattr(model, "gene_coordinates_", None)
        if annotation is None:
            raise ValueError(
                "annotation= is needed to compute the gene activity of the ATAC cells: a GTF/GFF3/BED/TSV path, "
                "a DataFrame, or 'mm10' / 'hg38'."
            )
        genes = mdata[rna_key].var_names if training else model.gene_names_
        with stage("gene activity"):
            activity = compute_gene_activity(atac, annotation, genes=genes, layer=atac_layer, modality=atac_key)
        computed_activity = True

    # ---- peak-space neighbours (training graph; smoothing of the novelty score) -------------
    work_atac = working_modality(atac, [], layer=atac_layer)
    computed_neighbors = False
    if has_graph:
        neighbor_indices(atac, NEIGHBORS_KEY)
        work_atac.obsp[f"{NEIGHBORS_KEY}_distances"] = atac.obsp[f"{NEIGHBORS_KEY}_distances"]
        work_atac.uns[NEIGHBORS_KEY] = atac.uns[NEIGHBORS_KEY]
    else:
        peak_neighbors(work_atac, key_added=NEIGHBORS_KEY, random_state=random_state)
        computed_neighbors = True

    # ---- model ---------------------------------------------------------------------------
    work_activity = working_modality(activity, [])
    if training:
        work = working_mudata(
            {
                "rna": working_modality(mdata[rna_key], [labels_key]),
                GENE_ACTIVITY_MODALITY: work_activity,
                "atac": work_atac,
            }
        )
        with stage("model set-up"):
            SCNCL.setup_mudata(work, labels_key=labels_key, rna_layer=rna_layer, modalities=DEFAULT_MODALITIES)
            model = SCNCL(work, **{"random_state": random_state, **(model_kwargs or {})})
        has_coordinates = {"chrom", "start", "end", "strand"} <= set(activity.var.columns)
        model.gene_coordinates_ = _gene_coordinates(activity[:, model.gene_names_]) if has_coordinates else None
        train_args = {"random_state": random_state, **(train_kwargs or {})}
        if max_steps is not None:
            train_args["max_steps"] = max_steps
        with stage("training"):
            model.train(**train_args)
            rna_embedding = model.get_latent_representation(modality="rna")
    else:
        work = working_mudata({GENE_ACTIVITY_MODALITY: work_activity, "atac": work_atac})
        rna_embedding = None
    # one forward pass of the ATAC cells serves the labels, the novelty score and the embedding
    predict_args = {
        "reference_neighbors": DEFAULT_REFERENCE_NEIGHBORS,
        "prior_correction": DEFAULT_PRIOR_CORRECTION,
        "batch_size": PREDICT_BATCH_SIZE,
        **(predict_kwargs or {}),
    }
    with stage("prediction"):
        cells = model._forward(
            work,
            "atac",
            predict_args["batch_size"],
            max(predict_args["reference_neighbors"], DEFAULT_REFERENCE_NEIGHBORS),
        )
        proba = pd.DataFrame(
            model._type_probabilities(work, cells, "atac", **predict_args),
            index=cells.names,
            columns=model.label_categories_,
        )
        novelty = model._novelty(work, cells, DEFAULT_REFERENCE_NEIGHBORS, DEFAULT_SMOOTHING_ROUNDS, NEIGHBORS_KEY)
        atac_embedding = cells.embedding

    # ---- write (only now is the user's MuData changed) ------------------------------------
    with stage("writing results"):
        names = _output_names(key_added)
        confidence = proba.to_numpy().max(axis=1)
        novel = novelty > novelty_threshold
        reference_types = [str(t) for t in model.label_categories_]
        label_names = proba.columns.to_numpy(dtype=object)[proba.to_numpy().argmax(axis=1)]
        categories = list(model.label_categories_)
        if novel_label is not None:
            label_names = np.where(novel, novel_label, label_names)
            categories.append(novel_label)
        labels = pd.Categorical(label_names, categories=categories)
        if computed_activity:
            mdata.mod[GENE_ACTIVITY_MODALITY] = activity
        if computed_neighbors:
            for key in work_atac.obsp:
                atac.obsp[key] = work_atac.obsp[key]
            atac.obsm["X_lsi"] = work_atac.obsm["X_lsi"]
            atac.uns[NEIGHBORS_KEY] = work_atac.uns[NEIGHBORS_KEY]
        atac.obs[names["label"]] = labels
        atac.obs[names["confidence"]] = confidence.astype(np.float32)
        atac.obs[names["novelty"]] = novelty
        atac.obs[names["novel"]] = novel
        atac.obsm[names["probabilities"]] = proba.to_numpy(dtype=np.float32)
        atac.obsm[names["embedding"]] = atac_embedding
        if rna_embedding is not None:
            mdata[rna_key].obsm[names["embedding"]] = rna_embedding
        update_mudata(mdata)
        mdata.uns[key_added] = {
            "params": without_none(
                {
                    "labels_key": labels_key,
                    "rna_key": rna_key if training else None,
                    "atac_key": atac_key,
                    "trained_here": training,
                    "novelty_threshold": float(novelty_threshold),
                    "novel_label": novel_label,
                    "random_state": int(random_state),
                    "model": {
                        **model.init_params_["non_kwargs"],
                        **{k: v for group in model.init_params_["kwargs"].values() for k, v in group.items()},
                    },
                    "train": dict(getattr(model, "train_params_", {})),
                    "predict": dict(predict_kwargs or {}),
                }
            ),
            "reference_types": reference_types,
            "n_cells": int(atac.n_obs),
            "label_counts": {str(k): int(v) for k, v in labels.value_counts().items()},
            "novel_fraction": float(novel.mean()),
        }
    logger.info(
        "Label transfer: %d ATAC cells labelled; %.1f%% called novel (novelty score > %.2f).",
        atac.n_obs,
        100 * float(novel.mean()),
        novelty_threshold,
    )
    if return_model:
        return model
    return mdata if copy else None
