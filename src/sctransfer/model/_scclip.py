"""SCCLIP: the scvi-tools model wrapping :class:`~sctransfer.module.SCCLIPModule`."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager, fields
from scvi.data._manager import AnnDataManagerValidationCheck
from scvi.model.base import BaseModelClass
from scvi.utils import track

from sctransfer._constants import ATAC, ATAC_COUNTS_KEY, RNA
from sctransfer._intervals import IntervalError, peak_coordinates
from sctransfer._matrix import layer_matrix, row_block
from sctransfer._validation import check_flag, check_indices, check_numeric, get_modality, user_stacklevel
from sctransfer.metrics import foscttm
from sctransfer.module import SCCLIPModule
from sctransfer.nn import FeatureLayout

from ._base import DEFAULT_STEPS_PER_EPOCH, INFERENCE_BATCH_SIZE, SaveLoadMixin, StepTrainingMixin, check_count
from ._deprecation import renamed_argument
from ._feature_mapping import FeatureMapping, map_genes, map_peaks
from ._linear_member import MIN_LINEAR_PEAKS, LinearMember, fuse
from ._modality_alignment import CanonicalAlignment
from ._paired_data import PairedDataModule, ScaledCounts, model_matrix, split_pairs
from ._scclip_input import patch_basis
from ._scncl_inputs import modality_counts, model_modality
from ._transform import InputTransform

logger = logging.getLogger(__name__)

DEFAULT_MODALITIES = {"rna_layer": RNA, "atac_layer": ATAC}
BASIS_MAX_CELLS = 20_000
#: Zero-shot use is refused when a data set reaches less than this share of the model's genes or peaks.
MIN_ZERO_SHOT_COVERAGE = 0.1
#: A model is trained on at least this many paired cells: the contrastive loss contrasts each cell with
#: the other cells of its batch (its negatives), and needs enough of them to learn anything.
MIN_PAIRED_CELLS = 32
#: Weight of the linear member in the joint embedding (``linear_weight``). Measured on MOp (zero-shot, seeds 0-2,
#: ``benchmarks/cross_modal_match.py``): w = 0.3 lowered FOSCTTM from 0.110 to 0.099 (libraries 09A-09C held out) and
#: from 0.111 to 0.100 (09J-09L); 0.4 ranked alike with less mixing of the modalities; BMMC (221 training pairs): 0.435
#: -> 0.398; a small training (1,723 pairs): 0.286 -> 0.213.
DEFAULT_LINEAR_WEIGHT = 0.3
#: Seed of the feature masks that thin the copies (one mask per copy, the same for every cell).
THINNING_SEED = 0
#: ``get_latent_representation(progress_bar=None)`` shows a progress bar from this many cells on.
PROGRESS_MIN_CELLS = 20_000
#: The held-out check (``train(train_size=...)``) warns when the held-out pairs' FOSCTTM exceeds the training pairs'
#: by more than this: the embedding then memorises its training pairs. Measured on MOp with the default preset (before
#: the linear member) and 10% of the pairs held out (seed 0): 1,551 pairs (09A+09B), 300 steps: 0.291 held out vs
#: 0.0004 on training pairs (gap 0.29, memorised); 6,919 pairs (09D-09L), 1,000 steps: 0.124 vs 0.031 (gap 0.09, the
#: usual gap of a full-size training, whose zero-shot FOSCTTM on 09A-09C is 0.117).
MEMORISATION_GAP = 0.15
#: Without a held-out check, training on fewer pairs than this, each seen ``SMALL_TRAINING_PASSES`` times or more,
#: warns that the embedding may memorise them and suggests the check.
SMALL_TRAINING_PAIRS = 5_000
SMALL_TRAINING_PASSES = 10
#: The memorisation warning names a setting that leaves out the alignment or the linear member only when it ranks
#: the held-out pairs better by more than this (the seed-to-seed spread of held-out FOSCTTM on MOp is about 0.006).
HELD_OUT_BETTER = 0.01
#: The held-out check compares at most this many held-out pairs with as many training pairs.
VALIDATION_MAX_PAIRS = 10_000
#: Size arguments (of the presets and ``module_kwargs``) that must be integers >= 1.
_SIZE_ARGUMENTS = ("n_patches", "n_components", "n_hidden", "n_layers", "n_heads", "n_ff", "n_output", "n_members")
#: Model sizes, described under the ``preset`` argument of :class:`SCCLIP` (training times: :doc:`/benchmarks`).
PRESETS: dict[str, dict[str, float]] = {
    "tiny": {"n_patches": 16, "n_components": 16, "n_hidden": 32, "n_layers": 1, "n_heads": 2, "n_ff": 64},
    "small": {
        "n_patches": 32,
        "n_components": 50,
        "n_hidden": 64,
        "n_layers": 1,
        "n_heads": 4,
        "n_ff": 128,
        "dropout": 0.0,
        "n_members": 2,
    },
    "base": {"n_patches": 128, "n_components": 64, "n_hidden": 256, "n_layers": 6, "n_heads": 8, "n_ff": 512},
}
Preset = Literal["tiny", "small", "base"]


def _check_linear_weight(value) -> None:
    """Refuse a ``linear_weight`` that is not a number in ``[0, 1)`` (NaN and booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) or not 0 <= value < 1:
        raise ValueError(
            f"linear_weight must be a number in [0, 1) (0: the network's embedding alone; 0.3, the default, was "
            f"measured on MOp), got {value!r}."
        )


class SCCLIP(StepTrainingMixin, SaveLoadMixin, BaseModelClass):
    """scCLIP: contrastive RNA/ATAC pre-training with one genomic-patch transformer per modality.

    Genes and peaks are ordered along the genome and cut into patches that never cross a
    chromosome; each modality's transformer reads its patches as tokens, and the two are
    trained with the CLIP loss so that the same cell's RNA and ATAC profiles land together in a
    joint, L2-normalised embedding (see :class:`~sctransfer.module.SCCLIPModule`). A trained
    model embeds new data sets without retraining: genes are matched by name, and a new peak set
    is mapped onto the model's peaks by genomic overlap. Most users call
    :func:`sctransfer.tl.cross_modal_match`, which does every step.

    Parameters
    ----------
    mdata
        Paired MuData registered with :meth:`setup_mudata`.
    registry
        Used by :meth:`load` to rebuild a model without data; leave ``None``.
    annotation
        Gene coordinates for ordering the genes: a GTF/GFF3/BED/TSV path, a
        :class:`~pandas.DataFrame` or a genome name (``"mm10"``, ``"hg38"``, ``"hg19"``). ``None`` reads
        ``chrom``/``start``/``end`` columns of the RNA modality's ``.var``. Genes without a
        coordinate are reported and placed in trailing ``"unplaced"`` patches.
    preset
        Model size: ``"small"`` (default; an ensemble of two encoder pairs, each a single transformer
        layer of 64 units, made for CPUs: about 3 minutes for 10,000 cells on 2 CPU cores), ``"base"``
        (the scCLIP authors' "small" transformer, 6 layers of 256 units, for a GPU) or ``"tiny"`` (tests
        and quick looks). A preset sets ``n_patches``, ``n_components``, ``n_hidden``, ``n_layers``,
        ``n_heads`` and ``n_ff`` (``"small"`` also ``dropout=0`` and ``n_members=2``);
        ``module_kwargs`` override them. Training times are on the :doc:`/benchmarks` page.
    random_state
        Seed of the weight initialisation and of the SVD behind the token projections.
    align_modalities
        After training, fit a :class:`~sctransfer.model.CanonicalAlignment` on the training pairs'
        embeddings and apply it in :meth:`get_latent_representation`, so that the RNA and ATAC cells of a
        type lie together in the joint embedding (integrated UMAPs and clusterings) instead of in two
        modality-specific clouds; partner rankings (FOSCTTM) are essentially unchanged. ``False`` keeps the
        contrastive encoders' raw output.
    linear_weight
        Weight ``w`` in ``[0, 1)`` of a linear member of the joint embedding (default 0.3,
        ``DEFAULT_LINEAR_WEIGHT``; ``0``: the network's embedding alone). After training, a linear member
        (``linear_member_``: regularised CCA, ridge 0.3, of the genes' 49 leading principal components of
        log-normalised counts and the peaks' TF-IDF LSI components 2-50, fitted on the training pairs the
        alignment is fitted on) joins the embedding: each cell's row becomes ``[sqrt(1 - w) * network, sqrt(w) *
        linear]``, both parts L2-normalised (cosine similarities are the weighted mean of the two members'),
        ``n_axes`` (at most 49) columns wider. New data sets go through the model's feature mapping first, so
        genes in another order and re-called peaks work. Measured end to end (``benchmarks/cross_modal_match.py``,
        seeds 0-2, zero-shot on MOp libraries held out from training), against ``w = 0``: FOSCTTM 0.110 -> 0.099
        (09A-09C) and 0.111 -> 0.100 (09J-09L), cell-type silhouette 0.489 / 0.505, neighbour mixing 0.78 / 0.80
        (:doc:`/benchmarks`). Models saved before the linear member existed (no ``linear_weight`` in their file)
        load with ``w = 0``, as they were trained.
    embedding_samples
        ``1`` (default): a cell's embedding is the encoders' output for its profile. ``K > 1``: the mean of the
        outputs for ``K`` thinned copies of its profile, as the encoders saw profiles in training (input dropout:
        each non-zero value kept with probability ``1 - input_dropout`` and scaled up to compensate). Copy ``k``
        keeps the features of a fixed random mask ``k`` (drawn once from ``THINNING_SEED``, the same for every
        cell), so a cell's embedding depends on its own profile only, never on the other cells embedded with it.
        Averaging ranks partners better (held-out MOp FOSCTTM after the alignment about 0.004 lower with 16
        copies) but every embedding, also the one of the training cells for the alignment, costs ``K`` times
        as much (measurements on the :doc:`/benchmarks` page). A model without input dropout embeds each cell once.
    feature_layouts
        Set by :meth:`load`; leave ``None``.
    **module_kwargs
        Override the preset or set other :class:`~sctransfer.module.SCCLIPModule` arguments
        (``n_patches``, ``n_components``, ``n_hidden``, ``n_layers``, ``n_heads``, ``n_ff``,
        ``dropout``, ``n_output``, ``pooling``, ``input_dropout``, ``initial_temperature``,
        ``max_logit_scale``, ``n_members``).

    Attributes
    ----------
    rna_layout_, atac_layout_
        :class:`~sctransfer.nn.FeatureLayout` of the genes and peaks.
    peak_coordinates_
        The model's peaks (``chrom``, ``start``, ``end``), for mapping new peak sets.
    rna_scaling_, atac_scaling_
        Input scaling fitted on the training cells (applied unchanged to new data).
    alignment_
        The :class:`~sctransfer.model.CanonicalAlignment` fitted after training (``None`` before training or
        with ``align_modalities=False``).
    linear_member_
        The linear member (:class:`~sctransfer.model.LinearMember`: per modality, one projection of normalised
        counts onto the canonical axes) fitted after training with ``linear_weight > 0`` (else ``None``).

    Raises
    ------
    ValueError
        Before any work: an unknown ``preset``, a size that is not an integer >= 1, a ``linear_weight`` that is
        not a finite number in ``[0, 1)``, fewer than ``MIN_PAIRED_CELLS`` (32) paired cells to train on, or
        fewer than 3 peaks with ``linear_weight > 0``.

    Examples
    --------
    >>> st.model.SCCLIP.setup_mudata(mdata)
    >>> model = st.model.SCCLIP(mdata, annotation="mm10")
    >>> model.train()
    >>> z_rna = model.get_latent_representation(modality="rna")
    """

    _module_cls = SCCLIPModule
    _module_arguments_set = ("feature_layouts", "rna_layout", "atac_layout")
    _model_keywords = ("n_patches",)
    _data_splitter_cls = PairedDataModule
    _default_modalities = DEFAULT_MODALITIES
    _tool_name = "cross_modal_match"  # the tool that wraps the model (named in hints)
    _saved_attributes = ("peak_coordinates_", "rna_scaling_", "atac_scaling_", "alignment_", "linear_member_")
    _saved_types = (InputTransform, CanonicalAlignment, LinearMember)

    def __init__(
        self,
        mdata: MuData | None = None,
        registry: dict | None = None,
        *,
        annotation: str | os.PathLike | pd.DataFrame | None = None,
        preset: Preset = "small",
        random_state: int = 0,
        align_modalities: bool = True,
        linear_weight: float = DEFAULT_LINEAR_WEIGHT,
        embedding_samples: int = 1,
        feature_layouts: dict | None = None,
        **module_kwargs,
    ):
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {list(PRESETS)}, got {preset!r}.")
        _check_linear_weight(linear_weight)
        check_count("embedding_samples", embedding_samples)
        size = {**PRESETS[preset], **module_kwargs}
        for name in _SIZE_ARGUMENTS:
            if name in size:
                check_count(name, size[name])
        super().__init__(mdata, registry)
        if mdata is not None and registry is None:  # a model to train (load() passes the saved registry)
            n_cells = mdata.mod[self._modalities["rna_layer"]].n_obs
            if n_cells < MIN_PAIRED_CELLS:
                raise ValueError(
                    f"SCCLIP trains on {n_cells} paired cells; it needs at least {MIN_PAIRED_CELLS} (the contrastive "
                    "loss contrasts each cell with the other cells of its batch). Train on more cells (e.g. pool "
                    "samples), or embed these cells with a model trained on a larger data set: "
                    "sctransfer.tl.cross_modal_match(mdata, model=...)."
                )
            self._check_member_can_be_fitted(linear_weight)
        n_patches = size.pop("n_patches")
        if feature_layouts is None:
            if mdata is None:
                raise ValueError("SCCLIP needs a MuData set up with SCCLIP.setup_mudata (or use SCCLIP.load).")
            feature_layouts = self._build_layouts(mdata, annotation, n_patches)
        self.align_modalities = align_modalities
        self.embedding_samples = embedding_samples
        self.alignment_: CanonicalAlignment | None = None
        self.linear_member_: LinearMember | None = None
        linear_weight = self._linear_weight = float(linear_weight)  # a plain float, also in the saved parameters
        self.rna_layout_ = FeatureLayout.from_dict(feature_layouts[RNA])
        self.atac_layout_ = FeatureLayout.from_dict(feature_layouts[ATAC])
        with torch.random.fork_rng():
            torch.manual_seed(random_state)
            self.module = self._module_cls(feature_layouts[RNA], feature_layouts[ATAC], **size)
        if mdata is not None and registry is None:  # load() restores the fitted inputs
            self._fit_inputs(random_state, size["n_components"])
        self._model_summary_string = (
            f"SCCLIP ({preset}): {self.rna_layout_.n_features} genes in {self.rna_layout_.n_patches} patches, "
            f"{self.atac_layout_.n_features} peaks in {self.atac_layout_.n_patches} patches, "
            f"{size['n_layers']} transformer layer(s) of width {size['n_hidden']} per modality"
            + (f", an ensemble of {self.module.n_members} encoder pairs." if self.module.n_members > 1 else ".")
        )
        # the layouts built from the data, and the resolved sizes (not the preset's current meaning), are what
        # load() must rebuild the module with
        annotation = None
        module_kwargs = {"n_patches": n_patches, **size}
        self.init_params_ = self._get_init_params(locals())

    @classmethod
    def _saved_init_params(cls, init_params: dict) -> dict:
        """Constructor arguments of a saved model; older files get the meaning their preset had then.

        Models saved before sizes were recorded (no ``n_patches`` in their ``module_kwargs``) were built from
        the presets of their time: ``"small"`` was then an ensemble of two encoder pairs of two transformer layers,
        without alignment. Models saved before the linear member (no ``linear_weight``) have none.
        """
        init_params = {**init_params, "non_kwargs": {"linear_weight": 0.0, **init_params["non_kwargs"]}}
        kwargs = init_params["kwargs"].get("module_kwargs", {})
        if "n_patches" in kwargs or init_params["non_kwargs"].get("preset") != "small":
            return init_params
        return {
            "non_kwargs": {**init_params["non_kwargs"], "align_modalities": False},
            "kwargs": {**init_params["kwargs"], "module_kwargs": {"n_layers": 2, "n_members": 2, **kwargs}},
        }

    # ------------------------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------------------------
    @classmethod
    def setup_anndata(cls, *args, **kwargs):
        """Not available: SCCLIP works on a MuData; use :meth:`~sctransfer.model.SCCLIP.setup_mudata`."""
        raise TypeError("SCCLIP needs a paired MuData with RNA and ATAC modalities; call SCCLIP.setup_mudata(mdata).")

    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        *,
        rna_layer: str | None = None,
        atac_layer: str | None = None,
        modalities: dict[str, str] | None = None,
        **kwargs,
    ) -> None:
        """Register a paired RNA / ATAC MuData (the same cells measured in both modalities).

        Parameters
        ----------
        mdata
            MuData with an RNA modality (counts) and an ATAC modality (peak counts) whose cells are
            the same, in the same order (same ``obs_names``).
        rna_layer, atac_layer
            Layers holding counts; ``None`` uses ``.X``.
        modalities
            Modality of each argument: ``{"rna_layer": "rna", "atac_layer": "atac"}`` by default;
            given entries replace these.
        **kwargs
            Passed to :meth:`~scvi.data.AnnDataManager.register_fields`.

        Raises
        ------
        KeyError
            A modality or a given layer is missing.
        ValueError
            When the two modalities do not hold the same cells in the same order, or the matrix read
            (the layer, or ``.X``) does not hold counts (NaN, negative or log-normalised values).
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        names = {**DEFAULT_MODALITIES, **(modalities or {})}
        rna = get_modality(mdata, names["rna_layer"], role="RNA", layer=rna_layer, counts_argument="rna_layer")
        atac = get_modality(
            mdata, names["atac_layer"], role="ATAC peaks", layer=atac_layer, counts_argument="atac_layer"
        )
        if not rna.obs_names.equals(atac.obs_names):
            shared = len(rna.obs_names.intersection(atac.obs_names))
            raise ValueError(
                f"SCCLIP trains on paired cells, but modalities {names['rna_layer']!r} ({rna.n_obs} cells) and "
                f"{names['atac_layer']!r} ({atac.n_obs} cells) do not hold the same cells in the same order "
                f"({shared} names shared). Train on multiome data: keep the shared cells "
                "(`mu.pp.intersect_obs(mdata)`) and put them in one order "
                f"(`mdata.mod[{names['atac_layer']!r}] = mdata[{names['atac_layer']!r}][mdata[{names['rna_layer']!r}]"
                ".obs_names].copy(); mdata.update()`; sctransfer.tl.cross_modal_match does that itself), or use a "
                "trained model on unpaired cells with sctransfer.tl.cross_modal_match(mdata, model=...)."
            )
        modality_map = cls._create_modalities_attr_dict(names, setup_method_args)
        manager = AnnDataManager(
            fields=[
                fields.MuDataLayerField(
                    REGISTRY_KEYS.X_KEY,
                    rna_layer,
                    mod_key=modality_map.rna_layer,
                    is_count_data=False,
                    mod_required=True,
                ),
                fields.MuDataLayerField(
                    ATAC_COUNTS_KEY, atac_layer, mod_key=modality_map.atac_layer, is_count_data=False, mod_required=True
                ),
            ],
            setup_method_args=setup_method_args,
            validation_checks=AnnDataManagerValidationCheck(check_fully_paired_mudata=False),
        )
        manager.register_fields(mdata, **kwargs)
        cls.register_manager(manager)

    def _layer(self, modality: str) -> str | None:
        return self.registry_["setup_args"]["rna_layer" if modality == RNA else "atac_layer"]

    def _build_layouts(self, mdata: MuData, annotation, n_patches: int) -> dict:
        rna = mdata.mod[self._modalities["rna_layer"]]
        atac = mdata.mod[self._modalities["atac_layer"]]
        self.peak_coordinates_ = peak_coordinates(atac, modality=self._modalities["atac_layer"])
        if annotation is not None:  # checked against the peaks' genome (another build or species warns)
            genes = FeatureLayout.from_genes(
                rna.var_names, annotation, n_patches=n_patches, modality=RNA, peaks=self.peak_coordinates_
            )
        else:
            try:
                coords = peak_coordinates(rna, modality=self._modalities["rna_layer"])
            except IntervalError as error:
                raise IntervalError(
                    "SCCLIP orders genes along the genome: pass annotation= (a GTF/GFF3/BED/TSV path, a DataFrame, "
                    "or a genome name such as 'mm10' or 'hg38'), or add 'chrom', 'start' and 'end' columns to the "
                    f"RNA modality's .var. ({error})"
                ) from None
            genes = FeatureLayout.from_coordinates(rna.var_names, coords, n_patches=n_patches, modality=RNA)
        peaks = FeatureLayout.from_coordinates(
            atac.var_names, self.peak_coordinates_, n_patches=n_patches, modality=ATAC
        )
        return {RNA: genes.to_dict(), ATAC: peaks.to_dict()}

    def _training_counts(self, modality: str, *, check: bool = True):
        """The registered counts of one modality: CSR in memory, or the backed matrix itself.

        ``check`` reads every stored value once (finite numbers); pass False where this training has checked them.
        """
        key = REGISTRY_KEYS.X_KEY if modality == RNA else ATAC_COUNTS_KEY
        counts = self.adata_manager.get_from_registry(key)
        if check:
            check_numeric(counts, what=f"the {modality} counts")
        return model_matrix(counts)

    def _fit_inputs(self, random_state: int, n_components: int) -> None:
        """Fit the input scaling and the token projections' principal axes on the training cells.

        The scaling's statistics stream over all cells block by block; the principal axes are fitted on
        at most ``BASIS_MAX_CELLS`` randomly chosen cells, the only rows held in memory (a backed matrix
        stays on disk).
        """
        rng = np.random.default_rng(random_state)
        layouts = ((RNA, "max_scaled_log", self.rna_layout_), (ATAC, "max_scaled_tfidf", self.atac_layout_))
        for modality, name, layout in layouts:
            counts = self._training_counts(modality)
            scaling = InputTransform.fit(counts, name=name)
            setattr(self, f"{modality}_scaling_", scaling)
            rows = np.arange(counts.shape[0])
            if len(rows) > BASIS_MAX_CELLS:
                rows = np.sort(rng.choice(rows, BASIS_MAX_CELLS, replace=False))
            basis = patch_basis(
                scaling.sparse(row_block(counts, rows)),
                layout.padded_columns(),
                layout.n_patches,
                n_components,
                random_state=random_state,
            )
            self.module.set_basis(modality, *basis)

    # ------------------------------------------------------------------------------------
    # new data
    # ------------------------------------------------------------------------------------
    def _modality_of(self, data: MuData | AnnData | None, modality: str) -> AnnData:
        if modality not in (RNA, ATAC):
            raise ValueError(f"modality must be 'rna' or 'atac', got {modality!r}.")
        if data is None:
            if self.adata is None:
                raise ValueError("The model was loaded without data; pass the data to embed (adata=...).")
            data = self.adata
        return model_modality(data, self._modalities[f"{modality}_layer"])[0]

    def feature_mapping(self, data: MuData | AnnData, modality: Literal["rna", "atac"]) -> FeatureMapping:
        """How a data set's features map onto the model's (for zero-shot use).

        Genes are matched by name (repeated gene names are an error; model genes the data lack
        are read as zero, with a warning); peaks by genomic overlap (the counts of all new peaks
        that overlap a model peak are added up; identical peak sets are matched by name).

        Parameters
        ----------
        data
            A MuData holding the modality (under the name used at training) or the modality's
            :class:`~anndata.AnnData` itself.
        modality
            ``"rna"`` or ``"atac"``.

        Returns
        -------
        A :class:`~sctransfer.model.FeatureMapping`; its ``coverage`` is the share of
        the model's features that the data set reaches.

        Raises
        ------
        ValueError
            When the data reach less than 10% (``MIN_ZERO_SHOT_COVERAGE``) of the model's genes or
            peaks (another genome build, species or gene naming), or repeat a gene name.
        """
        adata = self._modality_of(data, modality)
        if modality == RNA:
            mapping = map_genes(adata.var_names, self.rna_layout_.feature_names, what="the RNA data")
        else:
            mapping = map_peaks(
                peak_coordinates(adata, modality=ATAC),
                self.peak_coordinates_,
                new_names=adata.var_names,
                model_names=self.atac_layout_.feature_names,
            )
        mapping = dataclasses.replace(mapping, new_features=adata.var_names.copy())
        if mapping.coverage < MIN_ZERO_SHOT_COVERAGE:
            what = "genes (matched by name)" if modality == RNA else "peaks (matched by genomic overlap)"
            cause = (
                "gene symbols vs Ensembl IDs, or another species"
                if modality == RNA
                else "peaks on another genome build (hg19 vs hg38, mm9 vs mm10) or another species"
            )
            raise ValueError(
                f"The data reach only {mapping.coverage:.1%} of the model's {what}; at least "
                f"{MIN_ZERO_SHOT_COVERAGE:.0%} are needed for a meaningful embedding. Likely cause: {cause}. "
                "Lift the features over to the model's build, or train a model on this data."
            )
        return mapping

    def _check_mapping(self, mapping: FeatureMapping, adata: AnnData, modality: str) -> None:
        """Refuse a ``feature_mapping`` that is not one of ``adata``'s features onto this model's features."""
        n_model = (self.rna_layout_ if modality == RNA else self.atac_layout_).n_features
        if not isinstance(mapping, FeatureMapping) or mapping.matrix.shape != (adata.n_vars, n_model):
            got = mapping.matrix.shape if isinstance(mapping, FeatureMapping) else type(mapping).__name__
            raise ValueError(
                f"feature_mapping must map the data's {adata.n_vars} {modality} features onto the model's {n_model} "
                f"(model.feature_mapping(adata, modality={modality!r})), got {got}."
            )
        if mapping.new_features is not None and not mapping.new_features.equals(adata.var_names):
            raise ValueError(
                f"feature_mapping was built for {modality} features of other names or in another order than the "
                f"data's; build it for these data: model.feature_mapping(adata, modality={modality!r})."
            )

    def _scaled_counts(
        self,
        data: MuData | AnnData | None,
        modality: str,
        rows: np.ndarray | None = None,
        mapping: FeatureMapping | None = None,
    ) -> ScaledCounts:
        """Scaled input of one modality of ``data`` (or of its sorted ``rows``), in model feature order.

        New data are read as SCNCL reads them (:func:`~sctransfer.model._scncl_inputs.modality_counts`:
        the layer used at training when the data have it, else ``.X`` with a warning; counts
        required) and mapped onto the model's features (``mapping``, or :meth:`feature_mapping` when ``None``); the
        training modality (checked at set-up) is read as it is. Nothing is read yet: the returned
        :class:`~sctransfer.model._paired_data.ScaledCounts` reads the rows of each batch when asked, so
        a backed matrix stays on disk.
        """
        adata = self._modality_of(data, modality)
        argument, layer = f"{modality}_layer", self._layer(modality)
        training = self.adata is not None and adata is self.adata.mod.get(self._modalities[argument])
        if training:
            counts = layer_matrix(adata, layer)
        else:
            _, counts, _ = modality_counts(adata, self._modalities[argument], layer, argument=argument)
        if training:
            mapping = None
        elif mapping is None:
            mapping = self.feature_mapping(adata, modality)
        else:
            self._check_mapping(mapping, adata, modality)
        return ScaledCounts(counts=model_matrix(counts), scaling=self._scaling(modality), mapping=mapping, rows=rows)

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
        gradient_clip_val: float = 5.0,
        precision: str | None = None,
        random_state: int = 0,
        train_size: float | None = None,
        validation_size: float | None = None,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        **trainer_kwargs,
    ) -> None:
        """Train with the CLIP loss (AdamW, linear warm-up then cosine decay, gradient clipping).

        Training is counted in steps of ``batch_size`` paired cells; cells are visited in a fresh
        random order each pass over the data. An epoch is ``steps_per_epoch`` steps (one row of
        ``model.history``), not a pass over the cells. Without ``max_epochs`` and ``max_steps``
        the model trains 1,000 steps (20 epochs of 50 steps).

        Parameters
        ----------
        max_epochs
            Epochs of ``steps_per_epoch`` steps: ``max_steps = max_epochs * steps_per_epoch``.
        max_steps
            Training steps (instead of ``max_epochs``; giving both is an error); the cosine
            schedule ends there.
        batch_size
            Paired cells per step (the contrastive negatives of each cell).
        steps_per_epoch
            Steps per epoch, averaged into one row of ``model.history``.
        gradient_clip_val
            Gradient-norm clipping.
        precision
            Lightning precision; ``None`` uses ``"bf16-mixed"`` on a GPU and ``"32-true"`` otherwise.
        random_state
            Seed of the batch order and dropout (and of the held-out pairs).
        train_size, validation_size
            The held-out check (scvi-tools' arguments and sizes): train on a share ``train_size`` of the pairs and
            hold out ``validation_size`` (default: the rest), drawn at random; after training, the FOSCTTM of the
            held-out pairs and of as many training pairs (at most 10,000 each) go into ``model.history``
            (``"foscttm_validation"``, ``"foscttm_train"``) and the log, and a warning says when the held-out
            FOSCTTM exceeds the training one by more than 0.15 (``MEMORISATION_GAP``; a full-size training on 6,919
            MOp pairs shows a gap of 0.09, one on 1,551 pairs for 300 steps 0.29): the embedding then memorises
            its training pairs (the fix: more cells, fewer steps or a smaller preset). The pairs are in
            ``model.train_indices`` / ``model.validation_indices``; the alignment is fitted on the training pairs.
            Held-out pairs take no part in training (the input scaling and token projections, fitted without
            pairing when the model was built, see all cells). ``None`` for both (default, unlike scvi-tools'
            0.9): train on every pair, since each pair held out is one fewer to learn from (MOp 09D-09L, seed 0:
            zero-shot FOSCTTM on 09A-09C 0.109 with every pair, 0.117 with 10% held out); training on fewer
            than 5,000 pairs, each seen 10 times or more, then warns and suggests ``train_size=0.9``.
        accelerator, devices
            Lightning device settings; ``"auto"`` uses a GPU when there is one.
        plan_kwargs
            Optimiser settings of the training plan:
            ``optimizer`` (``"adamw"``), ``lr`` (peak, 1e-3), ``weight_decay`` (0.05),
            ``warmup_steps`` (a tenth of the steps, at most 100), ``schedule`` (``"cosine"``).
            The former keywords ``lr=``, ``weight_decay=``, ``warmup_steps=`` still work, with a
            DeprecationWarning.
        datasplitter_kwargs
            Options of the model's data module (it has none).
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer` (Lightning), e.g. ``enable_progress_bar=False``,
            ``strategy="ddp"``.

        Raises
        ------
        ValueError
            For a training length that is not a positive integer, both ``max_epochs`` and
            ``max_steps``, unknown ``plan_kwargs`` / ``datasplitter_kwargs``, sizes outside scvi-tools' ranges
            (``0 < train_size <= 1``, ``0 <= validation_size < 1``, their sum at most 1), fewer than 32
            training or (when holding out) held-out pairs, or a model loaded without data (before any work).
        ValueError
            (``TrainingDivergedError``) When the loss or the weights become NaN or infinite, usually from too high a
            learning rate: training stops at the end of that epoch, the weights are put back as they
            were before the call and the model is not marked as trained (the message suggests a
            lower ``lr``).
        KeyboardInterrupt
            On Ctrl-C: training stops, the model keeps the weights reached so far (and, with
            ``align_modalities``, an alignment fitted to them).
        """
        if precision is None:
            on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
            precision = "bf16-mixed" if on_gpu else "32-true"
        n_train, n_val = self._check_split(train_size, validation_size, random_state)
        retrained = bool(n_val) and self.is_trained_
        if retrained:
            warnings.warn(
                "This model was trained before: the pairs held out now were among its training pairs then, so the "
                "held-out check cannot show how it ranks new cells. Run the check on a new model.",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        try:
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
                trainer_kwargs={"precision": precision, "gradient_clip_val": gradient_clip_val, **trainer_kwargs},
                model_params={
                    "gradient_clip_val": gradient_clip_val,
                    "precision": precision,
                    "train_size": train_size,
                    "validation_size": validation_size,
                },
                data_inputs={"train_size": train_size, "validation_size": validation_size},
            )
        except KeyboardInterrupt:  # the weights reached so far are kept: the alignment must fit them
            self._fit_after_training(random_state)
            raise
        self._fit_after_training(random_state)
        if n_val:
            self._held_out_check(random_state, warn=not retrained)  # retrained: the warning above says it all
            return
        for name in ("foscttm_validation", "foscttm_train"):  # an earlier call's check is not this model's
            self.history_.pop(name, None)
        passes = self.train_params_["max_steps"] * min(batch_size, n_train) / n_train
        if n_train < SMALL_TRAINING_PAIRS and passes >= SMALL_TRAINING_PASSES:
            check = (
                "Check it with train(train_size=0.9) (tl.cross_modal_match: train_kwargs={'train_size': 0.9}), "
                "which reports both"
                if n_train // 10 >= MIN_PAIRED_CELLS
                else f"A held-out check needs at least {10 * MIN_PAIRED_CELLS} pairs (a tenth held out)"
            )
            warnings.warn(
                f"SCCLIP was trained on {n_train:,} pairs, each seen about {passes:.0f} times: on so few pairs the "
                "embedding can memorise them and rank new cells far worse (MOp, 1,551 pairs, 300 steps: FOSCTTM "
                f"0.0004 on the training pairs, 0.29 held out). {check}; the fixes are more "
                f"cells, fewer steps{'' if self._on_tiny() else ' or a smaller preset'}.",
                UserWarning,
                stacklevel=user_stacklevel(),
            )

    def _check_split(self, train_size: float | None, validation_size: float | None, seed: int) -> tuple[int, int]:
        """Numbers of training and held-out pairs of ``train(train_size=, validation_size=)``, checked before any work.

        Raises
        ------
        ValueError
            A model without data, sizes outside scvi-tools' ranges, or fewer than ``MIN_PAIRED_CELLS`` training or
            held-out pairs.
        """
        if self.adata is None:
            raise ValueError(
                "This model was loaded without data, so it has no pairs to train on: load it with its training data, "
                "SCCLIP.load(dir_path, adata=mdata), or embed new cells with it as it is."
            )
        return self.check_split_sizes(self.adata.mod[self._modalities["rna_layer"]].n_obs, train_size, validation_size)

    @staticmethod
    def check_split_sizes(n_pairs: int, train_size: float | None, validation_size: float | None) -> tuple[int, int]:
        """Numbers of training and held-out pairs that ``train(train_size=, validation_size=)`` gives ``n_pairs`` pairs.

        For tools, to refuse a held-out check that cannot run before any work.

        Raises
        ------
        ValueError
            Sizes outside scvi-tools' ranges, or fewer than 32 (``MIN_PAIRED_CELLS``) training or held-out pairs.
        """
        train, val, _ = split_pairs(n_pairs, train_size, validation_size, 0)
        if len(train) < MIN_PAIRED_CELLS or 0 < len(val) < MIN_PAIRED_CELLS:
            raise ValueError(
                f"train_size={train_size}, validation_size={validation_size} of {n_pairs:,} pairs leave {len(train):,} "
                f"to train on and {len(val):,} held out; each needs at least {MIN_PAIRED_CELLS} (the contrastive "
                "loss, and FOSCTTM, rank a cell among the others). Hold out a larger share, or train on more cells."
            )
        return len(train), len(val)

    def _on_tiny(self) -> bool:
        """Whether the model is of the smallest preset (no smaller one to suggest)."""
        return self.init_params_["non_kwargs"].get("preset") == "tiny"

    def _held_out_check(self, random_state: int, *, warn: bool = True) -> None:
        """FOSCTTM of the held-out and of as many training pairs, into ``history_`` and the log; warn if memorised.

        The scores recorded are those of the embedding users get (after the alignment, with the linear member).
        The warning says whether the network itself memorises (the gap of its own embedding), and names the
        setting that leaves out the alignment or the linear member only where that ranks the held-out pairs
        better (by more than ``HELD_OUT_BETTER``).
        """
        rng = np.random.default_rng(random_state)
        rows = {"validation": self.validation_indices, "train": self.train_indices}
        n = min(len(rows["validation"]), VALIDATION_MAX_PAIRS)
        own = (self.alignment_ is not None, self.linear_weight if self.linear_member_ is not None else 0.0)
        variants = {(align, weight) for align in (own[0], False) for weight in (own[1], 0.0)}
        scores = {variant: {} for variant in variants}
        for name, positions in rows.items():
            sample = np.sort(rng.choice(positions, n, replace=False)) if len(positions) > n else positions
            parts = {}
            for m in (RNA, ATAC):  # at most VALIDATION_MAX_PAIRS cells, read once into memory
                counts = row_block(self._training_counts(m, check=False), sample)
                raw = self._network_embedding(ScaledCounts(counts, self._scaling(m)), m, INFERENCE_BATCH_SIZE)
                parts[m] = (raw, None if self.linear_member_ is None else self.linear_member_.transform(counts, m))
            for align, weight in variants:
                z = {m: self._compose(*parts[m], m, align=align, weight=weight) for m in (RNA, ATAC)}
                scores[align, weight][name] = float(foscttm(z[RNA], z[ATAC]).mean)
        used = scores[own]
        epoch = pd.Index([math.ceil(self.train_params_["max_steps"] / self.train_params_["steps_per_epoch"]) - 1])
        epoch.name = "epoch"
        for name, value in used.items():
            self.history_[f"foscttm_{name}"] = pd.DataFrame({f"foscttm_{name}": [value]}, index=epoch)
        logger.info(
            "Held-out check: FOSCTTM %.4f on %d held-out pairs, %.4f on as many training pairs.",
            used["validation"],
            n,
            used["train"],
        )
        if not warn or used["validation"] - used["train"] <= MEMORISATION_GAP:
            return
        network = scores[False, 0.0]
        if network["validation"] - network["train"] > MEMORISATION_GAP:
            smaller = "" if self._on_tiny() else " or with a smaller preset ('tiny')"
            fix = f"Train on more cells, for fewer steps (max_steps){smaller}."
        else:  # the network ranks both alike: what is fitted on the training pairs after it favours them
            fitted = " and ".join(p for p, on in (("the alignment", own[0]), ("the linear member", own[1] > 0)) if on)
            fix = f"Train on more cells ({fitted} {'are' if ' and ' in fitted else 'is'} fitted on the training pairs)."
        best = min(variants, key=lambda variant: scores[variant]["validation"])
        if scores[best]["validation"] < used["validation"] - HELD_OUT_BETTER:
            left_out = [
                (part, setting)
                for part, setting, dropped in (
                    ("the alignment", "'align_modalities': False", own[0] and not best[0]),
                    ("the linear member", "'linear_weight': 0.0", own[1] > 0 and best[1] == 0),
                )
                if dropped
            ]
            fix += (
                f" Held out, the embedding without {' and '.join(part for part, _ in left_out)} ranks better "
                f"(FOSCTTM {scores[best]['validation']:.3f}): model_kwargs={{{', '.join(s for _, s in left_out)}}}."
            )
        warnings.warn(
            f"The embedding memorises its training pairs: FOSCTTM {used['validation']:.3f} on {n:,} held-out pairs "
            f"vs {used['train']:.3f} on as many training pairs (0 is perfect, 0.5 random; a gap above "
            f"{MEMORISATION_GAP} means new cells are ranked far worse than the training cells). {fix}",
            UserWarning,
            stacklevel=user_stacklevel(),
        )

    def _compose(
        self, raw: np.ndarray, linear: np.ndarray | None, modality: str, *, align: bool, weight: float
    ) -> np.ndarray:
        """The joint embedding from the network's ``raw`` embedding and the linear member's (``linear``) of some cells.

        ``raw`` is mapped by the :attr:`alignment_` when ``align`` (and there is one), and joined with ``linear``
        with weight ``weight`` when it is above 0 (see :func:`~sctransfer.model._linear_member.fuse`).
        """
        z = self.alignment_.transform(raw, modality) if align and self.alignment_ is not None else raw
        return z if weight == 0 or linear is None else fuse(z, linear, weight)

    def _scaling(self, modality: str) -> InputTransform:
        return self.rna_scaling_ if modality == RNA else self.atac_scaling_

    def _fit_after_training(self, random_state: int) -> None:
        """Fit the :class:`CanonicalAlignment` (``align_modalities``) and the :class:`LinearMember` (``linear_weight``).

        Both are fitted on (at most ``BASIS_MAX_CELLS``) training pairs: the alignment on their raw embeddings, the
        linear member on their counts. These rows are read once, into memory (a backed matrix stays on disk).
        """
        if not self.align_modalities and self.linear_weight == 0:
            self.alignment_ = self.linear_member_ = None
            return
        rows = self.train_indices  # the pairs trained on (all of them without a held-out check)
        if rows is None:  # interrupted before the trainer recorded them
            rows = np.arange(self.adata.mod[self._modalities["rna_layer"]].n_obs)
        if len(rows) > BASIS_MAX_CELLS:
            rows = np.sort(np.random.default_rng(random_state).choice(rows, BASIS_MAX_CELLS, replace=False))
        counts = {m: row_block(self._training_counts(m, check=False), rows) for m in (RNA, ATAC)}
        self.alignment_ = self.linear_member_ = None
        if self.align_modalities:
            raw = {
                m: self._network_embedding(ScaledCounts(counts[m], self._scaling(m)), m, INFERENCE_BATCH_SIZE)
                for m in (RNA, ATAC)
            }
            self.alignment_ = CanonicalAlignment.fit(raw[RNA], raw[ATAC])
        if self.linear_weight > 0:
            self.linear_member_ = LinearMember.fit(counts[RNA], counts[ATAC], random_state=random_state)

    def _plan_defaults(self, n_steps: int) -> dict:
        warmup = min(100, max(1, n_steps // 10))
        return {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05, "warmup_steps": warmup, "schedule": "cosine"}

    def _training_inputs(self) -> dict:
        return {"rna_scaling": self.rna_scaling_, "atac_scaling": self.atac_scaling_}

    # ------------------------------------------------------------------------------------
    # results
    # ------------------------------------------------------------------------------------
    def _check_member_can_be_fitted(self, weight: float) -> None:
        """Refuse a weight above 0 for training data of fewer peaks than the linear member's LSI needs."""
        n_peaks = self.adata.mod[self._modalities["atac_layer"]].n_vars
        if weight > 0 and n_peaks < MIN_LINEAR_PEAKS:
            raise ValueError(
                f"The linear member (linear_weight={weight:g}) needs at least {MIN_LINEAR_PEAKS} peaks for its LSI, "
                f"got {n_peaks}. Pass linear_weight=0.0 to leave the linear member out."
            )

    @property
    def linear_weight(self) -> float:
        """Weight of the linear member in the joint embedding (``linear_weight`` of :class:`SCCLIP`).

        May be changed on a trained model that has a linear member (``0`` leaves it out of the embedding); the new
        weight is what :meth:`get_latent_representation` uses, what :meth:`save` writes and what the tools record.

        Raises
        ------
        ValueError
            Not a number in ``[0, 1)``, above 0 on a model trained without a linear member, or above 0 before
            training on data of fewer than 3 peaks.
        """
        return self._linear_weight

    @linear_weight.setter
    def linear_weight(self, value: float) -> None:
        _check_linear_weight(value)
        if value > 0 and self.is_trained_ and self.linear_member_ is None:
            raise ValueError(
                "This model was trained without a linear member (linear_weight=0), so it has none to weigh. Build "
                f"and train a new model with model_kwargs={{'linear_weight': {value:g}}}."
            )
        if value > 0 and not self.is_trained_ and self.adata is not None:
            self._check_member_can_be_fitted(value)
        self._linear_weight = float(value)
        self.init_params_["non_kwargs"]["linear_weight"] = self._linear_weight  # saved and recorded as used

    @property
    def temperature(self) -> float:
        """The learned temperature of the contrastive loss."""
        return float(1.0 / self.module.logit_scale.detach().cpu())

    @renamed_argument("data", "adata")
    def get_latent_representation(
        self,
        adata: MuData | AnnData | None = None,
        *,
        modality: Literal["rna", "atac"],
        indices: Sequence[int] | np.ndarray | None = None,
        batch_size: int | None = None,
        feature_mapping: FeatureMapping | None = None,
        progress_bar: bool | None = None,
    ) -> np.ndarray:
        """Joint embedding of the cells of one modality (L2-normalised rows).

        The encoders' output (averaged over thinned copies of each cell with ``embedding_samples > 1``,
        see :class:`SCCLIP`), mapped by the model's :attr:`alignment_` when it has one (the default
        after training), so that both modalities share one space; with ``linear_weight > 0``, joined by the
        linear member's embedding of the same counts (see :class:`SCCLIP`). Cosine similarity across
        modalities ranks partners.

        Parameters
        ----------
        adata
            ``None`` for the training data; otherwise a MuData holding the modality (under the name
            used at training; the other modality is not needed) or the modality's
            :class:`~anndata.AnnData` alone. Its features are mapped onto the model's
            (:meth:`feature_mapping`); counts are read from the layer used at training when the data
            have it, else from ``.X`` (with a warning naming the layer), and must be raw counts. (The
            former keyword ``data=`` works, with a DeprecationWarning.)
        modality
            ``"rna"`` or ``"atac"``.
        indices
            Positions of the cells to embed (in the modality's order); ``None`` for all.
        batch_size
            Cells per forward pass; ``None``: 1,024 cells (as in
            :meth:`SCNCL.get_latent_representation <sctransfer.model.SCNCL.get_latent_representation>`).
        feature_mapping
            For new data: their mapping onto the model's features, as :meth:`feature_mapping` returned it for
            ``adata`` (when the caller needs it too, e.g. for its ``coverage``); ``None`` computes it. Ignored for
            the training data.
        progress_bar
            Show a progress bar over the batches (scvi-tools' ``track``, in the style of
            ``scvi.settings.progress_bar_style``); ``None``: from 20,000 cells on (``PROGRESS_MIN_CELLS``).

        Returns
        -------
        Cells x ``n_members * n_output`` float32 array (plus ``linear_member_.n_axes`` columns with
        ``linear_weight > 0``), rows in the order of ``indices`` (or of the modality's ``obs_names``).

        Raises
        ------
        ValueError
            ``modality`` is not ``"rna"``/``"atac"``, ``batch_size`` is not an integer >= 1, the data reach
            too few of the model's features, ``feature_mapping`` does not map these data's features onto the
            model's, or the matrix read is not counts (NaN, negative or log-normalised values).
        TypeError, IndexError
            ``indices`` are not integer positions of the modality's cells.
        """
        self._check_if_trained(warn=False)
        check_count("batch_size", batch_size, none="1,024 cells")
        if progress_bar is not None:
            check_flag("progress_bar", progress_bar)
        cells = self._modality_of(adata, modality)
        positions = check_indices(indices, cells.n_obs)
        if positions is not None and not len(positions):  # the module needs a cell to know its output width
            return self.get_latent_representation(
                cells, modality=modality, indices=[0], feature_mapping=feature_mapping, progress_bar=False
            )[:0]
        rows, order = (None, None) if positions is None else np.unique(positions, return_inverse=True)
        n_cells = cells.n_obs if rows is None else len(rows)
        progress = n_cells >= PROGRESS_MIN_CELLS if progress_bar is None else progress_bar
        batch_size = batch_size or INFERENCE_BATCH_SIZE
        scaled = self._scaled_counts(cells, modality, rows, feature_mapping)
        z = self._embedding(scaled, modality, batch_size, progress=progress)
        return z if order is None else z[order]

    def _embedding(self, scaled: ScaledCounts, modality: str, batch_size: int, *, progress: bool = False) -> np.ndarray:
        """The embedding users get of the cells of ``scaled``, ``(n_cells, width)`` float32, built block by block.

        Each block of counts is read once: the network embeds it, the :attr:`alignment_` (when there is one) maps that
        embedding, and the :attr:`linear_member_`'s embedding of the same counts (when there is one) joins it. Only
        the output is held whole, so that memory grows with its width alone.
        """
        member = self.linear_member_ if self.linear_weight > 0 else None
        out = None
        for lo, raw, counts in self._network_blocks(scaled, modality, batch_size, progress=progress):
            linear = None if member is None else member.transform(counts, modality)
            z = self._compose(raw, linear, modality, align=True, weight=self.linear_weight)
            if out is None:
                out = np.empty((scaled.n_cells, z.shape[1]), dtype=np.float32)
            out[lo : lo + len(z)] = z
        return out

    def _network_embedding(self, scaled: ScaledCounts, modality: str, batch_size: int) -> np.ndarray:
        """The module's embedding of the cells of ``scaled`` before the alignment, ``(n_cells, n_output * members)``."""
        return np.concatenate([raw for _, raw, _ in self._network_blocks(scaled, modality, batch_size)])

    def _thinning_masks(self, modality: str, n_samples: int) -> torch.Tensor | None:
        """Features kept in each thinned copy, ``(n_samples, n_features)`` float (``None``: the full profile once).

        Each feature is kept with probability ``1 - input_dropout`` and scaled by ``1 / (1 - input_dropout)``, as in
        training; the masks are drawn from ``THINNING_SEED`` and the modality alone.
        """
        rate = self.module.members[0][modality].input_dropout
        if n_samples == 1 or rate == 0:
            return None
        n_features = (self.rna_layout_ if modality == RNA else self.atac_layout_).n_features
        rng = np.random.default_rng((THINNING_SEED, 0 if modality == RNA else 1))
        keep = rng.random((n_samples, n_features)) >= rate
        return torch.from_numpy(keep / (1.0 - rate)).float()

    def _network_blocks(
        self, scaled: ScaledCounts, modality: str, batch_size: int, *, progress: bool = False
    ) -> Iterator[tuple[int, np.ndarray, sp.csr_matrix]]:
        """The module's embedding (before the alignment) of the cells of ``scaled``, ``batch_size`` at a time.

        Yields, per block, the position of its first cell, its embedding (float32) and its counts in the model's
        feature order (read once, for what else embeds them). With ``embedding_samples > 1``, the embedding is the
        mean of the embeddings of that many thinned copies of each cell (:meth:`_thinning_masks`), each member's
        part renormalised to length ``1 / sqrt(n_members)``. ``progress`` shows a bar over the batches.
        """
        masks = self._thinning_masks(modality, self.embedding_samples)
        was_training = self.module.training
        self.module.eval()
        device = next(self.module.parameters()).device
        try:
            starts = range(0, scaled.n_cells, batch_size)
            for lo in track(starts, description=f"Embedding {modality.upper()} cells", disable=not progress):
                counts = scaled.model_counts(slice(lo, min(lo + batch_size, scaled.n_cells)))
                x = scaled.network_input(counts)
                if masks is None:
                    yield lo, self.module.embed(x.to(device), modality).cpu().numpy().astype(np.float32), counts
                    continue
                features, values = x.indices()[1], x.values()
                total = sum(
                    self.module.embed(
                        torch.sparse_coo_tensor(
                            x.indices(),
                            values * keep[features].to(values.dtype),
                            x.shape,
                            is_coalesced=True,
                            check_invariants=False,
                        ).to(device),
                        modality,
                    )
                    for keep in masks
                ).cpu()
                members = total.view(len(total), self.module.n_members, -1)
                mean = (F.normalize(members, dim=-1) / np.sqrt(self.module.n_members)).flatten(1)
                yield lo, mean.numpy().astype(np.float32), counts
        finally:
            self.module.train(was_training)
