"""Name -> component registries, one per kind of component, all made the same way.

Every registry lives in :mod:`taxonbench.registries` (a module that imports no
component), and every component registers itself with the one decorator::

    from taxonbench.registries import METHODS

    @METHODS.register("hxe")
    class HXE(Method):
        output_kind = "leaf_logits"
        Hparams = HXEHparams

The name is written once: on a class, ``register`` sets its ``name``
attribute. A registry knows the package (or module) its components live in and
imports every module of it the first time it is asked for a name
(:meth:`Registry.load`), so adding a component is adding one module: no list
to edit, no import at the bottom of a package, no import circle (components
import the registry; the registry never imports a component until asked).
Modules whose name starts with ``_`` are helpers and are not imported by
discovery; ``base`` neither.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from taxonbench.errors import TaxonbenchError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to components of one kind (e.g. "method", "backbone").

    ``home`` is the dotted name of the package whose modules register the
    components (every module of it is imported on first use), or of a single
    module that registers them all (e.g. :mod:`taxonbench.score_kinds`);
    ``None`` for a registry filled by hand (tests).
    """

    def __init__(self, kind: str, home: str | None = None) -> None:
        self.kind = kind
        self.home = home
        self._items: dict[str, T] = {}
        self._loaded = False
        self._loading = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("flat_softmax")``; on a class it also sets ``cls.name``."""

        def decorate(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if isinstance(obj, type):
                obj.name = name  # type: ignore[attr-defined]
            self._items[name] = obj
            return obj

        return decorate

    def add(self, name: str, obj: T) -> T:
        """Register a value that is not decorated (a record such as a table spec or a score kind)."""
        return self.register(name)(obj)

    def load(self) -> Registry[T]:
        """Import every module of :attr:`home` once, so that its components register themselves."""
        if self._loaded or self._loading or self.home is None:
            return self
        self._loading = True
        try:
            module = importlib.import_module(self.home)
            path = getattr(module, "__path__", None)
            if path is not None:  # a package: every module in it
                for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
                    if not info.name.startswith("_") and info.name != "base":
                        importlib.import_module(f"{self.home}.{info.name}")
            self._loaded = True
        finally:
            self._loading = False
        return self

    def get(self, name: str) -> T:
        """The component called ``name``; a clear error listing the valid names otherwise."""
        self.load()
        try:
            return self._items[name]
        except KeyError:
            raise TaxonbenchError(
                f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        self.load()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return [(name, self._items[name]) for name in self.names()]

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
