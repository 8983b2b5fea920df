"""Class-balanced batches: ``P = batch_size / per_class`` distinct leaf classes, ``per_class`` rows of each.

The ``P x K`` batches of metric learning (pytorch-metric-learning's
``MPerClassSampler`` builds the same batches). Every batch draws ``P`` distinct
classes uniformly among the classes present in the training split; each class
hands out its rows in a shuffled cycle (reshuffled when exhausted, so a class
with fewer than ``per_class`` rows repeats some). An epoch has as many batches
as uniform shuffling has, ``ceil(N / batch_size)``; the last one is cut to the
remaining ``N mod batch_size`` positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taxonbench.declare import param
from taxonbench.errors import TaxonbenchError
from taxonbench.registries import SAMPLERS
from taxonbench.samplers.base import Sampler


@dataclass(frozen=True)
class ClassBalancedOptions:
    per_class: int = param(4, ge=1, doc="rows of each class in a batch (K); batch_size must be a multiple")


@SAMPLERS.register("class_balanced")
class ClassBalanced(Sampler):
    Options = ClassBalancedOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.batch_size % self.options.per_class:
            raise TaxonbenchError(f"{self.where}.per_class: {self.options.per_class} does not divide "
                                  f"train.batch_size {self.batch_size}")

    def order(self, source, gen):
        import torch

        leaves = np.asarray(source.leaves)
        classes = np.unique(leaves)
        k = self.options.per_class
        p = self.batch_size // k
        if p > len(classes):
            raise TaxonbenchError(f"{self.where}: a batch of {self.batch_size} with per_class {k} needs {p} classes; "
                                  f"the training split has {len(classes)}")
        members = [np.flatnonzero(leaves == c) for c in classes]
        cycles = [m[torch.randperm(len(m), generator=gen).numpy()] for m in members]
        cursor = [0] * len(classes)

        def take(c: int) -> np.ndarray:
            out = []
            while len(out) < k:
                if cursor[c] == len(cycles[c]):
                    cycles[c] = members[c][torch.randperm(len(members[c]), generator=gen).numpy()]
                    cursor[c] = 0
                n = min(k - len(out), len(cycles[c]) - cursor[c])
                out.extend(cycles[c][cursor[c]: cursor[c] + n])
                cursor[c] += n
            return np.asarray(out, dtype=np.int64)

        n = len(leaves)
        batches = []
        for _ in range(-(-n // self.batch_size)):
            chosen = torch.randperm(len(classes), generator=gen)[:p].tolist()
            batches.append(np.concatenate([take(c) for c in chosen]))
        return torch.from_numpy(np.concatenate(batches)[:n] if batches else np.zeros(0, np.int64))
