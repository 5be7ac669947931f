"""``tl.cross_modal_match``: scCLIP joint embedding and cell-to-cell matches, written into the MuData."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any, get_args

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData

from sctransfer._constants import ATAC, KEY_ADDED, RNA, SCCLIP_EMBEDDING_KEY
from sctransfer._matrix import is_backed, layer_matrix
from sctransfer._profiling import stage
from sctransfer._validation import check_count, check_flag, get_modality, user_stacklevel, working_mudata
from sctransfer.model import SCCLIP

from . import _matching
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
from ._matching import MatchMethod, nearest_partners, one_to_one_partners, topk_pairing

logger = logging.getLogger(__name__)


def _output_names(key_added: str) -> dict[str, str]:
    return {
        "embedding": SCCLIP_EMBEDDING_KEY if key_added == KEY_ADDED else f"{SCCLIP_EMBEDDING_KEY}_{key_added}",
        "match": f"{key_added}_match",
        "similarity": f"{key_added}_match_similarity",
        "pairing": f"{key_added}_pairing",
        "uns": f"{key_added}_match",
    }


def _fields(key_added: str, rna_key: str, atac_key: str, pairing: bool) -> list[Field]:
    names = _output_names(key_added)
    fields: list[Field] = [("uns", None, names["uns"])]
    for key in (rna_key, atac_key):
        fields += [("obs", key, names["match"]), ("obs", key, names["similarity"]), ("obsm", key, names["embedding"])]
    return fields + ([("obsm", rna_key, names["pairing"])] if pairing else [])


def _matches(
    query: np.ndarray,
    target: np.ndarray,
    target_names: pd.Index,
    query_empty: np.ndarray,
    target_empty: np.ndarray,
    one_to_one: bool,
    method: str,
    random_state: int,
):
    """Name and cosine similarity of each query cell's partner (None / NaN when left unassigned).

    Query and target cells without counts (``query_empty``, ``target_empty``) are neither matched nor offered as
    partners.
    """
    use_query, use_target = np.flatnonzero(~query_empty), np.flatnonzero(~target_empty)
    match = one_to_one_partners if one_to_one else nearest_partners
    found, found_similarity = match(query[use_query], target[use_target], method=method, random_state=random_state)
    partner = np.full(len(query), -1, dtype=np.int64)
    partner[use_query] = np.where(found >= 0, use_target[np.maximum(found, 0)], -1)
    similarity = np.full(len(query), np.nan, dtype=np.float32)
    similarity[use_query] = found_similarity
    names = np.where(partner >= 0, np.asarray(target_names, dtype=object)[np.maximum(partner, 0)], None)
    return pd.Categorical(names), similarity


def _pairing(
    z_rna: np.ndarray, z_atac: np.ndarray, rna_empty: np.ndarray, atac_empty: np.ndarray, k: int, temperature: float
) -> sp.csr_matrix:
    """:func:`topk_pairing` among the cells with counts; rows and columns of the cells without any stay empty."""
    rows, cols = np.flatnonzero(~rna_empty), np.flatnonzero(~atac_empty)
    inner = topk_pairing(z_rna[rows], z_atac[cols], k=min(k, len(cols)), temperature=temperature).tocoo()
    shape = (len(z_rna), len(z_atac))
    return sp.csr_matrix((inner.data, (rows[inner.row], cols[inner.col])), shape=shape, dtype=inner.dtype)


def _pairing_order(rna, atac, atac_layer: str | None, rna_key: str, atac_key: str) -> np.ndarray | None:
    """Positions of the RNA cells among the ATAC cells when both hold the same cells in another order, else None.

    Raises
    ------
    ValueError
        The ATAC matrix is backed (reordering would load it whole): the fix is named.
    """
    if rna.obs_names.equals(atac.obs_names) or rna.n_obs != atac.n_obs:
        return None
    order = atac.obs_names.get_indexer(rna.obs_names)
    if (order < 0).any():
        return None  # not the same cells: SCCLIP.setup_mudata explains
    if is_backed(layer_matrix(atac, atac_layer)):
        raise ValueError(
            f"The RNA and ATAC cells are the same but in another order, and mdata[{atac_key!r}] is backed, so they "
            "cannot be paired without loading it. Write the ATAC cells in the RNA cells' order first: "
            f"mdata.mod[{atac_key!r}] = mdata[{atac_key!r}][mdata[{rna_key!r}].obs_names].to_memory(); mdata.update()."
        )
    return order


def _check_cells_without_counts(empty: np.ndarray, key: str, training: bool) -> None:
    """Refuse cells without any count (``empty``, a mask over mdata[key]) when training; else warn (they go unmatched).

    Raises
    ------
    ValueError
        Every cell is empty, or some are and a model is to be trained on the pairs.
    """
    if not empty.any():
        return
    n, fix = int(empty.sum()), f"Remove them first, e.g. sc.pp.filter_cells(mdata[{key!r}], min_counts=1) and then"
    fix += " mu.pp.intersect_obs(mdata) to keep the modalities paired." if training else " mdata.update()."
    if empty.all() or training:
        use = "there is nothing to match" if empty.all() else "pairs with an empty cell teach the model nothing"
        raise ValueError(f"{n:,} of {len(empty):,} cells of mdata[{key!r}] have no counts; {use}. {fix}")
    warnings.warn(
        f"{n:,} of {len(empty):,} cells of mdata[{key!r}] have no counts: they are left unmatched (NaN match and "
        "similarity, an empty row and column of the pairing matrix) and are no cell's partner; their embedding is "
        f"that of an empty profile, one point for all of them (leave them out of a joint UMAP). {fix}",
        UserWarning,
        stacklevel=user_stacklevel(),
    )


def _checked_kwargs(
    model_kwargs: dict[str, Any] | None, train_kwargs: dict[str, Any] | None, train_args: dict[str, int]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check the keyword dicts against what they are passed to, before any work.

    ``model_kwargs`` go to :class:`~sctransfer.model.SCCLIP` and on to its module, ``train_kwargs`` to
    :meth:`~sctransfer.model.SCCLIP.train` and on to scvi-tools' and Lightning's trainers; ``train_args`` are what
    the tool passes to ``train`` itself (:func:`training_arguments`).
    """
    model_options = SCCLIP.check_model_kwargs(model_kwargs, set_by_caller=("annotation", "preset", "random_state"))
    return model_options, SCCLIP.check_train_kwargs(train_kwargs, tool_arguments=tuple(train_args))


def _check_arguments(model, one_to_one, overwrite, return_model, copy, match_method, pairing_top_k, max_steps) -> None:
    """Refuse, before any work, arguments of the wrong type or value."""
    check_max_steps(max_steps)
    flags = {"one_to_one": one_to_one, "overwrite": overwrite, "return_model": return_model, "copy": copy}
    for name, value in flags.items():
        check_flag(name, value)
    check_count("pairing_top_k", pairing_top_k, none="no pairing matrix")
    if pairing_top_k is not None and pairing_top_k > 1000:
        raise ValueError(f"pairing_top_k must be between 1 and 1000 (NeurIPS 2021 format), got {pairing_top_k}.")
    if match_method not in get_args(MatchMethod):
        methods = ", ".join(repr(m) for m in get_args(MatchMethod))
        raise ValueError(f"match_method must be one of {methods}, got {match_method!r}.")
    check_model(model, SCCLIP)


def cross_modal_match(
    mdata: MuData,
    *,
    annotation: str | os.PathLike | pd.DataFrame | None = None,
    model: SCCLIP | None = None,
    rna_key: str = RNA,
    atac_key: str = ATAC,
    rna_layer: str | None = None,
    atac_layer: str | None = None,
    key_added: str = KEY_ADDED,
    one_to_one: bool = False,
    match_method: MatchMethod = "auto",
    pairing_top_k: int | None = None,
    overwrite: bool = False,
    preset: str = "small",
    max_steps: int | None = None,
    random_state: int = 0,
    model_kwargs: dict[str, Any] | None = None,
    train_kwargs: dict[str, Any] | None = None,
    return_model: bool = False,
    copy: bool = False,
) -> SCCLIP | MuData | None:
    """Embed RNA and ATAC cells in one space (scCLIP) and match each cell to the other modality.

    Without ``model``, trains :class:`~sctransfer.model.SCCLIP` on the paired cells of ``mdata``
    (multiome: the same cells in both modalities) and matches them. With a trained ``model``,
    embeds the cells of ``mdata`` without training (zero-shot): they may be new cells, unpaired
    (different cells in the two modalities), with the model's genes matched by name and another
    peak set mapped onto the model's peaks by genomic overlap. Every input is checked before any
    work, and nothing is written until every step has succeeded, so an error leaves the MuData as
    it was; every field written survives ``mdata.write()`` / ``write_zarr()`` and reading back (settings that
    are ``None``, such as ``coverage`` after training here or ``pairing_top_k`` by default, are left out of the
    ``uns`` record: the files have no null; read them with ``.get``).
    Cells without any count are left unmatched (NaN match and similarity, and no cell's partner), with a
    warning; training refuses them (a pair with an empty cell teaches nothing). The modality names and
    layers given here are the ones read, whatever names and layers a given model was set up with.

    Parameters
    ----------
    mdata
        MuData with an RNA modality (``rna_key``, counts) and an ATAC modality (``atac_key``, peak
        counts; peaks named like ``chr1:100-200`` or with ``chrom``/``start``/``end`` columns in
        ``.var``). Either matrix may be backed (``mudata.read_h5mu(path, backed=True)``): it is
        then read from the file block by block and never loaded whole (see :doc:`/scale`).
    annotation
        Gene coordinates for ordering the genes along the genome (training only): a GTF/GFF3/BED/TSV
        path, a DataFrame, or ``"mm10"`` / ``"hg38"`` / ``"hg19"``. With ``model=`` it is not needed (the model
        keeps its gene layout) and is ignored.
    model
        A trained :class:`~sctransfer.model.SCCLIP` to apply without training.
    rna_key, atac_key
        Modality names.
    rna_layer, atac_layer
        Layers with raw counts; ``None`` uses ``.X``.
    key_added
        Prefix of the ``.obs`` columns written, suffix of the embedding key (no ``/``: it must be
        storable in ``.h5mu``/``.zarr``).
    one_to_one
        Match cells one to one (a maximum-similarity assignment; see below) instead of each cell to
        its most similar cell of the other modality (several cells may then share a partner).
    match_method
        How partners (or one-to-one candidates) are searched: ``"exact"`` (every RNA x ATAC pair
        compared, in blocks), ``"pynndescent"`` (an approximate index: about linear time, but a cell may
        get a near-best partner; recall against the exact search is on :doc:`/scale`) or ``"auto"``:
        exact up to 2.5 billion pairs (50,000 x 50,000 cells), approximate above.
    pairing_top_k
        Also write the sparse pairing matrix of the NeurIPS 2021 "match modality" format: each RNA
        cell's ``pairing_top_k`` most similar ATAC cells (at most 1,000), weighted by a softmax of
        similarity over the model's learned temperature (rows sum to 1).
    overwrite
        Replace fields written by an earlier call (and remove its pairing matrix when this call writes
        none); otherwise existing fields are an error.
    preset
        Model size for training: ``"tiny"``, ``"small"`` or ``"base"`` (see :class:`~sctransfer.model.SCCLIP`).
        Like ``max_steps``, ``model_kwargs`` and ``train_kwargs``, ignored (with a warning) when ``model`` is
        given.
    max_steps
        Training steps (``None``: :meth:`~sctransfer.model.SCCLIP.train`'s default).
    random_state
        Seed of the weight initialisation and of training.
    model_kwargs, train_kwargs
        Passed to :class:`~sctransfer.model.SCCLIP` and :meth:`~sctransfer.model.SCCLIP.train`. Checked before
        any work: a key that neither they nor what they pass it on to (the module; scvi-tools' and Lightning's
        trainers) take, or one this function sets itself, is a ``TypeError`` naming the closest valid key.
    return_model
        Return the model (trained or given).
    copy
        Work on a copy of ``mdata`` and return it.

    Returns
    -------
    The model if ``return_model``; the new MuData if ``copy``; both, as ``(mdata, model)``, with both; else
    None. Writes:

    - ``mdata[rna_key].obsm["X_scclip"]``, ``mdata[atac_key].obsm["X_scclip"]``: the joint embedding,
      rows of unit length, after the model's :class:`~sctransfer.model.CanonicalAlignment` (the default), so
      that both modalities share one space for joint UMAPs, clustering and neighbours, followed by the linear
      member's columns (the default ``linear_weight`` 0.3; none with ``model_kwargs={"linear_weight": 0.0}``)
      (``"X_scclip_{key_added}"`` when ``key_added`` is not ``"sctransfer"``);
    - ``mdata[rna_key].obs[f"{key_added}_match"]``: obs_name of the matched ATAC cell (categorical; NaN for
      a cell left unassigned by a one-to-one match between modalities of different sizes), and
      ``.obs[f"{key_added}_match_similarity"]``: its cosine similarity (float32, NaN if unassigned);
    - ``mdata[atac_key].obs[...]``: the same the other way round;
    - with ``pairing_top_k``: ``mdata[rna_key].obsm[f"{key_added}_pairing"]``, a sparse RNA cells x ATAC
      cells matrix (columns in the order of ``mdata[atac_key].obs_names``; rows sum to 1, but the rows and
      columns of cells without counts are empty);
    - ``mdata.uns[f"{key_added}_match"]``: parameters, the temperature, the mean match similarity and,
      for a given model, the share of the model's genes and peaks the data reaches (``coverage``).
    """
    _check_arguments(model, one_to_one, overwrite, return_model, copy, match_method, pairing_top_k, max_steps)
    train_args = training_arguments(random_state, max_steps)
    model_kwargs, train_kwargs = _checked_kwargs(model_kwargs, train_kwargs, train_args)
    if copy and mdata.isbacked:
        raise ValueError(
            "copy=True needs a MuData in memory (a backed MuData cannot be copied without a file name): read it "
            "with mudata.read_h5mu(path) without backed=True, or call without copy=True (the results are small "
            "and are written into the backed MuData's in-memory fields)."
        )
    if model is not None:
        ignored = {"preset": preset != "small", "max_steps": max_steps is not None}
        ignored |= {"model_kwargs": bool(model_kwargs), "train_kwargs": bool(train_kwargs)}
        if any(ignored.values()):
            warnings.warn(
                f"{', '.join(name for name, given in ignored.items() if given)} set how a model is trained and are "
                "ignored with model= (the given model is applied as it is).",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
    # one pass over each matrix checks the counts and finds the cells without any
    rna, rna_values = get_modality(
        mdata, rna_key, role="RNA", layer=rna_layer, counts_argument="rna_layer", with_summary=True
    )
    atac, atac_values = get_modality(
        mdata, atac_key, role="ATAC peaks", layer=atac_layer, counts_argument="atac_layer", with_summary=True
    )
    search = _matching.match_method(rna.n_obs, atac.n_obs, match_method, one_to_one=one_to_one)
    fields = _fields(key_added, rna_key, atac_key, pairing_top_k is not None)
    check_free(mdata, fields, tool="cross_modal_match", key_added=key_added, overwrite=overwrite)
    training = model is None
    order = _pairing_order(rna, atac, atac_layer, rna_key, atac_key) if training else None
    empty = {RNA: rna_values.empty_rows, ATAC: atac_values.empty_rows}  # in each modality's own cell order
    for modality, key in ((RNA, rna_key), (ATAC, atac_key)):
        _check_cells_without_counts(empty[modality], key, training)
    if training and {"train_size", "validation_size"} & set(train_kwargs):  # a held-out check that cannot run
        SCCLIP.check_split_sizes(rna.n_obs, train_kwargs.get("train_size"), train_kwargs.get("validation_size"))
    # a given model reads the layer it was set up with when the data have one of that name: it gets the chosen matrix;
    # ATAC cells given in another order are read once, in the RNA cells' order, into the working copy
    chosen = {RNA: (rna, rna_layer), ATAC: (atac if order is None else atac[order], atac_layer)}
    model_layers = {m: None if training else model.registry_["setup_args"][f"{m}_layer"] for m in (RNA, ATAC)}
    modalities = {
        m: working_modality(adata, [], layer=layer, keep_var=True, model_layer=model_layers[m])
        for m, (adata, layer) in chosen.items()
    }
    # the model's own modality names do not matter: it is handed each modality's AnnData (zero-shot) or the
    # MuData it was set up on (training)
    work = working_mudata(modalities) if training else modalities
    if training:
        with stage("model set-up"):
            SCCLIP.setup_mudata(work)
            model = SCCLIP(work, annotation=annotation, preset=preset, random_state=random_state, **model_kwargs)
        with stage("training"):
            model.train(**train_args, **train_kwargs)
    # zero-shot: each modality's features are mapped onto the model's once, for the coverage and the embedding
    mappings = dict.fromkeys((RNA, ATAC)) if training else {m: model.feature_mapping(work[m], m) for m in (RNA, ATAC)}
    coverage = None if training else {m: float(mappings[m].coverage) for m in (RNA, ATAC)}
    with stage("embedding"):
        z_rna, z_atac = (
            model.get_latent_representation(work if training else work[m], modality=m, feature_mapping=mappings[m])
            for m in (RNA, ATAC)
        )
        if order is not None:  # trained on the ATAC cells in the RNA cells' order: back to the user's order
            z_atac = z_atac[np.argsort(order)]
    with stage("matching"):
        options = {"one_to_one": one_to_one, "method": search, "random_state": random_state}
        rna_match, rna_similarity = _matches(z_rna, z_atac, atac.obs_names, empty[RNA], empty[ATAC], **options)
        atac_match, atac_similarity = _matches(z_atac, z_rna, rna.obs_names, empty[ATAC], empty[RNA], **options)

    names = _output_names(key_added)
    writer = ResultWriter()
    for key, z, match, similarity in (
        (rna_key, z_rna, rna_match, rna_similarity),
        (atac_key, z_atac, atac_match, atac_similarity),
    ):
        writer.obsm[key, names["embedding"]] = z
        writer.obs[key, names["match"]] = match
        writer.obs[key, names["similarity"]] = similarity
    if pairing_top_k is not None:
        writer.obsm[rna_key, names["pairing"]] = _pairing(
            z_rna, z_atac, empty[RNA], empty[ATAC], pairing_top_k, model.temperature
        )
    params = {"rna_key": rna_key, "atac_key": atac_key, "trained_here": training, "one_to_one": one_to_one}
    params |= {"match_method": search}
    params |= {"pairing_top_k": pairing_top_k, "random_state": int(random_state), "model": model_params(model)}
    params["train"] = dict(getattr(model, "train_params_", {}))
    # the same cells in both modalities (in any order): score the match against each cell's own partner
    paired = rna.n_obs == atac.n_obs and bool((atac.obs_names.get_indexer(rna.obs_names) >= 0).all())
    writer.uns[names["uns"]] = {
        "params": params,
        "n_cells": {"rna": int(rna.n_obs), "atac": int(atac.n_obs)},
        "temperature": model.temperature,
        "mean_similarity": float(np.nanmean(rna_similarity)),
        "coverage": coverage,
        "paired_top1_accuracy": float(np.mean(np.asarray(rna_match) == np.asarray(rna.obs_names))) if paired else None,
    }
    target = mdata.copy() if copy else mdata
    with stage("writing results"):
        writer.write(target)
    if pairing_top_k is None and overwrite:  # an earlier call's pairing would contradict the record just written
        target[rna_key].obsm.pop(names["pairing"], None)
    logger.info("Cross-modal matching: %d RNA and %d ATAC cells embedded.", rna.n_obs, atac.n_obs)
    return tool_result(target, model, copy=copy, return_model=return_model)
