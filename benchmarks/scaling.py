"""Cost of ``tl.label_transfer`` against the number of ATAC cells, stage by stage, on simulated atlases.

For each size, ``st.datasets.simulate_multiome`` makes an unpaired data set (100,000 peaks,
20,000 genes, 12 types, a 100,000-cell labelled RNA reference; 1,000 detected peaks and 1,500
detected genes per cell by default) and writes it to an ``.h5mu`` file once (cached in
``--data-dir``, by default ``sctransfer_scaling`` in the system's temporary folder; about 9 GB for
the 1M-cell file). A fresh process then opens the file with the ATAC matrix *backed* (read from disk
block by block; the RNA reference in memory) and runs ``st.tl.label_transfer`` on it, recording
the wall time and the peak resident memory of every stage (gene activity, TF-IDF / LSI, kNN
graph, model set-up, training, prediction, writing results) and of the whole call. Each size
runs in its own process, so memory figures are its own.

The table ends with the log-log slope of each stage's time between consecutive sizes (1 =
linear in the number of cells, 0 = constant).

Run: ``python benchmarks/scaling.py [--sizes 10000 100000 1000000] [--in-memory]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

STAGES = (
    "gene activity",
    "TF-IDF / LSI",
    "kNN graph",
    "model set-up",
    "training",
    "prediction",
    "writing results",
)
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
    return args.data_dir / (
        f"sim_atac{n_atac}_rna{args.n_rna}_peaks{args.n_peaks}_genes{args.n_genes}_ppc{args.peaks_per_cell}.h5mu"
    )


def simulate(args, n_atac: int) -> None:
    """Write the simulated data set of one size (in this process)."""
    import sctransfer as st

    start = time.perf_counter()
    mdata = st.datasets.simulate_multiome(
        n_rna=args.n_rna,
        n_atac=n_atac,
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
    """Run label transfer on one size (in this process) and return its figures."""
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
            for name in STAGES
            if name in by_name
        },
        "accuracy": float(np.mean(predicted == truth)),
        "novel_fraction": float(mdata["atac"].obs["sctransfer_novel"].mean()),
    }


def _run_child(args, mode: str, n_atac: int) -> dict | None:
    command = [sys.executable, __file__, f"--{mode}", str(n_atac), *sys.argv[1:]]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        raise SystemExit(f"{mode} of {n_atac:,} cells failed (exit {result.returncode})")
    if mode == "simulate":
        print(result.stdout, end="", flush=True)
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def _table(rows: list[dict]) -> str:
    names = ["label_transfer", *STAGES]
    head = f"{'stage':18s}" + "".join(f"{r['n_atac']:>22,}" for r in rows)
    lines = [head, f"{'':18s}" + "".join(f"{'s':>12s}{'peak GB':>10s}" for _ in rows)]
    for name in names:
        cells = []
        for r in rows:
            if name == "label_transfer":
                cells.append(f"{r['label_transfer_s']:12.1f}{r['peak_rss_gb']:10.2f}")
            elif name in r["stages"]:
                cells.append(f"{r['stages'][name]['seconds']:12.1f}{r['stages'][name]['peak_rss_gb']:10.2f}")
            else:
                cells.append(f"{'-':>12s}{'-':>10s}")
        lines.append(f"{name:18s}" + "".join(cells))
    lines.append("")
    lines.append("log-log slope of time against cells (1 = linear):")
    for a, b in zip(rows, rows[1:], strict=False):
        span = np.log(b["n_atac"] / a["n_atac"])
        parts = [f"whole {np.log(b['label_transfer_s'] / a['label_transfer_s']) / span:.2f}"]
        for name in STAGES:
            if name in a["stages"] and name in b["stages"]:
                ratio = b["stages"][name]["seconds"] / max(a["stages"][name]["seconds"], 1e-3)
                parts.append(f"{name} {np.log(ratio) / span:.2f}")
        lines.append(f"  {a['n_atac']:,} -> {b['n_atac']:,}: " + ", ".join(parts))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--n-rna", type=int, default=100_000)
    parser.add_argument("--n-peaks", type=int, default=100_000)
    parser.add_argument("--n-genes", type=int, default=20_000)
    parser.add_argument("--peaks-per-cell", type=int, default=1_000)
    parser.add_argument("--genes-per-cell", type=int, default=1_500)
    parser.add_argument("--max-steps", type=int, default=None, help="training steps (None: the model's default)")
    parser.add_argument("--in-memory", action="store_true", help="load the ATAC matrix into memory instead")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="cache of the simulated files")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "scaling.json")
    parser.add_argument("--simulate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
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
        print(
            f"{n_atac:>10,} ATAC cells: label_transfer {row['label_transfer_s']:.0f} s, "
            f"peak {row['peak_rss_gb']:.2f} GB "
            f"(data loaded {row['loaded_rss_gb']:.2f} GB), accuracy {row['accuracy']:.3f}",
            flush=True,
        )
    print()
    print(_table(rows))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
