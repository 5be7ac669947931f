"""SCNCL: the scvi-tools model wrapping :class:`~sctransfer.module.SCNCLModule`.

The wrapper registers the data, builds and trains the module and serves results. Its parts live
beside it: the input pipeline (:mod:`._scncl_inputs`), the training data module
(:mod:`._unpaired_data`), the prediction ensemble (:mod:`._prediction`) and the novelty score
(:mod:`._novelty`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager, fields
from scvi.data._constants import _FIELD_REGISTRIES_KEY, _STATE_REGISTRY_KEY
from scvi.data._manager import AnnDataManagerValidationCheck
from scvi.model.base import BaseModelClass

from sctransfer._constants import ATAC, GENE_ACTIVITY, GENE_ACTIVITY_KEY, NEIGHBORS_KEY, RNA
from sctransfer._intervals import IntervalError, peak_coordinates
from sctransfer._knn import knn_query, unit_rows
from sctransfer._matrix import column_selection
from sctransfer._validation import (
    check_counts,
    check_flag,
    check_indices,
    check_labels,
    check_unpaired,
    get_modality,
    user_stacklevel,
)
from sctransfer.module import SCNCLModule
from sctransfer.pp._lsi import LSI
from sctransfer.pp._neighbors import neighbor_indices

from ._base import DEFAULT_STEPS_PER_EPOCH, INFERENCE_BATCH_SIZE, SaveLoadMixin, StepTrainingMixin, check_count
from ._deprecation import renamed_argument
from ._feature_mapping import map_genes
from ._labels import MuDataLabelsField
from ._novelty import DEFAULT_NOVELTY_THRESHOLD, DEFAULT_SMOOTHING_ROUNDS, combine_novelty_evidence
from ._peak_view import PeakView
from ._prediction import (
    DEFAULT_PRIOR_CORRECTION,
    DEFAULT_REFERENCE_NEIGHBORS,
    ForwardPass,
    TransferResult,
    ensemble_probabilities,
    most_probable,
    self_trained_probabilities,
)
from ._scncl_inputs import (
    CellInputs,
    ModalityData,
    PrecomputedInputs,
    SelectedRows,
    annotation_from_var,
    encoder_inputs,
    joint_pca,
    modality_counts,
    read_modality,
    registered_features,
    shared_genes,
)
from ._transform import InputTransform, InputTransformName
from ._unpaired_data import UnpairedDataModule

logger = logging.getLogger(__name__)

DEFAULT_MODALITIES = {
    "rna_layer": RNA,
    "gene_activity_layer": GENE_ACTIVITY,
    "labels_key": RNA,
    "neighbors_key": ATAC,
}
Modality = Literal["rna", "atac"]
#: A model is trained on at least this many labelled RNA cells: the reference vote and the novelty
#: score compare each cell with its ``DEFAULT_REFERENCE_NEIGHBORS`` (30) most similar labelled cells.
MIN_LABELLED_CELLS = DEFAULT_REFERENCE_NEIGHBORS
#: What the peak modality's ``.X`` must hold, for messages.
_PEAK_COUNTS_HINT = "put the raw peak counts in .X of the peak modality (the peak view reads .X)"
#: Seed of the randomised SVDs behind the joint PCA and the peak view, whatever ``random_state``: the
#: model's inputs are a function of the data alone (with a seed-dependent decomposition, labels changed
#: with ``random_state`` far more than through training: :doc:`/benchmarks`).
DECOMPOSITION_SEED = 0


class SCNCL(StepTrainingMixin, SaveLoadMixin, BaseModelClass):
    """scNCL label transfer from labelled scRNA-seq to unlabelled scATAC-seq (different cells).

    The model embeds RNA cells and the gene activity of ATAC cells with one shared encoder,
    learns the reference cell types on the RNA cells, and shapes the ATAC embedding with the
    neighbourhood structure of the raw peak space (see :class:`~sctransfer.module.SCNCLModule`).
    Set up the MuData with :meth:`setup_mudata` first; most users call
    :func:`sctransfer.tl.label_transfer`, which does every step.

    Parameters
    ----------
    mdata
        MuData registered with :meth:`setup_mudata`.
    registry
        Used by ``SCNCL.load`` to rebuild a model without data; leave ``None``.
    n_pcs
        The encoder reads the first ``n_pcs`` components of a PCA of the RNA and gene-activity
        cells together (fitted here, kept with the weights), not the genes: a shared low-rank
        input keeps the classifier on gene programmes both modalities express (the gain over the
        genes is on the :doc:`/benchmarks` page). ``None`` reads the genes directly, as the
        original scNCL. At least 1.
    n_peak_components
        Components of the ATAC cells' peak view (TF-IDF + LSI of the peaks, fitted here and kept
        with the model; the first, depth-related component is dropped). A second encoder reads it
        and learns to agree with the gene-activity embedding of the same cell; predictions for
        ATAC cells average the classifier over both views. ``None`` uses the gene activity alone;
        otherwise at least 2 (fewer when the data have fewer cells or peaks). New data sets use the
        peak view when their peaks reach at least half of the model's, matched by genomic overlap
        (by name when either side has no coordinates); otherwise a warning says it is not used.
    n_latent
        Embedding size (at least 1).
    encoder
        ``"linear"`` (default) or ``"mlp"``.
    input_transform
        How counts become network input (an ``InputTransform``, fitted per data set):
        ``"standardized_log"`` (default), ``log1p`` of counts normalised to 10,000 per cell, then
        each gene centred and scaled to unit variance and clipped to [-10, 10]; ``"log"``, the
        log-normalised values only; ``"binary"``, ``x > 0`` (the official scNCL default). The
        statistics are computed on each data set separately (RNA reference, ATAC gene activity,
        new data at prediction).
    random_state
        Seed of the weight initialisation of the MLP encoder. The linear encoder (default) starts
        deterministically from the joint PCA (see :class:`~sctransfer.module.SCNCLModule`), and the
        joint PCA and the peak view are decompositions of the data with a fixed seed
        (``DECOMPOSITION_SEED``), so that labels depend on the seed of :meth:`train` (the order in
        which cells are drawn) only.
    **module_kwargs
        Passed to :class:`~sctransfer.module.SCNCLModule` (loss weights, temperature, ...).

    Attributes
    ----------
    gene_names_
        The model's genes (in both the RNA reference and the gene activity), in model order.
    label_categories_
        The reference cell types (labels no cell carries are not types).
    gene_coordinates_
        ``chrom``, ``start`` (1-based, as in a GTF), ``end``, ``strand`` and ``gene_name`` of the
        model's genes, from the gene-activity modality's ``.var`` (as
        :func:`~sctransfer.pp.gene_activity` writes it), or None when it has no coordinates. It
        serves as the annotation that computes the gene activity of new ATAC cells.
    peak_view_
        The fitted peak view (TF-IDF + LSI of the training peaks), or None.
    reference_embedding_, reference_labels_
        Unit-length embedding and type code of the labelled RNA cells (set by :meth:`train`), for
        the reference vote and the novelty score.
    query_statistics_
        The input statistics (per-gene mean and spread of the transformed gene activity) of the ATAC
        cells the model was trained with (set by :meth:`train`; None for models saved before it). The
        gene activity of new ATAC cells is transformed with them rather than with their own, so that
        a query of a few types, or of one, keeps what sets its types apart (:meth:`transfer`).

    Raises
    ------
    ValueError
        Before any work: a size below its minimum; fewer than ``MIN_LABELLED_CELLS`` (30)
        labelled RNA cells; peak counts (the ATAC modality's ``.X``, read by the peak view) that are
        not counts.

    Examples
    --------
    >>> st.pp.gene_activity(mdata, "mm10", genes=mdata["rna"].var_names)
    >>> st.pp.peak_neighbors(mdata)
    >>> st.model.SCNCL.setup_mudata(mdata, labels_key="cell_type")
    >>> model = st.model.SCNCL(mdata)
    >>> model.train()
    >>> result = model.transfer()  # probabilities, embedding and novelty of the ATAC cells
    """

    _module_cls = SCNCLModule
    _module_arguments_set = ("n_input", "n_labels", "n_peak_input")
    _data_splitter_cls = UnpairedDataModule
    _default_modalities = DEFAULT_MODALITIES
    _tool_name = "label_transfer"  # the tool that wraps the model (named in hints)
    #: The set-up argument naming each modality's layer.
    _LAYER_ARGUMENTS = {RNA: "rna_layer", ATAC: "gene_activity_layer"}
    #: Attributes saved with the model (besides the weights and scvi-tools' own): plain values,
    #: arrays, data frames and the dataclasses of ``_saved_types``.
    _saved_attributes = (
        "gene_names_",
        "label_categories_",
        "gene_coordinates_",
        "peak_view_",
        "reference_embedding_",
        "reference_labels_",
        "query_statistics_",
    )
    _saved_types = (PeakView, LSI, InputTransform)

    def __init__(
        self,
        mdata: MuData | None = None,
        registry: dict | None = None,
        *,
        n_pcs: int | None = 30,
        n_peak_components: int | None = 50,
        n_latent: int = 64,
        encoder: Literal["linear", "mlp"] = "linear",
        input_transform: InputTransformName = "standardized_log",
        random_state: int = 0,
        **module_kwargs,
    ):
        check_count("n_latent", n_latent)
        check_count("n_pcs", n_pcs, none="read the genes directly")
        check_count("n_peak_components", n_peak_components, minimum=2, none="no peak view")
        if "n_hidden" in module_kwargs:
            check_count("n_hidden", module_kwargs["n_hidden"])
        super().__init__(mdata, registry)
        fitting = mdata is not None and registry is None  # load() restores what is fitted here instead
        if fitting:
            self._check_trainable(mdata, n_peak_components is not None)
        self._training_data: dict[str, tuple[pd.Index, ModalityData]] = {}
        self._training_peak_inputs: np.ndarray | None = None
        self.gene_names_ = shared_genes(self.registry_)
        self.label_categories_ = np.asarray(
            self.registry_[_FIELD_REGISTRIES_KEY][REGISTRY_KEYS.LABELS_KEY][_STATE_REGISTRY_KEY]["categorical_mapping"]
        ).astype(str)
        self.input_transform = InputTransform(name=input_transform).name
        self.gene_coordinates_: pd.DataFrame | None = None
        self.peak_view_: PeakView | None = None
        self.query_statistics_: InputTransform | None = None
        if n_pcs is not None and n_pcs >= len(self.gene_names_):
            raise ValueError(
                f"n_pcs={n_pcs} must be smaller than the number of shared genes ({len(self.gene_names_)})."
            )
        if mdata is not None:
            activity = mdata.mod[self._modalities["gene_activity_layer"]]
            self.gene_coordinates_ = annotation_from_var(activity.var, self.gene_names_)
        if n_peak_components is not None and fitting:
            peaks = mdata.mod[self._modalities["neighbors_key"]]
            n_peak_components = min(n_peak_components, min(peaks.shape) - 1)
            if n_peak_components >= 2:
                self.peak_view_, self._training_peak_inputs = PeakView.fit_transform(
                    peaks.X,
                    peaks.var_names,
                    coordinates=_coordinates(peaks, self._modalities["neighbors_key"]),
                    n_components=n_peak_components,
                    random_state=DECOMPOSITION_SEED,
                )
            else:
                n_peak_components = None
        n_peak_input = 0 if n_peak_components is None else n_peak_components - 1
        with torch.random.fork_rng():
            torch.manual_seed(random_state)
            self.module = self._module_cls(
                n_input=len(self.gene_names_),
                n_labels=len(self.label_categories_),
                n_pcs=n_pcs,
                n_peak_input=n_peak_input,
                n_latent=n_latent,
                encoder=encoder,
                **module_kwargs,
            )
        if n_pcs is not None and fitting:
            _, rna = self._modality_data(mdata, RNA)
            _, atac = self._modality_data(mdata, ATAC)
            if rna.n_cells + atac.n_cells <= n_pcs:
                raise ValueError(f"n_pcs={n_pcs} needs more than {n_pcs} RNA and ATAC cells together.")
            mean, components = joint_pca([rna, atac], n_pcs, random_state=DECOMPOSITION_SEED)
            self.module.set_input_pca(torch.from_numpy(mean), torch.from_numpy(components))
        self._model_summary_string = (
            f"SCNCL: {len(self.gene_names_)} shared genes, {len(self.label_categories_)} cell types, "
            f"{encoder} encoder to {n_latent} dimensions, input {input_transform}"
            + (f" through a {n_pcs}-component joint PCA." if n_pcs is not None else ".")
        )
        # the size actually used (bounded by the data) is what load() must rebuild
        self.init_params_ = self._get_init_params(locals())

    def _check_trainable(self, mdata: MuData, peak_view: bool) -> None:
        """Refuse, before any fitting, data a model cannot be trained on (too few labelled cells, peaks not counts)."""
        labels = np.asarray(self.adata_manager.get_from_registry(REGISTRY_KEYS.LABELS_KEY)).reshape(-1)
        n_labelled = int((labels >= 0).sum())
        if n_labelled < MIN_LABELLED_CELLS:
            labels_key = self.registry_["setup_args"]["labels_key"]
            raise ValueError(
                f"SCNCL learns the reference types from at least {MIN_LABELLED_CELLS} labelled RNA cells (the "
                f"reference vote and the novelty score compare each cell with its {DEFAULT_REFERENCE_NEIGHBORS} most "
                f"similar ones); {labels_key!r} labels {n_labelled} RNA cells. Use a larger or more completely "
                "labelled reference."
            )
        if peak_view:
            key = self._modalities["neighbors_key"]
            check_counts(mdata.mod[key].X, what=f"modality {key!r} .X", hint=_PEAK_COUNTS_HINT)

    # ------------------------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------------------------
    @classmethod
    def setup_anndata(cls, *args, **kwargs):
        """Not available: SCNCL works on a MuData; use :meth:`~sctransfer.model.SCNCL.setup_mudata`."""
        raise TypeError("SCNCL needs a MuData with RNA and ATAC modalities; call SCNCL.setup_mudata(mdata, ...).")

    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        *,
        labels_key: str,
        rna_layer: str | None = None,
        gene_activity_layer: str | None = None,
        neighbors_key: str = NEIGHBORS_KEY,
        modalities: dict[str, str] | None = None,
        **kwargs,
    ) -> None:
        """Register an unpaired RNA / ATAC MuData.

        Nothing of the MuData is changed but what every scvi-tools set-up adds (the label codes in
        ``.obs["_scvi_labels"]`` of the RNA modality and scvi's ``uns`` entries); the label column
        itself is read, not modified.

        Parameters
        ----------
        mdata
            MuData with an RNA modality (counts, labelled), a gene-activity modality (counts of the
            ATAC cells, from :func:`sctransfer.pp.gene_activity`) and the ATAC peak modality holding
            the peak-space kNN graph (from :func:`sctransfer.pp.peak_neighbors`).
        labels_key
            Column of the RNA modality's ``.obs`` with the cell types (strings, a categorical or
            integer codes). Cells without a label (NaN, None, or a placeholder string such as
            ``"nan"``) are not used for training; categories no cell carries are not reference
            types.
        rna_layer, gene_activity_layer
            Layers holding counts; ``None`` uses ``.X``.
        neighbors_key
            Key of the peak-space graph (``.uns[neighbors_key]`` / ``.obsp[f"{neighbors_key}_distances"]``).
        modalities
            Modality of each argument: ``{"rna_layer": "rna", "gene_activity_layer": "gene_activity",
            "labels_key": "rna", "neighbors_key": "atac"}`` by default; given entries replace these.
            The registry keeps the complete mapping.
        **kwargs
            Passed to :meth:`~scvi.data.AnnDataManager.register_fields`.

        Raises
        ------
        KeyError
            A modality, layer, label column or the graph is missing.
        TypeError
            The label column holds continuous numbers.
        ValueError
            No cell or a single type is labelled; the RNA and ATAC modalities share cell names;
            a modality repeats cell or gene names; the gene activity and the peaks hold different
            cells; no gene is shared between the RNA reference and the gene activity; the RNA or
            gene-activity matrix read (the layer, or ``.X``) does not hold counts (NaN, negative or
            log-normalised values).
        """
        modalities = {**DEFAULT_MODALITIES, **(modalities or {})}
        setup_method_args = cls._get_setup_method_args(**locals())
        rna = get_modality(
            mdata, modalities["rna_layer"], role="RNA reference", layer=rna_layer, counts_argument="rna_layer"
        )
        activity = get_modality(
            mdata,
            modalities["gene_activity_layer"],
            role="gene activity of the ATAC cells",
            layer=gene_activity_layer,
            counts_argument="gene_activity_layer",
        )
        atac = get_modality(mdata, modalities["neighbors_key"], role="ATAC peaks")
        check_unpaired(rna, activity, rna_key=modalities["rna_layer"], atac_key=modalities["gene_activity_layer"])
        labels = check_labels(rna, labels_key, key=modalities["labels_key"])
        n_unlabelled = int(pd.isna(labels).sum())
        if n_unlabelled:
            logger.info(
                "%d of %d RNA cells have no label in %r; they are not used for training.",
                n_unlabelled,
                len(labels),
                labels_key,
            )
        if not activity.obs_names.equals(atac.obs_names):
            raise ValueError(
                f"Modalities {modalities['gene_activity_layer']!r} and {modalities['neighbors_key']!r} must hold the "
                "same cells in the same order (the gene activity is computed from the peaks)."
            )
        neighbor_indices(atac, neighbors_key)
        if not len(rna.var_names.intersection(activity.var_names)):
            raise ValueError(
                f"No gene is shared between the RNA reference and the gene activity "
                f"(e.g. {list(rna.var_names[:3])} vs {list(activity.var_names[:3])}). Check that the annotation uses "
                "the same gene names (symbols vs Ensembl IDs) and species as the RNA data."
            )
        modality_map = cls._create_modalities_attr_dict(modalities, setup_method_args)
        mudata_fields = [
            fields.MuDataLayerField(
                REGISTRY_KEYS.X_KEY, rna_layer, mod_key=modality_map.rna_layer, is_count_data=False, mod_required=True
            ),
            fields.MuDataLayerField(
                GENE_ACTIVITY_KEY,
                gene_activity_layer,
                mod_key=modality_map.gene_activity_layer,
                is_count_data=False,
                mod_required=True,
            ),
            MuDataLabelsField(
                REGISTRY_KEYS.LABELS_KEY,
                labels_key,
                modality=modality_map.labels_key,
                mod_key=modality_map.labels_key,
                mod_required=True,
            ),
        ]
        manager = AnnDataManager(
            fields=mudata_fields,
            setup_method_args=setup_method_args,
            validation_checks=AnnDataManagerValidationCheck(check_fully_paired_mudata=False),
        )
        manager.register_fields(mdata, **kwargs)
        cls.register_manager(manager)

    # ------------------------------------------------------------------------------------
    # data access
    # ------------------------------------------------------------------------------------
    def _data(self, adata: MuData | None) -> MuData:
        """``adata``, or the training MuData for None."""
        if adata is None:
            if self.adata is None:
                raise ValueError("The model was loaded without data; pass the MuData to use (adata=...).")
            return self.adata
        if not isinstance(adata, MuData):
            raise TypeError(
                f"Expected a MuData with the gene-activity modality {self._modalities['gene_activity_layer']!r}, got "
                f"{type(adata).__name__}."
            )
        return adata

    def _modality_data(self, data: MuData | AnnData, modality: Modality) -> tuple[pd.Index, ModalityData]:
        """Cell names and counts of ``modality`` in model gene order, with their input statistics.

        The training MuData is read through the registry and kept (the statistics and encoder
        inputs are computed once for the set-up, training and predictions of the same cells).
        Other data (a MuData holding the modality under the name used at set-up, or the
        modality's AnnData itself) are checked against the model's genes by name
        (:func:`~sctransfer.model._feature_mapping.map_genes`, the gene matcher of both models); their
        statistics are their own, except for new ATAC cells, which take the training ATAC cells'
        (:attr:`query_statistics_`, when the model has them).
        """
        if modality not in (RNA, ATAC):
            raise ValueError(f"modality must be 'rna' or 'atac', got {modality!r}.")
        if data is self.adata and data is not None:
            if modality not in self._training_data:
                self._training_data[modality] = self._read_registered(modality)
            return self._training_data[modality]
        return self._read_modality(data, modality)

    def _read_registered(self, modality: Modality) -> tuple[pd.Index, ModalityData]:
        """A modality of the training MuData, as the registry gives it."""
        key = REGISTRY_KEYS.X_KEY if modality == RNA else GENE_ACTIVITY_KEY
        counts = self.adata_manager.get_from_registry(key)
        selection, _ = column_selection(registered_features(self.registry_, key), self.gene_names_)
        # a trained model: its registered cells' own statistics; loaded with other cells: the training cells'
        statistics = self.query_statistics_ if modality == ATAC else None
        data = read_modality(counts, selection, self.input_transform, statistics)
        return self.adata.mod[self._modalities[self._LAYER_ARGUMENTS[modality]]].obs_names, data

    def _read_modality(self, data: MuData | AnnData, modality: Modality) -> tuple[pd.Index, ModalityData]:
        """A modality of new data, checked against the model (layer, numbers, genes by name)."""
        argument = self._LAYER_ARGUMENTS[modality]
        key, layer = self._modalities[argument], self.registry_["setup_args"][argument]
        adata, counts, what = modality_counts(data, key, layer, argument=argument)
        mapping = map_genes(adata.var_names, self.gene_names_, what=what)
        statistics = self.query_statistics_ if modality == ATAC else None
        return adata.obs_names, read_modality(counts, mapping.matrix, self.input_transform, statistics)

    def _training_inputs(self) -> dict[str, CellInputs | np.ndarray | None]:
        """What the training data module (:attr:`_data_splitter_cls`) samples from, for the registered cells.

        Returns
        -------
        ``{"rna_inputs": ..., "atac_inputs": ..., "peak_inputs": ...}``: the encoder inputs of the
        RNA and gene-activity cells and the peak view of the ATAC cells (or None).
        """
        names, atac = self._modality_data(self.adata, ATAC)
        _, rna = self._modality_data(self.adata, RNA)
        return {
            "rna_inputs": self._encoder_inputs(rna),
            "atac_inputs": self._encoder_inputs(atac),
            "peak_inputs": self._peak_inputs(self.adata, names),
        }

    def _peak_inputs(self, mdata: MuData, obs_names: pd.Index) -> np.ndarray | None:
        """The peak view of the ATAC cells ``obs_names`` of ``mdata``, when the model and the data have one.

        The peaks (``.X`` of the peak modality, which must hold counts) are mapped onto the model's
        by :meth:`PeakView.selection <sctransfer.model._peak_view.PeakView.selection>`. For new
        data, a UserWarning says when the peak view cannot be used (no peak modality, other cells
        or too few of the model's peaks); the training data's projection is kept.
        """
        key = self._modalities["neighbors_key"]
        peaks = mdata.mod.get(key)
        if self.peak_view_ is None or self.module.peak_encoder is None:
            return None
        training = mdata is self.adata
        if training and self._training_peak_inputs is not None:
            return self._training_peak_inputs
        if peaks is None or not peaks.obs_names.equals(obs_names):
            problem = "has no modality" if peaks is None else "holds other cells than the gene activity in modality"
            warnings.warn(
                f"The MuData {problem} {key!r}, so the model's peak view is not used: the types of these cells are "
                "predicted from the gene activity alone. Pass the ATAC peaks of the same cells to use it.",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
            return None
        if not training:
            check_counts(peaks.X, what=f"modality {key!r} .X", hint=_PEAK_COUNTS_HINT)
        inputs = self.peak_view_.transform(peaks.X, peaks.var_names, _coordinates(peaks, key))
        if training:  # the training cells of a loaded model, projected with the saved peak view once
            self._training_peak_inputs = inputs
        return inputs

    def _batched(self, rows_to_input, n_cells: int, batch_size: int, fn) -> np.ndarray:
        """``fn`` (a module method) over all cells, ``batch_size`` at a time; ``rows_to_input(rows)`` gives a batch."""
        was_training = self.module.training
        self.module.eval()
        device = next(self.module.parameters()).device
        try:
            outputs = [
                fn(rows_to_input(slice(lo, min(lo + batch_size, n_cells))).to(device)).cpu().numpy()
                for lo in range(0, n_cells, batch_size)
            ]
        finally:
            self.module.train(was_training)
        return np.concatenate(outputs)

    def _encoder_inputs(self, data: ModalityData, rows: np.ndarray | None = None) -> CellInputs | SelectedRows:
        """What the encoder reads for every cell of ``data`` (or the sorted ``rows``): the joint-PCA scores.

        All cells' scores are computed once and kept with ``data`` (sparse products, see
        :func:`~sctransfer.model._scncl_inputs.encoder_inputs`); a subset of rows of data without
        them is computed alone. With ``n_pcs=None`` the encoder reads the genes, transformed batch
        by batch.
        """
        if self.module.n_pcs is None:
            return data if rows is None else SelectedRows(data, rows)
        if data.encoder_inputs is not None:
            return data.encoder_inputs if rows is None else PrecomputedInputs(data.encoder_inputs.values[rows])
        mean = self.module.pca_mean.cpu().numpy()
        components = self.module.pca_components.cpu().numpy()
        if rows is not None:
            return encoder_inputs(data, mean, components, rows)
        data.encoder_inputs = encoder_inputs(data, mean, components)
        return data.encoder_inputs

    def _embedding(self, data: ModalityData, batch_size: int, rows: np.ndarray | None = None) -> np.ndarray:
        """Embedding of every cell of ``data`` (or of the positions ``rows``, in their order), float32."""
        if rows is None:
            inputs = self._encoder_inputs(data)
            return self._batched(inputs.batch, inputs.n_cells, batch_size, self.module.encode)
        unique, inverse = np.unique(rows, return_inverse=True)
        inputs = self._encoder_inputs(data, unique)
        if not inputs.n_cells:
            return np.zeros((0, self.module.classifier.in_features), dtype=np.float32)
        return self._batched(inputs.batch, inputs.n_cells, batch_size, self.module.encode)[inverse]

    # ------------------------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------------------------
    def train(
        self,
        max_epochs: int | None = None,
        *,
        max_steps: int | None = None,
        batch_size: int = 256,
        steps_per_epoch: int = DEFAULT_STEPS_PER_EPOCH,
        class_balance: float = 0.0,
        random_state: int = 0,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        **trainer_kwargs,
    ) -> None:
        """Train the model, then keep the labelled RNA cells' embedding for predictions.

        Training is counted in steps: each step draws ``batch_size`` RNA and ATAC cells with
        replacement. An epoch is ``steps_per_epoch`` steps (one row of ``model.history``), not a
        pass over the cells. Without ``max_epochs`` and ``max_steps`` the model trains 1,000 steps
        (20 epochs of 50 steps).

        Parameters
        ----------
        max_epochs
            Epochs of ``steps_per_epoch`` steps: ``max_steps = max_epochs * steps_per_epoch``.
        max_steps
            Training steps (instead of ``max_epochs``; giving both is an error).
        batch_size
            Cells per modality and step (the ATAC batch also carries one neighbour per cell).
        steps_per_epoch
            Steps per epoch, averaged into one row of ``model.history``.
        class_balance
            RNA cells are drawn with probability proportional to ``1 / n_type ** class_balance``:
            0 (default) samples cells uniformly, 1 gives every type the same share (balancing
            over-predicts rare types: :doc:`/benchmarks`).
        random_state
            Seed of the weights' initialisation order, the sampler and dropout.
        accelerator, devices
            Lightning device settings.
        plan_kwargs
            Optimiser settings of the training plan:
            ``optimizer`` (``"sgd"`` with momentum 0.9 for the linear encoder, ``"adam"`` for the
            MLP, as the scNCL authors; ``"adamw"``), ``lr`` (0.01 for SGD, 1e-3 for Adam),
            ``weight_decay`` (5e-4), ``momentum``, ``warmup_steps`` (0), ``schedule``
            (``"cosine"``: the rate falls to 0 over the training; ``"constant"``). The former
            keywords ``optimizer=``, ``lr=``, ``weight_decay=`` still
            work, with a DeprecationWarning.
        datasplitter_kwargs
            Options of the model's data module: ``class_balance`` (as the keyword above).
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer` (Lightning), e.g. ``enable_progress_bar=False``,
            ``strategy="ddp"``.

        Raises
        ------
        ValueError
            For a training length that is not a positive integer, both ``max_epochs`` and
            ``max_steps``, or unknown ``plan_kwargs`` / ``datasplitter_kwargs`` (before any work).
        ValueError
            (``TrainingDivergedError``) When the loss or the weights become NaN or infinite, usually from too high a
            learning rate: training stops at the end of that epoch, the weights are put back as they
            were before the call and the model is not marked as trained (the message suggests a
            lower ``lr``).
        KeyboardInterrupt
            On Ctrl-C: training stops, the model keeps the weights reached so far and is not
            marked as trained.
        """
        datasplitter_kwargs = {"class_balance": class_balance, **(datasplitter_kwargs or {})}
        self._train(
            max_epochs,
            max_steps,
            batch_size=batch_size,
            steps_per_epoch=steps_per_epoch,
            random_state=random_state,
            accelerator=accelerator,
            devices=devices,
            plan_kwargs=plan_kwargs,
            datasplitter_kwargs=datasplitter_kwargs,
            trainer_kwargs=trainer_kwargs,
            model_params={"class_balance": datasplitter_kwargs["class_balance"]},
        )
        self._store_reference()

    def _plan_defaults(self, n_steps: int) -> dict:
        linear = isinstance(self.module.encoder, torch.nn.Linear)
        return {"optimizer": "sgd" if linear else "adam", "weight_decay": 5e-4, "schedule": "cosine"}

    def _store_reference(self) -> None:
        """Keep the labelled RNA cells' embedding, for the reference vote and the novelty score."""
        labels = np.asarray(self.adata_manager.get_from_registry(REGISTRY_KEYS.LABELS_KEY)).reshape(-1)
        _, rna = self._modality_data(self.adata, RNA)
        embedding = self._embedding(rna, INFERENCE_BATCH_SIZE)
        labelled = labels >= 0
        self.reference_embedding_ = unit_rows(embedding[labelled])
        self.reference_labels_ = labels[labelled].astype(np.int64)
        self.query_statistics_ = self._modality_data(self.adata, ATAC)[1].transform

    # ------------------------------------------------------------------------------------
    # results
    # ------------------------------------------------------------------------------------
    @renamed_argument("mdata", "adata")
    def get_latent_representation(
        self,
        adata: MuData | AnnData | None = None,
        *,
        modality: Modality,
        indices: Sequence[int] | np.ndarray | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Embedding of the cells of one modality in the shared space.

        Parameters
        ----------
        adata
            ``None`` for the training data; otherwise a MuData holding the modality (under the name
            used at set-up; the other modalities are not needed) or the modality's
            :class:`~anndata.AnnData` itself. Genes are matched by name: a gene of the model that
            the data lack is read as zero (with a warning naming how many and which); none at all,
            or a model gene named twice, is an error. Counts are read from the layer used at set-up
            when the data have it, else from ``.X`` (with a warning naming the layer), and must be
            raw counts. Input statistics are those of the given data set (all its cells, also when
            ``indices`` picks some).
        modality
            ``"rna"`` (the RNA modality) or ``"atac"`` (the gene activity of the ATAC cells).
        indices
            Positions of the cells to embed (in the modality's order); ``None`` for all.
        batch_size
            Cells per forward pass; ``None``: 1,024 cells (as in
            :meth:`SCCLIP.get_latent_representation <sctransfer.model.SCCLIP.get_latent_representation>`).

        Returns
        -------
        Cells x ``n_latent`` float32 array, rows in the order of ``indices`` (or of the modality's
        ``obs_names``).

        Raises
        ------
        KeyError
            The MuData lacks the modality.
        ValueError
            ``modality`` is not ``"rna"``/``"atac"``; the data share no gene with the model or name one twice;
            the matrix read is not counts (NaN, negative or log-normalised values).
        TypeError, IndexError
            ``indices`` are not integer positions of the modality's cells.
        """
        self._check_if_trained(warn=False)
        data = self.adata if adata is None else adata
        if data is None:
            raise ValueError("The model was loaded without data; pass the data to embed (adata=...).")
        names, cells = self._modality_data(data, modality)
        return self._embedding(cells, batch_size or INFERENCE_BATCH_SIZE, check_indices(indices, len(names)))

    @renamed_argument("mdata", "adata")
    def predict(
        self,
        adata: MuData | None = None,
        *,
        soft: bool = False,
        modality: Modality = ATAC,
        reference_neighbors: int = DEFAULT_REFERENCE_NEIGHBORS,
        prior_correction: float = DEFAULT_PRIOR_CORRECTION,
        self_training: bool = True,
        batch_size: int | None = None,
    ) -> np.ndarray | pd.DataFrame:
        """Predicted reference cell types.

        The prediction ensemble: the classifier's softmax
        (averaged with the peak view's for ATAC cells when the model and the data have one) and
        the share of each type among the cell's ``reference_neighbors`` most similar labelled
        RNA cells in the shared embedding, each divided by the reference frequency of the type to
        the power ``prior_correction`` and renormalised, then averaged (what each part adds:
        :doc:`/benchmarks`). For ATAC cells with a peak view, a self-training step then refines
        them: a logistic regression on the unit-length peak view learns the ensemble's labels
        (weighted by their probability) of the other ATAC cells, cross-fitted over 5 fixed folds,
        leaving out cells whose novelty score (:meth:`novelty_score`) is above the novelty threshold
        of :func:`~sctransfer.tl.label_transfer` (2.5) and types with fewer than 5 such labels; its
        probabilities, divided by the share of each label among the learning cells (a likelihood
        ratio, so the query's type mix is not counted twice), are pooled with the ensemble's at half
        weight (``ensemble * ratio ** 0.5``, renormalised; a type not learned gets the cell's lowest
        ratio). The highest probability of a cell is then a calibrated probability that its label
        is right on MOp SNARE-seq splits (expected calibration error 0.02-0.03), also with types
        missing from the reference or a query of a few types. For the training cells it is too high
        (by 0.07-0.15) when they lack the reference's largest type or the reference has few cells of
        theirs, and training on a query of one type mislabels it altogether (measured:
        :doc:`/benchmarks`); new ATAC cells, transformed with the training cells' statistics
        (:attr:`query_statistics_`), keep their calibration in such mixes (ECE 0.04-0.06; one type:
        accuracy 0.80, ECE 0.18; ``benchmarks/label_transfer_shift.py --model-query``), so label such
        a query with a model trained on a fuller one.

        Parameters
        ----------
        adata
            MuData to predict; ``None`` for the training data (see :meth:`get_latent_representation`).
            The peak view is used when the MuData has the peak modality with the same cells.
        soft
            Return class probabilities instead of labels.
        modality
            Cells to predict, ``"atac"`` (default) or ``"rna"``.
        reference_neighbors
            Reference RNA cells in the vote; 0 uses the classifier alone.
        prior_correction
            Exponent of the reference-frequency correction: 0 keeps the reference's type
            proportions as a prior, 1 removes them entirely. 0.25 labels fine subtypes of a large
            type more accurately when the reference samples every type as the query does (MOp, 23
            types: +0.02-0.03, macro-F1 -0.01-0.03), but a type the reference is short of then goes
            confidently to its neighbours (:doc:`/benchmarks`).
        self_training
            Refine the probabilities of ATAC cells with the self-training step (needs the peak
            view: ATAC cells only, with the peak modality of the same cells); ``False`` returns the
            ensemble alone (less confident than it is right when reference and query are alike).
        batch_size
            Cells per forward pass; ``None``: 1,024 cells.

        Returns
        -------
        ``soft=False``: array of type names (argmax of the probabilities). ``soft=True``: a
        :class:`~pandas.DataFrame` of float32 probabilities, cells (``obs_names``) x types.

        Raises
        ------
        TypeError
            ``self_training`` is not a bool.
        """
        self._check_if_trained(warn=False)
        mdata = self._data(adata)
        batch_size = batch_size or INFERENCE_BATCH_SIZE
        check_flag("self_training", self_training)
        # the self-training needs the novelty score, which compares each cell with its 30 nearest reference cells
        searched = max(reference_neighbors, DEFAULT_REFERENCE_NEIGHBORS) if self_training else reference_neighbors
        cells = self._forward(mdata, modality, batch_size, searched)
        proba = self._probability_frame(
            cells,
            self._type_probabilities(
                mdata, cells, modality, reference_neighbors, prior_correction, self_training, batch_size
            ),
        )
        return proba if soft else most_probable(proba)

    @renamed_argument("mdata", "adata")
    def novelty_score(
        self,
        adata: MuData | None = None,
        *,
        reference_neighbors: int = DEFAULT_REFERENCE_NEIGHBORS,
        smoothing_rounds: int = DEFAULT_SMOOTHING_ROUNDS,
        neighbors_key: str | None = None,
        batch_size: int | None = None,
    ) -> pd.Series:
        """Evidence that each ATAC cell belongs to a type missing from the reference.

        Sums two robust z-scores over the ATAC cells, the classifier's uncertainty
        (``1 - max softmax``) and the distance to the reference (``1 -`` mean cosine similarity to
        the ``reference_neighbors`` most similar labelled RNA cells), averages the sum over the
        cells' peak-space neighbours and puts the result back on the robust z scale (median 0,
        1.4826 x MAD = 1). How well it finds held-out types, and which types it cannot tell from
        their neighbours: :doc:`/benchmarks`.

        The scale is relative to the query cells, so it assumes that most of them are of
        reference types.

        Parameters
        ----------
        adata
            MuData with the gene-activity modality and the ATAC modality holding the peak-space
            graph; ``None`` for the training data.
        reference_neighbors
            Reference RNA cells in the mean similarity (at least 1).
        smoothing_rounds
            Rounds of averaging over the peak-space neighbours; 0 skips it (no graph needed).
        neighbors_key
            Key of the peak-space graph in the ATAC modality; ``None``: the key given to
            :meth:`setup_mudata`.
        batch_size
            Cells per forward pass; ``None``: 1,024 cells.

        Returns
        -------
        A :class:`pandas.Series` of float32 scores indexed by the ATAC ``obs_names``; higher = more
        likely novel.
        """
        self._check_if_trained(warn=False)
        if reference_neighbors < 1:
            raise ValueError(
                f"reference_neighbors must be at least 1 for the novelty score, got {reference_neighbors}."
            )
        mdata = self._data(adata)
        cells = self._forward(mdata, ATAC, batch_size or INFERENCE_BATCH_SIZE, reference_neighbors)
        score = self._novelty(mdata, cells, reference_neighbors, smoothing_rounds, neighbors_key)
        return pd.Series(score, index=cells.names, name="novelty")

    def transfer(
        self,
        adata: MuData | None = None,
        *,
        reference_neighbors: int = DEFAULT_REFERENCE_NEIGHBORS,
        prior_correction: float = DEFAULT_PRIOR_CORRECTION,
        self_training: bool = True,
        smoothing_rounds: int = DEFAULT_SMOOTHING_ROUNDS,
        neighbors_key: str | None = None,
        batch_size: int | None = None,
    ) -> TransferResult:
        """Type probabilities, embedding and novelty score of the ATAC cells, from one forward pass.

        The same values as :meth:`predict` (``soft=True``, with ``reference_neighbors`` and
        ``prior_correction``), :meth:`get_latent_representation` (``modality="atac"``) and
        :meth:`novelty_score` (with its default of 30 reference cells, the setting it was measured
        with, and ``smoothing_rounds`` and ``neighbors_key``), at the cost of one pass through the
        model and one reference search.

        Parameters
        ----------
        adata
            MuData with the gene-activity modality (and the ATAC modality with the peak-space
            graph, for the peak view and the novelty smoothing); ``None`` for the training data.
        reference_neighbors
            Reference RNA cells in the vote of the probabilities; 0 uses the classifier alone.
        prior_correction
            Exponent of the reference-frequency correction (see :meth:`predict`).
        self_training
            Refine the probabilities with the self-training step (see :meth:`predict`).
        smoothing_rounds
            Rounds of averaging of the novelty score over the peak-space neighbours; 0 skips it.
        neighbors_key
            Key of the peak-space graph; ``None``: the key given to :meth:`setup_mudata`.
        batch_size
            Cells per forward pass; ``None``: 1,024 cells.

        Returns
        -------
        A :class:`~sctransfer.model.TransferResult` indexed by the ATAC ``obs_names``.

        Raises
        ------
        KeyError
            The MuData lacks the gene-activity modality, or (``smoothing_rounds > 0``) the peak-space graph.
        ValueError
            The gene activity shares no gene with the model, or names one twice.
        TypeError
            ``self_training`` is not a bool.
        """
        self._check_if_trained(warn=False)
        check_flag("self_training", self_training)
        mdata = self._data(adata)
        batch_size = batch_size or INFERENCE_BATCH_SIZE
        cells = self._forward(mdata, ATAC, batch_size, max(reference_neighbors, DEFAULT_REFERENCE_NEIGHBORS))
        proba = self._type_probabilities(
            mdata, cells, ATAC, reference_neighbors, prior_correction, self_training, batch_size
        )
        novelty = self._novelty(mdata, cells, DEFAULT_REFERENCE_NEIGHBORS, smoothing_rounds, neighbors_key)
        return TransferResult(
            probabilities=self._probability_frame(cells, proba),
            embedding=cells.embedding,
            novelty=pd.Series(novelty, index=cells.names, name="novelty"),
        )

    def _probability_frame(self, cells: ForwardPass, proba: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(proba, index=cells.names, columns=self.label_categories_)

    def _forward(self, mdata: MuData, modality: Modality, batch_size: int, reference_neighbors: int) -> ForwardPass:
        """One modality's cells through the model, with their ``reference_neighbors`` nearest reference cells."""
        names, data = self._modality_data(mdata, modality)
        embedding = self._embedding(data, batch_size)
        classified = self._batched(
            lambda rows: torch.from_numpy(embedding[rows]), len(names), batch_size, self.module.classify
        )
        if reference_neighbors > 0:
            nearest, distance = knn_query(self.reference_embedding_, embedding, reference_neighbors, metric="cosine")
        else:
            nearest, distance = np.zeros((len(names), 0), dtype=np.int64), np.zeros((len(names), 0), dtype=np.float32)
        return ForwardPass(names, embedding, classified, nearest, 1.0 - distance)

    def _type_probabilities(
        self,
        mdata: MuData,
        cells: ForwardPass,
        modality: Modality,
        reference_neighbors: int,
        prior_correction: float,
        self_training: bool,
        batch_size: int,
    ) -> np.ndarray:
        """:meth:`predict`'s probabilities of the cells of a forward pass (cells x types, float32)."""
        peak_inputs = self._peak_inputs(mdata, cells.names) if modality == ATAC else None
        peak_classified = None
        if peak_inputs is not None:
            peak_classified = self._batched(
                lambda rows: torch.from_numpy(peak_inputs[rows]),
                len(cells.names),
                batch_size,
                self.module.predict_proba_peaks,
            )
        proba = ensemble_probabilities(
            cells.classified,
            peak_classified,
            cells.nearest[:, :reference_neighbors],
            self.reference_labels_,
            prior_correction,
        )
        if self_training and peak_inputs is not None:
            novel = self._self_training_novelty(mdata, cells) > DEFAULT_NOVELTY_THRESHOLD
            proba = self_trained_probabilities(proba, peak_inputs, novel=novel, cell_names=cells.names)
        return proba

    def _self_training_novelty(self, mdata: MuData, cells: ForwardPass) -> np.ndarray:
        """The novelty score with its defaults (smoothed when the data have the peak-space graph) for self-training."""
        atac = mdata.mod.get(self._modalities["neighbors_key"])
        key = self.registry_["setup_args"]["neighbors_key"]
        has_graph = atac is not None and key in atac.uns and f"{key}_distances" in atac.obsp
        rounds = DEFAULT_SMOOTHING_ROUNDS if has_graph else 0
        return self._novelty(mdata, cells, DEFAULT_REFERENCE_NEIGHBORS, rounds, None)

    def _novelty(
        self,
        mdata: MuData,
        cells: ForwardPass,
        reference_neighbors: int,
        smoothing_rounds: int,
        neighbors_key: str | None,
    ) -> np.ndarray:
        """:meth:`novelty_score` of the ATAC cells of a forward pass."""
        neighbors = None
        if smoothing_rounds > 0:
            key = neighbors_key or self.registry_["setup_args"]["neighbors_key"]
            atac = mdata.mod.get(self._modalities["neighbors_key"])
            if atac is None or not atac.obs_names.equals(cells.names):
                peaks = self._modalities["neighbors_key"]
                raise KeyError(
                    f"novelty_score smooths over the peak-space graph of modality {peaks!r}, "
                    "which must hold the same cells as the gene activity. Compute the graph with "
                    "sctransfer.pp.peak_neighbors, or pass smoothing_rounds=0."
                )
            neighbors = neighbor_indices(atac, key)
        return combine_novelty_evidence(
            cells.classified.max(axis=1),
            cells.similarity[:, :reference_neighbors].mean(axis=1),
            neighbors,
            smoothing_rounds,
        )


def _coordinates(peaks: AnnData, key: str) -> pd.DataFrame | None:
    """Coordinates of the peaks (``.var`` columns or names), or None when they cannot be read (then matched by name)."""
    try:
        return peak_coordinates(peaks, modality=key)
    except IntervalError:
        return None
