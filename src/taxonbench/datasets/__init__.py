"""Dataset adapters, one module per source, registered by name in :data:`taxonbench.registries.DATASETS`
(the ``source`` key of a params dataset)."""

from taxonbench.datasets.base import DatasetAdapter, prepare_dataset
from taxonbench.registries import DATASETS

__all__ = ["DATASETS", "DatasetAdapter", "prepare_dataset"]
