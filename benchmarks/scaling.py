"""Cost of ``tl.label_transfer`` and ``tl.cross_modal_match`` against the number of cells, stage by stage.

For each size, ``st.datasets.simulate_multiome`` makes an unpaired data set (100,000 peaks,
20,000 genes, 12 types, a 100,000-cell labelled RNA reference; 1,000 detected peaks and 1,500
detected genes per cell by default) and writes it to an ``.h5mu`` file once (cached in
``--data-dir``, by default ``sctransfer_scaling`` in the system's temporary folder; about 9 GB for
the 1M-cell file). A fresh process then opens the file with the ATAC matrix *backed* (read from disk
block by block; the RNA reference in memory) and runs ``st.tl.label_transfer`` on it, recording
the wall time and the peak resident memory of every stage (gene activity, TF-IDF / LSI, kNN
graph, model set-up, training, prediction, writing results) and of the whole call. Each size
runs in its own process, so memory figures are its own.

``--tool cross_modal_match`` measures scCLIP instead, on simulated *paired* data (every cell in
both modalities: 100,000 peaks, 20,000 genes, 12 types; by default 500 detected peaks and 500
detected genes per cell, so that the 1M-cell file can be simulated in one process in about 9 GB).
A fresh process opens the file with both matrices backed (``mudata.read_h5mu(path, backed=True)``)
and runs ``st.tl.cross_modal_match`` with a fixed number of training steps (``--max-steps``, 100
steps of 256 cells by default: training costs the same at every size, so only the reading of its
batches depends on the number of cells), recording the stages input fit ("model set-up": the
scaling statistics streamed over all cells, the SVD basis on at most 20,000), training, embedding
(both modalities), top-1 matching both ways (exact up to 50,000 cells a side, through pynndescent
above) and writing results. It then computes FOSCTTM: exactly (chunked) up to
``--foscttm-exact-max`` cells (100,000), and on a random sample of ``--foscttm-samples`` cells
(10,000) with its standard error at every size; and, up to ``--recall-max-cells`` cells (100,000),
the exact top-1 partners, to report the recall of the approximate matching (share of cells whose
partner is the exact search's). Results go to ``results/scaling_cross_modal_match.json``.

The table ends with the log-log slope of each stage's time between consecutive sizes (1 =
linear in the number of cells, 0 = constant).

Run: ``python benchmarks/scaling.py [--tool cross_modal_match] [--sizes 10000 100000 1000000] [--in-memory]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

STAGES = {
    "label_transfer": (
        "gene activity",
        "TF-IDF / LSI",
        "kNN graph",
        "model set-up",
        "training",
        "prediction",
        "writing results",
    ),
    "cross_modal_match": (
        "model set-up",
        "training",
        "embedding",
        "matching",
        "writing results",
        "FOSCTTM exact",
        "FOSCTTM sampled",
        "exact matching",
    ),
}
#: Detected peaks and genes per cell by default: (peaks, genes) of each tool's simulated data.
DENSITY = {"label_transfer": (1_000, 1_500), "cross_modal_match": (500, 500)}
DEFAULT_DATA_DIR = Path(os.environ.get("SCTRANSFER_SCALING_DIR", Path(tempfile.gettempdir()) / "sctransfer_scaling"))


def _rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


class MemorySampler(threading.Thread):
    """Resident memory of this process every 20 ms, as ``(time, GB)`` pairs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((time.perf_counter(), _rss_gb()))
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def peak(self, start: float, end: float) -> float:
        inside = [gb for t, gb in self.samples if start <= t <= end]
        return max(inside) if inside else _rss_gb()


def data_path(args, n_atac: int) -> Path:
    if args.tool == "cross_modal_match":
        return args.data_dir / (
            f"sim_paired{n_atac}_peaks{args.n_peaks}_genes{args.n_genes}_ppc{args.peaks_per_cell}"
            f"_gpc{args.genes_per_cell}.h5mu"
        )
    return args.data_dir / (
        f"sim_atac{n_atac}_rna{args.n_rna}_peaks{args.n_peaks}_genes{args.n_genes}_ppc{args.peaks_per_cell}.h5mu"
    )


def simulate(args, n_atac: int) -> None:
    """Write the simulated data set of one size (in this process)."""
    import sctransfer as st

    start = time.perf_counter()
    paired = args.tool == "cross_modal_match"
    mdata = st.datasets.simulate_multiome(
        n_rna=n_atac if paired else args.n_rna,
        n_atac=n_atac,
        paired=paired,
        n_genes=args.n_genes,
        n_peaks=args.n_peaks,
        n_types=12,
        peaks_per_cell=args.peaks_per_cell,
        genes_per_cell=args.genes_per_cell,
        random_state=0,
    )
    path = data_path(args, n_atac)
    path.parent.mkdir(parents=True, exist_ok=True)
    mdata.write_h5mu(path.with_suffix(".tmp"))
    path.with_suffix(".tmp").rename(path)
    nnz = mdata["atac"].X.nnz
    print(
        f"  simulated {n_atac:,} ATAC cells ({nnz / n_atac:.0f} peaks per cell, {nnz:,} non-zeros) "
        f"in {time.perf_counter() - start:.0f} s -> {path}",
        flush=True,
    )


def measure(args, n_atac: int) -> dict:
    """Run the tool on one size (in this process) and return its figures."""
    if args.tool == "cross_modal_match":
        return measure_matching(args, n_atac)
    import mudata
    from mudata import MuData

    import sctransfer as st
    from sctransfer._profiling import record_stages

    path = data_path(args, n_atac)
    rna = mudata.read_h5ad(path, "rna")
    atac = mudata.read_h5ad(path, "atac", backed=not args.in_memory)
    truth = atac.obs.pop("cell_type").astype(str).to_numpy()
    with mudata.set_options(pull_on_update=False):
        mdata = MuData({"rna": rna, "atac": atac})
    annotation = rna.var[["chrom", "start", "end", "strand", "gene_name"]]
    loaded_gb = _rss_gb()
    sampler = MemorySampler()
    sampler.start()
    start = time.perf_counter()
    with record_stages() as stages:
        st.tl.label_transfer(
            mdata, labels_key="cell_type", annotation=annotation, max_steps=args.max_steps, random_state=0
        )
    end = time.perf_counter()
    sampler.stop()
    predicted = mdata["atac"].obs["sctransfer_label"].astype(str).to_numpy()
    by_name = {s.name: s for s in stages}
    return {
        "n_atac": n_atac,
        "n_rna": args.n_rna,
        "n_peaks": args.n_peaks,
        "n_genes": args.n_genes,
        "peaks_per_cell": args.peaks_per_cell,
        "atac_backed": not args.in_memory,
        "label_transfer_s": end - start,
        "loaded_rss_gb": loaded_gb,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,  # ru_maxrss is in KiB
        "stages": {
            name: {
                "seconds": by_name[name].seconds,
                "peak_rss_gb": sampler.peak(by_name[name].start, by_name[name].end),
            }
            for name in STAGES["label_transfer"]
            if name in by_name
        },
        "accuracy": float(np.mean(predicted == truth)),
        "novel_fraction": float(mdata["atac"].obs["sctransfer_novel"].mean()),
    }


def measure_matching(args, n_cells: int) -> dict:
    """Run cross-modal matching on one size of paired cells (in this process) and return its figures."""
    import mudata

    import sctransfer as st
    from sctransfer._profiling import record_stages, stage
    from sctransfer.tl._matching import nearest_partners

    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("sctransfer").setLevel(logging.INFO)  # each stage's time on stderr as it ends
    path = data_path(args, n_cells)
    with mudata.set_options(pull_on_update=False):
        mdata = mudata.read_h5mu(path, backed=not args.in_memory)
    loaded_gb = _rss_gb()
    sampler = MemorySampler()
    sampler.start()
    start = time.perf_counter()
    with record_stages() as stages:
        st.tl.cross_modal_match(
            mdata,
            max_steps=args.max_steps,
            random_state=0,
            train_kwargs={"enable_progress_bar": False},
        )
        end = time.perf_counter()
        record = mdata.uns["sctransfer_match"]
        z_rna, z_atac = mdata["rna"].obsm["X_scclip"], mdata["atac"].obsm["X_scclip"]
        row = {
            "n_cells": n_cells,
            "n_peaks": args.n_peaks,
            "n_genes": args.n_genes,
            "peaks_per_cell": args.peaks_per_cell,
            "genes_per_cell": args.genes_per_cell,
            "backed": not args.in_memory,
            "max_steps": record["params"]["train"]["max_steps"],
            "batch_size": record["params"]["train"]["batch_size"],
            "model": record["params"]["model"],
            "embedding_dim": int(z_rna.shape[1]),
            "match_method": record["params"]["match_method"],
            "cross_modal_match_s": end - start,
            "loaded_rss_gb": loaded_gb,
            "top1_accuracy": record["paired_top1_accuracy"],
        }
        if n_cells <= args.foscttm_exact_max:
            with stage("FOSCTTM exact"):
                exact = st.metrics.foscttm(z_rna, z_atac)
            row["foscttm"] = {"mean": exact.mean, "rna_to_atac": exact.rna_to_atac, "atac_to_rna": exact.atac_to_rna}
        if args.foscttm_samples < n_cells:
            with stage("FOSCTTM sampled"):
                sampled = st.metrics.foscttm(z_rna, z_atac, n_samples=args.foscttm_samples, random_state=0)
            row["foscttm_sampled"] = {
                "mean": sampled.mean,
                "standard_error": sampled.standard_error,
                "n_samples": args.foscttm_samples,
            }
        if row["match_method"] != "exact" and n_cells <= args.recall_max_cells:
            approximate = {
                "rna": mdata["rna"].obs["sctransfer_match"].astype(str).to_numpy(),
                "atac": mdata["atac"].obs["sctransfer_match"].astype(str).to_numpy(),
            }
            with stage("exact matching"):
                exact_partner = {
                    "rna": nearest_partners(z_rna, z_atac, method="exact")[0],
                    "atac": nearest_partners(z_atac, z_rna, method="exact")[0],
                }
            names = {"rna": mdata["atac"].obs_names.to_numpy(), "atac": mdata["rna"].obs_names.to_numpy()}
            row["recall"] = {m: float(np.mean(approximate[m] == names[m][exact_partner[m]])) for m in ("rna", "atac")}
    sampler.stop()
    by_name = {s.name: s for s in stages}
    row["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # ru_maxrss is in KiB
    row["stages"] = {
        name: {"seconds": by_name[name].seconds, "peak_rss_gb": sampler.peak(by_name[name].start, by_name[name].end)}
        for name in STAGES["cross_modal_match"]
        if name in by_name
    }
    return row


def _run_child(args, mode: str, n_atac: int) -> dict | None:
    command = [sys.executable, __file__, f"--{mode}", str(n_atac), *sys.argv[1:]]
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True)  # stderr (progress, errors) passes through
    if result.returncode != 0:
        raise SystemExit(f"{mode} of {n_atac:,} cells failed (exit {result.returncode})")
    if mode == "simulate":
        print(result.stdout, end="", flush=True)
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def _table(rows: list[dict], tool: str) -> str:
    whole, size = f"{tool}_s", "n_atac" if tool == "label_transfer" else "n_cells"
    stages = STAGES[tool]
    names = [tool, *stages]
    head = f"{'stage':18s}" + "".join(f"{r[size]:>22,}" for r in rows)
    lines = [head, f"{'':18s}" + "".join(f"{'s':>12s}{'peak GB':>10s}" for _ in rows)]
    for name in names:
        cells = []
        for r in rows:
            if name == tool:
                cells.append(f"{r[whole]:12.1f}{r['peak_rss_gb']:10.2f}")
            elif name in r["stages"]:
                cells.append(f"{r['stages'][name]['seconds']:12.1f}{r['stages'][name]['peak_rss_gb']:10.2f}")
            else:
                cells.append(f"{'-':>12s}{'-':>10s}")
        lines.append(f"{name[:18]:18s}" + "".join(cells))
    lines.append("")
    lines.append("log-log slope of time against cells (1 = linear):")
    for a, b in zip(rows, rows[1:], strict=False):
        span = np.log(b[size] / a[size])
        parts = [f"whole {np.log(b[whole] / a[whole]) / span:.2f}"]
        for name in stages:
            if name in a["stages"] and name in b["stages"]:
                ratio = b["stages"][name]["seconds"] / max(a["stages"][name]["seconds"], 1e-3)
                parts.append(f"{name} {np.log(ratio) / span:.2f}")
        lines.append(f"  {a[size]:,} -> {b[size]:,}: " + ", ".join(parts))
    if tool == "cross_modal_match":
        lines.append("")
        lines.append(
            f"{'cells':>10s} {'method':>12s} {'top-1':>7s} {'FOSCTTM':>8s} {'sampled (SE)':>18s} {'recall':>14s}"
        )
        for r in rows:
            exact = f"{r['foscttm']['mean']:.4f}" if "foscttm" in r else "-"
            sampled = r.get("foscttm_sampled")
            estimate = f"{sampled['mean']:.4f} ({sampled['standard_error']:.4f})" if sampled else "-"
            recall = "/".join(f"{r['recall'][m]:.3f}" for m in ("rna", "atac")) if "recall" in r else "-"
            lines.append(
                f"{r[size]:>10,} {r['match_method']:>12s} {r['top1_accuracy']:7.3f} {exact:>8s} {estimate:>18s} "
                f"{recall:>16s}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", choices=tuple(STAGES), default="label_transfer", help="the tool measured")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--n-rna", type=int, default=100_000)
    parser.add_argument("--n-peaks", type=int, default=100_000)
    parser.add_argument("--n-genes", type=int, default=20_000)
    parser.add_argument("--peaks-per-cell", type=int, default=None, help="default: 1,000 (label transfer), 500")
    parser.add_argument("--genes-per-cell", type=int, default=None, help="default: 1,500 (label transfer), 500")
    parser.add_argument(
        "--max-steps", type=int, default=None, help="training steps (None: the model's default; 100 for matching)"
    )
    parser.add_argument("--in-memory", action="store_true", help="load the matrices into memory instead")
    parser.add_argument("--foscttm-exact-max", type=int, default=100_000, help="largest size of the exact FOSCTTM")
    parser.add_argument("--foscttm-samples", type=int, default=10_000, help="cells of the sampled FOSCTTM")
    parser.add_argument("--recall-max-cells", type=int, default=100_000, help="largest size of the recall check")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="cache of the simulated files")
    parser.add_argument("--output", type=Path, default=None, help="default: results/scaling[_cross_modal_match].json")
    parser.add_argument("--simulate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    peaks, genes = DENSITY[args.tool]
    args.peaks_per_cell = peaks if args.peaks_per_cell is None else args.peaks_per_cell
    args.genes_per_cell = genes if args.genes_per_cell is None else args.genes_per_cell
    if args.tool == "cross_modal_match" and args.max_steps is None:
        args.max_steps = 100
    if args.output is None:
        name = "scaling.json" if args.tool == "label_transfer" else f"scaling_{args.tool}.json"
        args.output = Path(__file__).parent / "results" / name
    if args.simulate is not None:
        simulate(args, args.simulate)
        return
    if args.measure is not None:
        print(json.dumps(measure(args, args.measure)))
        return
    rows = []
    for n_atac in args.sizes:
        if not data_path(args, n_atac).exists():
            _run_child(args, "simulate", n_atac)
        row = _run_child(args, "measure", n_atac)
        rows.append(row)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(rows, indent=1))  # after every size: a later failure keeps these
        if args.tool == "label_transfer":
            print(
                f"{n_atac:>10,} ATAC cells: label_transfer {row['label_transfer_s']:.0f} s, "
                f"peak {row['peak_rss_gb']:.2f} GB "
                f"(data loaded {row['loaded_rss_gb']:.2f} GB), accuracy {row['accuracy']:.3f}",
                flush=True,
            )
        else:
            print(
                f"{n_atac:>10,} paired cells: cross_modal_match {row['cross_modal_match_s']:.0f} s, "
                f"peak {row['peak_rss_gb']:.2f} GB (data loaded {row['loaded_rss_gb']:.2f} GB), "
                f"matching {row['match_method']}, top-1 {row['top1_accuracy']:.3f}",
                flush=True,
            )
    print()
    print(_table(rows, args.tool))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
