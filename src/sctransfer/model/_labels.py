"""The registry field of a partly labelled reference's cell types.

scvi-tools' :class:`~scvi.data.fields.CategoricalObsField` needs every cell labelled: a NaN
gets the code -1 from ``astype("category")``, which scvi then reads as a category it was not
given and refuses (``Making .obs[...] categorical failed``, with two identical category lists).
Its categories are also those of the column's dtype, unused ones included (left by subsetting an
atlas), and a float column becomes one "type" per distinct value. :class:`LabelsField`
registers the labels as :func:`~sctransfer._validation.check_labels` cleans them instead:
missing values and placeholder strings (``"nan"``, ...) get the code -1 (the cell is not used
for training), unused categories are dropped, a float column is refused. The user's column is
read, never changed; only scvi's own code column (``.obs["_scvi_labels"]``) is written, as by
every scvi-tools categorical field.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from anndata import AnnData
from scvi.data.fields import CategoricalObsField, MuDataWrapper

from sctransfer._validation import check_labels


class LabelsField(CategoricalObsField):
    """Cell-type labels of a partly labelled reference: code -1 for a cell without label.

    Parameters
    ----------
    registry_key
        Registry key (``REGISTRY_KEYS.LABELS_KEY``).
    attr_key
        The ``.obs`` column with the labels.
    modality
        Name of the modality, for messages.
    """

    def __init__(self, registry_key: str, attr_key: str, *, modality: str):
        super().__init__(registry_key, attr_key)
        self._modality = modality

    def _labels(self, adata: AnnData) -> pd.Categorical:
        with warnings.catch_warnings():  # setup_mudata has reported them already (rare types, spellings)
            warnings.simplefilter("ignore", UserWarning)
            return check_labels(adata, self._original_attr_key, key=self._modality)

    def register_field(self, adata: AnnData) -> dict:
        """Register the used labels as categories; write the codes (-1: no label) to ``.obs['_scvi_labels']``."""
        self.validate_field(adata)
        labels = self._labels(adata)
        adata.obs[self.attr_key] = np.asarray(labels.codes, dtype=np.int64)
        return {
            self.CATEGORICAL_MAPPING_KEY: np.asarray(labels.categories, dtype=object),
            self.ORIGINAL_ATTR_KEY: self._original_attr_key,
        }

    def transfer_field(
        self, state_registry: dict, adata_target: AnnData, extend_categories: bool = False, **kwargs
    ) -> dict:
        """Register ``adata_target``'s labels with the source registry's categories (the same codes).

        Raises
        ------
        ValueError
            When the target holds labels the source registry does not, and ``extend_categories`` is False.
        """
        self.validate_field(adata_target)
        mapping = np.asarray(state_registry[self.CATEGORICAL_MAPPING_KEY], dtype=object)
        labels = self._labels(adata_target)
        unknown = [c for c in labels.categories if c not in set(mapping)]
        if unknown and not extend_categories:
            raise ValueError(
                f"Labels {unknown[:5]} of column {self._original_attr_key!r} (modality {self._modality!r}) are not "
                f"among the model's cell types ({list(mapping)[:10]}); these data do not match the model's registry."
            )
        mapping = np.concatenate([mapping, np.asarray(unknown, dtype=object)])
        codes = pd.Categorical(np.asarray(labels, dtype=object), categories=mapping).codes
        adata_target.obs[self.attr_key] = np.asarray(codes, dtype=np.int64)
        return {self.CATEGORICAL_MAPPING_KEY: mapping, self.ORIGINAL_ATTR_KEY: self._original_attr_key}


#: :class:`LabelsField` of one modality of a MuData (``mod_key=``).
MuDataLabelsField = MuDataWrapper(LabelsField)
