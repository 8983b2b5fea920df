"""Embeddings as they are, or L2-normalised: the input of representation metrics.

A method of score kind ``embeddings`` dumps one vector per image; this
inference passes it on (option ``normalize: true``: ``x / ‖x‖₂``, a zero
vector left as it is) so that probe, retrieval and clustering families read
it through the one logits → infer → evaluate path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taxonbench.declare import param
from taxonbench.inference.base import Inference
from taxonbench.registries import INFERENCE


@dataclass(frozen=True)
class EmbeddingOptions:
    normalize: bool = param(False, doc="divide each vector by its Euclidean norm")


@INFERENCE.register("embedding")
class Embedding(Inference):
    kinds = frozenset({"embeddings"})
    produces = "embeddings"
    Options = EmbeddingOptions

    def __init__(self, taxonomy, options=None) -> None:
        super().__init__(taxonomy, options)
        self.opts = self.parse_options(self.options)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        x = np.asarray(scores, dtype=np.float32)
        if self.opts.normalize:
            norm = np.linalg.norm(x, axis=1, keepdims=True)
            x = x / np.where(norm > 0, norm, 1.0)
        return x
