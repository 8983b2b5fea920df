"""Dataset adapters, registered by name (the ``source`` key of a params dataset)."""

from taxonbench.datasets.base import DatasetAdapter, prepare_dataset
from taxonbench.registry import Registry

DATASETS: Registry[type[DatasetAdapter]] = Registry("dataset source")

# Adapters register themselves on import.
from taxonbench.datasets import synthetic  # noqa: E402,F401

__all__ = ["DATASETS", "DatasetAdapter", "prepare_dataset"]
