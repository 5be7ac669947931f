"""Command-line interface: ``sctransfer label-transfer``.

The library modules and mudata are imported inside the command, not when the parser is built.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
import uuid
import warnings
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mudata import MuData

logger = logging.getLogger(__name__)

_LABEL_COLUMN = "sctransfer_label"
_CONFIDENCE_COLUMN = "sctransfer_confidence"
_NOVEL_COLUMN = "sctransfer_novel"
_TOP_LABELS = 10


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _package_version() -> str:
    try:
        return version("sctransfer")
    except PackageNotFoundError:
        return "unknown"


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sctransfer",
        description="Move knowledge between single-cell modalities stored in MuData (.h5mu) files.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    transfer = commands.add_parser(
        "label-transfer",
        help="transfer cell-type labels from labelled RNA cells to unlabelled ATAC cells (scNCL)",
        description=(
            "Transfer cell-type labels from the labelled RNA modality to the ATAC modality of a MuData file "
            "and write mdata[ATAC_KEY].obs['sctransfer_label', 'sctransfer_confidence', 'sctransfer_novelty', "
            "'sctransfer_novel']. "
            "Without --input, runs a demo on MOp SNARE-seq data (downloaded on first use) and reports accuracy "
            "against the held-out ATAC labels; with --simulate, the demo runs offline on simulated data."
        ),
    )
    source = transfer.add_mutually_exclusive_group()
    source.add_argument("--input", type=Path, metavar="H5MU", help="MuData file with RNA and ATAC modalities")
    source.add_argument(
        "--simulate", action="store_true", help="demo on simulated multiome data instead of MOp (offline)"
    )
    transfer.add_argument(
        "--output",
        type=Path,
        metavar="H5MU",
        help="where to write the labelled MuData (required with --input, optional in demo mode)",
    )
    transfer.add_argument(
        "--labels-key",
        default="cell_type",
        help="column of mdata[RNA_KEY].obs with the reference labels (default: %(default)s)",
    )
    transfer.add_argument(
        "--annotation",
        help=(
            "gene annotation for the gene activity matrix: a GTF/GFF3, BED or TSV file (gzip too) or a genome name "
            "(mm10, hg38, hg19); required with --input (demo defaults: mm10 for MOp, the simulated genes for "
            "--simulate)"
        ),
    )
    transfer.add_argument("--rna-key", default="rna", help="RNA modality (default: %(default)s)")
    transfer.add_argument("--atac-key", default="atac", help="ATAC modality (default: %(default)s)")
    transfer.add_argument(
        "--rna-layer", metavar="LAYER", help="layer of the RNA modality with raw counts (default: .X)"
    )
    transfer.add_argument(
        "--atac-layer", metavar="LAYER", help="layer of the ATAC modality with raw peak counts (default: .X)"
    )
    transfer.add_argument(
        "--max-steps", type=_positive_int, metavar="N", help="training steps (default: chosen by the method)"
    )
    transfer.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    transfer.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output file and existing sctransfer_* columns in the input",
    )
    transfer.set_defaults(func=_label_transfer, check=_check_label_transfer_args)
    return parser


def _check_label_transfer_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.input is not None:
        if args.output is None:
            parser.error("label-transfer: --output is required with --input")
        if args.annotation is None:
            parser.error("label-transfer: --annotation is required with --input")


def _check_paths(args: argparse.Namespace) -> None:
    """Fail before any work if the input or annotation is missing or the output cannot be written."""
    if args.input is not None and not args.input.is_file():
        raise FileNotFoundError(f"input file {str(args.input)!r} does not exist")
    if args.annotation is not None and not os.path.exists(args.annotation):
        from .datasets import KNOWN_GENOMES

        if args.annotation not in KNOWN_GENOMES:
            raise FileNotFoundError(
                f"annotation {args.annotation!r} is neither an existing file nor a known genome "
                f"({', '.join(KNOWN_GENOMES)})"
            )
    if args.output is None:
        return
    if args.output.is_dir():
        raise IsADirectoryError(f"output {str(args.output)!r} is a directory")
    if args.output.exists() and not args.overwrite:
        raise FileExistsError(f"output file {str(args.output)!r} exists; pass --overwrite to replace it")
    folder = args.output.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"output folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"output folder {str(folder)!r} is not writable")


def _write_atomic(mdata: MuData, output: Path) -> None:
    """Write to a temporary file next to `output`, then rename it, so `output` is never half-written."""
    tmp = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        mdata.write_h5mu(tmp)
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)


def _run_transfer(mdata: MuData, args: argparse.Namespace, annotation: Any) -> None:
    from . import tl

    options: dict[str, Any] = {
        "labels_key": args.labels_key,
        "annotation": annotation,
        "rna_key": args.rna_key,
        "atac_key": args.atac_key,
        "random_state": args.seed,
        "overwrite": args.overwrite,
    }
    for option in ("rna_layer", "atac_layer", "max_steps"):  # passed only when given
        if getattr(args, option) is not None:
            options[option] = getattr(args, option)
    logger.info("Transferring labels from %r.obs[%r] to %r.", args.rna_key, args.labels_key, args.atac_key)
    tl.label_transfer(mdata, **options)


def _load_demo(args: argparse.Namespace) -> tuple[MuData, Any]:
    from . import datasets

    if args.simulate:
        logger.info("Simulating multiome data (seed %d).", args.seed)
        mdata = datasets.simulate_multiome(random_state=args.seed)
        annotation = args.annotation if args.annotation is not None else mdata[args.rna_key].var
    else:
        logger.info("Loading the MOp SNARE-seq demo data.")
        mdata = datasets.mop_label_transfer()
        annotation = args.annotation if args.annotation is not None else "mm10"
    return mdata, annotation


def _summary(mdata: MuData, args: argparse.Namespace, seconds: float) -> list[str]:
    obs = mdata[args.atac_key].obs
    counts = obs[_LABEL_COLUMN].value_counts()
    lines = [
        f"labelled {len(obs):,} {args.atac_key} cells from {mdata[args.rna_key].n_obs:,} {args.rna_key} cells",
        "predicted labels:",
    ]
    lines += [f"  {label:<24} {n:>8,} ({n / len(obs):6.1%})" for label, n in counts.head(_TOP_LABELS).items()]
    if len(counts) > _TOP_LABELS:
        rest = int(counts.iloc[_TOP_LABELS:].sum())
        lines.append(f"  ... {len(counts) - _TOP_LABELS} more labels, {rest:,} cells")
    lines += [
        f"called novel: {obs[_NOVEL_COLUMN].astype(bool).mean():.1%}",
        f"mean confidence: {obs[_CONFIDENCE_COLUMN].mean():.3f}",
        f"wall time: {seconds:.1f} s",
    ]
    if args.output is not None:
        lines.append(f"written to: {args.output}")
    return lines


def _label_transfer(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    _check_paths(args)
    if args.input is not None:
        import mudata

        logger.info("Reading %s.", args.input)
        with mudata.set_options(pull_on_update=False):  # no legacy pull of modality columns, no FutureWarning
            mdata = mudata.read_h5mu(args.input)
        _run_transfer(mdata, args, args.annotation)
        evaluation: list[str] = []
    else:
        mdata, annotation = _load_demo(args)
        atac_obs = mdata[args.atac_key].obs
        if args.labels_key not in atac_obs.columns:
            raise KeyError(
                f"demo data has no true labels in mdata[{args.atac_key!r}].obs[{args.labels_key!r}]; "
                f"columns: {list(atac_obs.columns)}"
            )
        # Hide the true ATAC labels from the method, including any copy pulled into the global obs.
        truth = atac_obs.pop(args.labels_key)
        mdata.obs.drop(columns=f"{args.atac_key}:{args.labels_key}", inplace=True, errors="ignore")
        _run_transfer(mdata, args, annotation)
        mdata[args.atac_key].obs[args.labels_key] = truth.reindex(mdata[args.atac_key].obs_names)
        evaluation = _evaluate(mdata, args)
    if args.output is not None:
        logger.info("Writing %s.", args.output)
        _write_atomic(mdata, args.output)
    print("\n".join(_summary(mdata, args, time.perf_counter() - start) + evaluation))


def _evaluate(mdata: MuData, args: argparse.Namespace) -> list[str]:
    from . import metrics

    logger.info("Evaluating against the held-out %r labels.", args.labels_key)
    reference_types = mdata[args.rna_key].obs[args.labels_key].dropna().unique()
    report = metrics.label_transfer_report(
        mdata, args.labels_key, atac_key=args.atac_key, reference_types=reference_types
    )
    lines = [
        f"closed-set accuracy: {report['accuracy']:.3f} ({report['n_cells']:,} cells of reference types)",
        f"macro-F1: {report['macro_f1']:.3f}",
    ]
    if report["n_not_in_reference"]:
        lines.append(f"cells of types absent from the reference: {report['n_not_in_reference']:,}")
    return lines


#: The library's argument names and the command-line flags that set them.
_FLAGS = {
    "rna_key": "--rna-key",
    "atac_key": "--atac-key",
    "labels_key": "--labels-key",
    "rna_layer": "--rna-layer",
    "atac_layer": "--atac-layer",
    "annotation": "--annotation",
    "max_steps": "--max-steps",
    "random_state": "--seed",
    "overwrite": "--overwrite",
}
_ARGUMENT = re.compile(r"\b(" + "|".join(_FLAGS) + r")=(True\b|None\b|'[^']*'|\"[^\"]*\"|-?\d+\b)?")


def _in_cli_terms(message: str) -> str:
    """One line, with the library's argument hints (``atac_layer='counts'``) as flags (``--atac-layer counts``)."""

    def flag(match: re.Match) -> str:
        name, value = _FLAGS[match[1]], match[2]
        if value == "None":
            return f"no {name}"
        if value is None or value == "True":
            return name
        return f"{name} {value.strip(chr(39) + chr(34))}"

    return " ".join(_ARGUMENT.sub(flag, message).split())


def _error_message(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args:
        return _in_cli_terms(str(error.args[0]))
    return _in_cli_terms(str(error))


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one ``warning: ...`` line on stderr, in the command line's terms."""
    print(f"warning: {_in_cli_terms(str(message))}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sctransfer`` command line.

    Parameters
    ----------
    argv
        Arguments without the program name; ``None`` reads :data:`sys.argv`.

    Returns
    -------
    The exit status: 0 on success; 2 on a usage error or an error in the user's input or
    environment (:class:`ValueError`, :class:`KeyError`, :class:`TypeError`, :class:`OSError` such
    as a missing file, :class:`ImportError`), printed as one ``error: ...`` line on stderr with the
    library's argument names replaced by the flags that set them (``atac_layer=`` becomes
    ``--atac-layer``); 130 when interrupted (Ctrl-C). Warnings are printed as one ``warning: ...``
    line each. The output file is checked before any work and written only when everything
    succeeded.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        args.check(parser, args)
    except SystemExit as exit_request:
        return int(exit_request.code or 0)

    package_logger = logging.getLogger("sctransfer")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    previous_level, previous_propagate = package_logger.level, package_logger.propagate
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO)
    package_logger.propagate = False  # libraries may configure the root logger; print each line once
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            args.func(args)
    except (ValueError, KeyError, TypeError, OSError, ImportError) as error:
        print(f"error: {_error_message(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)
        package_logger.propagate = previous_propagate
    return 0
