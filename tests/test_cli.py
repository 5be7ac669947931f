import logging
import os
import re
import warnings
from pathlib import Path

import mudata
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

import sctransfer
from sctransfer import cli

mudata.set_options(pull_on_update=False)

PREDICTED = ["T", "T", "T", "B", "B", "NK"]


def _tiny_mdata(atac_truth: bool = False) -> mudata.MuData:
    rng = np.random.default_rng(0)
    rna = AnnData(
        rng.poisson(1.0, size=(8, 5)).astype(np.float32),
        obs=pd.DataFrame({"cell_type": ["T", "B"] * 4}, index=[f"rna_{i}" for i in range(8)]),
        var=pd.DataFrame(index=[f"g{i}" for i in range(5)]),
    )
    atac_obs = pd.DataFrame(index=[f"atac_{i}" for i in range(6)])
    if atac_truth:
        atac_obs["cell_type"] = ["T", "T", "B", "B", "B", "NK"]
    atac = AnnData(
        rng.poisson(1.0, size=(6, 4)).astype(np.float32),
        obs=atac_obs,
        var=pd.DataFrame(index=[f"chr1:{100 * i}-{100 * i + 50}" for i in range(4)]),
    )
    return mudata.MuData({"rna": rna, "atac": atac})


class FakeLabelTransfer:
    """Stands in for sctransfer.tl.label_transfer: records the call and writes the three columns."""

    def __init__(self, error: Exception | None = None):
        self.calls: list[dict] = []
        self.seen_atac_columns: list[str] = []
        self.error = error

    def __call__(self, mdata, **kwargs):
        self.calls.append(kwargs)
        self.seen_atac_columns = list(mdata[kwargs["atac_key"]].obs.columns) + list(mdata.obs.columns)
        if self.error is not None:
            raise self.error
        obs = mdata[kwargs["atac_key"]].obs
        obs["sctransfer_label"] = pd.Categorical(PREDICTED[: len(obs)])
        obs["sctransfer_confidence"] = np.linspace(0.5, 1.0, len(obs))
        obs["sctransfer_novel"] = np.arange(len(obs)) < 2


@pytest.fixture
def fake(monkeypatch) -> FakeLabelTransfer:
    fake = FakeLabelTransfer()
    monkeypatch.setattr(sctransfer.tl, "label_transfer", fake, raising=False)
    return fake


@pytest.fixture
def input_file(tmp_path) -> Path:
    path = tmp_path / "in.h5mu"
    _tiny_mdata().write_h5mu(path)
    return path


def _run(argv, capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _transfer_args(input_file: Path, output: Path, *extra: str) -> list[str]:
    return [
        "label-transfer",
        "--input",
        str(input_file),
        "--annotation",
        "mm10",
        "--output",
        str(output),
        *extra,
    ]


def test_help(capsys):
    code, out, _ = _run(["--help"], capsys)
    assert code == 0
    assert "label-transfer" in out
    code, out, _ = _run(["label-transfer", "--help"], capsys)
    assert code == 0
    for option in ("--input", "--labels-key", "--annotation", "--output", "--max-steps", "--simulate", "--overwrite"):
        assert option in out


def test_version(capsys):
    code, out, _ = _run(["--version"], capsys)
    assert code == 0
    assert out.startswith("sctransfer ")


def test_parse_defaults_and_values():
    parser = cli._build_parser()
    args = parser.parse_args(["label-transfer"])
    args.check(parser, args)
    assert args.input is None
    assert args.output is None
    assert args.labels_key == "cell_type"
    assert args.annotation is None
    assert (args.rna_key, args.atac_key) == ("rna", "atac")
    assert args.max_steps is None
    assert args.seed == 0
    assert not args.simulate
    assert not args.overwrite

    args = parser.parse_args(
        ["label-transfer", "--input", "x.h5mu", "--output", "y.h5mu", "--labels-key", "celltype"]
        + ["--annotation", "a.gtf", "--rna-key", "r", "--atac-key", "a", "--max-steps", "50", "--seed", "3"]
        + ["--overwrite"]
    )
    assert args.input == Path("x.h5mu")
    assert args.output == Path("y.h5mu")
    assert (args.labels_key, args.annotation, args.rna_key, args.atac_key) == ("celltype", "a.gtf", "r", "a")
    assert (args.max_steps, args.seed, args.overwrite) == (50, 3, True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required: COMMAND"),
        (["label-transfer", "--max-steps", "0"], "expected a positive integer, got 0"),
        (["label-transfer", "--max-steps", "many"], "expected a positive integer, got 'many'"),
        (["label-transfer", "--input", "x.h5mu", "--simulate"], "not allowed with argument"),
        (["label-transfer", "--input", "x.h5mu", "--annotation", "a.gtf"], "--output is required with --input"),
        (["label-transfer", "--input", "x.h5mu", "--output", "y.h5mu"], "--annotation is required with --input"),
        (["label-transfer", "--novelty-threshold", "nan"], "--novelty-threshold: expected a finite number, got 'nan'"),
        (["label-transfer", "--novelty-threshold=-inf"], "expected a finite number, got '-inf'"),
        (["label-transfer", "--novelty-threshold", "high"], "--novelty-threshold: expected a number, got 'high'"),
        (["label-transfer", "--model", "m", "--labels-key", "celltype"], "--labels-key set how a model is trained"),
        (["label-transfer", "--model", "m", "--rna-layer", "counts"], "--rna-layer set how a model is trained"),
    ],
)
def test_usage_errors(argv, message, capsys):
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert message in err


def test_missing_input_file(tmp_path, fake, capsys):
    code, out, err = _run(_transfer_args(tmp_path / "absent.h5mu", tmp_path / "out.h5mu"), capsys)
    assert code == 2
    assert err.strip().splitlines()[-1] == f"error: input file '{tmp_path / 'absent.h5mu'}' does not exist"
    assert "Traceback" not in err
    assert fake.calls == []
    assert not (tmp_path / "out.h5mu").exists()


def test_existing_output_needs_overwrite(input_file, tmp_path, fake, capsys):
    output = tmp_path / "out.h5mu"
    output.write_text("keep me")
    code, _, err = _run(_transfer_args(input_file, output), capsys)
    assert code == 2
    assert "error: output file" in err
    assert "exists; pass --overwrite to replace it" in err
    assert fake.calls == []  # refused before any work
    assert output.read_text() == "keep me"


def test_missing_output_folder(input_file, tmp_path, fake, capsys):
    code, _, err = _run(_transfer_args(input_file, tmp_path / "nowhere" / "out.h5mu"), capsys)
    assert code == 2
    assert "error: output folder" in err
    assert fake.calls == []


def test_read_transfer_write_summary(input_file, tmp_path, fake, capsys):
    output = tmp_path / "out.h5mu"
    handlers_before = list(logging.getLogger("sctransfer").handlers)
    code, out, err = _run(_transfer_args(input_file, output, "--seed", "7"), capsys)
    assert code == 0, err

    assert fake.calls == [
        {
            "labels_key": "cell_type",
            "annotation": "mm10",
            "rna_key": "rna",
            "atac_key": "atac",
            "random_state": 7,
            "overwrite": False,
        }
    ]  # max_steps only passed when given
    written = mudata.read_h5mu(output)
    obs = written["atac"].obs
    assert obs["sctransfer_label"].astype(str).tolist() == PREDICTED
    np.testing.assert_allclose(obs["sctransfer_confidence"], np.linspace(0.5, 1.0, 6))
    assert obs["sctransfer_novel"].tolist() == [True, True, False, False, False, False]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5mu", "out.h5mu"]  # no temporary file left

    assert "labelled 6 atac cells from 8 rna cells" in out
    assert "  T                               3 ( 50.0%)" in out.splitlines()
    assert "  NK                              1 ( 16.7%)" in out.splitlines()
    assert "called novel: 33.3%" in out
    assert "mean confidence: 0.750" in out
    assert "wall time:" in out
    assert f"written to: {output}" in out
    assert f"Reading {input_file}." in err
    assert f"Writing {output}." in err
    assert logging.getLogger("sctransfer").handlers == handlers_before


def test_max_steps_and_overwrite(input_file, tmp_path, fake, capsys):
    output = tmp_path / "out.h5mu"
    output.write_text("old")
    code, _, err = _run(_transfer_args(input_file, output, "--max-steps", "25", "--overwrite"), capsys)
    assert code == 0, err
    assert fake.calls[0]["max_steps"] == 25
    assert fake.calls[0]["overwrite"] is True
    assert "sctransfer_label" in mudata.read_h5mu(output)["atac"].obs


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ValueError("labels_key 'cell_type' has 1 category"), "error: --labels-key 'cell_type' has 1 category"),
        (KeyError("Column 'cell_type' not found"), "error: Column 'cell_type' not found"),
        (FileNotFoundError("annotation genes.gtf.gz not found"), "error: annotation genes.gtf.gz not found"),
    ],
)
def test_library_errors_exit_2(input_file, tmp_path, monkeypatch, capsys, error, message):
    monkeypatch.setattr(sctransfer.tl, "label_transfer", FakeLabelTransfer(error), raising=False)
    code, out, err = _run(_transfer_args(input_file, tmp_path / "out.h5mu"), capsys)
    assert code == 2
    assert err.strip().splitlines()[-1] == message
    assert "Traceback" not in err
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5mu"]


def test_failed_write_leaves_existing_output_intact(input_file, tmp_path, fake, monkeypatch, capsys):
    output = tmp_path / "out.h5mu"
    output.write_text("previous result")

    def broken_write(self, filename, **kwargs):
        Path(filename).write_text("half")
        raise OSError("No space left on device")

    monkeypatch.setattr(mudata.MuData, "write_h5mu", broken_write)
    code, _, err = _run(_transfer_args(input_file, output, "--overwrite"), capsys)
    assert code == 2
    assert "error: No space left on device" in err
    assert output.read_text() == "previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5mu", "out.h5mu"]


def test_simulate_demo_hides_truth_and_evaluates(tmp_path, fake, monkeypatch, capsys):
    monkeypatch.setattr(
        sctransfer.datasets, "simulate_multiome", lambda random_state: _tiny_mdata(atac_truth=True), raising=False
    )
    output = tmp_path / "demo.h5mu"
    code, out, err = _run(["label-transfer", "--simulate", "--seed", "1", "--output", str(output)], capsys)
    assert code == 0, err
    assert "cell_type" not in fake.seen_atac_columns  # the method never saw the truth
    assert isinstance(fake.calls[0]["annotation"], pd.DataFrame)  # the simulated genes
    assert fake.calls[0]["random_state"] == 1
    # truth  T T B B B NK, predicted T T T B B NK; reference types T, B -> NK cell not counted
    # closed-set accuracy 4 / 5; F1: T 4/5, B 4/5 -> 0.8
    assert "closed-set accuracy: 0.800 (5 cells of reference types)" in out
    assert "macro-F1: 0.800" in out
    assert "cells of types absent from the reference: 1" in out
    assert mudata.read_h5mu(output)["atac"].obs["cell_type"].tolist() == ["T", "T", "B", "B", "B", "NK"]


def test_mop_demo_defaults_to_mm10(fake, monkeypatch, capsys):
    monkeypatch.setattr(sctransfer.datasets, "mop_label_transfer", lambda: _tiny_mdata(atac_truth=True), raising=False)
    code, out, err = _run(["label-transfer"], capsys)
    assert code == 0, err
    assert fake.calls[0]["annotation"] == "mm10"
    assert "closed-set accuracy: 0.800" in out
    assert "written to" not in out


def test_demo_without_truth_column(fake, monkeypatch, capsys):
    monkeypatch.setattr(sctransfer.datasets, "mop_label_transfer", lambda: _tiny_mdata(), raising=False)
    code, _, err = _run(["label-transfer"], capsys)
    assert code == 2
    assert "error: demo data has no true labels in mdata['atac'].obs['cell_type']" in err


def test_simulate_demo_end_to_end(tmp_path, capsys):
    """The real pipeline (no fakes): simulated data, training, an .h5mu written atomically."""
    out = tmp_path / "simulated.h5mu"
    assert cli.main(["label-transfer", "--simulate", "--max-steps", "100", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    accuracy = float(printed.split("closed-set accuracy:")[1].split()[0])
    assert accuracy > 0.9  # cell types drive both simulated modalities strongly
    written = mudata.read_h5mu(out)
    obs = written["atac"].obs
    assert {"sctransfer_label", "sctransfer_confidence", "sctransfer_novel"} <= set(obs.columns)
    assert written["atac"].obsm["X_scncl"].shape[0] == written["atac"].n_obs
    assert "sctransfer" in written.uns
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


# --------------------------------------------------------------------------------------------
# errors in the command line's terms, checked before any work
# --------------------------------------------------------------------------------------------
def test_layers_are_passed_to_the_library(input_file, tmp_path, fake, capsys):
    output = tmp_path / "out.h5mu"
    code, _, err = _run(_transfer_args(input_file, output, "--rna-layer", "raw", "--atac-layer", "counts"), capsys)
    assert code == 0, err
    assert fake.calls[0]["rna_layer"] == "raw" and fake.calls[0]["atac_layer"] == "counts"


def test_missing_annotation_is_refused_before_reading_the_input(input_file, tmp_path, fake, monkeypatch, capsys):
    monkeypatch.setattr(mudata, "read_h5mu", lambda *a, **k: pytest.fail("the input was read"))
    argv = _transfer_args(input_file, tmp_path / "out.h5mu")
    argv[argv.index("mm10")] = str(tmp_path / "genes.gtf")
    code, _, err = _run(argv, capsys)
    assert code == 2 and fake.calls == []
    assert err.strip().splitlines() == [
        f"error: annotation '{tmp_path / 'genes.gtf'}' is neither an existing file nor a known genome "
        f"({', '.join(sctransfer.datasets.KNOWN_GENOMES)})"
    ]


def test_output_folder_that_is_not_writable(input_file, tmp_path, fake, monkeypatch, capsys):
    folder = tmp_path / "locked"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == folder else real_access(path, mode))
    code, _, err = _run(_transfer_args(input_file, folder / "out.h5mu"), capsys)
    assert code == 2 and fake.calls == []
    assert err.strip().splitlines() == [f"error: output folder '{folder}' is not writable"]


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            ValueError(
                "modality 'atac' .X holds 12 negative values (smallest -1.5), so it is not counts: it looks "
                "scaled/log-transformed, pass the raw counts layer via atac_layer= (e.g. atac_layer='counts')."
            ),
            "error: modality 'atac' .X holds 12 negative values (smallest -1.5), so it is not counts: it looks "
            "scaled/log-transformed, pass the raw counts layer via --atac-layer (e.g. --atac-layer counts).",
        ),
        (
            KeyError(
                "Modality 'peaks' (ATAC peaks) is not in the MuData; it has ['rna', 'atac'].\nPass the right "
                "name (e.g. rna_key=/atac_key=)."
            ),
            "error: Modality 'peaks' (ATAC peaks) is not in the MuData; it has ['rna', 'atac']. Pass the right name "
            "(e.g. --rna-key/--atac-key).",
        ),
        (
            ValueError(
                "label_transfer would replace existing fields. Pass overwrite=True to replace them, or "
                "labels_key='cell_type' with random_state=1; or atac_layer=None to use .X."
            ),
            "error: label_transfer would replace existing fields. Pass --overwrite to replace them, or "
            "--labels-key cell_type with --seed 1; or no --atac-layer to use .X.",
        ),
        (
            TypeError("modality 'atac' .X holds non-numeric values (dtype object)"),
            "error: modality 'atac' .X holds non-numeric values (dtype object)",
        ),
    ],
)
def test_library_errors_are_one_line_in_flag_terms(input_file, tmp_path, monkeypatch, capsys, error, message):
    monkeypatch.setattr(sctransfer.tl, "label_transfer", FakeLabelTransfer(error), raising=False)
    code, out, err = _run(_transfer_args(input_file, tmp_path / "out.h5mu"), capsys)
    assert code == 2 and out == ""
    assert err.strip().splitlines()[-1] == message
    assert "Traceback" not in err
    assert not (tmp_path / "out.h5mu").exists()


def test_warnings_are_one_line_in_flag_terms(input_file, tmp_path, monkeypatch, capsys):
    class WarningTransfer(FakeLabelTransfer):
        def __call__(self, mdata, **kwargs):
            warnings.warn("values are not whole numbers;\n pass atac_layer='counts'", UserWarning, stacklevel=1)
            super().__call__(mdata, **kwargs)

    monkeypatch.setattr(sctransfer.tl, "label_transfer", WarningTransfer(), raising=False)
    code, _, err = _run(_transfer_args(input_file, tmp_path / "out.h5mu"), capsys)
    assert code == 0, err
    assert "warning: values are not whole numbers; pass --atac-layer counts" in err.splitlines()
    assert "UserWarning" not in err


def test_interrupt_exits_130_without_writing(input_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sctransfer.tl, "label_transfer", FakeLabelTransfer(KeyboardInterrupt()), raising=False)
    code, _, err = _run(_transfer_args(input_file, tmp_path / "out.h5mu"), capsys)
    assert code == 130 and err.strip().splitlines()[-1] == "error: interrupted; nothing was written"
    assert not (tmp_path / "out.h5mu").exists()


def test_real_error_from_the_library_is_one_line(input_file, tmp_path, capsys):
    """No fake: a wrong modality name reaches the user as one line naming the flag."""
    code, _, err = _run(_transfer_args(input_file, tmp_path / "out.h5mu", "--atac-key", "peaks"), capsys)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "'peaks'" in last and "--atac-key" in last and "atac_key=" not in last
    assert "Traceback" not in err
    assert not (tmp_path / "out.h5mu").exists()


# --------------------------------------------------------------------------------------------
# cross-modal-match
# --------------------------------------------------------------------------------------------
_FAST = ["--preset", "tiny", "--max-steps", "20"]


@pytest.fixture(scope="module")
def simulated_files(tmp_path_factory) -> dict[str, Path]:
    """Simulated paired cells, the same cells with disjoint names (unpaired), and their genes as a TSV annotation."""
    folder = tmp_path_factory.mktemp("simulated")
    paired = sctransfer.datasets.simulate_multiome(**cli._SIMULATED_MATCH, paired=True, random_state=3)
    paths = {"paired": folder / "paired.h5mu", "unpaired": folder / "unpaired.h5mu", "genes": folder / "genes.tsv"}
    paired.write_h5mu(paths["paired"])
    paired["rna"].var.to_csv(paths["genes"], sep="\t", index=False)
    atac = paired["atac"].copy()
    atac.obs_names = "atac:" + atac.obs_names
    mudata.MuData({"rna": paired["rna"].copy(), "atac": atac}).write_h5mu(paths["unpaired"])
    return paths


def _summary_value(out: str, label: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(label))[len(label) :].strip()


def test_match_help_lists_the_options(capsys):
    code, out, _ = _run(["cross-modal-match", "--help"], capsys)
    assert code == 0
    for option in ("--input", "--annotation", "--model", "--save-model", "--one-to-one", "--pairing-top-k", "--preset"):
        assert option in out


def test_match_simulate_demo(tmp_path, capsys):
    """The offline demo: trains on two thirds of the simulated cells, matches the rest zero-shot, reports metrics."""
    output = tmp_path / "demo.h5mu"
    code, out, err = _run(["cross-modal-match", "--simulate", *_FAST, "--output", str(output)], capsys)
    assert code == 0, err
    n_held_out = cli._SIMULATED_MATCH["n_rna"] - 2 * cli._SIMULATED_MATCH["n_rna"] // 3
    assert _summary_value(out, "matched") == (
        f"{n_held_out} of {n_held_out} rna cells to atac cells and {n_held_out} of {n_held_out} atac cells to rna cells"
    )
    assert _summary_value(out, "coverage of the model's features:") == "rna 100.0%, atac 100.0%"
    written = mudata.read_h5mu(output)
    z_rna, z_atac = written["rna"].obsm["X_scclip"], written["atac"].obsm["X_scclip"]
    assert z_rna.shape[0] == z_atac.shape[0] == n_held_out
    expected = sctransfer.metrics.foscttm(z_rna, z_atac).mean
    assert _summary_value(out, "FOSCTTM:").startswith(f"{expected:.3f} ")
    mixing = _summary_value(out, "modality mixing:")
    batches = ["rna"] * n_held_out + ["atac"] * n_held_out
    assert mixing.startswith(f"{sctransfer.metrics.neighbor_mixing(np.vstack([z_rna, z_atac]), batches):.3f} ")
    assert 0.0 <= float(mixing.rsplit("batch entropy ", 1)[1]) <= 1.0
    similarity = float(_summary_value(out, "mean match similarity:"))
    assert similarity == pytest.approx(np.nanmean(written["rna"].obs["sctransfer_match_similarity"]), abs=1e-3)
    assert written["atac"].obs["sctransfer_match"].isin(written["rna"].obs_names).all()
    assert "Training" in err  # the training bar
    assert not list(tmp_path.glob(".*"))


def test_match_train_size_runs_the_held_out_check_and_reports_it(simulated_files, tmp_path, capsys):
    """--train-size holds out pairs, reports their FOSCTTM next to the training pairs' and is refused with --model."""
    common = ["cross-modal-match", "--input", str(simulated_files["paired"]), "--annotation"]
    common += [str(simulated_files["genes"]), *_FAST]
    saved = tmp_path / "model"
    argv = [*common, "--train-size", "0.8", "--save-model", str(saved), "--output", str(tmp_path / "out.h5mu")]
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    model = sctransfer.model.SCCLIP.load(saved)
    held_out = float(model.history["foscttm_validation"].iloc[-1, 0])
    trained = float(model.history["foscttm_train"].iloc[-1, 0])
    n_pairs = sctransfer.datasets.simulate_multiome(**cli._SIMULATED_MATCH, paired=True, random_state=3).n_obs
    line = _summary_value(out, "held-out check:")
    assert line.startswith(f"FOSCTTM {held_out:.3f} on {round(0.2 * n_pairs):,} held-out pairs, {trained:.3f} on")
    code, _, err = _run([*common, "--train-size", "1.5", "--output", str(tmp_path / "x.h5mu")], capsys)
    assert code == 2 and "between 0 and 1" in err
    argv = ["cross-modal-match", "--input", str(simulated_files["paired"]), "--model", str(saved)]
    code, _, err = _run([*argv, "--train-size", "0.9", "--output", str(tmp_path / "y.h5mu")], capsys)
    assert code == 2 and "--train-size" in err and "not with --model" in err
    code, out, _ = _run([*common, "--output", str(tmp_path / "z.h5mu"), "--overwrite"], capsys)
    assert code == 0 and "held-out check" not in out  # off unless asked
    # the saved model applied zero-shot: its training's check is not this run's (and it has no held-out indices)
    unpaired = ["cross-modal-match", "--input", str(simulated_files["unpaired"]), "--model", str(saved)]
    code, out, err = _run([*unpaired, "--output", str(tmp_path / "w.h5mu")], capsys)
    assert code == 0, err
    assert "held-out check" not in out and out.startswith("matched ")


def test_library_hints_for_the_held_out_check_read_as_flags():
    message = (
        "Check it with train(train_size=0.9) (tl.cross_modal_match: train_kwargs={'train_size': 0.9}), which "
        "reports both; the fixes are more cells, fewer steps (max_steps) or a smaller preset."
    )
    text = cli._in_cli_terms(message)
    assert "Check it with --train-size 0.9, which reports both" in text and "(--max-steps)" in text
    assert "train_kwargs" not in text
    better = "Held out, the embedding without {} ranks better (FOSCTTM 0.300): model_kwargs={}."
    alignment = better.format("the alignment", "{'align_modalities': False}")
    assert cli._in_cli_terms(alignment).endswith("model_kwargs={'align_modalities': False} (Python only).")
    member = better.format("the linear member", "{'linear_weight': 0.0}")
    assert cli._in_cli_terms(member).endswith("ranks better (FOSCTTM 0.300): --linear-weight 0.")
    both = better.format("the alignment and the linear member", "{'align_modalities': False, 'linear_weight': 0.0}")
    assert cli._in_cli_terms(both).endswith(
        "(FOSCTTM 0.300): --linear-weight 0 (in Python, model_kwargs={'align_modalities': False} also leaves out the "
        "alignment)."
    )
    too_few = "The linear member (linear_weight=0.3) needs at least 3 peaks. Pass linear_weight=0.0 to keep it out."
    assert cli._in_cli_terms(too_few) == (
        "The linear member (--linear-weight 0.3) needs at least 3 peaks. Pass --linear-weight 0.0 to keep it out."
    )


def test_match_linear_weight_joins_the_member_and_is_checked(simulated_files, tmp_path, capsys):
    """--linear-weight trains with the linear member (wider embedding, saved), is range-checked and refused with
    --model (it sets how a model is trained)."""
    common = ["cross-modal-match", "--input", str(simulated_files["paired"]), "--annotation"]
    common += [str(simulated_files["genes"]), *_FAST]
    saved, output = tmp_path / "model", tmp_path / "out.h5mu"
    argv = [*common, "--linear-weight", "0.3", "--save-model", str(saved), "--output", str(output)]
    code, _, err = _run(argv, capsys)
    assert code == 0, err
    model = sctransfer.model.SCCLIP.load(saved)
    assert model.linear_weight == 0.3 and model.linear_member_ is not None
    z = mudata.read_h5mu(output)["rna"].obsm["X_scclip"]
    # the member's axes close each row, at length sqrt(0.3); the network's part has the rest of the unit length
    np.testing.assert_allclose(np.linalg.norm(z[:, -model.linear_member_.n_axes :], axis=1), np.sqrt(0.3), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
    for bad in ("1", "-0.1", "nan", "x"):
        code, _, err = _run([*common, "--linear-weight", bad, "--output", str(tmp_path / "x.h5mu")], capsys)
        assert code == 2 and "--linear-weight" in err and "from 0 to below 1" in err, (bad, err)
    argv = ["cross-modal-match", "--input", str(simulated_files["paired"]), "--model", str(saved)]
    code, _, err = _run([*argv, "--linear-weight", "0.3", "--output", str(tmp_path / "y.h5mu")], capsys)
    assert code == 2 and "--linear-weight" in err and "not with --model" in err


def test_match_train_save_and_zero_shot_round_trip(simulated_files, tmp_path, capsys):
    """Train on a paired file, save the model, apply it to the same cells and to unpaired cells."""
    trained, model_dir = tmp_path / "trained.h5mu", tmp_path / "model"
    argv = [
        "cross-modal-match",
        "--input",
        str(simulated_files["paired"]),
        "--annotation",
        str(simulated_files["genes"]),
    ]
    code, out, err = _run([*argv, *_FAST, "--save-model", str(model_dir), "--output", str(trained)], capsys)
    assert code == 0, err
    assert _summary_value(out, "coverage of the model's features:") == "all (trained on these cells)"
    assert "modality mixing" not in out  # a demo figure only
    assert f"model saved to: {model_dir}" in out
    first = mudata.read_h5mu(trained)
    source = mudata.read_h5mu(simulated_files["paired"])  # the input is read backed: its counts reach the output
    for key in ("rna", "atac"):
        assert (first[key].X != source[key].X).nnz == 0
        assert "X_scclip" not in source[key].obsm  # and the input file is not written to
    foscttm = sctransfer.metrics.foscttm(first["rna"].obsm["X_scclip"], first["atac"].obsm["X_scclip"]).mean
    assert _summary_value(out, "FOSCTTM:").startswith(f"{foscttm:.3f} ")
    assert "on the training cells: optimistic, new cells get higher (worse) values" in _summary_value(out, "FOSCTTM:")

    again = tmp_path / "again.h5mu"
    zero_shot = ["cross-modal-match", "--input", str(simulated_files["paired"]), "--model", str(model_dir)]
    code, out, err = _run([*zero_shot, "--one-to-one", "--output", str(again)], capsys)
    assert code == 0, err
    second = mudata.read_h5mu(again)
    for key in ("rna", "atac"):  # the saved model embeds the training cells as the trained one did
        np.testing.assert_allclose(second[key].obsm["X_scclip"], first[key].obsm["X_scclip"], atol=1e-5)
        assert second[key].obs["sctransfer_match"].is_unique  # one to one
    assert second.uns["sctransfer_match"]["coverage"] == {"rna": 1.0, "atac": 1.0}
    assert "(one to one)" in _summary_value(out, "matched")

    unpaired = tmp_path / "unpaired_out.h5mu"
    zero_shot[2] = str(simulated_files["unpaired"])
    code, out, err = _run([*zero_shot, "--pairing-top-k", "5", "--output", str(unpaired)], capsys)
    assert code == 0, err
    assert _summary_value(out, "FOSCTTM:") == "not computed (the modalities hold different cells)"
    third = mudata.read_h5mu(unpaired)
    assert third["rna"].obs["sctransfer_match"].str.startswith("atac:").all()
    pairing = third["rna"].obsm["sctransfer_pairing"]
    assert pairing.shape == (third["rna"].n_obs, third["atac"].n_obs)
    np.testing.assert_array_equal(np.diff(pairing.indptr), 5)


def test_match_output_may_replace_its_own_backed_input(simulated_files, tmp_path, capsys):
    """The input is read from disk as the tool runs; writing the results over that same file still works."""
    path = tmp_path / "in_place.h5mu"
    path.write_bytes(simulated_files["paired"].read_bytes())
    argv = ["cross-modal-match", "--input", str(path), "--annotation", str(simulated_files["genes"]), *_FAST]
    code, _, err = _run([*argv, "--output", str(path), "--overwrite"], capsys)
    assert code == 0, err
    written, source = mudata.read_h5mu(path), mudata.read_h5mu(simulated_files["paired"])
    for key in ("rna", "atac"):
        assert written[key].obsm["X_scclip"].shape[0] == source[key].n_obs
        assert (written[key].X != source[key].X).nnz == 0
    assert not list(tmp_path.glob(".*"))


def test_match_input_that_is_not_a_mudata_is_one_clear_line(tmp_path, capsys):
    text, adata = tmp_path / "notes.h5mu", tmp_path / "cells.h5ad"
    text.write_text("not hdf5")
    sctransfer.datasets.simulate_multiome(**cli._SIMULATED_MATCH, paired=True)["rna"].write_h5ad(adata)
    problems = {text: "could not be read as HDF5", adata: r"does not hold a MuData \(an AnnData .h5ad\?\)"}
    for path, problem in problems.items():
        code, out, err = _run(_match_args(path, tmp_path / "o.h5mu"), capsys)
        expected = rf"error: input file '{re.escape(str(path))}' {problem}.*; pass a MuData .h5mu file .*"
        assert re.fullmatch(expected, _one_line_error(code, out, err))
    assert not (tmp_path / "o.h5mu").exists()


def test_match_summary_and_hints_use_the_command_lines_names(simulated_files, tmp_path, capsys):
    """Other modality names reach the summary; re-running on written results names --overwrite, not key_added."""
    renamed = mudata.read_h5mu(simulated_files["paired"])
    renamed = mudata.MuData({"gex": renamed["rna"], "peaks": renamed["atac"]})
    path, model_dir, first = tmp_path / "renamed.h5mu", tmp_path / "model", tmp_path / "first.h5mu"
    renamed.write_h5mu(path)
    names = ["--rna-key", "gex", "--atac-key", "peaks"]
    train = ["cross-modal-match", "--input", str(path), "--annotation", str(simulated_files["genes"]), *names]
    code, _, err = _run([*train, *_FAST, "--save-model", str(model_dir), "--output", str(first)], capsys)
    assert code == 0, err
    zero_shot = ["cross-modal-match", "--input", str(path), "--model", str(model_dir), *names]
    code, out, err = _run([*zero_shot, "--output", str(tmp_path / "second.h5mu")], capsys)
    assert code == 0, err
    assert _summary_value(out, "coverage of the model's features:") == "gex 100.0%, peaks 100.0%"
    again = ["cross-modal-match", "--input", str(first), "--model", str(model_dir), *names]
    code, out, err = _run([*again, "--output", str(tmp_path / "third.h5mu")], capsys)
    message = _one_line_error(code, out, err)
    assert "would replace existing fields" in message and message.endswith("Pass --overwrite to replace them.")
    assert "key_added" not in message


def _match_args(input_file: Path, output: Path, *extra: str) -> list[str]:
    return ["cross-modal-match", "--input", str(input_file), "--annotation", "mm10", "--output", str(output), *extra]


def _one_line_error(code: int, out: str, err: str) -> str:
    assert code == 2 and out == ""
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ")
    return last


def test_match_missing_input_file(tmp_path, capsys):
    code, out, err = _run(_match_args(tmp_path / "absent.h5mu", tmp_path / "out.h5mu"), capsys)
    assert _one_line_error(code, out, err) == f"error: input file '{tmp_path / 'absent.h5mu'}' does not exist"


def test_match_existing_output_needs_overwrite(input_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(mudata, "read_h5mu", lambda *a, **k: pytest.fail("the input was read"))
    output = tmp_path / "out.h5mu"
    output.write_text("keep me")
    code, out, err = _run(_match_args(input_file, output), capsys)
    assert _one_line_error(code, out, err) == f"error: output file '{output}' exists; pass --overwrite to replace it"
    assert output.read_text() == "keep me"


def test_match_existing_save_model_folder(input_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(mudata, "read_h5mu", lambda *a, **k: pytest.fail("the input was read"))
    folder = tmp_path / "model"
    folder.mkdir()
    code, out, err = _run(_match_args(input_file, tmp_path / "out.h5mu", "--save-model", str(folder)), capsys)
    assert _one_line_error(code, out, err) == (
        f"error: --save-model folder '{folder}' exists; pass --overwrite to replace it"
    )
    assert list(folder.iterdir()) == [] and not (tmp_path / "out.h5mu").exists()


def test_match_model_folder_that_is_not_a_model(input_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(mudata, "read_h5mu", lambda *a, **k: pytest.fail("the input was read"))
    folder = tmp_path / "not_a_model"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    code, out, err = _run(_match_args(input_file, tmp_path / "out.h5mu", "--model", str(folder)), capsys)
    last = _one_line_error(code, out, err)
    assert str(folder) in last and "model.json" in last
    code, out, err = _run(_match_args(input_file, tmp_path / "out.h5mu", "--model", str(tmp_path / "nowhere")), capsys)
    assert _one_line_error(code, out, err) == f"error: --model folder '{tmp_path / 'nowhere'}' does not exist"
    assert not (tmp_path / "out.h5mu").exists()


def test_match_unpaired_input_needs_a_model(simulated_files, tmp_path, capsys):
    argv = _match_args(simulated_files["unpaired"], tmp_path / "out.h5mu", *_FAST)
    code, out, err = _run(argv, capsys)
    last = _one_line_error(code, out, err)
    assert "do not hold the same cells" in last and "--model" in last and "model=" not in last
    assert not (tmp_path / "out.h5mu").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cross-modal-match", "--input", "x.h5mu", "--annotation", "mm10"], "--output is required with --input"),
        (
            ["cross-modal-match", "--input", "x.h5mu", "--output", "y.h5mu"],
            "--annotation is required with --input (or pass --model)",
        ),
        (["cross-modal-match", "--pairing-top-k", "0"], "expected a positive integer, got 0"),
        (
            ["cross-modal-match", "--model", "m", "--max-steps", "5", "--preset", "base"],
            "--preset and --max-steps set how a model is trained; not with --model",
        ),
        (["cross-modal-match", "--preset", "large"], "--preset must be one of tiny, small, base, got 'large'"),
        (
            ["cross-modal-match", "--match-method", "annoy"],
            "--match-method must be one of auto, exact, pynndescent, got 'annoy'",
        ),
    ],
)
def test_match_usage_errors(argv, message, capsys):
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert message in err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [([], {"preset": "tiny", "max_steps": 200}), (["--max-steps", "50"], {"preset": "tiny", "max_steps": 50})],
)
def test_match_simulate_trains_briefly_unless_told(extra, expected, monkeypatch, capsys):
    calls = []

    def record(mdata, **kwargs):
        calls.append(kwargs)
        raise ValueError("stopped by the test")

    monkeypatch.setattr(sctransfer.tl, "cross_modal_match", record, raising=False)
    code, out, err = _run(["cross-modal-match", "--simulate", *extra], capsys)
    assert _one_line_error(code, out, err) == "error: stopped by the test"
    assert {key: calls[0][key] for key in expected} == expected


# --------------------------------------------------------------------------------------------
# label-transfer with a saved model, novelty options
# --------------------------------------------------------------------------------------------
def test_transfer_help_lists_model_and_novelty_options(capsys):
    code, out, _ = _run(["label-transfer", "--help"], capsys)
    assert code == 0
    for option in ("--model DIR", "--save-model DIR", "--novelty-threshold Z", "--novel-label NAME"):
        assert option in out


def test_transfer_novelty_options_reach_the_library(input_file, tmp_path, fake, capsys):
    argv = _transfer_args(input_file, tmp_path / "out.h5mu", "--novelty-threshold", "1.5", "--novel-label", "Unknown")
    code, _, err = _run(argv, capsys)
    assert code == 0, err
    assert fake.calls[0]["novelty_threshold"] == 1.5 and fake.calls[0]["novel_label"] == "Unknown"


def test_transfer_train_save_and_apply_saved_model(simulated_files, tmp_path, capsys):
    """Train and save with --save-model, then label ATAC-only cells with --model (no RNA, no annotation needed)."""
    model_dir, trained = tmp_path / "scncl", tmp_path / "trained.h5mu"
    train = [
        "label-transfer",
        "--input",
        str(simulated_files["unpaired"]),
        "--annotation",
        str(simulated_files["genes"]),
    ]
    code, out, err = _run(
        [*train, "--max-steps", "30", "--save-model", str(model_dir), "--output", str(trained)], capsys
    )
    assert code == 0, err
    assert f"model saved to: {model_dir}" in out and (model_dir / "model.json").is_file()
    atac_only = tmp_path / "atac_only.h5mu"
    atac = mudata.read_h5mu(simulated_files["unpaired"])["atac"]
    mudata.MuData({"atac": atac}).write_h5mu(atac_only)
    applied = tmp_path / "applied.h5mu"
    argv = ["label-transfer", "--input", str(atac_only), "--model", str(model_dir), "--output", str(applied)]
    code, out, err = _run([*argv, "--novelty-threshold", "1.0", "--novel-label", "Unknown"], capsys)
    assert code == 0, err
    assert f"labelled {atac.n_obs:,} atac cells from the model in {model_dir}" in out
    written = mudata.read_h5mu(applied)
    obs, record = written["atac"].obs, written.uns["sctransfer"]
    assert not record["params"]["trained_here"]
    assert record["params"]["novelty_threshold"] == 1.0 and record["params"]["novel_label"] == "Unknown"
    novel = obs["sctransfer_novel"].to_numpy(bool)
    assert novel.any() and (obs["sctransfer_novelty"].to_numpy()[novel] > 1.0).all()
    assert (obs["sctransfer_label"].astype(str).to_numpy()[novel] == "Unknown").all()
    # the same model gives the same labels to the same cells as when it was trained
    first = mudata.read_h5mu(trained)["atac"].obs["sctransfer_label"].astype(str)
    same = obs["sctransfer_label"].astype(str).to_numpy()[~novel] == first.to_numpy()[~novel]
    assert same.mean() > 0.99


def test_transfer_bad_model_folder_fails_before_reading_the_input(input_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(mudata, "read_h5mu", lambda *a, **k: pytest.fail("the input was read"))
    folder = tmp_path / "damaged"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    argv = ["label-transfer", "--input", str(input_file), "--output", str(tmp_path / "out.h5mu"), "--model"]
    last = _one_line_error(*_run([*argv, str(folder)], capsys))
    assert str(folder) in last and "model.json" in last
    last = _one_line_error(*_run([*argv, str(tmp_path / "nowhere")], capsys))
    assert last == f"error: --model folder '{tmp_path / 'nowhere'}' does not exist"
    code, _, err = _run([*argv, str(folder), "--max-steps", "5"], capsys)
    assert code == 2 and "--max-steps set how a model is trained; not with --model" in err
    assert not (tmp_path / "out.h5mu").exists()


def test_labels_key_with_model_is_refused_before_any_work(input_file, tmp_path, fake, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    argv = _transfer_args(input_file, tmp_path / "out.h5mu", "--model", str(folder), "--labels-key", "celltype")
    code, _, err = _run(argv, capsys)
    assert code == 2 and "--labels-key set how a model is trained; not with --model" in err
    assert fake.calls == []


def test_label_transfer_prints_no_mudata_future_warning(input_file, tmp_path, fake, monkeypatch, capsys):
    def transfer_and_update(mdata, **kwargs):  # tl.label_transfer ends with mdata.update(), as this does
        fake(mdata, **kwargs)
        mdata.update()

    monkeypatch.setattr(sctransfer.tl, "label_transfer", transfer_and_update, raising=False)
    with mudata.set_options(pull_on_update=None):  # mudata's default, which warns on update()
        code, _, err = _run(_transfer_args(input_file, tmp_path / "out.h5mu"), capsys)
        with mudata.set_options() as options:
            assert options["pull_on_update"] is None  # the user's setting is restored
    assert code == 0, err
    assert "pull_on_update" not in err and "warning:" not in err


def test_summary_lists_only_predicted_types_and_the_unlabelled_cells(input_file, tmp_path, monkeypatch, capsys):
    def transfer(mdata, **kwargs):  # 8 reference types, 2 predicted; one cell without counts gets no label
        obs = mdata[kwargs["atac_key"]].obs
        types = ["T", "B", "NK", "Endo", "Astro", "Oligo", "Micro", "Peri"]
        obs["sctransfer_label"] = pd.Categorical([*PREDICTED[: len(obs) - 1], None], categories=types)
        obs["sctransfer_confidence"] = np.r_[np.linspace(0.5, 1.0, len(obs) - 1), np.nan]
        obs["sctransfer_novel"] = False

    monkeypatch.setattr(sctransfer.tl, "label_transfer", transfer, raising=False)
    code, out, err = _run(_transfer_args(input_file, tmp_path / "out.h5mu"), capsys)
    assert code == 0, err
    lines = out.splitlines()
    start = lines.index("predicted labels:")
    assert [line.split()[0] for line in lines[start + 1 : start + 3]] == ["T", "B"]
    assert lines[start + 3] == "  (6 reference types got no cell)"
    assert lines[start + 4] == "  no label (no counts)            1 ( 16.7%)"
    assert "Endo" not in out and " 0 (" not in out


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "novelty_threshold must be a finite number (robust z units), got nan.",
            "--novelty-threshold must be a finite number (robust z units), got nan.",
        ),
        (
            "labels_key is required to train (the RNA .obs column with cell types); or pass model=.",
            "--labels-key is required to train (the RNA .obs column with cell types); or pass --model.",
        ),
        (
            "max_steps must be a positive whole number of training steps, got 'x'.",
            "--max-steps must be a positive whole number of training steps, got 'x'.",
        ),
        ("match_method must be one of auto, exact, got 'x'.", "--match-method must be one of auto, exact, got 'x'."),
        # quoted, indexed or attribute names stay, and so do argument names that are English words
        (
            "model_kwargs['random_state'] overrides random_state=; set the seed with random_state=1.",
            "model_kwargs['random_state'] overrides --seed; set the seed with --seed 1.",
        ),
        (
            "recorded in mdata.uns['sctransfer']['params'][\"max_steps\"] by a model with another annotation",
            "recorded in mdata.uns['sctransfer']['params'][\"max_steps\"] by a model with another annotation",
        ),
        ("atac_layer='atac_layer' is not a layer", "--atac-layer atac_layer is not a layer"),
    ],
)
def test_bare_argument_names_read_as_flags(message, expected):
    assert cli._in_cli_terms(message) == expected


def test_demo_evaluates_with_cells_left_unlabelled(monkeypatch, capsys):
    def transfer(mdata, **kwargs):  # the last ATAC cell had no counts: label_transfer leaves it without a label
        obs = mdata[kwargs["atac_key"]].obs
        obs["sctransfer_label"] = pd.Categorical([*PREDICTED[:-1], None])
        obs["sctransfer_confidence"] = np.r_[np.linspace(0.5, 1.0, len(obs) - 1), np.nan]
        obs["sctransfer_novel"] = False

    monkeypatch.setattr(sctransfer.tl, "label_transfer", transfer, raising=False)
    monkeypatch.setattr(sctransfer.datasets, "mop_label_transfer", lambda: _tiny_mdata(atac_truth=True), raising=False)
    code, out, err = _run(["label-transfer"], capsys)
    assert code == 0, err
    # truth T T B B B NK, predicted T T T B B -; the NK cell is unlabelled, so 4 of 5 cells of reference types
    assert "closed-set accuracy: 0.800 (5 cells of reference types)" in out
    assert "cells without a label (no counts), not evaluated: 1" in out
    assert "cells of types absent from the reference" not in out
