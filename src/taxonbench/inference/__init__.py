"""Inference methods, registered by name (the ``experiments.inference`` of params)."""

from taxonbench.inference.base import Inference, run_inference
from taxonbench.registry import Registry

INFERENCE: Registry[type[Inference]] = Registry("inference")

# Inference methods register themselves on import.
from taxonbench.inference import bottom_up  # noqa: E402,F401

__all__ = ["INFERENCE", "Inference", "run_inference"]
