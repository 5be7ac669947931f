"""Genomic intervals: the one place that parses, normalises, orders and overlaps coordinates.

Every part of sctransfer that needs a genomic coordinate (gene activity, peak neighbours,
tokenisation, peak mapping) goes through this module.

Conventions
-----------
All coordinates are held **0-based, half-open** (BED style) as ``int64`` in a
:class:`pandas.DataFrame` with columns ``chrom``, ``start``, ``end`` (plus ``strand`` and
``gene_name`` for gene tables). Peak names (``chr1:100-200``, ``chr1-100-200``, ``chr1_100_200``)
and BED files are taken as BED-style already; GTF/GFF3 files and tables flagged as 1-based
(the ArchR and GENCODE gene tables) have 1 subtracted from their start.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from sctransfer._constants import ATAC

logger = logging.getLogger(__name__)

INTERVAL_COLUMNS = ["chrom", "start", "end"]
GENE_COLUMNS = ["chrom", "start", "end", "strand", "gene_name"]

_PEAK_NAME = re.compile(r"^(?P<chrom>.+?)[:_-](?P<start>\d+)[-_](?P<end>\d+)$")
_CHROM_ALIASES = {"chrom": ("chrom", "chr", "chromosome", "seqnames", "seqname", "chromosome_name")}
_START_ALIASES = ("start", "chromstart", "chrom_start", "start_position")
_END_ALIASES = ("end", "chromend", "chrom_end", "end_position")
_STRAND_ALIASES = ("strand",)
_GENE_NAME_ALIASES = ("gene_name", "symbol", "gene", "gene_symbol", "name", "gene_id")


class IntervalError(ValueError):
    """Genomic coordinates are missing, malformed or do not match between two feature sets."""


def parse_interval_names(names: Sequence[str]) -> pd.DataFrame:
    """Parse interval names such as ``chr1:100-200``, ``chr1-100-200`` or ``chr1_100_200``.

    Parameters
    ----------
    names
        Feature names, for example ``adata.var_names`` of a peak matrix.

    Returns
    -------
    A data frame indexed like ``names`` with columns ``chrom`` (str), ``start`` and ``end``
    (int64, BED style). Names that cannot be parsed give ``NaN`` rows (``chrom`` is ``None``).
    """
    series = pd.Series(np.asarray(names, dtype=str), index=pd.Index(names))
    parts = series.str.extract(_PEAK_NAME)
    out = pd.DataFrame(index=series.index)
    out["chrom"] = parts["chrom"]
    out["start"] = pd.to_numeric(parts["start"], errors="coerce")
    out["end"] = pd.to_numeric(parts["end"], errors="coerce")
    return out


def _find_column(columns: Sequence[str], aliases: Sequence[str]) -> str | None:
    lower = {str(c).lower(): c for c in columns}
    for alias in aliases:
        if alias in lower:
            return lower[alias]
    return None


def peak_coordinates(adata: AnnData, *, modality: str = ATAC) -> pd.DataFrame:
    """Coordinates of the features of a peak matrix.

    Read from ``adata.var`` columns ``chrom``/``start``/``end`` when present (aliases such as
    ``seqnames`` or ``chromStart`` are accepted), otherwise parsed from ``adata.var_names``.

    Parameters
    ----------
    adata
        A cells x peaks :class:`~anndata.AnnData` (one feature per peak).
    modality
        Name used in error messages.

    Returns
    -------
    Data frame indexed by ``adata.var_names`` with ``chrom``, ``start``, ``end`` (BED style).

    Raises
    ------
    sctransfer.pp.IntervalError
        When any feature has no readable coordinate, or ends before it starts; the message shows
        examples and the fix.
    """
    var = adata.var
    chrom_col = _find_column(var.columns, _CHROM_ALIASES["chrom"])
    start_col = _find_column(var.columns, _START_ALIASES)
    end_col = _find_column(var.columns, _END_ALIASES)
    if chrom_col is not None and start_col is not None and end_col is not None:
        coords = pd.DataFrame(
            {
                "chrom": var[chrom_col].where(var[chrom_col].notna()).astype(object).to_numpy(),
                "start": pd.to_numeric(var[start_col], errors="coerce").to_numpy(),
                "end": pd.to_numeric(var[end_col], errors="coerce").to_numpy(),
            },
            index=var.index,
        )
        source = f"var columns {chrom_col!r}, {start_col!r}, {end_col!r}"
    else:
        coords = parse_interval_names(adata.var_names)
        source = "var_names"
    bad = coords["chrom"].isna() | coords["start"].isna() | coords["end"].isna()
    if bad.any():
        examples = ", ".join(repr(x) for x in coords.index[bad.to_numpy()][:3])
        raise IntervalError(
            f"{int(bad.sum())} of {len(coords)} features of modality {modality!r} have no genomic coordinate "
            f"(read from {source}; e.g. {examples}). Name peaks like 'chr1:100-200', 'chr1-100-200' or "
            "'chr1_100_200', or add var columns 'chrom', 'start' and 'end'."
        )
    coords["chrom"] = coords["chrom"].astype(str)
    coords["start"] = coords["start"].astype(np.int64)
    coords["end"] = coords["end"].astype(np.int64)
    if (coords["end"] < coords["start"]).any():
        raise IntervalError(f"Some features of modality {modality!r} end before they start; check the peak names.")
    return coords


# --------------------------------------------------------------------------------------------
# gene annotation
# --------------------------------------------------------------------------------------------
def _open_text(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt")
    return open(path)


def _read_gtf(path: Path) -> pd.DataFrame:
    """Genes of a GTF or GFF3 file (``gene`` features; transcripts spanned when there are none)."""
    records = {"gene": [], "transcript": []}
    with _open_text(path) as fh:
        for line in fh:
            if not line or line[0] == "#":
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 9:
                continue
            feature = fields[2]
            if feature not in records and feature != "mRNA":
                continue
            key = "gene" if feature == "gene" else "transcript"
            name = _gtf_attribute(fields[8], _GENE_NAME_KEYS if key == "gene" else _TRANSCRIPT_GENE_KEYS)
            if name is None:
                continue
            records[key].append((fields[0], int(fields[3]) - 1, int(fields[4]), fields[6], name))
    rows = records["gene"] or records["transcript"]
    if not rows:
        raise IntervalError(f"No gene or transcript records with a name were found in {str(path)!r}.")
    table = pd.DataFrame(rows, columns=GENE_COLUMNS)
    if records["gene"]:
        # one row per gene name: the first record (e.g. GENCODE's PAR genes appear on chrX and chrY)
        table = table.drop_duplicates("gene_name", keep="first").reset_index(drop=True)
    else:
        table = (
            table.groupby(["gene_name", "chrom", "strand"], as_index=False, sort=False)
            .agg(start=("start", "min"), end=("end", "max"))
            .loc[:, GENE_COLUMNS]
        )
    return table


# gene records name themselves; transcript records name their gene (their own Name is the transcript's)
_GENE_NAME_KEYS = ("gene_name", "Name", "gene", "gene_id", "ID")
_TRANSCRIPT_GENE_KEYS = ("gene_name", "gene", "gene_id", "Parent")
_GTF_ATTR = re.compile(r'(?:^|;)\s*([A-Za-z_]+)[ =]"?([^";]+)"?')


def _gtf_attribute(attrs: str, keys: Sequence[str]) -> str | None:
    found = dict(_GTF_ATTR.findall(attrs))
    for key in keys:
        if key in found:
            value = found[key]
            return value.split(":", 1)[1] if key in ("ID", "Parent") and ":" in value else value
    return None


def _looks_like_gtf(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    return any(s in (".gtf", ".gff", ".gff3") for s in suffixes)


def _read_table(path: Path, one_based: bool | None) -> pd.DataFrame:
    suffixes = [s.lower() for s in path.suffixes]
    is_bed = ".bed" in suffixes
    with _open_text(path) as fh:
        first = fh.readline()
    sep = "\t" if "\t" in first else ("," if "," in first and ".csv" in suffixes else r"\s+")
    has_header = _find_column(re.split(sep if sep != r"\s+" else r"\s+", first.strip()), _START_ALIASES) is not None
    if is_bed and not has_header:
        raw = pd.read_csv(path, sep=sep, header=None, comment="#", engine="python" if sep == r"\s+" else "c")
        if raw.shape[1] < 4:
            raise IntervalError(f"BED file {str(path)!r} needs at least 4 columns (chrom, start, end, name).")
        strand = raw[5] if raw.shape[1] >= 6 else "+"
        frame = pd.DataFrame({"chrom": raw[0], "start": raw[1], "end": raw[2], "strand": strand, "gene_name": raw[3]})
        return annotation_from_dataframe(frame, one_based=False if one_based is None else one_based)
    frame = pd.read_csv(path, sep=sep, comment=None, engine="python" if sep == r"\s+" else "c")
    frame.columns = [str(c).lstrip("#") for c in frame.columns]
    return annotation_from_dataframe(frame, one_based=(not is_bed) if one_based is None else one_based)


def annotation_from_dataframe(frame: pd.DataFrame, *, one_based: bool = True) -> pd.DataFrame:
    """Normalise a gene table to ``chrom, start, end, strand, gene_name`` (0-based, half-open).

    Parameters
    ----------
    frame
        Table with a chromosome, start, end and gene-name column (``gene_name``, ``symbol``,
        ``gene``, ...); ``strand`` is optional (``+`` assumed, with a warning).
    one_based
        Whether ``start`` is 1-based inclusive (GTF, Ensembl/GENCODE tables). BED tables are 0-based.
    """
    chrom = _find_column(frame.columns, _CHROM_ALIASES["chrom"])
    start = _find_column(frame.columns, _START_ALIASES)
    end = _find_column(frame.columns, _END_ALIASES)
    name = _find_column(frame.columns, _GENE_NAME_ALIASES)
    strand = _find_column(frame.columns, _STRAND_ALIASES)
    missing = [
        label for label, col in (("chrom", chrom), ("start", start), ("end", end), ("gene name", name)) if col is None
    ]
    if missing:
        raise IntervalError(
            f"The gene annotation has no {', '.join(missing)} column (columns: {list(frame.columns)[:10]}). "
            "Provide columns chrom, start, end, strand and one of gene_name / symbol / gene."
        )
    out = pd.DataFrame(
        {
            "chrom": frame[chrom].astype(str).to_numpy(),
            "start": pd.to_numeric(frame[start], errors="coerce").to_numpy(),
            "end": pd.to_numeric(frame[end], errors="coerce").to_numpy(),
            "strand": frame[strand].astype(str).to_numpy() if strand is not None else "+",
            "gene_name": frame[name].astype(str).to_numpy(),
        }
    )
    if strand is None:
        logger.warning("The gene annotation has no strand column: every gene is taken as on the + strand.")
    out = out.dropna(subset=["start", "end"])
    out["start"] = out["start"].astype(np.int64) - (1 if one_based else 0)
    out["end"] = out["end"].astype(np.int64)
    out.loc[~out["strand"].isin(["+", "-"]), "strand"] = "+"
    # one row per gene name: the first record (tables list the canonical locus first)
    out = out.drop_duplicates("gene_name", keep="first").reset_index(drop=True)
    return out


def read_annotation(annotation: os.PathLike | str | pd.DataFrame, *, one_based: bool | None = None) -> pd.DataFrame:
    """:func:`sctransfer.pp.read_gene_annotation` for a file or a data frame (genome names are resolved there).

    The formats read, the result and the errors are those of :func:`sctransfer.pp.read_gene_annotation`;
    a path that is not a file raises :class:`IntervalError`.
    """
    if isinstance(annotation, pd.DataFrame):
        return annotation_from_dataframe(annotation, one_based=True if one_based is None else one_based)
    path = Path(annotation)
    if not path.is_file():
        raise IntervalError(f"Annotation file {str(path)!r} does not exist.")
    if _looks_like_gtf(path):
        return _read_gtf(path)
    return _read_table(path, one_based)


def locate_genes(gene_names: Sequence[str], table: pd.DataFrame) -> pd.DataFrame:
    """:func:`sctransfer.pp.gene_coordinates` on a standard gene table (from :func:`read_annotation`).

    The matching rules, the result and the errors are those of :func:`sctransfer.pp.gene_coordinates`.
    """
    names = np.asarray(gene_names, dtype=str)
    if len(table) == 0:
        raise IntervalError("The gene annotation holds no gene with a start and an end; check the annotation.")
    pos = pd.Index(table["gene_name"]).get_indexer(names)
    lower = pd.Series(np.arange(len(table)), index=table["gene_name"].str.lower().to_numpy())
    lower = lower[~lower.index.duplicated(keep="first")]
    fallback = lower.index.get_indexer(pd.Index(names).str.lower())
    by_case = (pos < 0) & (fallback >= 0)
    pos[by_case] = lower.to_numpy()[fallback[by_case]]
    if by_case.any():
        logger.info("%d genes were matched to the annotation ignoring case.", int(by_case.sum()))
    found = pos >= 0
    rows = table.iloc[np.where(found, pos, 0)]
    return pd.DataFrame(
        {
            "chrom": np.where(found, rows["chrom"].to_numpy(dtype=object), None),
            "start": np.where(found, rows["start"].to_numpy(np.float64), np.nan),
            "end": np.where(found, rows["end"].to_numpy(np.float64), np.nan),
        },
        index=pd.Index(names),
    )


# --------------------------------------------------------------------------------------------
# chromosome names and order
# --------------------------------------------------------------------------------------------
def _strip_chr(name: str) -> str:
    base = name[3:] if name.lower().startswith("chr") else name
    return "M" if base in ("MT", "Mt", "m") else base


def harmonise_chromosomes(query: pd.Series, reference: Sequence[str]) -> pd.Series:
    """Rename ``query`` chromosomes to the style of ``reference`` (``1`` <-> ``chr1``, ``MT`` <-> ``chrM``).

    Names already in ``reference`` are kept; others are matched after dropping a ``chr`` prefix.
    """
    ref = pd.Index(pd.unique(np.asarray(reference, dtype=str)))
    uniq = pd.unique(query.astype(str))
    if all(u in ref for u in uniq):
        return query.astype(str)
    by_base = {_strip_chr(r): r for r in ref}
    mapping = {u: (u if u in ref else by_base.get(_strip_chr(u), u)) for u in uniq}
    return query.astype(str).map(mapping)


def chromosome_rank(chroms: Sequence[str]) -> np.ndarray:
    """Natural order of chromosome names: 1..22, X, Y, M, then others alphabetically."""
    chroms = np.asarray(chroms, dtype=str)
    uniq = pd.unique(chroms)

    def key(name: str) -> tuple[int, int, str]:
        base = _strip_chr(name)
        if base.isdigit():
            return (0, int(base), "")
        special = {"X": 1, "Y": 2, "M": 3}
        if base in special:
            return (1, special[base], "")
        return (2, 0, base)

    order = {name: i for i, name in enumerate(sorted(uniq, key=key))}
    return np.fromiter((order[c] for c in chroms), dtype=np.int64, count=len(chroms))


def genomic_order(coords: pd.DataFrame) -> np.ndarray:
    """Positions that sort intervals by (chromosome in natural order, start, end)."""
    rank = chromosome_rank(coords["chrom"].to_numpy())
    return np.lexsort((coords["end"].to_numpy(), coords["start"].to_numpy(), rank))


# --------------------------------------------------------------------------------------------
# overlaps
# --------------------------------------------------------------------------------------------
def overlap_pairs(query: pd.DataFrame, subject: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """All pairs of overlapping intervals (at least one shared base).

    Vectorised per chromosome with sorted starts; cost grows with the number of pairs found.
    ``subject`` should hold the shorter intervals (peaks) for speed; results are exact either way.

    Parameters
    ----------
    query, subject
        Interval tables (``chrom``, ``start``, ``end``; BED style). Chromosome names must use the
        same style (see :func:`harmonise_chromosomes`).

    Returns
    -------
    ``(query_idx, subject_idx)``: positional indices of each overlapping pair, int64.
    """
    q_idx_all, s_idx_all = [], []
    q_chrom = query["chrom"].to_numpy()
    s_chrom = subject["chrom"].to_numpy()
    s_groups = pd.Series(np.arange(len(subject))).groupby(s_chrom).indices
    q_groups = pd.Series(np.arange(len(query))).groupby(q_chrom).indices
    q_start_all, q_end_all = query["start"].to_numpy(np.int64), query["end"].to_numpy(np.int64)
    s_start_all, s_end_all = subject["start"].to_numpy(np.int64), subject["end"].to_numpy(np.int64)
    for chrom, q_pos in q_groups.items():
        s_pos = s_groups.get(chrom)
        if s_pos is None:
            continue
        order = np.argsort(s_start_all[s_pos], kind="stable")
        s_pos = s_pos[order]
        s_start, s_end = s_start_all[s_pos], s_end_all[s_pos]
        max_len = int((s_end - s_start).max()) if len(s_pos) else 0
        q_start, q_end = q_start_all[q_pos], q_end_all[q_pos]
        lo = np.searchsorted(s_start, q_start - max_len, side="left")
        hi = np.searchsorted(s_start, q_end, side="left")
        counts = np.maximum(hi - lo, 0)
        if counts.sum() == 0:
            continue
        q_rep = np.repeat(np.arange(len(q_pos)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        cand = np.repeat(lo, counts) + offsets
        keep = s_end[cand] > q_start[q_rep]
        q_idx_all.append(q_pos[q_rep[keep]])
        s_idx_all.append(s_pos[cand[keep]])
    if not q_idx_all:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(q_idx_all).astype(np.int64), np.concatenate(s_idx_all).astype(np.int64)
