"""sctransfer: move knowledge between single-cell modalities (scNCL label transfer, scCLIP matching).

The subpackages load on first use (``sctransfer.tl`` imports scvi-tools and torch, ``sctransfer.pp`` does
not), so ``import sctransfer`` and ``sctransfer --help`` stay fast.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sctransfer")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installation
    __version__ = "0.0.0"

_SUBPACKAGES = ("datasets", "metrics", "model", "module", "nn", "pl", "pp", "tl")

__all__ = [*_SUBPACKAGES, "__version__"]


def __getattr__(name: str):
    """Import a subpackage the first time it is used (``sctransfer.tl``, ...)."""
    if name in _SUBPACKAGES:
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBPACKAGES})
