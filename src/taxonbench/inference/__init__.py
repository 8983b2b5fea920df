"""Inference methods, one module each, registered by name in :data:`taxonbench.registries.INFERENCE`
(the ``experiments.inference`` of params)."""

from taxonbench.inference.base import Inference, run_inference
from taxonbench.registries import INFERENCE

__all__ = ["INFERENCE", "Inference", "run_inference"]
