"""Lightning DDP on two CPU processes gives the quality of one process, for SCNCL and SCCLIP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"


def _train(tmp_path: Path, devices: int) -> dict:
    out = tmp_path / f"devices{devices}.json"
    work = tmp_path / f"cwd{devices}"  # the processes' working directory: training must write nothing there
    work.mkdir()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), str(devices)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=work,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text()) | {"written": sorted(str(p.relative_to(work)) for p in work.rglob("*"))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("ddp")
    return _train(tmp_path, 1), _train(tmp_path, 2)


def test_ddp_runs_two_processes(runs):
    single, ddp = runs
    assert single["world_size"] == 1 and single["scclip_world_size"] == 1
    assert ddp["world_size"] == 2 and ddp["scclip_world_size"] == 2


def test_ddp_keeps_history_in_memory_and_writes_nothing(runs):
    single, ddp = runs
    assert single["written"] == [] and ddp["written"] == []  # no lightning_logs/version_N/history.pkl
    assert ddp["scclip_history_rows"] == single["scclip_history_rows"] == 3  # 150 steps of 50


def test_ddp_label_transfer_matches_single_process_quality(runs):
    single, ddp = runs
    print(f"\nSCNCL accuracy: 1 process {single['scncl_accuracy']:.3f}, DDP x2 {ddp['scncl_accuracy']:.3f}")
    assert ddp["scncl_accuracy"] >= 0.6
    assert ddp["scncl_accuracy"] >= single["scncl_accuracy"] - 0.03


def test_ddp_scclip_matches_single_process_quality(runs):
    single, ddp = runs
    print(f"\nSCCLIP FOSCTTM: 1 process {single['scclip_foscttm']:.3f}, DDP x2 {ddp['scclip_foscttm']:.3f}")
    assert ddp["embedding_finite"]
    assert ddp["scclip_last_loss"] < ddp["scclip_first_loss"]
    assert ddp["scclip_foscttm"] <= single["scclip_foscttm"] + 0.03
