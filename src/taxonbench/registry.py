"""A tiny name -> object registry: one per kind of component.

Every method, backbone, inference and dataset is registered by name in one
place; adding one is a new module with a decorator, never an if-chain.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from taxonbench.errors import TaxonbenchError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to components of one kind (e.g. "method", "backbone")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("flat_softmax")``."""

        def decorate(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorate

    def get(self, name: str) -> T:
        """The component called ``name``; a clear error listing the valid names otherwise."""
        try:
            return self._items[name]
        except KeyError:
            raise TaxonbenchError(
                f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def import_submodules(package_name: str, package_path: list[str]) -> None:
    """Import every module of a package so that its components register themselves.

    Called at the end of a registry package's ``__init__``: adding a component
    is adding one module, with no import list to edit.
    """
    for info in sorted(pkgutil.iter_modules(package_path), key=lambda m: m.name):
        if not info.name.startswith("_") and info.name != "base":
            importlib.import_module(f"{package_name}.{info.name}")
