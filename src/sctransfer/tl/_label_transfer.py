"""``tl.label_transfer``: scNCL label transfer from an RNA reference to ATAC cells, written into the MuData."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from sctransfer._validation import check_unpaired, get_modality, update_mudata, working_mudata
from sctransfer.model import SCNCL
from sctransfer.model._scncl import DEFAULT_MODALITIES
from sctransfer.pp._gene_activity import compute_gene_activity
from sctransfer.pp._neighbors import neighbor_indices, peak_neighbors

from ._common import without_none, working_modality

logger = logging.getLogger(__name__)

EMBEDDING_KEY = "X_scncl"
GENE_ACTIVITY_MODALITY = "gene_activity"
NEIGHBORS_KEY = "peak_neighbors"


def _output_names(key_added: str) -> dict[str, str]:
    """Fields written: ``{key_added}_label|confidence|novel`` and ``X_scncl`` (``X_scncl_{key_added}`` if renamed)."""
    return {
        "label": f"{key_added}_label",
        "confidence": f"{key_added}_confidence",
        "novel": f"{key_added}_novel",
        "embedding": EMBEDDING_KEY if key_added == "sctransfer" else f"{EMBEDDING_KEY}_{key_added}",
    }


def _check_free(mdata: MuData, rna_key: str | None, atac_key: str, key_added: str, overwrite: bool) -> None:
    """Refuse to replace fields the user already has, before any work is done."""
    if overwrite:
        return
    names = _output_names(key_added)
    embedding = names.pop("embedding")
    taken = [f"mdata[{atac_key!r}].obs[{c!r}]" for c in names.values() if c in mdata[atac_key].obs]
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
    novelty_threshold: float = 0.3,
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
        Cells whose confidence is below this value are called novel (``{key_added}_novel``). The
        default, 0.3, flagged 5% of the cells of reference types and 15% of the cells of two types
        held out of the reference (Astro, Oligo) on MOp SNARE-seq; 0.5 flagged 39% and 61%.
    overwrite
        Replace fields written by an earlier call; otherwise existing fields are an error.
    max_steps
        Training steps (``None``: :meth:`~sctransfer.model.SCNCL.train`'s default).
    random_state
        Seed for the LSI, the neighbour search, the weight initialisation and the sampler.
    model_kwargs, train_kwargs, predict_kwargs
        Passed to :class:`~sctransfer.model.SCNCL`, :meth:`~sctransfer.model.SCNCL.train` and
        :meth:`~sctransfer.model.SCNCL.predict` (e.g. ``reference_neighbors``, ``prior_correction``).
    return_model
        Return the model (trained or given).
    copy
        Work on a copy of ``mdata`` and return it.

    Returns
    -------
    The model if ``return_model``; else the new MuData if ``copy``; else None. Writes:

    - ``mdata[atac_key].obs[f"{key_added}_label"]``: predicted type (categorical, reference categories);
    - ``mdata[atac_key].obs[f"{key_added}_confidence"]``: highest class probability, in [0, 1];
    - ``mdata[atac_key].obs[f"{key_added}_novel"]``: ``confidence < novelty_threshold`` (bool);
    - ``mdata[atac_key].obsm["X_scncl"]`` and (training) ``mdata[rna_key].obsm["X_scncl"]``: the shared embedding
      (``"X_scncl_{key_added}"`` when ``key_added`` is not ``"sctransfer"``);
    - ``mdata.mod["gene_activity"]`` when it was computed here (see :func:`~sctransfer.pp.gene_activity`);
    - ``mdata[atac_key].obsm["X_lsi"]``, ``.obsp["peak_neighbors_*"]``, ``.uns["peak_neighbors"]``
      when the graph was computed here (training; see :func:`~sctransfer.pp.peak_neighbors`);
    - ``mdata.uns[key_added]``: ``{"params": ..., "n_cells": ..., "label_counts": ...}``.
    """
    if copy:
        mdata = mdata.copy()
    if not 0.0 <= novelty_threshold <= 1.0:
        raise ValueError(f"novelty_threshold must be in [0, 1], got {novelty_threshold}.")
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
    _check_free(mdata, rna_key if training else None, atac_key, key_added, overwrite)
    existing = mdata.mod.get(GENE_ACTIVITY_MODALITY)
    if existing is not None and not existing.obs_names.equals(atac.obs_names) and not overwrite:
        raise ValueError(
            f"The MuData has a {GENE_ACTIVITY_MODALITY!r} modality for other cells than mdata[{atac_key!r}]; "
            "label_transfer would replace it. Pass overwrite=True, or remove or rename that modality."
        )
    has_graph = NEIGHBORS_KEY in atac.uns and f"{NEIGHBORS_KEY}_distances" in atac.obsp
    if training and not has_graph and "X_lsi" in atac.obsm and not overwrite:
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
        activity = compute_gene_activity(atac, annotation, genes=genes, layer=atac_layer, modality=atac_key)
        computed_activity = True

    # ---- peak-space neighbours (training only) ---------------------------------------------
    work_atac = working_modality(atac, [], layer=atac_layer)
    computed_neighbors = False
    if training:
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
        SCNCL.setup_mudata(work, labels_key=labels_key, rna_layer=rna_layer, modalities=DEFAULT_MODALITIES)
        model = SCNCL(work, **{"random_state": random_state, **(model_kwargs or {})})
        has_coordinates = {"chrom", "start", "end", "strand"} <= set(activity.var.columns)
        model.gene_coordinates_ = _gene_coordinates(activity[:, model.gene_names_]) if has_coordinates else None
        train_args = {"random_state": random_state, **(train_kwargs or {})}
        if max_steps is not None:
            train_args["max_steps"] = max_steps
        model.train(**train_args)
        rna_embedding = model.get_latent_representation(modality="rna")
    else:
        work = working_mudata({GENE_ACTIVITY_MODALITY: work_activity, "atac": work_atac})
        rna_embedding = None
    proba = model.predict(work, soft=True, **(predict_kwargs or {}))
    atac_embedding = model.get_latent_representation(work, modality="atac")

    # ---- write (only now is the user's MuData changed) ------------------------------------
    names = _output_names(key_added)
    confidence = proba.to_numpy().max(axis=1)
    labels = pd.Categorical(
        proba.columns.to_numpy()[proba.to_numpy().argmax(axis=1)], categories=list(model.label_categories_)
    )
    if computed_activity:
        mdata.mod[GENE_ACTIVITY_MODALITY] = activity
    if computed_neighbors:
        for key in work_atac.obsp:
            atac.obsp[key] = work_atac.obsp[key]
        atac.obsm["X_lsi"] = work_atac.obsm["X_lsi"]
        atac.uns[NEIGHBORS_KEY] = work_atac.uns[NEIGHBORS_KEY]
    atac.obs[names["label"]] = labels
    atac.obs[names["confidence"]] = confidence.astype(np.float32)
    atac.obs[names["novel"]] = confidence < novelty_threshold
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
                "random_state": int(random_state),
                "model": {
                    **model.init_params_["non_kwargs"],
                    **{k: v for group in model.init_params_["kwargs"].values() for k, v in group.items()},
                },
                "train": dict(getattr(model, "train_params_", {})),
                "predict": dict(predict_kwargs or {}),
            }
        ),
        "n_cells": int(atac.n_obs),
        "label_counts": labels.value_counts().to_dict(),
        "novel_fraction": float((confidence < novelty_threshold).mean()),
    }
    logger.info(
        "Label transfer: %d ATAC cells labelled; %.1f%% called novel (confidence < %.2f).",
        atac.n_obs,
        100 * float((confidence < novelty_threshold).mean()),
        novelty_threshold,
    )
    if return_model:
        return model
    return mdata if copy else None
