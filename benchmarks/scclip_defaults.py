"""Evidence for SCCLIP's defaults: held-out FOSCTTM of variants on MOp SNARE-seq.

Each variant trains ``st.model.SCCLIP`` (preset ``small``) on libraries 09D-09L and embeds 09A-09C
zero-shot, in a fresh process; one setting changes at a time from the defaults (mean pooling,
input dropout 0.3, 1,000 steps). FOSCTTM (0 perfect, 0.5 random) is measured on the held-out
cells only.

Run: ``python benchmarks/scclip_defaults.py [--seeds 0] [--variants default "CLS pooling" ...]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
import traceback
from pathlib import Path

TRAIN = ("09D", "09E", "09F", "09G", "09H", "09I", "09J", "09K", "09L")
TEST = ("09A", "09B", "09C")
VARIANTS: dict[str, tuple[dict, dict]] = {  # name: (model kwargs, train kwargs)
    "default": ({}, {}),
    "CLS pooling (as scCLIP)": ({"pooling": "cls"}, {}),
    "no input dropout": ({"input_dropout": 0.0}, {}),
    "input dropout 0.5": ({"input_dropout": 0.5}, {}),
    "500 steps": ({}, {"max_steps": 500}),
    "no transformer dropout": ({"dropout": 0.0}, {}),
    "no transformer dropout, 2,000 steps": ({"dropout": 0.0}, {"max_steps": 2000}),
    "no transformer dropout, batch 512": ({"dropout": 0.0}, {"batch_size": 512}),
}


def _child(queue, name: str, seed: int) -> None:
    try:
        import torch

        import sctransfer as st

        torch.set_num_threads(2)
        model_kwargs, train_kwargs = VARIANTS[name]
        train, test = st.datasets.mop_snareseq(TRAIN), st.datasets.mop_snareseq(TEST)
        start = time.perf_counter()
        st.model.SCCLIP.setup_mudata(train)
        model = st.model.SCCLIP(train, annotation="mm10", random_state=seed, **model_kwargs)
        model.train(random_state=seed, enable_progress_bar=False, **train_kwargs)
        wall = time.perf_counter() - start
        z_rna = model.get_latent_representation(test, modality="rna")
        z_atac = model.get_latent_representation(test, modality="atac")
        queue.put({"ok": True, "foscttm": st.metrics.foscttm(z_rna, z_atac).mean, "train_wall_s": wall})
    except Exception:  # noqa: BLE001 - reported to the parent
        queue.put({"ok": False, "error": traceback.format_exc()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "scclip_defaults.json")
    args = parser.parse_args()
    os.environ.setdefault("SCTRANSFER_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    rows = []
    ctx = mp.get_context("spawn")
    for seed in args.seeds:
        for name in args.variants:
            queue = ctx.Queue()
            proc = ctx.Process(target=_child, args=(queue, name, seed))
            proc.start()
            result = queue.get()
            proc.join()
            if not result.pop("ok"):
                raise RuntimeError(f"{name} failed:\n{result['error']}")
            rows.append({"variant": name, "seed": seed, **result})
            line = f"seed {seed}  {name:26s} FOSCTTM {result['foscttm']:.4f}  train {result['train_wall_s']:.0f} s"
            print(line, flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
