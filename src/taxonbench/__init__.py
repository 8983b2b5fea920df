"""taxonbench: a reproducible pipeline for hierarchical image classification."""

__version__ = "0.1.0"
