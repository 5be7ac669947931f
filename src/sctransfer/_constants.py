"""Names and keys shared across layers: one home for each (import them from here, never re-declare them).

scvi-tools' own registry keys (``X``, ``labels``, ...) are :data:`scvi.REGISTRY_KEYS`; the keys below are
the ones sctransfer adds. This module imports nothing, so any layer may use it.
"""

# Default modality names of a MuData (and the keys of the two populations in a training batch).
RNA = "rna"
ATAC = "atac"
#: Modality holding the gene activity of the ATAC cells; also the ``uns`` key
#: :func:`~sctransfer.pp.gene_activity` records its parameters under.
GENE_ACTIVITY = "gene_activity"

# Registry keys added by the models (beside scvi.REGISTRY_KEYS).
#: SCNCL: the gene-activity matrix of the ATAC cells.
GENE_ACTIVITY_KEY = "gene_activity"
#: SCCLIP: the peak counts of the ATAC cells.
ATAC_COUNTS_KEY = "atac_counts"
#: SCNCL training batches: one random peak-space neighbour of each ATAC cell.
POSITIVE_KEY = "X_positive"
#: SCNCL training batches: the peak view of the ATAC cells.
PEAK_KEY = "X_peaks"

# Fields written into the data.
#: Peak-space neighbour graph: ``.uns[NEIGHBORS_KEY]``, ``.obsp[f"{NEIGHBORS_KEY}_distances"]``.
NEIGHBORS_KEY = "peak_neighbors"
#: TF-IDF + LSI embedding of the ATAC cells, ``.obsm[LSI_KEY]``.
LSI_KEY = "X_lsi"
#: Joint embedding written by :func:`~sctransfer.tl.label_transfer`.
SCNCL_EMBEDDING_KEY = "X_scncl"
#: Joint embedding written by :func:`~sctransfer.tl.cross_modal_match`.
SCCLIP_EMBEDDING_KEY = "X_scclip"
#: Default ``key_added`` of the tools: prefix of the obs columns and key of the ``uns`` record.
KEY_ADDED = "sctransfer"
#: Default column of the reference's cell types (the loaders' ``obs`` column).
CELL_TYPE_KEY = "cell_type"
