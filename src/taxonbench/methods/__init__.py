"""Training methods, one module each, registered by name in :data:`taxonbench.registries.METHODS`
(the ``methods`` of params; a variant names its registered method with ``method:``)."""

from taxonbench.methods.base import Method
from taxonbench.registries import METHODS

__all__ = ["METHODS", "Method"]
