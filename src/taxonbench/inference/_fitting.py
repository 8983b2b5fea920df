"""What fitted inference methods share: reading the fit split's node scores, and the tree a state belongs to."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from taxonbench.errors import TaxonbenchError
from taxonbench.matrix_io import iter_matrix, read_sidecar
from taxonbench.score_kinds import KINDS, node_scores
from taxonbench.taxonomy import Taxonomy


def tree_digest(taxonomy: Taxonomy) -> str:
    """A short digest of the parent array: a state only applies to the tree it was fitted on."""
    return hashlib.sha256(np.ascontiguousarray(taxonomy.parent, dtype="<i4").tobytes()).hexdigest()[:16]


def state_option(name: str, fit_split: str, options: dict | None) -> Path:
    """The option ``state`` of a fitted inference: the file ``fit-inference`` wrote; a clear error without it."""
    path = (options or {}).get("state")
    if not path:
        raise TaxonbenchError(f"{name} is fitted on {fit_split}: option 'state' (the file written by fit-inference) "
                              "is required")
    return Path(path)


def check_leaves(leaf: np.ndarray, taxonomy: Taxonomy, path: str | os.PathLike) -> None:
    """Every entry of ``leaf`` a leaf index ``0..L-1``; the first one that is not, named with its row."""
    bad = np.flatnonzero((leaf < 0) | (leaf >= taxonomy.n_leaves))
    if len(bad):
        raise TaxonbenchError(
            f"{path}: leaf {int(leaf[bad[0]])} (row {int(bad[0])}) is not a leaf index of the taxonomy "
            f"(0..{taxonomy.n_leaves - 1})"
        )


# ---------------------------------------------------------------------- training data
def read_training_scores(taxonomy: Taxonomy, logits_path: str | os.PathLike, max_samples: int | None = None,
                         seed: int = 0, what: str = "the fitted inference") -> tuple[np.ndarray, np.ndarray, dict]:
    """``(f⁰ float32 (N, n), leaf int64 (N,), sidecar)`` of a logits file; a seeded subset if asked."""
    logits_path = Path(logits_path)
    sidecar = read_sidecar(logits_path)
    KINDS.get(sidecar.get("kind", "?"))  # unknown kind: a clear error
    keep = None
    if max_samples is not None:
        import pyarrow.parquet as pq

        try:
            n_rows = pq.read_metadata(logits_path).num_rows
        except Exception as exc:
            raise TaxonbenchError(f"{logits_path}: corrupt or unreadable Parquet file ({exc})") from None
        if n_rows > max_samples:
            keep = np.zeros(n_rows, dtype=bool)
            keep[np.random.default_rng(seed).choice(n_rows, max_samples, replace=False)] = True
    f0_parts, leaf_parts, offset = [], [], 0
    for _, leaf, scores in iter_matrix(logits_path, "scores"):
        rows = slice(None) if keep is None else keep[offset:offset + len(leaf)]
        offset += len(leaf)
        f0_parts.append(node_scores(scores[rows], taxonomy, sidecar).astype(np.float32))
        leaf_parts.append(leaf[rows])
    f0 = np.concatenate(f0_parts) if f0_parts else np.zeros((0, taxonomy.n_nodes), np.float32)
    leaf = np.concatenate(leaf_parts) if leaf_parts else np.zeros(0, np.int64)
    if len(leaf) == 0:
        raise TaxonbenchError(f"{logits_path}: no rows to fit {what} on")
    check_leaves(leaf, taxonomy, logits_path)
    return f0, leaf.astype(np.int64), sidecar
