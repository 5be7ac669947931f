"""What the tools share: working copies of the user's data and one way to write results into a MuData.

Every tool checks with :func:`check_free`, before any work, that the names it will write can be
stored and are free (or that ``overwrite`` allows replacing them); it then computes all its results
and hands them to a :class:`ResultWriter`, which converts the values to types that ``mdata.write()``
/ ``write_zarr()`` store and read back unchanged, and writes them in one step: if anything fails
while writing, the fields already written are put back as they were.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from sctransfer._matrix import layer_matrix
from sctransfer._validation import update_mudata

_MISSING = object()


def working_modality(
    adata: AnnData,
    obs_columns: list[str],
    layer: str | None = None,
    *,
    keep_var: bool = False,
    model_layer: str | None = None,
) -> AnnData:
    """A light AnnData sharing the user's matrix (``layer`` or ``.X``; no copy) with only the columns needed.

    The chosen matrix is the working copy's ``.X`` and its only matrix: none of the user's other layers
    comes along, so a model that reads the layer it was set up with can never read a stale one of the
    same name. ``model_layer`` (that layer's name, for a trained model applied to new data) also
    stores the chosen matrix under that name, so the model reads exactly what the caller chose.
    ``keep_var`` keeps a copy of ``.var`` (e.g. peak coordinates in columns); otherwise only its names.
    """
    counts = layer_matrix(adata, layer)
    return AnnData(
        X=counts,
        obs=adata.obs[obs_columns].copy() if obs_columns else pd.DataFrame(index=adata.obs_names.copy()),
        var=adata.var.copy() if keep_var else pd.DataFrame(index=adata.var_names.copy()),
        layers={} if model_layer is None else {model_layer: counts},
    )


def model_params(model) -> dict[str, Any]:
    """The settings a model was built with (scvi-tools' ``init_params_``), flat, for the ``uns`` record.

    Only plain values (numbers, strings, booleans) are kept: data a model is built from (such as
    SCCLIP's feature layouts) is saved with the model, not copied into every result record.
    """
    init = model.init_params_
    params = {**init["non_kwargs"], **{k: v for group in init["kwargs"].values() for k, v in group.items()}}
    return {k: v for k, v in params.items() if isinstance(v, int | float | str | bool | np.generic)}


def check_model(model, model_class: type) -> None:
    """Refuse, before any work, a ``model`` that is neither ``None`` nor an instance of ``model_class``.

    Raises
    ------
    TypeError
        Naming the class and, for a path (a saved model's folder), ``model_class.load(path)``.
    """
    if model is None or isinstance(model, model_class):
        return
    name = f"sctransfer.model.{model_class.__name__}"
    hint = f": load a saved one first, model={name}.load(path)" if isinstance(model, str | os.PathLike) else ""
    raise TypeError(f"model must be a trained {name}, got {type(model).__name__}{hint}.")


def training_arguments(random_state: int, max_steps: int | None) -> dict[str, int]:
    """What a tool passes to its model's ``train`` itself: ``random_state``, and ``max_steps`` when given.

    ``train_kwargs`` may not repeat these keys (a copy would silently win): the tools pass them as
    ``check_train_kwargs(tool_arguments=...)``.
    """
    return {"random_state": random_state, **({"max_steps": max_steps} if max_steps is not None else {})}


def tool_result(target: MuData, model, *, copy: bool, return_model: bool):
    """What a tool returns: ``(copy of the MuData, model)`` with both flags, else the model, the copy, or None."""
    if copy and return_model:
        return target, model
    if return_model:
        return model
    return target if copy else None


def check_max_steps(max_steps: int | None) -> None:
    """Refuse, before any work, a number of training steps that trains nothing or is not a count.

    Raises
    ------
    ValueError
        ``max_steps`` is given and is not a positive integer (``0`` would write untrained labels).
    """
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int | np.integer)):
        raise ValueError(f"max_steps must be a positive whole number of training steps, got {max_steps!r}.")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps={max_steps} trains nothing; pass at least 1 (None: the model's default).")


def check_key_added(key_added: str, *, argument: str = "key_added") -> None:
    """Refuse a result name that ``.h5mu`` / ``.zarr`` files cannot store.

    Raises
    ------
    TypeError
        ``key_added`` is not a string.
    ValueError
        It is empty, contains ``/`` (a group separator in HDF5 and zarr: ``"run/1"`` would make the
        whole file unreadable) or starts with ``__`` (reserved by anndata).
    """
    if not isinstance(key_added, str):
        raise TypeError(f"{argument} must be a string, got {type(key_added).__name__}.")
    if not key_added or "/" in key_added or key_added.startswith("__"):
        raise ValueError(
            f"{argument}={key_added!r} cannot be stored in an .h5mu or .zarr file (names must be non-empty, without "
            "'/' and not start with '__'). Choose another name, e.g. "
            f"{argument}={(key_added.replace('/', '_').lstrip('_') or 'run1')!r}."
        )


def storable(value: Any, *, where: str = "uns") -> Any:
    """``value`` in the form ``.h5mu`` and ``.zarr`` files store and read back unchanged.

    ``None`` entries of dicts are dropped (HDF5 has no null), lists and tuples become numpy arrays
    (what reading gives back), numpy scalars become Python scalars. DataFrames and arrays are kept.

    Raises
    ------
    ValueError
        A dict key is not a non-empty string free of ``/`` (it would be read back as a nested group).
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key or "/" in key:
                raise ValueError(f"{where}: key {key!r} cannot be stored in an .h5mu/.zarr file (use a table).")
            if item is not None:
                out[key] = storable(item, where=f"{where}[{key!r}]")
        return out
    if isinstance(value, list | tuple):
        array = np.asarray(value)
        return array.astype(str) if array.dtype.kind in "OU" else array
    if isinstance(value, np.generic):
        return value.item()
    return value


def storable_obs_column(values: Any) -> Any:
    """An ``.obs`` column that survives ``write``/``read``: strings become a categorical (missing as NaN)."""
    if isinstance(values, pd.Categorical):
        return values
    array = np.asarray(values)
    if array.dtype.kind in "OUS" or isinstance(getattr(values, "dtype", None), pd.StringDtype):
        return pd.Categorical([None if v is None or v is pd.NA else str(v) for v in array])
    return array


Field = tuple[str, "str | None", str]
"""``(slot, modality or None, key)`` of a field; slots: ``"obs"``, ``"obsm"``, ``"obsp"``, ``"mod_uns"``,
``"uns"`` (the MuData's) and ``"mod"`` (a whole modality)."""


def check_free(mdata: MuData, fields: list[Field], *, tool: str, key_added: str, overwrite: bool) -> None:
    """Refuse, before any work, names that cannot be stored and fields the user already has.

    ``key_added`` (the name the user chose) and every field name are checked with :func:`check_key_added`.

    Raises
    ------
    ValueError
        A name cannot be stored in ``.h5mu``/``.zarr`` (see :func:`check_key_added`), or a field exists
        and ``overwrite`` is False.
    """
    check_key_added(key_added)
    for _, _, key in fields:
        check_key_added(key, argument="a result name")
    if overwrite:
        return
    taken = [_describe(slot, mod, key) for slot, mod, key in fields if _get(mdata, slot, mod, key) is not _MISSING]
    if taken:
        raise ValueError(
            f"{tool} would replace existing fields: {', '.join(taken)}. Pass overwrite=True to replace them, "
            "or key_added='...' to write under other names."
        )


@dataclass
class ResultWriter:
    """All fields a tool writes, filled after every computation, then written in one step.

    Keys are ``(modality, name)`` for per-modality slots and ``name`` for ``mdata.uns`` and
    ``mdata.mod`` (new modalities).
    """

    obs: dict[tuple[str, str], Any] = field(default_factory=dict)
    obsm: dict[tuple[str, str], Any] = field(default_factory=dict)
    obsp: dict[tuple[str, str], Any] = field(default_factory=dict)
    mod_uns: dict[tuple[str, str], Any] = field(default_factory=dict)
    uns: dict[str, Any] = field(default_factory=dict)
    modalities: dict[str, AnnData] = field(default_factory=dict)

    def write(self, mdata: MuData) -> None:
        """Write every field into ``mdata``; on any error, restore what was there and re-raise."""
        values = {("mod", None, name): adata for name, adata in self.modalities.items()}
        values |= {("obs", mod, key): storable_obs_column(v) for (mod, key), v in self.obs.items()}
        values |= {("obsm", mod, key): v for (mod, key), v in self.obsm.items()}
        values |= {("obsp", mod, key): v for (mod, key), v in self.obsp.items()}
        values |= {("mod_uns", mod, key): storable(v, where=f"uns[{key!r}]") for (mod, key), v in self.mod_uns.items()}
        values |= {("uns", None, key): storable(v, where=f"uns[{key!r}]") for key, v in self.uns.items()}
        previous = {target: _get(mdata, *target) for target in values}
        try:
            for target, value in values.items():
                _set(mdata, *target, value)
            update_mudata(mdata)
        except BaseException:
            for target, value in previous.items():
                _set(mdata, *target, value)
            update_mudata(mdata)
            raise


def _container(mdata: MuData, slot: str, mod: str | None):
    if slot == "mod":
        return mdata.mod
    if slot == "uns":
        return mdata.uns
    adata = mdata.mod[mod]
    return adata.uns if slot == "mod_uns" else getattr(adata, slot)


def _get(mdata: MuData, slot: str, mod: str | None, key: str) -> Any:
    if mod is not None and mod not in mdata.mod:
        return _MISSING
    container = _container(mdata, slot, mod)
    if slot == "obs":
        return container[key].copy() if key in container.columns else _MISSING
    return container[key] if key in container else _MISSING


def _set(mdata: MuData, slot: str, mod: str | None, key: str, value: Any) -> None:
    container = _container(mdata, slot, mod)
    if value is _MISSING:
        if slot == "obs":
            if key in container.columns:
                del container[key]
        elif key in container:
            del container[key]
    elif slot == "mod":
        mdata.mod[key] = value
    else:
        container[key] = value


def _describe(slot: str, mod: str | None, key: str) -> str:
    if slot == "mod":
        return f"mdata.mod[{key!r}]"
    if slot == "uns":
        return f"mdata.uns[{key!r}]"
    return f"mdata[{mod!r}].{'uns' if slot == 'mod_uns' else slot}[{key!r}]"
