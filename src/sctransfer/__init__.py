"""sctransfer: move knowledge between single-cell modalities (scNCL label transfer, scCLIP matching)."""

from importlib.metadata import PackageNotFoundError, version

from . import datasets, metrics, model, module, pl, pp, tl

try:
    __version__ = version("sctransfer")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["datasets", "metrics", "model", "module", "pl", "pp", "tl", "__version__"]
