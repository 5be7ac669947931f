"""Everything the public functions write survives ``mdata.write()`` / ``write_zarr()`` and reading back.

MOp SNARE-seq's own type names include ``"L2/3"`` and ``"L5 IT"``: a ``/`` in a dict key of ``uns``
would be read back as a nested group, so these real names are the test.
"""

from __future__ import annotations

import mudata as md
import pytest

import sctransfer as st


@pytest.fixture(scope="module")
def labelled():
    """label_transfer (which also runs pp.gene_activity and pp.peak_neighbors) and refine_annotation, on MOp."""
    mdata = st.datasets.mop_label_transfer(rna_libraries=("09A", "09B"), atac_libraries=("09G", "09H"))
    assert "L2/3" in set(mdata["rna"].obs["cell_type"])
    st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", max_steps=50, novel_label="Unknown")
    st.tl.refine_annotation(mdata, "cell_type")
    return mdata


@pytest.fixture(scope="module")
def matched():
    """cross_modal_match with every optional output (one-to-one matches with unassigned cells, pairing)."""
    mdata = st.datasets.mop_snareseq(("09A",))
    rna, atac = mdata["rna"].copy(), mdata["atac"][: mdata["atac"].n_obs - 20].copy()
    unpaired = md.MuData({"rna": rna, "atac": atac})
    model = st.tl.cross_modal_match(
        mdata,
        annotation="mm10",
        preset="tiny",
        max_steps=20,
        return_model=True,
        train_kwargs={"enable_progress_bar": False},
    )
    st.tl.cross_modal_match(unpaired, model=model, one_to_one=True, pairing_top_k=5)
    assert unpaired["rna"].obs["sctransfer_match"].isna().sum() == 20  # more RNA than ATAC cells: some unassigned
    assert set(mdata.uns["sctransfer_match"]["params"]["model"]) >= {"preset"}  # plain settings, not the layouts
    assert "feature_layouts" not in mdata.uns["sctransfer_match"]["params"]["model"]
    return mdata, unpaired


@pytest.mark.parametrize("fmt", ["h5mu", "zarr"])
def test_label_transfer_results_round_trip(labelled, fmt, tmp_path, assert_same_data):
    path = tmp_path / f"lt.{fmt}"
    (labelled.write if fmt == "h5mu" else labelled.write_zarr)(path)
    back = (md.read_h5mu if fmt == "h5mu" else md.read_zarr)(path)
    assert_same_data(labelled, back)
    counts = back.uns["sctransfer"]["label_counts"]
    assert "L2/3" in set(counts["label"])  # stored as a table: the "/" is part of the name, not a group
    assert counts["n_cells"].sum() == back["atac"].n_obs


@pytest.mark.parametrize("fmt", ["h5mu", "zarr"])
def test_cross_modal_match_results_round_trip(matched, fmt, tmp_path, assert_same_data):
    for i, mdata in enumerate(matched):
        path = tmp_path / f"cm{i}.{fmt}"
        (mdata.write if fmt == "h5mu" else mdata.write_zarr)(path)
        back = (md.read_h5mu if fmt == "h5mu" else md.read_zarr)(path)
        assert_same_data(mdata, back)


@pytest.mark.parametrize("key_added", ["run/1", "", "__x"])
def test_unstorable_names_are_refused_before_any_work(key_added):
    mdata = st.datasets.mop_label_transfer(rna_libraries=("09A",), atac_libraries=("09G",))
    before = mdata.copy()
    with pytest.raises(ValueError, match="cannot be stored"):
        st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", key_added=key_added)
    with pytest.raises(ValueError, match="cannot be stored"):
        st.tl.cross_modal_match(mdata, annotation="mm10", key_added=key_added)
    assert list(mdata.uns) == list(before.uns) and list(mdata["atac"].obs) == list(before["atac"].obs)
