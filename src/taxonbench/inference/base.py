"""The inference interface: a model's dumped scores -> node scores for every node.

Every inference method produces the one form of DESIGN.md §3 "Node scores"
(``node_prob``, length n, root included), so every metric works for every
method. A method declares which score kinds (the logits sidecar's ``kind``) it
can use; asking it of other scores is a clear error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np

from taxonbench.errors import TaxonbenchError
from taxonbench.matrix_io import iter_matrix, read_sidecar, write_matrix
from taxonbench.taxonomy import Taxonomy


class Inference:
    """Maps a batch of scores ``(B, dim)`` to node probabilities ``(B, n_nodes)``."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]
    fitted: ClassVar[bool] = False  # True: needs `fit` on the train split's scores first

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
    def applies_to(cls, kind: str) -> bool:
        """Whether this inference can use scores of ``kind`` (a logits sidecar's ``kind``)."""
        return kind in cls.kinds

    def check(self, sidecar: dict, where: str) -> None:
        """Refuse scores this method cannot use; remember the sidecar (kinds may carry options)."""
        kind = sidecar.get("kind")
        if not self.applies_to(kind):
            raise TaxonbenchError(
                f"inference {self.name!r} cannot use the outputs of method {sidecar.get('method')!r} "
                f"({where}: kind {kind!r}); it needs one of: {', '.join(sorted(self.kinds))}"
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

    out_sidecar = {"kind": "node_prob", "inference": inference.name, "method": sidecar.get("method"),
                   "split": sidecar.get("split"), "dim": inference.taxonomy.n_nodes}
    return write_matrix(out_path, "node_prob", batches(), out_sidecar)
