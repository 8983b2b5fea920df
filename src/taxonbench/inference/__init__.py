"""Inference methods, registered by name (the ``experiments.inference`` of params)."""

from taxonbench.inference.base import Inference, run_inference
from taxonbench.registry import Registry, import_submodules

INFERENCE: Registry[type[Inference]] = Registry("inference")

# Every module of this package registers its inference methods on import.
import_submodules(__name__, __path__)

__all__ = ["INFERENCE", "Inference", "run_inference"]
