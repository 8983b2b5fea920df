"""The ``evaluate`` step: node scores -> metrics JSON + operating-curve CSV."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from taxonbench.errors import TaxonbenchError
from taxonbench.io import write_json_atomic, write_text_atomic
from taxonbench.matrix_io import iter_matrix, read_sidecar, sidecar_path
from taxonbench.metrics import evaluate, families_reading, unit_of, units_of
from taxonbench.taxonomy import Taxonomy

CURVE_COLUMNS = ("threshold", "info_recall", "info_precision", "correct")


def score_chunks(path: Path, taxonomy: Taxonomy, batch_rows: int = 4096) -> tuple[str, Iterator[tuple[np.ndarray, np.ndarray]]]:
    """The kind of a scores file (its sidecar) and its ``(scores, leaf)`` row batches."""
    kind = read_sidecar(path).get("kind", "node_prob") if sidecar_path(path).exists() else "node_prob"
    node_shaped = kind != "embeddings"

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for _, leaf, scores in iter_matrix(path, kind, batch_rows):
            if node_shaped and scores.shape[1] != taxonomy.n_nodes:
                raise TaxonbenchError(
                    f"{path}: {kind} has {scores.shape[1]} entries per sample, the taxonomy has {taxonomy.n_nodes} nodes"
                )
            yield scores, leaf

    return kind, chunks()


def evaluate_scores(
    scores_path: str | os.PathLike,
    taxonomy: Taxonomy,
    out_json: str | os.PathLike,
    out_curve: str | os.PathLike | None = None,
    batch_rows: int = 4096,
    tune_path: str | os.PathLike | None = None,
    gallery_path: str | os.PathLike | None = None,
) -> dict:
    """Compute every metric family that reads ``scores_path``'s kind; write the metrics JSON (and curve CSV).

    ``tune_path``: the same kind of scores on the tune split (validation), for the families that tune on it;
    ``gallery_path``: the retrieval gallery (none, or the same file as ``scores_path``: retrieval within the
    evaluation split, each query left out of its own ranking).
    The JSON is flat ``metric -> value`` (null for NaN) plus ``"units": {metric: unit}`` (docs/metrics.md).
    """
    scores_path = Path(scores_path)
    kind, chunks = score_chunks(scores_path, taxonomy, batch_rows)
    roles = {}
    for role, path in (("tune", tune_path), ("gallery", gallery_path)):
        if path is None or (role == "gallery" and Path(path).resolve() == scores_path.resolve()):
            continue
        role_kind, roles[role] = score_chunks(Path(path), taxonomy, batch_rows)
        if role_kind != kind:
            raise TaxonbenchError(f"{path}: scores of kind {role_kind!r}, but {scores_path} holds {kind!r}")
    families = families_reading(kind)
    metrics, curve = evaluate(chunks, taxonomy, families, kind=kind, tune_chunks=roles.get("tune"),
                             gallery_chunks=roles.get("gallery"))
    clean: dict = {k: (float(v) if not (isinstance(v, float) and math.isnan(v)) else None) for k, v in metrics.items()}
    units = units_of(families)
    clean["units"] = {k: unit_of(k, units) for k in metrics if unit_of(k, units) is not None}
    write_json_atomic(out_json, clean)
    if out_curve is not None:
        buf = io.StringIO()
        buf.write(",".join(CURVE_COLUMNS) + "\n")
        if curve:
            np.savetxt(buf, np.column_stack([curve[c] for c in CURVE_COLUMNS]), delimiter=",", fmt="%.6f")
        write_text_atomic(out_curve, buf.getvalue())
    return metrics
