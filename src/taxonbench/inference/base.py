"""The inference interface: a model's dumped scores -> what the metric families read.

An inference declares, as class attributes (torch-free, read at Snakemake start):

``requires``
    the rule of a score kind it needs (``native``, ``bottom_up``, ``conditional``:
    :class:`taxonbench.score_kinds.ScoreKind`), or ``kinds``, an explicit set;
    the kinds it accepts follow from the score-kind records (:meth:`Inference.accepts`);
``produces``
    its output kind: ``node_prob`` (a score for every node, root included:
    every node-score metric works for every method), ``node_set`` (set
    predictions) or ``embeddings``;
``Options``
    its options as a dataclass (:mod:`taxonbench.declare`: types, choices, ranges),
    validated at Snakemake start under ``inference_options.<name>``;
``fitted`` / ``fit_split``
    whether it learns from one split's scores first (``fit``), and which split
    (``train`` for differentiable diffusion; ``val`` for thresholds tuned on validation).

Asking an inference of scores it cannot use is a clear error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np

from taxonbench.declare import NoOptions, build_options
from taxonbench.errors import TaxonbenchError
from taxonbench.matrix_io import iter_matrix, read_sidecar, write_matrix
from taxonbench.score_kinds import KINDS, LOGITS
from taxonbench.taxonomy import Taxonomy


class Inference:
    """Maps a batch of scores ``(B, dim)`` to its output kind, e.g. node probabilities ``(B, n_nodes)``."""

    name: ClassVar[str]  # set by ``@INFERENCE.register(name)``
    #: the score-kind rule needed (``native`` | ``bottom_up`` | ``conditional``); or set ``kinds`` explicitly
    requires: ClassVar[str | None] = None
    kinds: ClassVar[frozenset[str] | None] = None
    produces: ClassVar[str] = "node_prob"
    Options: ClassVar[type] = NoOptions
    fitted: ClassVar[bool] = False  # True: needs `fit` on the scores of `fit_split` first
    fit_split: ClassVar[str] = "train"

    @classmethod
    def fit(cls, taxonomy: Taxonomy, logits_path: str | os.PathLike, out_path: str | os.PathLike,
            options: dict, seed: int = 0) -> Path:
        """Fit on a logits file (the train split); save the state to ``out_path``."""
        raise TaxonbenchError(f"inference {cls.name!r} has nothing to fit")

    def __init__(self, taxonomy: Taxonomy, options: dict | None = None) -> None:
        self.taxonomy = taxonomy
        self.options = options or {}
        self.sidecar: dict = {}

    @classmethod
    def where(cls) -> str:
        """The params block of this inference's options, for messages."""
        return f"inference_options.{cls.name}"

    @classmethod
    def parse_options(cls, options: dict | None, ignore: tuple[str, ...] = ()) -> object:
        """``options`` checked against :attr:`Options` (keys in ``ignore``, e.g. ``state``, are left out)."""
        given = {k: v for k, v in (options or {}).items() if k not in ignore}
        return build_options(cls.Options, given, cls.where())

    @classmethod
    def accepted_kinds(cls) -> frozenset[str]:
        """The logits kinds this inference can use: :attr:`kinds`, or every kind with the rule :attr:`requires`."""
        if cls.kinds is not None:
            return frozenset(cls.kinds)
        return frozenset(name for name, kind in KINDS.items()
                         if LOGITS in kind.stages and cls.requires is not None and kind.has(cls.requires))

    @classmethod
    def applies_to(cls, kind: str) -> bool:
        """Whether this inference can use scores of ``kind`` (a logits sidecar's ``kind``)."""
        return kind in cls.accepted_kinds()

    def check(self, sidecar: dict, where: str) -> None:
        """Refuse scores this method cannot use; remember the sidecar (kinds may carry options)."""
        kind = sidecar.get("kind")
        if not self.applies_to(kind):
            raise TaxonbenchError(
                f"inference {self.name!r} cannot use the outputs of method {sidecar.get('method')!r} "
                f"({where}: kind {kind!r}); it needs one of: {', '.join(sorted(self.accepted_kinds()))}"
            )
        self.sidecar = sidecar

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def run_inference(
    inference: Inference, logits_path: str | os.PathLike, out_path: str | os.PathLike, batch_rows: int = 8192
) -> int:
    """Stream a logits file through ``inference``; write ``id, leaf, node_prob``."""
    logits_path = Path(logits_path)
    sidecar = read_sidecar(logits_path)
    inference.check(sidecar, str(logits_path))

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for ids, leaf, scores in iter_matrix(logits_path, "scores", batch_rows):
            yield ids, leaf, inference(scores)

    dim = KINDS.get(inference.produces).dim
    out_sidecar = {"kind": inference.produces, "inference": inference.name, "method": sidecar.get("method"),
                   "split": sidecar.get("split"),
                   "dim": dim(inference.taxonomy) if dim is not None else sidecar.get("dim")}
    return write_matrix(out_path, inference.produces, batches(), out_sidecar)
