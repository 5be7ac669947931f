"""Time of ``st.tl.cross_modal_match`` with the default SCCLIP against the previous default, on about 10k cells.

All twelve MOp SNARE-seq libraries (10,309 paired cells) train each variant from scratch, each in a
fresh spawned process with ``--threads`` torch threads (2: the CI machine's cores), stage by stage:
input fit (layouts, scaling, token projections: building ``SCCLIP``), training (the default 1,000
steps), then embedding both modalities and matching every cell to the other modality
(``st.tl.cross_modal_match`` with the trained model). The previous default is the ``small`` preset
as it was before this release: an ensemble of two encoder pairs of two transformer layers each, without
the canonical alignment and the linear member (whose fit after training counts as training time).
The report gives each stage's wall time, the peak resident memory, and the ratio of the default's
times to the previous default's, measured in the same run. Run it on an otherwise idle machine.

Run: ``python benchmarks/scclip_speed.py [--threads 2] [--max-steps 1000]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import pandas as pd
from _common import in_fresh_process

VARIANTS = {
    "default": {},
    "previous default (two pairs of two layers, no alignment, no linear member)": {
        "n_layers": 2,
        "n_members": 2,
        "align_modalities": False,
        "linear_weight": 0.0,
    },
}
STAGES = ("input fit", "training", "embedding + matching")


def run_variant(model_kwargs: dict, max_steps: int | None) -> dict:
    import mudata

    import sctransfer as st

    mdata = st.datasets.mop_snareseq()
    times = {}
    start = time.perf_counter()
    st.model.SCCLIP.setup_mudata(mdata)
    model = st.model.SCCLIP(mdata, annotation="mm10", **model_kwargs)
    times["input fit"] = time.perf_counter() - start
    start = time.perf_counter()
    model.train(max_steps=max_steps, accelerator="cpu", enable_progress_bar=False)
    times["training"] = time.perf_counter() - start
    start = time.perf_counter()
    with mudata.set_options(pull_on_update=False):
        st.tl.cross_modal_match(mdata, model=model)
    times["embedding + matching"] = time.perf_counter() - start
    return {
        **times,
        "total": sum(times.values()),
        "n_cells": int(mdata["rna"].n_obs),
        "steps": int(model.train_params_["max_steps"]),
        "members": int(model.module.n_members),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=None, help="training steps (default: the package default)")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "scclip_speed.json")
    args = parser.parse_args()
    shared_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not os.environ.get("SCTRANSFER_DATA_DIR") and shared_data.is_dir():
        os.environ["SCTRANSFER_DATA_DIR"] = str(shared_data)
    rows = {}
    for name, kwargs in VARIANTS.items():
        rows[name] = in_fresh_process(run_variant, kwargs, args.max_steps, threads=args.threads)
        print(f"{name}: {rows[name]['total']:.1f} s ({rows[name]['training']:.1f} s training)", flush=True)
    table = pd.DataFrame(rows).T
    print(table.round(2).to_string())
    default, previous = rows["default"], rows[list(VARIANTS)[1]]
    ratios = {stage: default[stage] / previous[stage] for stage in (*STAGES, "total")}
    print("default / previous default: " + ", ".join(f"{stage} {ratio:.2f}" for stage, ratio in ratios.items()))
    print(f"default end to end on {default['n_cells']} cells, {args.threads} threads: {default['total'] / 60:.1f} min")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    payload = {"threads": args.threads, "rows": rows, "ratio_default_to_previous": ratios}
    args.output.write_text(json.dumps(payload, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
