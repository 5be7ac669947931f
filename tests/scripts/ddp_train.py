"""Train SCNCL (label transfer) and SCCLIP on MOp with Lightning DDP; run by tests/test_distributed.py.

Usage: ``python ddp_train.py OUT.json DEVICES``. Lightning's DDP launcher starts the other
processes by running this same command again; only rank 0 writes the results.
"""

import json
import os
import sys

import numpy as np

import sctransfer as st

out, devices = sys.argv[1], int(sys.argv[2])
ddp = {"accelerator": "cpu", "devices": devices, "enable_progress_bar": False}
if devices > 1:
    ddp["strategy"] = "ddp"

mdata = st.datasets.mop_label_transfer(rna_libraries=("09A", "09B", "09C"), atac_libraries=("09G", "09H", "09I"))
truth = mdata["atac"].obs.pop("cell_type").astype(str)
mdata.update()
scncl = st.tl.label_transfer(
    mdata, labels_key="cell_type", annotation="mm10", max_steps=300, train_kwargs=ddp, return_model=True
)
accuracy = st.metrics.accuracy(truth, mdata["atac"].obs["sctransfer_label"].astype(str))

paired = st.datasets.mop_snareseq(("09A", "09B"))
st.model.SCCLIP.setup_mudata(paired)
scclip = st.model.SCCLIP(paired, annotation="mm10", preset="tiny")
scclip.train(max_steps=150, **ddp)
rna = scclip.get_latent_representation(modality="rna")
atac = scclip.get_latent_representation(modality="atac")
foscttm = st.metrics.foscttm(rna, atac).mean

if int(os.environ.get("LOCAL_RANK", "0")) == 0:
    loss = scclip.history["train_loss"]["train_loss"].to_numpy()
    with open(out, "w") as f:
        json.dump(
            {
                "world_size": int(scncl.trainer.world_size),
                "scncl_accuracy": float(accuracy),
                "scclip_world_size": int(scclip.trainer.world_size),
                "scclip_foscttm": float(foscttm),
                "scclip_first_loss": float(loss[0]),
                "scclip_last_loss": float(loss[-1]),
                "scclip_history_rows": len(loss),
                "embedding_finite": bool(np.isfinite(rna).all() and np.isfinite(atac).all()),
            },
            f,
        )
