"""Training methods, registered by name (the ``methods`` of params)."""

from taxonbench.methods.base import Method
from taxonbench.registry import Registry

METHODS: Registry[type[Method]] = Registry("method")

# Methods register themselves on import.
from taxonbench.methods import flat_softmax  # noqa: E402,F401

__all__ = ["METHODS", "Method"]
