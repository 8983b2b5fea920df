"""Shared fixtures: a toy dataset adapter (independent of the synthetic generator)."""

from __future__ import annotations

import numpy as np
import pytest

from taxonbench.datasets.base import DatasetAdapter, prepare_dataset
from taxonbench.shards import encode_png
from taxonbench.taxonomy import Taxonomy

# root -> 2 kingdoms -> 2 species each: 4 leaves, 7 nodes
TOY_PARENTS = [-1, 0, 0, 1, 1, 2, 2]


class ToyAdapter(DatasetAdapter):
    """4 leaves, each a flat colour plus noise: learnable in a few steps."""

    COLOURS = np.array([[230, 30, 30], [200, 90, 30], [30, 30, 230], [30, 120, 200]])

    def __init__(self, options=None, *, name="toy", seed=0, per_split=None, size=16):
        super().__init__(options, name=name, seed=seed)
        self.per_split = per_split or {"train": 32, "val": 8, "test": 12}
        self.size = size

    def taxonomy(self):
        return Taxonomy.from_parents(TOY_PARENTS, name=["root", "A", "B", "a1", "a2", "b1", "b2"],
                                     rank=["root", "kingdom", "kingdom", "species", "species", "species", "species"],
                                     fixed_ranks=True)

    def splits(self):
        return list(self.per_split)

    def rows(self, split):
        rng = np.random.default_rng([self.seed, len(split)])
        n = self.per_split[split]
        leaf = np.arange(n) % 4
        images = [encode_png(np.clip(self.COLOURS[k] + rng.normal(0, 20, (self.size, self.size, 3)), 0, 255)
                             .astype(np.uint8)) for k in leaf]
        for start in range(0, n, 10):
            yield {"id": [f"toy-{split}-{i:04d}" for i in range(start, min(n, start + 10))],
                   "image": images[start:start + 10], "leaf": leaf[start:start + 10].tolist()}

    def info(self):
        return {"image_size": self.size}


@pytest.fixture
def toy_shards(tmp_path):
    out = tmp_path / "shards" / "toy"
    prepare_dataset(ToyAdapter(), out, rows_per_shard=16)
    return out
