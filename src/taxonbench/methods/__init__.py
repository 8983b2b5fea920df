"""Training methods, registered by name (the ``methods`` of params)."""

from taxonbench.methods.base import Method
from taxonbench.registry import Registry, import_submodules

METHODS: Registry[type[Method]] = Registry("method")

# Every module of this package registers its methods on import.
import_submodules(__name__, __path__)

__all__ = ["METHODS", "Method"]
