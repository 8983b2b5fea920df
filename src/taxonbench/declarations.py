"""What every registered component declares, as plain data, readable without torch.

Snakemake validates params and expands the experiment matrix at every start,
so it must know each method's score kind and hyper-parameters, each
inference's accepted kinds, output and options, and each metric family's
input kind and splits — without importing torch (over a second per start).

* Inference methods, metric families, batch samplers and score kinds live in torch-free
  modules: their declarations are read from the classes directly.
* Methods subclass ``torch.nn.Module``, and the label-embedding models of
  :mod:`taxonbench.label_graph.models` use torch and geoopt, so their modules
  import torch. Their declarations (:class:`MethodDeclaration`,
  :class:`LabelModelDeclaration`) are kept in an index file,
  ``declarations-<digest>.json`` in the user's cache directory
  (``$TAXONBENCH_CACHE``, else ``$XDG_CACHE_HOME/taxonbench``, else
  ``~/.cache/taxonbench``). The digest covers the path, size and
  modification time of every module of the package, so the index is rebuilt
  (importing torch once) whenever any module changes, e.g. when a method is
  added; otherwise a start reads one small JSON file. Where the cache cannot be
  written the declarations are computed each time.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from taxonbench.declare import FieldSpec, fields_of
from taxonbench.io import write_text_atomic

FORMAT = 2


@dataclass(frozen=True)
class MethodDeclaration:
    """A training method as the pipeline sees it before any job runs."""

    name: str
    kind: str  # the score kind of its dumped outputs
    hparams: tuple[FieldSpec, ...]
    views: int = 1

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "views": self.views,
                "hparams": [f.to_json() for f in self.hparams]}

    @classmethod
    def from_json(cls, data: dict) -> MethodDeclaration:
        return cls(data["name"], data["kind"], tuple(FieldSpec.from_json(f) for f in data["hparams"]),
                   data.get("views", 1))


@dataclass(frozen=True)
class LabelModelDeclaration:
    """A label-embedding model (``label_embeddings.experiments.<name>.model``): its options."""

    name: str
    options: tuple[FieldSpec, ...]
    on_ball: bool = False

    def to_json(self) -> dict:
        return {"name": self.name, "on_ball": self.on_ball, "options": [f.to_json() for f in self.options]}

    @classmethod
    def from_json(cls, data: dict) -> LabelModelDeclaration:
        return cls(data["name"], tuple(FieldSpec.from_json(f) for f in data["options"]), data.get("on_ball", False))


@dataclass(frozen=True)
class InferenceDeclaration:
    name: str
    accepts: frozenset[str]  # logits kinds it can use
    produces: str  # its output kind
    options: tuple[FieldSpec, ...]
    fitted: bool
    fit_split: str


@dataclass(frozen=True)
class FamilyDeclaration:
    name: str
    reads: str  # the score kind it evaluates
    splits: tuple[str, ...]  # split roles it reads: "eval", and "tune" for values tuned on validation


@dataclass(frozen=True)
class SamplerDeclaration:
    name: str
    options: tuple[FieldSpec, ...]


def _package_root() -> Path:
    return Path(__file__).resolve().parent


@functools.cache
def package_digest() -> str:
    """A digest of every module of the package (path, size, mtime) and the interpreter version (once a process)."""
    h = hashlib.sha256(f"{FORMAT} {sys.version_info[:2]} {_package_root()}".encode())
    for path in sorted(_package_root().rglob("*.py")):
        st = path.stat()
        h.update(f"{path.relative_to(_package_root())} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def cache_dir() -> Path:
    if os.environ.get("TAXONBENCH_CACHE"):
        return Path(os.environ["TAXONBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "taxonbench"


def declare_methods() -> dict[str, MethodDeclaration]:
    """The declarations of every registered method, read from the classes (imports torch)."""
    from taxonbench.registries import METHODS

    return {name: MethodDeclaration(name, cls.output_kind, fields_of(cls.Hparams), int(getattr(cls, "views", 1)))
            for name, cls in METHODS.items()}


def declare_label_models() -> dict[str, LabelModelDeclaration]:
    """The declarations of every registered label-embedding model (imports torch and geoopt)."""
    from taxonbench.registries import LABEL_MODELS

    return {name: LabelModelDeclaration(name, fields_of(cls.Options), bool(cls.on_ball))
            for name, cls in LABEL_MODELS.items()}


_MEMO: dict[str, dict[str, dict]] = {}


def _torch_declarations() -> dict[str, dict]:
    """``{"methods": ..., "label_models": ...}``: from the index when it matches the package, else computed and
    indexed."""
    digest = package_digest()
    if digest in _MEMO:
        return _MEMO[digest]
    index = cache_dir() / f"declarations-{digest}.json"
    try:
        data = json.loads(index.read_text())
        out = {"methods": {name: MethodDeclaration.from_json(d) for name, d in data["methods"].items()},
               "label_models": {name: LabelModelDeclaration.from_json(d)
                                for name, d in data["label_models"].items()}}
    except (OSError, ValueError, KeyError, TypeError):
        out = {"methods": declare_methods(), "label_models": declare_label_models()}
        try:
            write_text_atomic(index, json.dumps({"format": FORMAT, **{
                key: {n: d.to_json() for n, d in decls.items()} for key, decls in out.items()}},
                indent=1, sort_keys=True))
        except OSError:
            pass  # a read-only home: computed each time
    _MEMO[digest] = out
    return out


def method_declarations() -> dict[str, MethodDeclaration]:
    """Every method's declaration (through the index, see the module docstring)."""
    return _torch_declarations()["methods"]


def label_model_declarations() -> dict[str, LabelModelDeclaration]:
    """Every label-embedding model's declaration (through the index)."""
    return _torch_declarations()["label_models"]


@functools.cache
def inference_declarations() -> dict[str, InferenceDeclaration]:
    from taxonbench.registries import INFERENCE

    return {name: InferenceDeclaration(name, cls.accepted_kinds(), cls.produces, fields_of(cls.Options), cls.fitted,
                                       cls.fit_split)
            for name, cls in INFERENCE.items()}


@functools.cache
def family_declarations() -> dict[str, FamilyDeclaration]:
    from taxonbench.registries import METRIC_FAMILIES

    return {name: FamilyDeclaration(name, cls.reads, tuple(cls.splits)) for name, cls in METRIC_FAMILIES.items()}


@functools.cache
def sampler_declarations() -> dict[str, SamplerDeclaration]:
    from taxonbench.registries import SAMPLERS

    return {name: SamplerDeclaration(name, fields_of(cls.Options)) for name, cls in SAMPLERS.items()}


__all__ = ["FamilyDeclaration", "InferenceDeclaration", "LabelModelDeclaration", "MethodDeclaration",
           "SamplerDeclaration", "declare_label_models", "declare_methods", "family_declarations",
           "inference_declarations", "label_model_declarations", "method_declarations", "package_digest",
           "sampler_declarations"]
