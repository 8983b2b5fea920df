"""Typed option blocks: hyper-parameters, inference options, adapter options.

A component declares its options as a frozen dataclass. Each field's type
comes from its annotation; :func:`param` adds the constraints the type cannot
say (choices, a range, a one-line description)::

    @dataclass(frozen=True)
    class HXEHparams:
        alpha: float = param(0.1, ge=0.0, doc="decay of the per-edge weights")
        weighting: str = param("depth", choices=("depth", "height"))

:func:`fields_of` turns such a class into :class:`FieldSpec` records, plain
data that can be written to JSON (the declarations index Snakemake reads
without importing torch, :mod:`taxonbench.declarations`); :func:`check_block`
validates a params block against them — an unknown key with the closest valid
one, a wrong type, a value outside the choices or the range, each naming the
key path — and :func:`build_options` builds the dataclass. The same check runs
at Snakemake start and inside the job, so a typo never waits for a job to fail.

Imports only the standard library.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import string
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from taxonbench.errors import TaxonbenchError

T = TypeVar("T")

#: the JSON-level types a field may have
TYPES = ("bool", "int", "float", "str", "list", "dict", "any")


def param(default: Any = dataclasses.MISSING, *, choices: Sequence[Any] | None = None,
          ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
          template: Sequence[str] | None = None, doc: str = "") -> Any:
    """A dataclass field with constraints: ``choices`` (allowed values), a range (``ge``/``gt``/``le``/``lt``,
    applied to numbers and to every number of a list), ``template`` (the value is a format string using only
    these fields and at least the first: :func:`check_template`), and ``doc``. Lists and dicts are copied per
    instance. Every number must be finite whatever the bounds."""
    meta = {"choices": tuple(choices) if choices is not None else None, "ge": ge, "gt": gt, "le": le, "lt": lt,
            "template": tuple(template) if template is not None else None, "doc": doc}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata={"taxonbench": meta})
    return dataclasses.field(default=default, metadata={"taxonbench": meta})


@dataclass(frozen=True)
class FieldSpec:
    """One option: its JSON type (``item`` for a list's elements), whether null is allowed, its default and
    constraints. ``required`` when the dataclass gives no default."""

    name: str
    type: str
    item: str | None = None
    nullable: bool = False
    default: Any = None
    required: bool = False
    choices: tuple[Any, ...] | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    template: tuple[str, ...] | None = None
    doc: str = ""

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        for key in ("choices", "template"):
            out[key] = list(out[key]) if out[key] is not None else None
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FieldSpec:
        data = dict(data)
        for key in ("choices", "template"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)

    def describe(self) -> str:
        """The constraint in words, for messages: ``a number >= 0``, ``one of depth, height``."""
        if self.choices is not None:
            text = "one of " + ", ".join(map(str, self.choices))
        else:
            text = {"bool": "true or false", "int": "an integer", "float": "a finite number", "str": "a string",
                    "list": "a list" + (f" of {_TYPE_WORDS[self.item]}" if self.item else ""),
                    "dict": "a mapping", "any": "any value"}[self.type]
            bounds = [f"{op} {v:g}" for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                      if v is not None]
            if bounds:
                text += " " + " and ".join(bounds)
        return text + (" or null" if self.nullable else "")

    def check(self, value: Any, where: str) -> Any:
        """``value`` if it satisfies the field, else a :class:`TaxonbenchError` naming ``where``."""
        if value is None:
            if self.nullable:
                return None
            raise TaxonbenchError(f"{where}: must be {self.describe()}; got null")
        if not _is_type(value, self.type):
            raise TaxonbenchError(f"{where}: must be {self.describe()}; got {value!r}")
        if self.type == "list" and self.item is not None:
            for i, element in enumerate(value):
                if not _is_type(element, self.item):
                    raise TaxonbenchError(f"{where}[{i}]: must be {_TYPE_WORDS[self.item]}; got {element!r}")
        if self.choices is not None and value not in self.choices:
            hint = difflib.get_close_matches(str(value), [str(c) for c in self.choices], n=1)
            raise TaxonbenchError(f"{where}: must be {self.describe()}; got {value!r}"
                                  + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        if self.template is not None:
            check_template(value, self.template, where)
        numbers = value if self.type == "list" else [value]
        for number in numbers:
            if isinstance(number, (int, float)) and not isinstance(number, bool) and not self._in_range(number):
                raise TaxonbenchError(f"{where}: must be {self.describe()}; got {value!r}")
        return value

    def _in_range(self, x: float) -> bool:
        """Within the bounds; numbers must also be finite (no NaN, no infinity)."""
        if not math.isfinite(x):
            return False
        return ((self.ge is None or x >= self.ge) and (self.gt is None or x > self.gt)
                and (self.le is None or x <= self.le) and (self.lt is None or x < self.lt))


def check_template(template: str, fields: Sequence[str], where: str) -> None:
    """``template`` must be a :meth:`str.format` string whose fields are among ``fields`` and include
    ``fields[0]`` (e.g. a prompt ``"a photo of {name}."`` with the fields ``name``, ``rank``)."""
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise TaxonbenchError(f"{where}: not a valid template ({exc}): {template!r}") from None
    allowed = ", ".join(f"{{{f}}}" for f in fields)
    unknown = sorted(used - set(fields))
    if unknown:
        raise TaxonbenchError(f"{where}: unknown field {{{unknown[0]}}} in {template!r}; fields: {allowed}")
    if fields[0] not in used:
        raise TaxonbenchError(f"{where}: the template must contain {{{fields[0]}}}; got {template!r}")


_TYPE_WORDS = {"bool": "true or false", "int": "integers", "float": "numbers", "str": "strings", "list": "lists",
               "dict": "mappings", "any": "any values"}


def _is_type(value: Any, kind: str) -> bool:
    if kind == "any":
        return True
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "list":
        return isinstance(value, (list, tuple))
    return isinstance(value, Mapping)


_SCALARS = {bool: "bool", int: "int", float: "float", str: "str", dict: "dict", list: "list", tuple: "list",
            Any: "any"}


def _json_type(annotation: Any) -> tuple[str, str | None, bool]:
    """``(type, item type, nullable)`` of an annotation such as ``float``, ``list[int] | None``, ``str``."""
    nullable = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        if len(args) != 1:
            return "any", None, nullable
        annotation = args[0]
        origin = typing.get_origin(annotation)
    if origin in (list, tuple, Sequence):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        item = _SCALARS.get(args[0]) if len(set(args)) == 1 else None
        return "list", item, nullable
    if origin in (dict, Mapping):
        return "dict", None, nullable
    return _SCALARS.get(annotation, "any"), None, nullable


def fields_of(cls: type) -> tuple[FieldSpec, ...]:
    """The :class:`FieldSpec` of every field of an options dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind, item, nullable = _json_type(hints[f.name])
        meta = dict(f.metadata.get("taxonbench", {}))
        if f.default is not dataclasses.MISSING:
            default, required = f.default, False
        elif f.default_factory is not dataclasses.MISSING:
            default, required = f.default_factory(), False
        else:
            default, required = None, True
        if default is None and not required:
            nullable = True
        if isinstance(default, tuple):
            default = list(default)
        out.append(FieldSpec(f.name, kind, item, nullable, default, required, meta.get("choices"), meta.get("ge"),
                             meta.get("gt"), meta.get("le"), meta.get("lt"), meta.get("template"),
                             meta.get("doc", "")))
    return tuple(out)


def check_block(fields: Sequence[FieldSpec], data: Mapping[str, Any] | None, where: str) -> dict:
    """Validate a params block against ``fields``; return it with defaults filled.

    ``where`` names the block in messages, e.g. ``methods.hxe`` gives
    ``methods.hxe.alpah: unknown key (did you mean 'alpha'?)``.
    """
    data = dict(data or {})
    by_name = {f.name: f for f in fields}
    for key in data:
        if key not in by_name:
            hint = difflib.get_close_matches(str(key), list(by_name), n=1)
            valid = ", ".join(by_name) or "none"
            raise TaxonbenchError(f"{where}.{key}: unknown key"
                                  + (f" (did you mean {hint[0]!r}?)" if hint else f"; valid keys: {valid}"))
    out = {}
    for f in fields:
        if f.name in data:
            out[f.name] = f.check(data[f.name], f"{where}.{f.name}")
        elif f.required:
            raise TaxonbenchError(f"{where}.{f.name}: required ({f.describe()})")
        else:
            out[f.name] = f.default
    return out


def build_options(cls: type[T], data: Mapping[str, Any] | None, where: str) -> T:
    """The options dataclass ``cls`` built from a params block, after :func:`check_block`.

    Only the keys given are passed (the dataclass fills the rest), so values
    keep the form the user wrote (an integer given for a float stays one). A
    check across fields in the dataclass's ``__post_init__`` raises
    ``TaxonbenchError("<key>: ...")``; it reaches the user as ``<where>.<key>: ...``.
    """
    given = dict(data or {})
    check_block(fields_of(cls), given, where)
    try:
        return cls(**given)  # type: ignore[call-arg]
    except TaxonbenchError as exc:
        raise TaxonbenchError(f"{where}.{exc}") from None


@dataclass(frozen=True)
class NoOptions:
    """A component without options."""


__all__ = ["FieldSpec", "NoOptions", "build_options", "check_block", "check_template", "fields_of", "param"]
