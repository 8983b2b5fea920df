"""Linear probe: a linear classifier per level on frozen embeddings (HiMulCon paper §4.2-4.3, Tables 1-2).

"The encoder model weights are frozen after the network is trained ... We train an additional
linear classifier for 40 epochs to obtain the classification accuracy." Fitted on the train split's
embeddings (kind ``embeddings``, e.g. the encoder features of a model trained on *another* dataset:
the seen → unseen protocol of §4.5), it turns embeddings into node scores.

Per level ``d`` above the leaves (1 = the top rank … ``D - 1``) one independent classifier
``p_d(v | x) = softmax_{v ∈ V_d}(W_d x̂ + b_d)`` over the nodes ``V_d`` at depth ``d``, trained with
cross-entropy against each sample's ancestor at depth ``d`` (samples whose leaf is shallower are
left out of that level), and one over all leaves, ``p_leaf(u | x)`` (the finest level; on a tree
whose leaves all sit at depth ``D`` it is the depth-``D`` classifier). ``x̂ = (x - μ) / σ`` with the
train split's per-dimension mean and standard deviation (``standardize``; the frozen features' scale
differs between encoders). The node score of a leaf is ``p_leaf``, of an internal node at depth ``d``
``p_d``, the root 1: Table 1's category-level accuracy is the category probe's top-1
(``hit_at_1_L1``), its finest-level accuracy the leaf probe's (``hit_at_1``). The levels are probed
independently, so the scores need not be hierarchically consistent (as HCCF's per-level scores,
``level_softmax_logits``).

Optimisation (not stated in the paper beyond the 40 epochs): SGD with momentum 0.9, learning rate
``lr`` with a cosine decay to 0, mini-batches of ``batch_size`` in a seeded order, no weight decay.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from taxonbench.declare import param
from taxonbench.errors import TaxonbenchError
from taxonbench.inference._fitting import check_leaves, state_option, tree_digest
from taxonbench.inference.base import Inference
from taxonbench.io import load_weights_only, write_torch_atomic
from taxonbench.matrix_io import iter_matrix, read_sidecar
from taxonbench.registries import INFERENCE
from taxonbench.taxonomy import Taxonomy

NAME = "linear_probe"
FORMAT = "taxonbench-linear-probe-1"
LEAVES = "leaves"  # the key of the classifier over all leaves (the others: depths "1" … "D-1")


@dataclass(frozen=True)
class LinearProbeOptions:
    epochs: int = param(40, ge=1, doc="passes over the train split (HiMulCon §4.2: 40)")
    lr: float = param(0.1, gt=0.0, doc="initial SGD learning rate (cosine decay to 0)")
    batch_size: int = param(256, ge=1, doc="mini-batch size")
    standardize: bool = param(True, doc="standardise each dimension with the train split's mean and std")


def read_embeddings(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(x float32 (N, dim), leaf int64 (N,), sidecar)`` of an ``embeddings`` logits file."""
    sidecar = read_sidecar(Path(path))
    if sidecar.get("kind") != "embeddings":
        raise TaxonbenchError(f"{NAME}: {path} holds scores of kind {sidecar.get('kind')!r}; "
                              "it probes embeddings (a method of kind 'embeddings')")
    xs, leaves = [], []
    for _, leaf, scores in iter_matrix(Path(path), "scores"):
        xs.append(np.asarray(scores, dtype=np.float32))
        leaves.append(np.asarray(leaf, dtype=np.int64))
    if not xs or sum(len(x) for x in xs) == 0:
        raise TaxonbenchError(f"{path}: no rows to fit the {NAME} on")
    return np.concatenate(xs), np.concatenate(leaves), sidecar


def level_targets(taxonomy: Taxonomy, leaf: np.ndarray, depth: int) -> np.ndarray:
    """Each sample's class at level ``depth``: the position of its ancestor among ``nodes_at_depth``; -1 if none."""
    nodes = taxonomy.nodes_at_depth(depth)
    position = np.full(taxonomy.n_nodes, -1, dtype=np.int64)
    position[nodes] = np.arange(len(nodes))
    ancestor = taxonomy.ancestor_table[taxonomy.leaf_nodes[leaf], depth]
    return np.where(ancestor >= 0, position[np.maximum(ancestor, 0)], -1)


@INFERENCE.register(NAME)
class LinearProbe(Inference):
    kinds = frozenset({"embeddings"})
    produces = "node_prob"
    Options = LinearProbeOptions
    fitted = True
    fit_split = "train"

    @classmethod
    def fit(cls, taxonomy: Taxonomy, logits_path: str | os.PathLike, out_path: str | os.PathLike,
            options: dict | None = None, seed: int = 0) -> Path:
        """Train one classifier per level on the embeddings of ``logits_path``; save them to ``out_path``."""
        import torch
        import torch.nn.functional as F

        opts = cls.parse_options(options, ignore=("state",))
        x, leaf, sidecar = read_embeddings(logits_path)
        check_leaves(leaf, taxonomy, logits_path)
        mean = x.mean(0) if opts.standardize else np.zeros(x.shape[1], np.float32)
        std = x.std(0) if opts.standardize else np.ones(x.shape[1], np.float32)
        std = np.where(std > 0, std, 1.0).astype(np.float32)
        xt = torch.as_tensor((x - mean) / std)
        gen = torch.Generator().manual_seed(int(seed))
        heads = {}
        levels = {str(d): torch.as_tensor(level_targets(taxonomy, leaf, d)) for d in range(1, taxonomy.max_depth)}
        levels[LEAVES] = torch.as_tensor(leaf)
        for name, target in levels.items():
            keep = target >= 0
            xd, yd = xt[keep], target[keep]
            width = taxonomy.n_leaves if name == LEAVES else len(taxonomy.nodes_at_depth(int(name)))
            linear = torch.nn.Linear(x.shape[1], width)
            optimizer = torch.optim.SGD(linear.parameters(), lr=opts.lr, momentum=0.9)
            steps = opts.epochs * math.ceil(len(xd) / opts.batch_size)
            schedule = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda s, total=steps: 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, total)))))
            for _ in range(opts.epochs):
                order = torch.randperm(len(xd), generator=gen)
                for start in range(0, len(xd), opts.batch_size):
                    rows = order[start:start + opts.batch_size]
                    loss = F.cross_entropy(linear(xd[rows]), yd[rows])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    schedule.step()
            heads[name] = {"weight": linear.weight.detach().clone(), "bias": linear.bias.detach().clone()}
        state = {"format": FORMAT, "heads": heads, "mean": torch.as_tensor(mean), "std": torch.as_tensor(std),
                 "meta": {"inference": NAME, "options": asdict(opts), "seed": int(seed), "dim": int(x.shape[1]),
                          "n_nodes": taxonomy.n_nodes, "tree_digest": tree_digest(taxonomy),
                          "method": sidecar.get("method"), "logits": str(logits_path)}}
        return write_torch_atomic(state, out_path)

    def __init__(self, taxonomy: Taxonomy, options: dict | None = None) -> None:
        super().__init__(taxonomy, options)
        self.parse_options(options, ignore=("state",))
        path = state_option(NAME, self.fit_split, options)
        state = load_weights_only(path, f"{NAME} state", " (write it with fit-inference)")
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise TaxonbenchError(f"{path}: not a {NAME} state (expected format {FORMAT!r})")
        meta = state["meta"]
        if meta["n_nodes"] != taxonomy.n_nodes or meta["tree_digest"] != tree_digest(taxonomy):
            raise TaxonbenchError(f"{path}: the {NAME} was fitted on another taxonomy ({meta['n_nodes']} nodes); "
                                  f"this one has {taxonomy.n_nodes}")
        self.state_path, self.dim = path, int(meta["dim"])
        self.mean, self.std = state["mean"].numpy(), state["std"].numpy()
        self.heads = {d: (h["weight"].double().numpy(), h["bias"].double().numpy()) for d, h in state["heads"].items()}

    def check(self, sidecar: dict, where: str) -> None:
        super().check(sidecar, where)
        if int(sidecar.get("dim", -1)) != self.dim:
            raise TaxonbenchError(f"{where}: embeddings of width {sidecar.get('dim')}, but the {NAME} "
                                  f"{self.state_path} was fitted on width {self.dim}")

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        from scipy.special import softmax

        x = (np.asarray(scores, dtype=np.float64) - self.mean) / self.std
        out = np.zeros((len(x), self.taxonomy.n_nodes), dtype=np.float32)
        out[:, 0] = 1.0
        for level, (weight, bias) in self.heads.items():  # the leaf head last: it overrides shallow leaves
            nodes = self.taxonomy.leaf_nodes if level == LEAVES else self.taxonomy.nodes_at_depth(int(level))
            out[:, nodes] = softmax(x @ weight.T + bias, axis=1)
        return out
