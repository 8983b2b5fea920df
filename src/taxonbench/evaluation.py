"""The ``evaluate`` step: node scores -> metrics JSON + operating-curve CSV."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from taxonbench.errors import TaxonbenchError
from taxonbench.io import write_json_atomic, write_text_atomic
from taxonbench.matrix_io import iter_matrix
from taxonbench.metrics import evaluate
from taxonbench.taxonomy import Taxonomy

CURVE_COLUMNS = ("threshold", "info_recall", "info_precision", "correct")


def evaluate_scores(
    scores_path: str | os.PathLike,
    taxonomy: Taxonomy,
    out_json: str | os.PathLike,
    out_curve: str | os.PathLike | None = None,
    batch_rows: int = 4096,
) -> dict:
    """Compute every metric of ``scores_path`` (``id, leaf, node_prob``); write JSON (and curve CSV)."""
    scores_path = Path(scores_path)

    def chunks():
        for _, leaf, node_prob in iter_matrix(scores_path, "node_prob", batch_rows):
            if node_prob.shape[1] != taxonomy.n_nodes:
                raise TaxonbenchError(
                    f"{scores_path}: node_prob has {node_prob.shape[1]} entries per sample, "
                    f"the taxonomy has {taxonomy.n_nodes} nodes"
                )
            yield node_prob, leaf

    metrics, curve = evaluate(chunks(), taxonomy)
    clean = {k: (float(v) if not (isinstance(v, float) and math.isnan(v)) else None) for k, v in metrics.items()}
    write_json_atomic(out_json, clean)
    if out_curve is not None:
        buf = io.StringIO()
        buf.write(",".join(CURVE_COLUMNS) + "\n")
        np.savetxt(buf, np.column_stack([curve[c] for c in CURVE_COLUMNS]), delimiter=",", fmt="%.6f")
        write_text_atomic(out_curve, buf.getvalue())
    return metrics
