"""Model files that cannot run code: weights as a tensor-only file, everything else as JSON and numeric arrays.

A saved model is a folder of three files (names optionally prefixed):

- ``model.json``: the format, the model class, its initialisation parameters, the data registry,
  the feature names and the model's other attributes, as JSON; arrays inside them are references
  into ``arrays.npz``.
- ``arrays.npz``: numeric and string arrays, read with ``numpy.load(allow_pickle=False)``.
- ``weights.pt``: the module's ``state_dict`` (tensors only), read with
  ``torch.load(weights_only=True)``.

None of them is a pickle: reading them never imports or calls anything. Python objects are
limited to plain values (None, bool, int, float, str, lists, tuples, dicts with string keys),
numpy arrays (numbers, booleans, strings), pandas indexes, series and data frames of those
(categorical columns too), and dataclasses of a list of allowed classes that the model gives.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

FORMAT = "sctransfer-model"
FORMAT_VERSION = 1
METADATA_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"
WEIGHTS_FILE = "weights.pt"
#: The MuData written by ``save(save_anndata=True)`` (scvi-tools' name).
DATA_FILE = "mdata.h5mu"
#: The pickle that earlier versions of sctransfer (and scvi-tools) wrote; never opened.
LEGACY_FILE = "model.pt"
_TYPE = "$type"


class ModelFileError(ValueError):
    """A folder that does not hold a model saved by this version of sctransfer, or a damaged or unsafe file."""


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


class _Encoder:
    """Turns a tree of allowed values into JSON-able values, collecting its arrays."""

    def __init__(self, allowed: Sequence[type]):
        self.arrays: dict[str, np.ndarray] = {}
        self.allowed = {cls.__name__: cls for cls in allowed}

    def array(self, values: np.ndarray, where: str) -> dict:
        values = np.asarray(values)
        node: dict[str, Any] = {_TYPE: "array"}
        if values.dtype == object:
            if all(isinstance(v, str) for v in values.ravel()):
                values, node["object"] = values.astype(str), True
            elif all(_plain(v) or isinstance(v, np.generic) for v in values.ravel()):
                items = [v.item() if isinstance(v, np.generic) else v for v in values.ravel()]
                return {_TYPE: "objects", "shape": list(values.shape), "values": items}
            else:
                raise TypeError(f"{where}: an object array holding other values than strings and numbers.")
        if values.dtype.kind not in "biufcUS":
            raise TypeError(f"{where}: arrays of dtype {values.dtype} cannot be saved.")
        key = f"a{len(self.arrays)}"
        self.arrays[key] = values
        return node | {"key": key}

    def column(self, series: pd.Series, where: str) -> dict:
        if isinstance(series.dtype, pd.CategoricalDtype):
            return {
                _TYPE: "categorical",
                "codes": self.array(series.cat.codes.to_numpy(), where),
                "categories": self(series.cat.categories, where),
                "ordered": bool(series.cat.ordered),
            }
        if isinstance(series.dtype, np.dtype):
            return self.array(series.to_numpy(), where)
        # pandas extension dtypes (string, nullable integers): values as objects (missing as None), the dtype by name
        values = series.to_numpy(object, copy=True)
        values[pd.isna(values)] = None
        return {_TYPE: "extension", "dtype": str(series.dtype), "values": self.array(values, where)}

    def __call__(self, value: Any, where: str) -> Any:
        if isinstance(value, np.generic):
            value = value.item()
        if _plain(value):
            return value
        if isinstance(value, np.ndarray):
            return self.array(value, where)
        if isinstance(value, pd.MultiIndex):
            raise TypeError(f"{where}: a MultiIndex cannot be saved.")
        if isinstance(value, pd.Index):
            return {_TYPE: "index", "values": self.column(value.to_series(), where), "name": self(value.name, where)}
        if isinstance(value, pd.Series):
            return {
                _TYPE: "series",
                "values": self.column(value, where),
                "index": self(value.index, where),
                "name": self(value.name, where),
            }
        if isinstance(value, pd.DataFrame):
            if not all(isinstance(c, str) for c in value.columns):
                raise TypeError(f"{where}: data frame columns must be strings to be saved.")
            return {
                _TYPE: "dataframe",
                "index": self(value.index, where),
                "columns": [[c, self.column(value[c], f"{where}[{c!r}]")] for c in value.columns],
            }
        if isinstance(value, tuple):
            return {_TYPE: "tuple", "items": [self(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, Mapping):
            if not all(isinstance(k, str) for k in value):
                raise TypeError(f"{where}: dictionaries must have string keys to be saved.")
            items = {k: self(v, f"{where}[{k!r}]") for k, v in value.items()}
            return {_TYPE: "dict", "items": items} if _TYPE in items else items
        if dataclasses.is_dataclass(value) and self.allowed.get(type(value).__name__) is type(value):
            fields = {f.name: self(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)}
            return {_TYPE: "object", "class": type(value).__name__, "fields": fields}
        raise TypeError(
            f"{where}: a {type(value).__module__}.{type(value).__qualname__} cannot be saved (allowed: plain values, "
            f"numpy arrays, pandas objects, and the classes {sorted(self.allowed)})."
        )


class _Decoder:
    """The inverse of :class:`_Encoder`: builds only plain values, arrays, pandas objects and allowed dataclasses."""

    def __init__(self, arrays: Mapping[str, np.ndarray], allowed: Sequence[type]):
        self.arrays = arrays
        self.allowed = {cls.__name__: cls for cls in allowed}

    def column(self, node: dict) -> tuple[Any, Any]:
        """Values and dtype of an encoded column."""
        kind = node[_TYPE]
        if kind == "categorical":
            categories = self(node["categories"])
            return pd.Categorical.from_codes(self(node["codes"]), categories, ordered=node["ordered"]), None
        if kind == "extension":
            return self(node["values"]), pd.api.types.pandas_dtype(node["dtype"])
        return self(node), None

    def __call__(self, node: Any) -> Any:
        if _plain(node):
            return node
        if isinstance(node, list):
            return [self(v) for v in node]
        if not isinstance(node, dict):
            raise ModelFileError(f"Unexpected value {node!r} in the model metadata.")
        kind = node.get(_TYPE)
        if kind is None:
            return {k: self(v) for k, v in node.items()}
        if kind == "dict":
            return {k: self(v) for k, v in node["items"].items()}
        if kind == "tuple":
            return tuple(self(v) for v in node["items"])
        if kind == "array":
            values = self.arrays[node["key"]]
            return values.astype(object) if node.get("object") else values
        if kind == "objects":
            values = np.empty(len(node["values"]), dtype=object)
            values[:] = node["values"]
            return values.reshape(node["shape"])
        if kind == "index":
            values, dtype = self.column(node["values"])
            return pd.Index(values, dtype=dtype, name=self(node["name"]))
        if kind == "series":
            values, dtype = self.column(node["values"])
            return pd.Series(values, index=self(node["index"]), dtype=dtype, name=self(node["name"]))
        if kind == "dataframe":
            index = self(node["index"])
            columns = {}
            for name, column in node["columns"]:
                values, dtype = self.column(column)
                columns[name] = pd.Series(values, index=index, dtype=dtype)
            return pd.DataFrame(columns, index=index)
        if kind == "object":
            cls = self.allowed.get(node["class"])
            if cls is None:
                raise ModelFileError(f"The model metadata names a class {node['class']!r} this model does not use.")
            return cls(**{k: self(v) for k, v in node["fields"].items()})
        raise ModelFileError(f"Unknown entry type {kind!r} in the model metadata.")


def _paths(dir_path: str | os.PathLike, prefix: str | None) -> dict[str, Path]:
    prefix = prefix or ""
    names = {"metadata": METADATA_FILE, "arrays": ARRAYS_FILE, "weights": WEIGHTS_FILE}
    names |= {"data": DATA_FILE, "legacy": LEGACY_FILE}
    return {key: Path(dir_path) / f"{prefix}{name}" for key, name in names.items()}


def write_model_files(
    dir_path: str | os.PathLike,
    *,
    metadata: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    allowed: Sequence[type],
    prefix: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a model folder.

    Parameters
    ----------
    dir_path
        Folder to write (created).
    metadata
        Everything but the weights (see the module docstring for the allowed values).
    state_dict
        The module's ``state_dict``: tensor names to tensors.
    allowed
        Dataclasses that may appear in ``metadata``.
    prefix
        Prefix of the file names.
    overwrite
        Replace the files of an existing folder.

    Returns
    -------
    The path the MuData goes to when the caller saves it too (``mdata.h5mu``).

    Raises
    ------
    ValueError
        When the folder exists and ``overwrite`` is False.
    TypeError
        When ``metadata`` holds a value that cannot be saved (before anything is written).
    """
    paths = _paths(dir_path, prefix)
    if Path(dir_path).exists() and not overwrite:
        raise ValueError(f"{dir_path} already exists; pass overwrite=True to replace the model files in it.")
    encoder = _Encoder(allowed)
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, **encoder(dict(metadata), "model")}
    tensors = {}
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict[{name!r}] is a {type(tensor).__name__}, not a tensor.")
        tensors[name] = tensor.detach().cpu()
    Path(dir_path).mkdir(parents=True, exist_ok=True)
    with open(paths["arrays"], "wb") as f:
        np.savez(f, **encoder.arrays)
    torch.save(tensors, paths["weights"])
    paths["metadata"].write_text(json.dumps(document, indent=1))
    return paths["data"]


def read_model_files(
    dir_path: str | os.PathLike,
    *,
    model: str | None,
    allowed: Sequence[type],
    prefix: str | None = None,
    map_location: torch.device | str | None = "cpu",
    backup_url: str | None = None,
) -> tuple[dict[str, Any], dict[str, torch.Tensor], Path | None]:
    """Read a model folder written by :func:`write_model_files`, executing nothing from it.

    Parameters
    ----------
    dir_path
        The folder.
    model
        Name of the model class the files must describe (``metadata["model"]``); None accepts any.
    allowed
        Dataclasses the metadata may build.
    prefix
        Prefix of the file names.
    map_location
        Device the weights are loaded to.
    backup_url
        URL of a folder holding the same files; files missing from ``dir_path`` are downloaded
        from ``{backup_url}/{file name}`` first (the saved MuData is not downloaded).

    Returns
    -------
    ``(metadata, state_dict, data_path)``: the decoded metadata, the weights, and the path of
    the saved MuData (``None`` when the model was saved without it).

    Raises
    ------
    ModelFileError
        When the folder holds no model, a model in the former pickle-based format (never opened),
        a model of a newer format or of another class, or a file that is damaged or not
        weights-only (not executed).
    """
    paths = _paths(dir_path, prefix)
    if backup_url is not None:
        from scvi.data._download import _download

        Path(dir_path).mkdir(parents=True, exist_ok=True)
        for key in ("metadata", "arrays", "weights"):
            _download(f"{backup_url.rstrip('/')}/{paths[key].name}", str(dir_path), paths[key].name)
    if not paths["metadata"].exists():
        if paths["legacy"].exists():
            raise ModelFileError(
                f"{paths['legacy']} is a model saved by an earlier version of sctransfer, whose model files were "
                "pickles that can run code when loaded; it was not opened. The model format has changed to "
                "weights-only files (see the CHANGELOG): retrain the model with this version (the version that saved "
                "it can still load it, but do so only if you trust the file)."
            )
        raise ModelFileError(f"No saved model in {dir_path} (no {paths['metadata'].name}).")
    try:
        document = json.loads(paths["metadata"].read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{paths['metadata']} is not a model description (JSON): {error}.") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ModelFileError(f"{paths['metadata']} does not describe an sctransfer model.")
    if document.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{paths['metadata']} uses model format {document.get('format_version')!r}; this sctransfer reads format "
            f"{FORMAT_VERSION}. Load it with the sctransfer version that saved it."
        )
    if model is not None and document.get("model") != model:
        found = document.get("model")
        raise ModelFileError(f"{dir_path} holds a {found!r} model; load it with sctransfer.model.{found}.load.")
    try:
        with np.load(paths["arrays"], allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ModelFileError(
            f"{paths['arrays']} could not be read as plain arrays ({error}); the file is damaged or not an sctransfer "
            "model file. Nothing in it was executed."
        ) from None
    try:
        state_dict = torch.load(paths["weights"], map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        if found is None:  # not a refusal of code: the file is cut short or not a torch file at all
            raise ModelFileError(
                f"{paths['weights']} could not be read ({str(error).splitlines()[0]}); the file is damaged (e.g. an "
                "incomplete download or copy) or not an sctransfer model file. Copy the model folder again."
            ) from None
        raise ModelFileError(
            f"{paths['weights']} is not a weights-only file (it refers to {found.group(1)}, which loading would "
            "call); it was refused without executing anything. Load model files only from sources you trust."
        ) from None
    if not isinstance(state_dict, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
    ):
        raise ModelFileError(f"{paths['weights']} does not hold a dictionary of tensors.")
    metadata = _Decoder(arrays, allowed)({k: v for k, v in document.items() if k not in ("format", "format_version")})
    return metadata, state_dict, paths["data"] if paths["data"].exists() else None
