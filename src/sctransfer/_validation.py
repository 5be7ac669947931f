"""Input checks shared by the public functions: clear errors before anything is modified."""

from __future__ import annotations

import difflib
import inspect
import os
import sys
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import mudata
import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from sctransfer._matrix import ValueSummary, all_finite, layer_matrix, value_summary

#: Files of the package: warnings skip their frames (:func:`user_stacklevel`).
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def get_modality(
    mdata: MuData,
    key: str,
    *,
    role: str,
    layer: str | None = None,
    counts_argument: str | None = None,
    with_summary: bool = False,
) -> AnnData | tuple[AnnData, ValueSummary]:
    """Return ``mdata.mod[key]`` after checking that it can be used and written into.

    Parameters
    ----------
    mdata
        The multimodal container.
    key
        Modality name.
    role
        What the modality is used for, for error messages (``"RNA reference"``, ``"ATAC query"``).
    layer
        Layer that holds the values used (``None``: ``.X``); only that matrix is checked.
    counts_argument
        When given, the matrix used must hold counts (:func:`check_counts`); the argument that selects
        it (``"rna_layer"``, ``"atac_layer"``) is named in the hint, which names the modality's other layers
        or its ``.raw`` (:func:`counts_hint`). Otherwise it must hold finite numbers.
    with_summary
        With ``counts_argument``: return ``(adata, summary)``, the :class:`~sctransfer._matrix.ValueSummary` of the
        counts check including the mask of the cells without counts (``summary.empty_rows``), from the same pass
        over the values (a backed matrix is read once for both).

    Raises
    ------
    TypeError
        ``mdata`` is not a MuData, or the matrix used is not numeric.
    KeyError
        The modality or the layer does not exist.
    ValueError
        The MuData or the modality is a view, the modality is empty, its ``obs_names`` or
        ``var_names`` repeat, or the matrix used holds NaN/inf (or, with ``counts_argument``, values
        that are not counts).
    """
    if not isinstance(mdata, MuData):
        raise TypeError(f"Expected a MuData object, got {type(mdata).__name__}. Wrap modalities: md.MuData({{...}}).")
    if mdata.is_view:
        raise ValueError(
            "The MuData is a view (a subset of another object); results cannot be written into it. "
            "Call `.copy()` on the subset first."
        )
    if key not in mdata.mod:
        raise KeyError(
            f"Modality {key!r} ({role}) is not in the MuData; it has {list(mdata.mod)}. "
            f"Pass the right name (e.g. rna_key=/atac_key=)."
        )
    adata = mdata.mod[key]
    if adata.is_view:
        raise ValueError(f"Modality {key!r} is a view; call `.copy()` on it before passing it in.")
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise ValueError(f"Modality {key!r} ({role}) is empty: {adata.n_obs} cells x {adata.n_vars} features.")
    check_unique_names(adata, key=key)
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"Layer {layer!r} is not in modality {key!r} (layers: {list(adata.layers)}).")
    x = layer_matrix(adata, layer)
    what = f"modality {key!r} .X" if layer is None else f"layer {layer!r} of modality {key!r}"
    if counts_argument is None:
        if with_summary:
            raise TypeError("get_modality(with_summary=True) needs counts_argument=.")
        check_numeric(x, what=what)
        return adata
    hint = counts_hint(adata, key=key, argument=counts_argument, layer=layer)
    summary = check_counts(x, what=what, hint=hint, empty_rows=with_summary)
    return (adata, summary) if with_summary else adata


def counts_hint(adata: AnnData, *, key: str, argument: str, layer: str | None = None) -> str:
    """The fix for a matrix of modality ``key`` that does not hold counts, from what else the modality holds.

    Its other layers, listed (pass one via ``argument``); without any, its ``.raw`` (scanpy's place for the
    counts when ``.X`` is log-normalised): copied into a layer when it has the same features as ``.X``, or made
    the modality (``.raw.to_adata()``) when it has others (e.g. all genes where ``.X`` kept the highly variable
    ones); without either, where to put the counts. Read after a comma in :func:`check_counts`' messages.
    """
    others = [name for name in adata.layers if name != layer]
    if others:
        example = "counts" if "counts" in others else others[0]
        return (
            f"pass the raw counts layer via {argument}= (e.g. {argument}={example!r}; layers of modality {key!r}: "
            f"{others})"
        )
    where = f"mdata[{key!r}]"
    no_layers = f"modality {key!r} has no {'other ' if layer is not None else ''}layers"
    raw = adata.raw
    if raw is None:
        return (
            f"{no_layers}: put the raw counts in a layer ({where}.layers['counts'] = <raw counts>) and pass "
            f"{argument}='counts'"
        )
    if raw.var_names.equals(adata.var_names):
        return (
            f"{no_layers} but a .raw; if it holds the raw counts, copy them into a layer, "
            f"{where}.layers['counts'] = {where}.raw.X, and pass {argument}='counts'"
        )
    return (
        f"{no_layers} but a .raw with other features ({raw.n_vars:,}; .X has {adata.n_vars:,}); if it holds the raw "
        f"counts, make it the modality: mdata.mod[{key!r}] = {where}.raw.to_adata(), then mdata.update()"
    )


def check_unique_names(adata: AnnData, *, key: str) -> None:
    """Raise a clear error when a modality repeats cell (``obs_names``) or feature (``var_names``) names.

    Results are written back by name, and genes and peaks are matched by name: repeated names
    would make both ambiguous.
    """
    for axis, names, fix in (
        ("obs_names", adata.obs_names, "obs_names_make_unique()"),
        ("var_names", adata.var_names, "var_names_make_unique()"),
    ):
        repeated = names[names.duplicated()].unique()
        if len(repeated):
            what = "cell" if axis == "obs_names" else "feature"
            hint = " (10x readers give repeated gene symbols)" if axis == "var_names" else ""
            raise ValueError(
                f"Modality {key!r} has {len(repeated)} repeated {what} names in .{axis}{hint}, e.g. "
                f"{', '.join(map(repr, repeated[:5]))}. Make them unique first: mdata[{key!r}].{fix}, "
                "then mdata.update()."
            )


def check_labels(adata: AnnData, labels_key: str | None, *, key: str) -> pd.Categorical:
    """The reference cell types of ``adata.obs[labels_key]``, cleaned, or a clear error.

    Missing labels (NaN, None, and the strings of :data:`MISSING_LABELS` that a round trip through
    text files leaves) become NaN; surrounding spaces are removed (with a warning when that merges
    two spellings); whole numbers stored as floats read as integers (``4.0`` -> ``"4"``); categories
    no labelled cell carries (left by subsetting an atlas) are dropped. The user's column is not
    changed.

    Returns
    -------
    A :class:`pandas.Categorical` of str categories, one entry per cell (NaN = unlabelled).

    Raises
    ------
    KeyError
        The column does not exist.
    TypeError
        The column holds continuous numbers (a float column is not a set of cell types).
    ValueError
        No cell is labelled, a single type is, or there are more types than half the labelled cells
        (cell identifiers rather than types).

    Warns
    -----
    ReferenceLabelWarning
        Spellings merged by removing spaces; labels that look like placeholders rather than cell types
        (:data:`PLACEHOLDER_LABELS`, e.g. ``"Unknown"``: they are trained as a type of their own, and query
        cells given them cannot be told from cells called novel with ``novel_label="Unknown"``); and
        (:class:`RareTypeWarning`) types with fewer than :data:`MIN_CELLS_PER_TYPE` labelled cells
        (:func:`warn_rare_types`).
    """
    if labels_key is None or labels_key not in adata.obs:
        raise KeyError(
            f"Label column {labels_key!r} is not in modality {key!r} .obs (columns: {list(adata.obs.columns)[:10]})."
        )
    column = adata.obs[labels_key]
    values = column.cat.categories if isinstance(column.dtype, pd.CategoricalDtype) else column
    whole = pd.api.types.is_float_dtype(values.dtype) and bool(np.all(np.mod(values.dropna(), 1) == 0))
    if pd.api.types.is_float_dtype(values.dtype) and not whole:
        raise TypeError(
            f"Label column {labels_key!r} of modality {key!r} holds continuous numbers (dtype {values.dtype}), "
            "not cell types. Pass the column with the cell-type names."
        )
    text = column.astype(object).where(column.notna(), None)
    text = text.map(lambda v: None if v is None else str(int(v)) if whole else str(v))
    stripped = text.map(lambda v: None if v is None or v.strip() in MISSING_LABELS else v.strip())
    spellings: dict[str, set[str]] = {}
    for value in set(text.dropna()):
        spellings.setdefault(value.strip(), set()).add(value)
    merged = sorted(v for group in spellings.values() if len(group) > 1 for v in group if v.strip() != v)
    if merged:
        warnings.warn(
            f"Labels in {labels_key!r} of modality {key!r} differ only by surrounding spaces (e.g. {merged[0]!r}); "
            "they are read as one type each, without the spaces.",
            ReferenceLabelWarning,
            stacklevel=user_stacklevel(),
        )
    labels = pd.Categorical(stripped.to_numpy(dtype=object)).remove_unused_categories()
    n_labelled = int((~pd.isna(labels)).sum())
    if n_labelled == 0:
        raise ValueError(f"Label column {labels_key!r} of modality {key!r} has no labelled cell (all NaN).")
    if len(labels.categories) < 2:
        raise ValueError(
            f"Label column {labels_key!r} of modality {key!r} holds a single cell type ({labels.categories[0]!r}); "
            "label transfer needs at least two reference types."
        )
    if 2 * len(labels.categories) > n_labelled:
        raise ValueError(
            f"Label column {labels_key!r} of modality {key!r} has {len(labels.categories):,} types for {n_labelled:,} "
            "labelled cells (fewer than two cells a type): it looks like cell identifiers, not cell types. Pass "
            "the column with the cell-type annotation."
        )
    sizes = pd.Series(labels).value_counts()
    placeholders = sizes[[str(t).casefold() in PLACEHOLDER_LABELS for t in sizes.index]]
    if len(placeholders):
        names = sorted(set().union(*(spellings[t] for t in placeholders.index)))  # as written in the column
        warnings.warn(
            f"Reference labels in {labels_key!r} of modality {key!r} look like placeholders, not cell types "
            f"({', '.join(f'{t!r}: {n:,} cells' for t, n in placeholders.items())}): they are trained as a type of "
            "their own, and query cells given such a label cannot be told from cells called novel "
            "(novel_label='Unknown'). If these cells have no known type, set them to NaN to leave them unlabelled "
            f"(they then do not teach the classifier): obs[{labels_key!r}] = "
            f"obs[{labels_key!r}].mask(obs[{labels_key!r}].isin({names})), with obs = mdata[{key!r}].obs.",
            ReferenceLabelWarning,
            stacklevel=user_stacklevel(),
        )
    warn_rare_types(sizes, source=f"{labels_key!r} of modality {key!r}")
    return labels


class ReferenceLabelWarning(UserWarning):
    """Reference labels that can be used, but perhaps not as meant.

    Spellings merged, placeholder labels (``"Unknown"``), rare types (:class:`RareTypeWarning`): issued by
    the check of the reference labels, before :func:`~sctransfer.tl.label_transfer` (or ``SCNCL.setup_mudata``)
    does any work.
    """


class RareTypeWarning(ReferenceLabelWarning):
    """Reference cell types with fewer than 15 labelled cells: their cells are rarely found.

    On MOp SNARE-seq, 17 of 19 such types were found in at most 10% of their query cells, which got the
    label of a larger type with an unremarkable confidence (0.50-0.57 on average).
    """


MIN_CELLS_PER_TYPE = 15
"""Reference types with fewer labelled cells than this are reported with a :class:`RareTypeWarning`.

On MOp SNARE-seq (four library splits at 14 types, two at 23; ``benchmarks/label_transfer_shift.py
--rare-types``), 17 of the 19 types with fewer than 15 reference cells were given to at most 10% of
their query cells (median recall 0); types with 15-99 cells reached a median recall of 0.12-0.23
(by label level), types with 100 or more 0.55-0.67.
"""


def rare_types(sizes: pd.Series) -> pd.Series:
    """The types of ``sizes`` (labelled cells per type) with fewer than :data:`MIN_CELLS_PER_TYPE`, smallest first."""
    return sizes[sizes < MIN_CELLS_PER_TYPE].sort_values(kind="stable")


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the user's code: the first caller outside sctransfer.

    Call it in the function that calls :func:`warnings.warn` (``warnings.warn(..., stacklevel=user_stacklevel())``):
    however deep inside the package the warning is raised, it is reported at the user's line, not at a line of
    sctransfer (which tells the user nothing).
    """
    frame, level = sys._getframe(1), 1  # the function that warns
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


def warn_rare_types(sizes: pd.Series, *, source: str) -> pd.Series:
    """Warn (:class:`RareTypeWarning`) about the reference types too rare to be predicted; returns them.

    Parameters
    ----------
    sizes
        Labelled reference cells per type (index: type names).
    source
        Where the labels come from, for the message (``"'cell_type' of modality 'rna'"``).

    Returns
    -------
    The rare types and their cell counts (:func:`rare_types`).
    """
    rare = rare_types(sizes)
    if len(rare):
        warnings.warn(
            f"{len(rare)} reference types of {source} have fewer than {MIN_CELLS_PER_TYPE} labelled cells "
            f"({', '.join(f'{t!r}: {n}' for t, n in rare.items())}): expect few or none of their cells in the query "
            "to get these labels; they get the label of a similar, larger type, and their confidence does not "
            "reliably show it (on MOp SNARE-seq, 17 of 19 such types were given to at most 10% of their cells). Add "
            f"reference cells of these types (at least {MIN_CELLS_PER_TYPE} each), merge them into coarser labels, "
            "or drop them from the reference if the query should not have them.",
            RareTypeWarning,
            stacklevel=user_stacklevel(),
        )
    return rare


MISSING_LABELS = frozenset({"", "nan", "NaN", "None", "NA", "<NA>"})
"""Strings taken as a missing label (what round trips through text files leave)."""

PLACEHOLDER_LABELS = frozenset(
    {"unknown", "unassigned", "undefined", "unclassified", "unlabeled", "unlabelled", "none", "na", "n/a", "?", "-"}
)
"""Reference labels (compared case-insensitively, without surrounding spaces) that stand for "no type", which
:func:`check_labels` warns about; the exact spellings of :data:`MISSING_LABELS` are missing labels instead. Not
"other" or "ambiguous", which some atlases use for deliberate groups."""


def check_count(name: str, value, *, minimum: int = 1, none: str | None = None) -> None:
    """Refuse a size or count that is not an integer >= ``minimum``.

    ``none`` says what ``None`` means where it is allowed (``"read the genes directly"``): ``None``
    is then accepted and the message mentions it.

    Raises
    ------
    ValueError
        ``value`` is not such an integer (a bool is not one).
    """
    if value is None and none is not None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        alternative = f" (or None: {none})" if none is not None else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{alternative}, got {value!r}.")


#: Keywords of :class:`scvi.train.TrainRunner` and scvi's ``Trainer`` that the models' training sets itself.
TRAINER_RESERVED = ("model", "training_plan", "data_splitter", "simple_progress_bar")


def trainer_targets() -> tuple[Callable, ...]:
    """Where a model's ``train(**trainer_kwargs)`` forwards its extra keywords, in order.

    scvi-tools' :class:`~scvi.train.TrainRunner`, its :class:`~scvi.train.Trainer` and Lightning's
    :class:`~lightning.pytorch.Trainer`; for :func:`check_kwargs` after the model's ``train``.
    """
    from lightning.pytorch import Trainer as LightningTrainer
    from scvi.train import Trainer, TrainRunner

    return TrainRunner.__init__, Trainer.__init__, LightningTrainer.__init__


def check_kwargs(
    kwargs: Mapping[str, Any] | None,
    targets: Callable | Sequence[Callable],
    *,
    argument: str,
    reserved: Collection[str] = (),
    extra: Collection[str] = (),
    unsupported: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Refuse, before any work, keyword arguments that the functions they are passed to do not take.

    Parameters
    ----------
    kwargs
        The keywords (``None``: none).
    targets
        The function they are passed to, or a chain of functions in which each passes its
        ``**kwargs`` on to the next (a model's ``train`` and :func:`trainer_targets`). A keyword is
        valid when one of them names it as a parameter (``self`` and ``*args`` aside); when the last
        one takes ``**kwargs`` itself, any keyword is.
    argument
        The argument that holds ``kwargs`` (``"train_kwargs"``), for messages.
    reserved
        Keywords the caller sets itself: refused even if a target names them.
    extra
        Keywords accepted besides the targets' parameters (e.g. deprecated ones a target still reads).
    unsupported
        Keywords a target names but that cannot work in this use, each with the reason (e.g. early stopping
        without a validation loop): refused with that reason.

    Returns
    -------
    A new dict of the keywords.

    Raises
    ------
    TypeError
        ``kwargs`` is not a mapping with str keys, or holds a key no target takes or one in
        ``reserved``; the message names the closest valid keyword and lists the valid ones.
    """
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(key, str) for key in kwargs):
        raise TypeError(f"{argument} must be a dict of keyword arguments (str keys), got {kwargs!r}.")
    chain = [targets] if callable(targets) else list(targets)
    valid: set[str] = set(extra)
    open_ended = False
    for target in chain:
        parameters = inspect.signature(target).parameters.values()
        valid |= {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)} - {"self"}
        open_ended = any(p.kind == p.VAR_KEYWORD for p in parameters)
    unsupported = dict(unsupported or {})
    valid -= set(reserved) | set(unsupported)
    wrong = [key for key in kwargs if key in reserved or key in unsupported or (key not in valid and not open_ended)]
    if wrong:
        key = wrong[0]
        close = difflib.get_close_matches(key, sorted(valid), n=1) if key not in unsupported else []
        hint = f" Did you mean {close[0]!r}?" if close else ""
        why = "is set by sctransfer itself" if key in reserved else unsupported.get(key, "is not an option")
        raise TypeError(
            f"{argument} has {len(wrong)} key(s) that cannot be passed, {wrong}: {key!r} {why}.{hint} "
            f"Valid keys: {', '.join(sorted(valid))}."
        )
    return dict(kwargs)


def check_flag(name: str, value) -> None:
    """Refuse a switch that is not ``True`` or ``False`` (a string such as ``"no"`` would read as true).

    Raises
    ------
    TypeError
        ``value`` is not a bool (numpy bools are accepted).
    """
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False, got {value!r}.")


def check_numeric(x, *, what: str) -> None:
    """Raise a clear error when ``x`` is not a numeric matrix or holds NaN/inf."""
    check_numeric_dtype(x, what=what)
    if not all_finite(x):
        raise ValueError(f"{what} holds NaN or infinite values; replace or drop them first.")


#: A matrix whose stored values are mostly not whole numbers and at most this large is taken as
#: normalised or log-transformed (``log1p`` of depth-normalised counts stays below about 14).
LOG_DATA_MAX = 20.0


def check_counts(
    x, *, what: str, argument: str | None = None, hint: str | None = None, empty_rows: bool = False
) -> ValueSummary:
    """Raise a clear error unless ``x`` holds count-like values; warn when some are not whole numbers.

    One streamed pass over the stored values (sparse matrices are never densified; backed ones
    are read block by block, see :func:`sctransfer._matrix.value_summary`).

    Parameters
    ----------
    x
        Cells x features matrix: any scipy sparse format, a numpy array or a backed matrix.
    what
        The matrix, for messages (``"layer 'counts' of modality 'atac'"``).
    argument
        The argument that selects the matrix (``"rna_layer"``, ``"atac_layer"``), named in the hint.
    hint
        The fix, for messages, when no argument selects the matrix (``"put the raw counts in .X"``);
        one of ``argument`` and ``hint`` is needed.
    empty_rows
        Also find the rows without any count, from the same pass (``summary.empty_rows``, see
        :func:`~sctransfer._matrix.value_summary`).

    Returns
    -------
    The :class:`~sctransfer._matrix.ValueSummary` of the values.

    Raises
    ------
    TypeError
        The values are not numbers.
    ValueError
        Some values are NaN or infinite; some are negative (scaled data); or most are not whole
        numbers and none exceeds :data:`LOG_DATA_MAX` (normalised or log-transformed data).

    Warns
    -----
    UserWarning
        Some values are not whole numbers but the matrix does not look log-transformed (e.g.
        ambient-corrected counts): they are used as they are.
    """
    check_numeric_dtype(x, what=what)
    summary = value_summary(x, empty_rows=empty_rows)
    if hint is None:
        if argument is None:
            raise TypeError("check_counts needs argument= or hint=.")
        hint = f"pass the raw counts layer via {argument}= (e.g. {argument}='counts')"
    if summary.n_nonfinite:
        raise ValueError(
            f"{what} holds {summary.n_nonfinite:,} NaN or infinite values; replace or drop them, or {hint}."
        )
    if summary.n_negative:
        raise ValueError(
            f"{what} holds {summary.n_negative:,} negative values (smallest {summary.min_value:.4g}), so it is not "
            f"counts: it looks scaled/log-transformed, {hint}."
        )
    if summary.n_fractional > summary.n_values / 2 and summary.max_value <= LOG_DATA_MAX:
        raise ValueError(
            f"{what} holds {summary.n_fractional:,} of {summary.n_values:,} values that are not whole numbers, all "
            f"at most {summary.max_value:.4g}, so it is not counts: it looks scaled/log-transformed "
            f"(normalised), {hint}."
        )
    if summary.n_fractional:
        warnings.warn(
            f"{what} holds {summary.n_fractional:,} of {summary.n_values:,} values that are not whole numbers "
            f"(largest {summary.max_value:.4g}); sctransfer expects raw counts and uses them as they are. If these "
            f"are not the raw counts, {hint}.",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    return summary


def check_numeric_dtype(x, *, what: str) -> None:
    """Raise a clear error when ``x`` is missing or its dtype is not numeric (bool counts as numeric)."""
    if x is None:
        raise ValueError(f"{what} is empty (None).")
    dtype = x.dtype
    if not (np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)):
        raise TypeError(f"{what} holds non-numeric values (dtype {dtype}); it must hold counts or numbers.")


def check_indices(indices, n_cells: int) -> np.ndarray | None:
    """Cell positions given to a model method (``indices=``) as an int64 array, or None for all cells.

    Raises
    ------
    TypeError
        ``indices`` is not a 1-D sequence of integers (a boolean mask is refused: pass its
        ``np.flatnonzero``).
    IndexError
        A position lies outside ``[0, n_cells)``.
    """
    if indices is None:
        return None
    positions = np.asarray(indices)
    integer = positions.size == 0 or np.issubdtype(positions.dtype, np.integer)
    if positions.dtype == bool or positions.ndim != 1 or not integer:
        raise TypeError(
            "indices must be a 1-D sequence of integer cell positions (for a boolean mask, pass np.flatnonzero(mask))."
        )
    positions = positions.astype(np.int64)
    if positions.size and (positions.min() < 0 or positions.max() >= n_cells):
        raise IndexError(
            f"indices must lie in [0, {n_cells}) (the modality's cells); got {positions.min()}..{positions.max()}."
        )
    return positions


def check_unpaired(rna: AnnData, atac: AnnData, *, rna_key: str, atac_key: str) -> None:
    """Unpaired modalities must not share cell names (MuData takes equal names as the same cell)."""
    shared = rna.obs_names.intersection(atac.obs_names)
    if len(shared):
        raise ValueError(
            f"Modalities {rna_key!r} and {atac_key!r} share {len(shared)} obs names (e.g. {shared[0]!r}), but label "
            "transfer expects different cells. MuData treats equal names as the same cell; give each modality "
            f"distinct names, e.g. `{atac_key}.obs_names = '{atac_key}:' + {atac_key}.obs_names`."
        )


def update_mudata(mdata: MuData) -> None:
    """``mdata.update()`` without mudata's legacy pull of modality columns into the global tables.

    RNA and gene activity share gene names by design; mudata's warning about non-unique global
    ``var_names`` is silenced (making them unique would rename the genes).
    """
    with mudata.set_options(pull_on_update=False), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="var_names are not unique")
        mdata.update()


def working_mudata(modalities: dict) -> MuData:
    """A MuData over the given modalities, built with the same settings as :func:`update_mudata`."""
    with mudata.set_options(pull_on_update=False), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="var_names are not unique")
        return MuData(modalities)
