"""Command-line interface: ``sctransfer label-transfer`` and ``sctransfer cross-modal-match``.

The library modules and mudata are imported inside the command, not when the parser is built.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mudata import MuData

from ._constants import KEY_ADDED, SCCLIP_EMBEDDING_KEY

logger = logging.getLogger(__name__)

_LABEL_COLUMN = "sctransfer_label"
_CONFIDENCE_COLUMN = "sctransfer_confidence"
_NOVEL_COLUMN = "sctransfer_novel"
_TOP_LABELS = 10
#: Reference label column of label-transfer unless --labels-key is given (it cannot be given with --model).
_DEFAULT_LABELS_KEY = "cell_type"
#: Libraries of the MOp SNARE-seq cross-modal demo: train on the first, match the second zero-shot.
_MOP_TRAIN_LIBRARIES = ("09D", "09E", "09F", "09G", "09H", "09I", "09J", "09K", "09L")
_MOP_HELD_OUT_LIBRARIES = ("09A", "09B", "09C")
#: Size of the simulated cross-modal demo (paired cells; the last third is held out of training).
_SIMULATED_MATCH = {
    "n_rna": 600,
    "n_atac": 600,
    "n_genes": 500,
    "n_peaks": 4000,
    "n_types": 5,
    "genes_per_cell": 200,
    "peaks_per_cell": 300,
}
#: Training of the simulated cross-modal demo unless --preset / --max-steps are given (about 20 s on 2 CPU cores).
_SIMULATED_MATCH_TRAINING = {"preset": "tiny", "max_steps": 200}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _bounded_float(what: str, example: str, accept: Callable[[float], bool]) -> Callable[[str], float]:
    """An argparse type: a number ``accept`` takes (described as ``what``, e.g. ``example``), else a clear error."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not accept(value):  # NaN fails every bound
            raise argparse.ArgumentTypeError(f"expected {what} (e.g. {example}), got {value}")
        return value

    return parse


_share = _bounded_float("a share between 0 and 1", "0.9", lambda value: 0 < value < 1)
_weight = _bounded_float("a weight from 0 to below 1", "0.3", lambda value: 0 <= value < 1)


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
            "'sctransfer_novel']: trains a model on the RNA cells, or applies a saved one (--model; the MuData "
            "then needs only the ATAC modality). "
            "Without --input, runs a demo on MOp SNARE-seq data (downloaded on first use) and reports accuracy "
            "against the held-out ATAC labels; with --simulate, the demo runs offline on simulated data."
        ),
    )
    _add_data_arguments(
        transfer,
        what="the labelled MuData",
        annotation_required="required with --input to train (a saved model keeps its genes' coordinates)",
        replaces=("save-model",),
    )
    transfer.add_argument(
        "--labels-key",
        help=f"column of mdata[RNA_KEY].obs with the reference labels, for training; not with --model, whose "
        f"reference types are its own (default: {_DEFAULT_LABELS_KEY}; in the demo also the ATAC cells' true labels)",
    )
    _add_model_arguments(transfer)
    transfer.add_argument(
        "--novelty-threshold",
        type=_finite_float,
        metavar="Z",
        help="call cells novel (sctransfer_novel) whose novelty score, in robust z units, exceeds Z; lower finds more "
        "novel cells with more false calls (default: 2.5)",
    )
    transfer.add_argument(
        "--novel-label",
        metavar="NAME",
        help="write NAME (e.g. Unknown) as the sctransfer_label of the cells called novel (default: keep their best "
        "reference type)",
    )
    transfer.set_defaults(func=_label_transfer, check=_check_args)

    match = commands.add_parser(
        "cross-modal-match",
        help="embed RNA and ATAC cells in one space and match each cell to the other modality (scCLIP)",
        description=(
            "Train scCLIP on a paired (multiome) MuData file, or apply a saved model (--model, zero-shot; the cells "
            "may then be unpaired), and write the joint embedding mdata[KEY].obsm['X_scclip'] and each cell's "
            "partner in the other modality, mdata[KEY].obs['sctransfer_match', 'sctransfer_match_similarity'], "
            "for both modalities. Without --input, runs a demo on MOp SNARE-seq data (downloaded on first use): "
            "trains on libraries 09D-09L, matches 09A-09C zero-shot and reports FOSCTTM and mixing; with "
            "--simulate, the demo runs offline on simulated paired cells (preset tiny, 200 steps unless given)."
        ),
    )
    _add_data_arguments(
        match, what="the matched MuData", annotation_required="required with --input to train", replaces=("save-model",)
    )
    _add_model_arguments(match, zero_shot=True)
    match.add_argument("--preset", help="model size for training: tiny, small or base (default: chosen by the method)")
    match.add_argument(
        "--train-size",
        type=_share,
        metavar="SHARE",
        help="held-out check: train on this share of the pairs (e.g. 0.9) and report the FOSCTTM of the others next "
        "to that of as many training pairs (a large gap: the model memorises its training pairs)",
    )
    match.add_argument(
        "--linear-weight",
        type=_weight,
        metavar="W",
        help="weight of the linear member (CCA of gene PCs and peak LSI) joined to the joint embedding (0 to below "
        "1; default 0.3, measured on MOp, see the benchmarks; 0: the network's embedding alone)",
    )
    match.add_argument(
        "--one-to-one", action="store_true", help="match cells one to one instead of each to its most similar cell"
    )
    top_k = "also write each RNA cell's K most similar ATAC cells as a sparse pairing matrix (at most 1000)"
    match.add_argument("--pairing-top-k", type=_positive_int, metavar="K", help=top_k)
    match.add_argument(
        "--match-method",
        help="search for partners: auto (exact up to 50,000 x 50,000 cells, else approximate), exact or pynndescent",
    )
    match.set_defaults(func=_cross_modal_match, check=_check_args)
    return parser


def _add_model_arguments(command: argparse.ArgumentParser, *, zero_shot: bool = False) -> None:
    """--model and --save-model."""
    applied = " (zero-shot)" if zero_shot else " to the ATAC cells"
    command.add_argument(
        "--model", type=Path, metavar="DIR", help=f"apply this saved model{applied} instead of training one"
    )
    command.add_argument(
        "--save-model", type=Path, metavar="DIR", help="save the model to this new folder (see --overwrite)"
    )


def _add_data_arguments(
    command: argparse.ArgumentParser, *, what: str, annotation_required: str, replaces: tuple[str, ...] = ()
) -> None:
    """The arguments every command shares: input or demo, output, annotation, modalities, training, overwrite."""
    source = command.add_mutually_exclusive_group()
    source.add_argument("--input", type=Path, metavar="H5MU", help="MuData file with RNA and ATAC modalities")
    source.add_argument(
        "--simulate", action="store_true", help="demo on simulated multiome data instead of MOp (offline)"
    )
    command.add_argument(
        "--output",
        type=Path,
        metavar="H5MU",
        help=f"where to write {what} (required with --input, optional in demo mode)",
    )
    command.add_argument(
        "--annotation",
        help=(
            "gene coordinates: a GTF/GFF3, BED or TSV file (gzip too) or a genome name "
            f"(mm10, hg38, hg19); {annotation_required} (demo defaults: mm10 for MOp, the simulated genes for "
            "--simulate)"
        ),
    )
    command.add_argument("--rna-key", default="rna", help="RNA modality (default: %(default)s)")
    command.add_argument("--atac-key", default="atac", help="ATAC modality (default: %(default)s)")
    command.add_argument("--rna-layer", metavar="LAYER", help="layer of the RNA modality with raw counts (default: .X)")
    command.add_argument(
        "--atac-layer", metavar="LAYER", help="layer of the ATAC modality with raw peak counts (default: .X)"
    )
    command.add_argument(
        "--max-steps", type=_positive_int, metavar="N", help="training steps (default: chosen by the method)"
    )
    command.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    command.add_argument(
        "--overwrite",
        action="store_true",
        help=(
            "replace an existing output file"
            + (" (and --save-model folder)" if "save-model" in replaces else "")
            + " and existing sctransfer_* fields in the input"
        ),
    )


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.input is not None:
        if args.output is None:
            parser.error(f"{args.command}: --output is required with --input")
        if args.annotation is None and getattr(args, "model", None) is None:
            needed = "required with --input (or pass --model)" if hasattr(args, "model") else "required with --input"
            parser.error(f"{args.command}: --annotation is {needed}")
    if getattr(args, "preset", None) is not None:
        from .model._scclip import PRESETS

        if args.preset not in PRESETS:
            parser.error(f"{args.command}: --preset must be one of {', '.join(PRESETS)}, got {args.preset!r}")
    if getattr(args, "match_method", None) is not None:
        from typing import get_args

        from .tl._matching import MatchMethod

        if args.match_method not in get_args(MatchMethod):
            methods = ", ".join(get_args(MatchMethod))
            parser.error(f"{args.command}: --match-method must be one of {methods}, got {args.match_method!r}")
    if getattr(args, "model", None) is not None:
        given = (
            ("--preset", getattr(args, "preset", None)),
            ("--max-steps", args.max_steps),
            ("--train-size", getattr(args, "train_size", None)),
            ("--linear-weight", getattr(args, "linear_weight", None)),
            ("--labels-key", getattr(args, "labels_key", None)),
            ("--rna-layer", args.rna_layer if args.command == "label-transfer" else None),  # only training reads RNA
        )
        training = [flag for flag, value in given if value is not None]
        if training:
            parser.error(f"{args.command}: {' and '.join(training)} set how a model is trained; not with --model")
    if hasattr(args, "labels_key") and args.labels_key is None:
        args.labels_key = _DEFAULT_LABELS_KEY


def _check_new_path(path: Path, what: str, overwrite: bool, *, folder: bool = False) -> None:
    """Refuse a file (or folder) to write that exists without --overwrite, or whose parent folder is not writable."""
    if not folder and path.is_dir():
        raise IsADirectoryError(f"{what} {str(path)!r} is a directory")
    if path.exists() and not overwrite:
        kind = "folder" if folder else "file"
        raise FileExistsError(f"{what} {kind} {str(path)!r} exists; pass --overwrite to replace it")
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"{what} folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} folder {str(parent)!r} is not writable")


def _check_paths(args: argparse.Namespace) -> None:
    """Fail before any work if an input, the annotation or a model is missing, or an output cannot be written."""
    if args.input is not None and not args.input.is_file():
        raise FileNotFoundError(f"input file {str(args.input)!r} does not exist")
    if args.annotation is not None and not os.path.exists(args.annotation):
        from .datasets import KNOWN_GENOMES

        if args.annotation not in KNOWN_GENOMES:
            raise FileNotFoundError(
                f"annotation {args.annotation!r} is neither an existing file nor a known genome "
                f"({', '.join(KNOWN_GENOMES)})"
            )
    model = getattr(args, "model", None)
    if model is not None and not model.is_dir():
        raise FileNotFoundError(f"--model folder {str(model)!r} does not exist")
    if getattr(args, "save_model", None) is not None:
        _check_new_path(args.save_model, "--save-model", args.overwrite, folder=True)
    if args.output is not None:
        _check_new_path(args.output, "output", args.overwrite)


def _read_input(path: Path, *, backed: bool = False) -> MuData:
    """The input MuData; ``backed``: its matrices stay on disk (read-only) and are read block by block."""
    import mudata

    logger.info("Reading %s%s.", path, " (matrices backed on disk)" if backed else "")
    fix = "pass a MuData .h5mu file holding the RNA and ATAC modalities (mudata.MuData({'rna': rna, 'atac': atac}))"
    try:
        with mudata.set_options(pull_on_update=False):  # no legacy pull of modality columns, no FutureWarning
            return mudata.read_h5mu(path, backed="r" if backed else None)
    except OSError as error:  # h5py: not an HDF5 file, or a damaged one
        raise ValueError(f"input file {str(path)!r} could not be read as HDF5 ({error}); {fix}") from None
    except (KeyError, TypeError) as error:  # an HDF5 file without MuData's layout, e.g. an AnnData .h5ad
        raise ValueError(f"input file {str(path)!r} does not hold a MuData (an AnnData .h5ad?); {fix}") from error


def _write_atomic(mdata: MuData, output: Path) -> None:
    """Write to a temporary file next to `output`, then rename it, so `output` is never half-written."""
    tmp = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        mdata.write_h5mu(tmp)
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)


def _write_output(mdata: MuData, args: argparse.Namespace) -> None:
    if args.output is not None:
        logger.info("Writing %s.", args.output)
        _write_atomic(mdata, args.output)


def _closing_lines(args: argparse.Namespace, seconds: float) -> list[str]:
    """The summary's last lines: wall time and where the results went."""
    lines = [f"wall time: {seconds:.1f} s"]
    if getattr(args, "save_model", None) is not None:
        lines.append(f"model saved to: {args.save_model}")
    if args.output is not None:
        lines.append(f"written to: {args.output}")
    return lines


def _given_options(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The library options among `names` that were given on the command line (the others keep their defaults)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _load_model(args: argparse.Namespace, model_class: type) -> Any:
    """The saved model of --model (None without it), loaded before the input is read: a bad folder fails at once."""
    if args.model is None:
        return None
    logger.info("Loading the model in %s.", args.model)
    return model_class.load(args.model)


def _run_transfer(mdata: MuData, args: argparse.Namespace, annotation: Any, model: Any) -> Any:
    """tl.label_transfer with the command's options; returns the model (trained here or given)."""
    from . import tl

    options: dict[str, Any] = {
        "annotation": annotation,
        "rna_key": args.rna_key,
        "atac_key": args.atac_key,
        "random_state": args.seed,
        "overwrite": args.overwrite,
    }
    options |= _given_options(args, ("rna_layer", "atac_layer", "max_steps", "novelty_threshold", "novel_label"))
    if model is None:
        logger.info("Transferring labels from %r.obs[%r] to %r.", args.rna_key, args.labels_key, args.atac_key)
        options["labels_key"] = args.labels_key
    else:
        logger.info("Labelling %r with the model.", args.atac_key)
        options["model"] = model
    if args.save_model is None:
        tl.label_transfer(mdata, **options)
        return model
    return tl.label_transfer(mdata, **options, return_model=True)


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
    all_counts = obs[_LABEL_COLUMN].value_counts()  # a categorical column also counts its types without a cell
    counts = all_counts[all_counts > 0]
    source = (
        f"{mdata[args.rna_key].n_obs:,} {args.rna_key} cells" if args.model is None else f"the model in {args.model}"
    )
    lines = [f"labelled {len(obs):,} {args.atac_key} cells from {source}", "predicted labels:"]
    lines += [f"  {label:<24} {n:>8,} ({n / len(obs):6.1%})" for label, n in counts.head(_TOP_LABELS).items()]
    if len(counts) > _TOP_LABELS:
        rest = int(counts.iloc[_TOP_LABELS:].sum())
        lines.append(f"  ... {len(counts) - _TOP_LABELS} more labels, {rest:,} cells")
    n_unpredicted = len(all_counts) - len(counts)
    if n_unpredicted:
        lines.append(f"  ({n_unpredicted} reference {'type' if n_unpredicted == 1 else 'types'} got no cell)")
    n_unlabelled = int(obs[_LABEL_COLUMN].isna().sum())
    if n_unlabelled:
        lines.append(f"  {'no label (no counts)':<24} {n_unlabelled:>8,} ({n_unlabelled / len(obs):6.1%})")
    lines += [
        f"called novel: {obs[_NOVEL_COLUMN].astype(bool).mean():.1%}",
        f"mean confidence: {obs[_CONFIDENCE_COLUMN].mean():.3f}",
    ]
    return lines + _closing_lines(args, seconds)


def _label_transfer(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    _check_paths(args)
    import mudata

    from .model import SCNCL

    with mudata.set_options(pull_on_update=False):  # no legacy pull of modality columns, no FutureWarning
        model = _load_model(args, SCNCL)
        if args.input is not None:
            mdata = _read_input(args.input)
            model = _run_transfer(mdata, args, args.annotation, model)
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
            model = _run_transfer(mdata, args, annotation if model is None else args.annotation, model)
            mdata[args.atac_key].obs[args.labels_key] = truth.reindex(mdata[args.atac_key].obs_names)
            evaluation = _evaluate(mdata, args, model)
        if args.save_model is not None:
            logger.info("Saving the model to %s.", args.save_model)
            model.save(args.save_model, overwrite=args.overwrite)
        _write_output(mdata, args)
        print("\n".join(_summary(mdata, args, time.perf_counter() - start) + evaluation))


def _evaluate(mdata: MuData, args: argparse.Namespace, model: Any) -> list[str]:
    from . import metrics

    logger.info("Evaluating against the held-out %r labels.", args.labels_key)
    if model is None:
        reference_types = mdata[args.rna_key].obs[args.labels_key].dropna().unique()
    else:
        reference_types = model.label_categories_
    report = metrics.label_transfer_report(
        mdata, args.labels_key, atac_key=args.atac_key, reference_types=reference_types
    )
    lines = [
        f"closed-set accuracy: {report['accuracy']:.3f} ({report['n_cells']:,} cells of reference types)",
        f"macro-F1: {report['macro_f1']:.3f}",
    ]
    if report["n_not_in_reference"]:
        lines.append(f"cells of types absent from the reference: {report['n_not_in_reference']:,}")
    if report["n_unlabelled"]:
        lines.append(f"cells without a label (no counts), not evaluated: {report['n_unlabelled']:,}")
    return lines


def _load_match_demo(args: argparse.Namespace, *, train: bool) -> tuple[MuData | None, MuData, Any]:
    """The demo's training data (None when not training), its held-out paired cells and the annotation."""
    from . import datasets

    if args.simulate:
        logger.info("Simulating paired multiome data (seed %d).", args.seed)
        cells = datasets.simulate_multiome(**_SIMULATED_MATCH, paired=True, random_state=args.seed)
        n_train = 2 * cells.n_obs // 3
        training, held_out = cells[:n_train].copy(), cells[n_train:].copy()
        annotation = args.annotation if args.annotation is not None else cells[args.rna_key].var
    else:
        logger.info("Loading the MOp SNARE-seq demo data.")
        training = datasets.mop_snareseq(_MOP_TRAIN_LIBRARIES) if train else None
        held_out = datasets.mop_snareseq(_MOP_HELD_OUT_LIBRARIES)
        annotation = args.annotation if args.annotation is not None else "mm10"
    return (training if train else None), held_out, annotation


def _cross_modal_match(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    _check_paths(args)
    import mudata

    from . import tl
    from .model import SCCLIP

    with mudata.set_options(pull_on_update=False):  # no legacy pull of modality columns, no FutureWarning
        model = _load_model(args, SCCLIP)
        if args.input is not None:
            mdata = _read_input(args.input, backed=True)  # the counts are only read: atlas-size files stay on disk
            training, annotation = (mdata if model is None else None), args.annotation
        else:
            training, mdata, annotation = _load_match_demo(args, train=model is None)
        options: dict[str, Any] = {
            "rna_key": args.rna_key,
            "atac_key": args.atac_key,
            "one_to_one": args.one_to_one,
            "random_state": args.seed,
            "overwrite": args.overwrite,
        } | _given_options(args, ("rna_layer", "atac_layer", "pairing_top_k", "match_method"))
        if model is None:
            logger.info("Training scCLIP on the paired cells of %r and %r.", args.rna_key, args.atac_key)
            demo_defaults = _SIMULATED_MATCH_TRAINING if args.simulate else {}
            training_options = demo_defaults | _given_options(args, ("preset", "max_steps"))
            if args.train_size is not None:
                training_options["train_kwargs"] = {"train_size": args.train_size}
            if args.linear_weight is not None:
                training_options["model_kwargs"] = {"linear_weight": args.linear_weight}
            model = tl.cross_modal_match(
                training, annotation=annotation, return_model=True, **options, **training_options
            )
        if training is not mdata:
            logger.info("Matching %r and %r cells with the model (zero-shot).", args.rna_key, args.atac_key)
            tl.cross_modal_match(mdata, model=model, **options)
        if args.save_model is not None:
            logger.info("Saving the model to %s.", args.save_model)
            model.save(args.save_model, overwrite=args.overwrite)
        _write_output(mdata, args)
        lines = _match_summary(mdata, args, mixing=args.input is None)
        lines += _held_out_lines(model) if args.model is None else []  # a loaded model's check is not this run's
        print("\n".join(lines + _closing_lines(args, time.perf_counter() - start)))


def _held_out_lines(model: Any) -> list[str]:
    """The held-out check of --train-size (none without it): FOSCTTM of held-out and of as many training pairs."""
    from .model._scclip import MEMORISATION_GAP

    history = model.history
    if "foscttm_validation" not in history:
        return []
    held_out, trained = (float(history[f"foscttm_{name}"].iloc[-1, 0]) for name in ("validation", "train"))
    return [
        f"held-out check: FOSCTTM {held_out:.3f} on {len(model.validation_indices):,} held-out pairs, "
        f"{trained:.3f} on training pairs (a gap above {MEMORISATION_GAP} means the model memorises its training pairs)"
    ]


def _match_summary(mdata: MuData, args: argparse.Namespace, *, mixing: bool) -> list[str]:
    """Cells matched each way, coverage of the model's features, FOSCTTM (paired cells), mixing, mean similarity."""
    import numpy as np

    from . import metrics

    rna, atac = mdata[args.rna_key], mdata[args.atac_key]
    record = mdata.uns[f"{KEY_ADDED}_match"]
    matched = {
        key: int(m.obs[f"{KEY_ADDED}_match"].notna().sum()) for key, m in ((args.rna_key, rna), (args.atac_key, atac))
    }
    lines = [
        f"matched {matched[args.rna_key]:,} of {rna.n_obs:,} {args.rna_key} cells to {args.atac_key} cells and "
        f"{matched[args.atac_key]:,} of {atac.n_obs:,} {args.atac_key} cells to {args.rna_key} cells"
        + (" (one to one)" if args.one_to_one else "")
    ]
    coverage = record.get("coverage")  # absent when the model was trained on these cells
    if coverage is None:
        lines.append("coverage of the model's features: all (trained on these cells)")
    else:
        names = {"rna": args.rna_key, "atac": args.atac_key}
        shares = ", ".join(f"{names[modality]} {share:.1%}" for modality, share in coverage.items())
        lines.append(f"coverage of the model's features: {shares}")
    z_rna, z_atac = rna.obsm[SCCLIP_EMBEDDING_KEY], atac.obsm[SCCLIP_EMBEDDING_KEY]
    partner = atac.obs_names.get_indexer(rna.obs_names)  # the same cells, in any order
    if rna.n_obs == atac.n_obs and (partner >= 0).all():
        sampled = rna.n_obs > _FOSCTTM_EXACT_MAX_CELLS  # exact FOSCTTM grows with the square of the cells
        n_samples = _FOSCTTM_SAMPLES if sampled else None
        score = metrics.foscttm(z_rna, z_atac[partner], n_samples=n_samples, random_state=args.seed)
        notes = []
        if sampled:
            notes.append(f"estimated on {_FOSCTTM_SAMPLES:,} random cells, standard error {score.standard_error:.3f}")
        if coverage is None:
            notes.append("on the training cells: optimistic, new cells get higher (worse) values")
        lines.append(
            f"FOSCTTM: {score.mean:.3f} ({args.rna_key}->{args.atac_key} {score.rna_to_atac:.3f}, "
            f"{args.atac_key}->{args.rna_key} {score.atac_to_rna:.3f}; 0 is perfect, 0.5 random"
            + "".join(f"; {note}" for note in notes)
            + ")"
        )
    else:
        lines.append("FOSCTTM: not computed (the modalities hold different cells)")
    if mixing:
        batches = [args.rna_key] * len(z_rna) + [args.atac_key] * len(z_atac)
        joint = np.vstack([z_rna, z_atac])
        neighbors = metrics.neighbor_mixing(joint, batches)
        entropy = metrics.batch_entropy_mixing(joint, batches, random_state=args.seed)
        lines.append(
            f"modality mixing: {neighbors:.3f} (neighbours from the other modality, relative to random; "
            f"1 is perfect mixing, 0 full separation); batch entropy {entropy:.3f}"
        )
    lines.append(f"mean match similarity: {record['mean_similarity']:.3f}")
    return lines


#: Above this many paired cells, the summary's FOSCTTM is estimated on a random sample of cells.
_FOSCTTM_EXACT_MAX_CELLS = 50_000
_FOSCTTM_SAMPLES = 10_000

#: Hints of the library that name a call or argument the command line has no equivalent for, in its terms.
_LIBRARY_HINTS = {
    ", or key_added='...' to write under other names": "",
    "sctransfer.tl.cross_modal_match(mdata, model=...)": "sctransfer cross-modal-match --model DIR",
    "label_transfer(mdata, model=...)": "sctransfer label-transfer --model DIR",
    "train(train_size=0.9) (tl.cross_modal_match: train_kwargs={'train_size': 0.9})": "--train-size 0.9",
    "fewer steps (max_steps)": "fewer steps (--max-steps)",
    "model_kwargs={'align_modalities': False}.": "model_kwargs={'align_modalities': False} (Python only).",
    "model_kwargs={'align_modalities': False, 'linear_weight': 0.0}.": (
        "--linear-weight 0 (in Python, model_kwargs={'align_modalities': False} also leaves out the alignment)."
    ),
    "model_kwargs={'linear_weight': 0.0}.": "--linear-weight 0.",
}

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
    "model": "--model",
    "preset": "--preset",
    "one_to_one": "--one-to-one",
    "pairing_top_k": "--pairing-top-k",
    "match_method": "--match-method",
    "linear_weight": "--linear-weight",
    "novelty_threshold": "--novelty-threshold",
    "novel_label": "--novel-label",
}
#: ``name=value`` hints, and bare names that cannot be an English word (those with an underscore, e.g.
#: "novelty_threshold must be ..."), but not a name quoted, indexed or called (``params['max_steps']``, ``x.rna_key``).
_ARGUMENT = re.compile(
    r"\b(" + "|".join(_FLAGS) + r")=(True\b|None\b|'[^']*'|\"[^\"]*\"|-?\d+\b)?"
    r"|(?<![\w'\"\[.-])(" + "|".join(name for name in _FLAGS if "_" in name) + r")(?![\w'\"=(\]])"
)


def _in_cli_terms(message: str) -> str:
    """One line, with the library's argument hints (``atac_layer='counts'``) as flags (``--atac-layer counts``)."""

    def flag(match: re.Match) -> str:
        if match[3] is not None:  # a bare name
            return _FLAGS[match[3]]
        name, value = _FLAGS[match[1]], match[2]
        if value == "None":
            return f"no {name}"
        if value is None or value == "True":
            return name
        return f"{name} {value.strip(chr(39) + chr(34))}"

    for hint, in_cli_terms in _LIBRARY_HINTS.items():
        message = message.replace(hint, in_cli_terms)
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
    library's argument names replaced by the flags that set them (``atac_layer=`` and a bare
    ``atac_layer`` become ``--atac-layer``); 130 when interrupted (Ctrl-C). Warnings are printed as one ``warning: ...``
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
