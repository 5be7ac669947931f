"""Training throughput against its own limit, for SCNCL and SCCLIP on MOp SNARE-seq.

For each model, in one run: the time of a training step inside the real training loop (data
stream, Lightning, the training plan's bookkeeping; steady state, measured between the ends of
consecutive steps after a warm-up) divided by the time of the bare step on an already prepared
batch of the same size (forward, loss, backward, optimiser step; nothing else). A ratio near 1
means the loop adds nothing to the arithmetic. SCCLIP's bare step is timed on the *dense* batch
(the reference the issue names) and on the sparse batch the loop actually feeds.

Run: ``python benchmarks/throughput.py [--steps 200] [--models SCNCL SCCLIP]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Callback

import sctransfer as st

WARMUP = 20


class StepTimer(Callback):
    """Wall time between the ends of consecutive training steps; keeps one batch for the bare timing."""

    def __init__(self):
        self.ends: list[float] = []
        self.batch = None
        self.plan = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.batch is None:
            self.batch, self.plan = batch, pl_module

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.ends.append(time.perf_counter())

    def loop_step_seconds(self) -> float:
        ends = np.asarray(self.ends[WARMUP:])
        return float(np.median(np.diff(ends)))


def bare_step_seconds(plan, batch, n_steps: int) -> float:
    """Median time of forward + loss + backward + optimiser step on a fixed batch (the loop's optimiser)."""
    module = plan.module
    module.train()
    optimizer = plan.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    times = []
    for _ in range(n_steps):
        start = time.perf_counter()
        _, _, output = plan.forward(batch, loss_kwargs={"step": 1000} if plan._step_aware else {})
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return float(np.median(times[3:]))


def _densified(batch):
    if isinstance(batch, dict):
        return {key: _densified(value) for key, value in batch.items()}
    return batch.to_dense() if isinstance(batch, torch.Tensor) and batch.is_sparse else batch


def run_scncl(steps: int) -> dict:
    mdata = st.datasets.mop_label_transfer()
    mdata["atac"].obs.pop("cell_type")
    timer = StepTimer()
    st.tl.label_transfer(
        mdata,
        labels_key="cell_type",
        annotation="mm10",
        max_steps=steps,
        train_kwargs={"callbacks": [timer], "enable_progress_bar": False},
    )
    loop = timer.loop_step_seconds()
    bare = bare_step_seconds(timer.plan, timer.batch, 50)
    return {"model": "SCNCL", "batch_size": 256, "loop_step_s": loop, "bare_step_s": bare, "ratio": loop / bare}


def run_scclip(steps: int) -> dict:
    train = st.datasets.mop_snareseq(tuple(f"09{c}" for c in "DEFGHIJKL"))
    st.model.SCCLIP.setup_mudata(train)
    model = st.model.SCCLIP(train, annotation="mm10")
    timer = StepTimer()
    model.train(max_steps=steps, callbacks=[timer], enable_progress_bar=False)
    loop = timer.loop_step_seconds()
    bare_dense = bare_step_seconds(timer.plan, _densified(timer.batch), 20)
    bare_sparse = bare_step_seconds(timer.plan, timer.batch, 20)
    return {
        "model": "SCCLIP",
        "batch_size": 256,
        "loop_step_s": loop,
        "bare_step_s": bare_dense,
        "bare_step_sparse_input_s": bare_sparse,
        "ratio": loop / bare_dense,
        "ratio_to_sparse_bare": loop / bare_sparse,
        "cells_per_s": 256 / loop,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps of the real loop (first 20 skipped)")
    parser.add_argument("--models", nargs="+", default=["SCNCL", "SCCLIP"], choices=["SCNCL", "SCCLIP"])
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    rows = []
    for name in args.models:
        row = run_scncl(args.steps) if name == "SCNCL" else run_scclip(args.steps)
        rows.append(row)
        extra = (
            f"  (bare on the sparse batch {row['bare_step_sparse_input_s'] * 1e3:.1f} ms, "
            f"ratio {row['ratio_to_sparse_bare']:.2f}; {row['cells_per_s']:.0f} cells/s)"
            if name == "SCCLIP"
            else ""
        )
        print(
            f"{name:6s} loop step {row['loop_step_s'] * 1e3:7.1f} ms   bare step {row['bare_step_s'] * 1e3:7.1f} ms   "
            f"ratio {row['ratio']:.2f}{extra}",
            flush=True,
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
