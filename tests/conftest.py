"""Shared test set-up.

The real data sets are read from the shared data folder beside the repository (``../shared/data``)
unless ``SCTRANSFER_DATA_DIR`` already points elsewhere; tests never download.
"""

import os
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

if not os.environ.get("SCTRANSFER_DATA_DIR"):
    os.environ["SCTRANSFER_DATA_DIR"] = str(SHARED_DATA)


# --------------------------------------------------------------------------------------------
# deep comparison of AnnData / MuData (what a deep copy or a write/read round trip must preserve)
# --------------------------------------------------------------------------------------------
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from anndata import AnnData  # noqa: E402
from mudata import MuData  # noqa: E402


def _assert_same(a, b, where: str) -> None:
    if isinstance(a, MuData):
        assert isinstance(b, MuData), where
        assert list(a.mod) == list(b.mod), f"{where}: modalities {list(a.mod)} != {list(b.mod)}"
        for name in a.mod:
            _assert_same(a.mod[name], b.mod[name], f"{where}[{name!r}]")
        _assert_same(dict(a.uns), dict(b.uns), f"{where}.uns")
    elif isinstance(a, AnnData):
        assert isinstance(b, AnnData), where
        _assert_same(a.X, b.X, f"{where}.X")
        for slot in ("obs", "var"):
            _assert_same(getattr(a, slot), getattr(b, slot), f"{where}.{slot}")
        for slot in ("obsm", "obsp", "varm", "varp", "layers", "uns"):
            _assert_same(dict(getattr(a, slot)), dict(getattr(b, slot)), f"{where}.{slot}")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_index_type=False, obj=where)
    elif sp.issparse(a) or sp.issparse(b):
        assert sp.issparse(a) and sp.issparse(b) and a.shape == b.shape, where
        assert (sp.csr_matrix(a) != sp.csr_matrix(b)).nnz == 0, where
    elif a is None or b is None:
        assert a is None and b is None, where
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=where, strict=False)


@pytest.fixture
def assert_same_data():
    """``assert_same_data(a, b)``: every matrix, table, embedding and ``uns`` entry of two AnnData/MuData equal."""
    return lambda a, b: _assert_same(a, b, "mdata")
