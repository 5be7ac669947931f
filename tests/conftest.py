"""Shared test set-up.

The real data sets are read from the shared data folder beside the repository (``../shared/data``)
unless ``SCTRANSFER_DATA_DIR`` already points elsewhere; tests never download.
"""

import os
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

if not os.environ.get("SCTRANSFER_DATA_DIR"):
    os.environ["SCTRANSFER_DATA_DIR"] = str(SHARED_DATA)
