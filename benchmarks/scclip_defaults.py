"""Evidence for SCCLIP's defaults: held-out FOSCTTM of variants on MOp SNARE-seq.

Each variant trains ``st.model.SCCLIP`` (preset ``small``) on nine libraries and embeds the other
three zero-shot (``--splits``: held out 09A-09C, the benchmark's split, 09D-09F or 09J-09L), in a
fresh process. The default is an ensemble of two encoder pairs without transformer dropout; the
other variants change one setting at a time of the single model that was the default before it
(one encoder pair, transformer dropout 0.1, mean pooling, input dropout 0.3, 1,000 steps).
FOSCTTM (0 perfect, 0.5 random) is measured on the held-out cells only. Each result is merged into
the results file as it comes (a re-run of a variant, split and seed replaces its earlier row; other
rows are kept).

Run: ``python benchmarks/scclip_defaults.py [--splits A-C D-F] [--seeds 0] [--variants default ...]``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _common import in_fresh_process

LIBRARIES = ("09A", "09B", "09C", "09D", "09E", "09F", "09G", "09H", "09I", "09J", "09K", "09L")
#: Held-out libraries of each split; the other nine train. "A-C" is the benchmark's split.
SPLITS = {"A-C": ("09A", "09B", "09C"), "D-F": ("09D", "09E", "09F"), "J-L": ("09J", "09K", "09L")}
#: The single model that was the default before the ensemble (one encoder pair, transformer dropout 0.1);
#: the variants below change one setting of it at a time.
SINGLE = {"n_members": 1, "dropout": 0.1}
VARIANTS: dict[str, tuple[dict, dict]] = {  # name: (model kwargs, train kwargs)
    "default": ({}, {}),
    "single model (default before the ensemble)": (SINGLE, {}),
    "CLS pooling (as scCLIP)": ({**SINGLE, "pooling": "cls"}, {}),
    "no input dropout": ({**SINGLE, "input_dropout": 0.0}, {}),
    "input dropout 0.5": ({**SINGLE, "input_dropout": 0.5}, {}),
    "500 steps": (SINGLE, {"max_steps": 500}),
    "no transformer dropout": ({**SINGLE, "dropout": 0.0}, {}),
    "no transformer dropout, 2,000 steps": ({**SINGLE, "dropout": 0.0}, {"max_steps": 2000}),
    "no transformer dropout, batch 512": ({**SINGLE, "dropout": 0.0}, {"batch_size": 512}),
    "25 principal axes per token": ({**SINGLE, "n_components": 25}, {}),
    "100 principal axes per token": ({**SINGLE, "n_components": 100}, {}),
    "weight decay 0.2": (SINGLE, {"plan_kwargs": {"weight_decay": 0.2}}),
    "temperature at least 0.1": ({**SINGLE, "max_logit_scale": 10.0}, {}),
}


def run_variant(name: str, seed: int, split: str) -> dict:
    """Train one variant on MOp without the held-out libraries (in this process); held-out FOSCTTM and time."""
    import sctransfer as st

    model_kwargs, train_kwargs = VARIANTS[name]
    held_out = SPLITS[split]
    train = st.datasets.mop_snareseq([lib for lib in LIBRARIES if lib not in held_out])
    test = st.datasets.mop_snareseq(held_out)
    start = time.perf_counter()
    st.model.SCCLIP.setup_mudata(train)
    model = st.model.SCCLIP(train, annotation="mm10", random_state=seed, **model_kwargs)
    model.train(random_state=seed, enable_progress_bar=False, **train_kwargs)
    wall = time.perf_counter() - start
    z_rna = model.get_latent_representation(test, modality="rna")
    z_atac = model.get_latent_representation(test, modality="atac")
    return {"foscttm": st.metrics.foscttm(z_rna, z_atac).mean, "train_wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--splits", nargs="+", default=["A-C"], choices=list(SPLITS), help="held-out libraries")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "scclip_defaults.json")
    args = parser.parse_args()
    os.environ.setdefault("SCTRANSFER_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    rows = []
    runs = [(split, seed, name) for split in args.splits for seed in args.seeds for name in args.variants]
    for split, seed, name in runs:
        result = in_fresh_process(run_variant, name, seed, split, threads=2)
        rows.append({"variant": name, "held_out": split, "seed": seed, **result})
        line = f"held out {split}  seed {seed}  {name:42s} FOSCTTM {result['foscttm']:.4f}"
        print(f"{line}  train {result['train_wall_s']:.0f} s", flush=True)
        _merge_into(args.output, rows)
    print(f"wrote {args.output}")


def _merge_into(output: Path, rows: list[dict]) -> None:
    """Write ``rows`` into the results file, replacing earlier rows of the same variant, split and seed."""
    earlier = json.loads(output.read_text()) if output.exists() else []
    new_keys = {_row_key(row) for row in rows}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps([row for row in earlier if _row_key(row) not in new_keys] + rows, indent=1))


def _row_key(row: dict) -> tuple[str, str, int]:
    return row["variant"], row["held_out"], row["seed"]


if __name__ == "__main__":
    main()
