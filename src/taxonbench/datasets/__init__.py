"""Dataset adapters, registered by name (the ``source`` key of a params dataset)."""

from taxonbench.datasets.base import DatasetAdapter, prepare_dataset
from taxonbench.registry import Registry, import_submodules

DATASETS: Registry[type[DatasetAdapter]] = Registry("dataset source")

# Every module of this package registers its adapters on import.
import_submodules(__name__, __path__)

__all__ = ["DATASETS", "DatasetAdapter", "prepare_dataset"]
