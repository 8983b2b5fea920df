"""The learned maps of differentiable diffusion and their training (torch).

Kept apart from :mod:`taxonbench.inference.differentiable_diffusion` (the
registered inference, its options and state file) so that importing the
inference registry — which every Snakemake start does — does not import torch;
that module imports this one only when a map is fitted or applied. The maths
(the ``edges`` and ``full`` parametrisations, the per-level cross-entropy) is
documented there.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from taxonbench.devices import resolve_device
from taxonbench.errors import TaxonbenchError
from taxonbench.inference.diffusion import DiffusionOperator
from taxonbench.taxonomy import Taxonomy

EPS = 1e-12  # floor of scores inside the logarithms of the loss


# ----------------------------------------------------------------------------- maps
def tree_levels(taxonomy: Taxonomy, device: torch.device | str = "cpu") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(nodes, their parents)`` index tensors for depths ``1..D``: the schedule of :func:`tree_solve`."""
    parent = taxonomy.parent.astype(np.int64)
    out = []
    for d in range(1, taxonomy.max_depth + 1):
        nodes = taxonomy.nodes_at_depth(d)
        out.append((torch.as_tensor(nodes, device=device), torch.as_tensor(parent[nodes], device=device)))
    return out


def tree_solve(off: torch.Tensor, rhs: torch.Tensor,
               levels: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Solve ``A x = rhs`` row-wise for a tree-structured ``A`` with unit diagonal.

    ``off[v] = A[v, parent(v)] = A[parent(v), v]`` (``off[0]`` unused); ``rhs``
    is ``(B, n)``. Gaussian elimination from the deepest level up (no fill-in on
    a tree), then back-substitution from the root down. ``A`` must be positive
    definite (pivots stay positive). Out-of-place, so autograd flows through.
    """
    pivot = torch.ones(rhs.shape[1], dtype=rhs.dtype, device=rhs.device)
    r = rhs
    for nodes, parents in reversed(levels):
        b = off[nodes]
        coef = b / pivot[nodes]  # the children's pivots are final: their own children are done
        pivot = pivot.index_add(0, parents, -coef * b)
        r = r.index_add(1, parents, -r[:, nodes] * coef)
    x = r / pivot  # right for the root; every other entry is overwritten below
    for nodes, parents in levels:
        x = x.index_copy(1, nodes, (r[:, nodes] - off[nodes] * x[:, parents]) / pivot[nodes])
    return x


class EdgeDiffusion(nn.Module):
    """``f* = (1 − α)(I − α W_n)^{-1} f⁰`` with learned positive edge weights ``exp(log_weight)``."""

    def __init__(self, taxonomy: Taxonomy, alpha: float, device: torch.device | str = "cpu") -> None:
        super().__init__()
        device = torch.device(device)
        self.alpha = alpha
        self.n = taxonomy.n_nodes
        self.log_weight = nn.Parameter(torch.zeros(self.n - 1, dtype=torch.float64, device=device))
        self.register_buffer("child", torch.arange(1, self.n, device=device), persistent=False)
        self.register_buffer("parent", torch.as_tensor(taxonomy.parent[1:].astype(np.int64), device=device),
                             persistent=False)
        self._levels = tree_levels(taxonomy, device)

    def off_diagonal(self) -> torch.Tensor:
        """``off[v] = (I − αW_n)[v, parent(v)] = −α w_v / sqrt(d_v d_parent(v))``."""
        w = torch.exp(self.log_weight)
        zeros = torch.zeros(self.n, dtype=w.dtype, device=w.device)
        degree = zeros.index_add(0, self.child, w).index_add(0, self.parent, w)
        off = -self.alpha * w / torch.sqrt(degree[self.child] * degree[self.parent])
        return torch.cat([zeros[:1], off])

    def forward(self, f0: torch.Tensor) -> torch.Tensor:
        return (1.0 - self.alpha) * tree_solve(self.off_diagonal(), f0, self._levels)

    def export(self) -> dict[str, torch.Tensor]:
        return {"log_weight": self.log_weight.detach().cpu().clone()}


class FullMap(nn.Module):
    """``f* = M f⁰`` with ``M = M₀ + Δ`` learned (``Δ`` starts at 0; :meth:`project` keeps ``M ≥ 0``)."""

    def __init__(self, matrix: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> None:
        super().__init__()
        base = torch.as_tensor(np.asarray(matrix), dtype=torch.float64, device=device).clone()
        self.register_buffer("base", base)
        self.delta = nn.Parameter(torch.zeros_like(base))

    def matrix(self) -> torch.Tensor:
        return self.base + self.delta

    def forward(self, f0: torch.Tensor) -> torch.Tensor:
        return f0 @ self.matrix().T

    @torch.no_grad()
    def project(self) -> None:
        """Keep ``M`` entry-wise nonnegative, like the closed form."""
        torch.maximum(self.delta, -self.base, out=self.delta)

    def export(self) -> dict[str, torch.Tensor]:
        return {"matrix": self.matrix().detach().cpu().clone()}


def _closed_form_matrix(taxonomy: Taxonomy, alpha: float) -> np.ndarray:
    return np.asarray(DiffusionOperator(taxonomy, alpha).dense_matrix(), dtype=np.float64)


def build_map(taxonomy: Taxonomy, parametrization: str, alpha: float, device: torch.device | str = "cpu",
              parameters: dict[str, torch.Tensor] | None = None) -> EdgeDiffusion | FullMap:
    """The map at the closed form, or with saved ``parameters`` (the ``export()`` of a trained map)."""
    n = taxonomy.n_nodes
    if parametrization == "edges":
        model = EdgeDiffusion(taxonomy, alpha, device)
        if parameters is not None:
            weight = _saved(parameters, "log_weight", (n - 1,))
            with torch.no_grad():
                model.log_weight.copy_(weight)
        return model
    if parameters is None:
        return FullMap(_closed_form_matrix(taxonomy, alpha), device)
    return FullMap(_saved(parameters, "matrix", (n, n)), device)


def _saved(parameters: dict, key: str, shape: tuple[int, ...]) -> torch.Tensor:
    value = parameters.get(key)
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else None
        raise ValueError(f"parameter {key!r} of shape {shape} expected; got {got}")
    return value.to(torch.float64)


# --------------------------------------------------------------------------- loss
class LevelTargets:
    """Per-level cross-entropy of a map's output, the true leaf's ancestors as targets."""

    def __init__(self, taxonomy: Taxonomy, device: torch.device | str = "cpu") -> None:
        depth = taxonomy.depth
        n, d_max = taxonomy.n_nodes, taxonomy.max_depth
        level = np.zeros((n, d_max))
        level[np.arange(1, n), depth[1:] - 1] = 1.0  # node v counts in the sum of its own level
        self.level = torch.as_tensor(level, dtype=torch.float64, device=device)
        # ancestors of every leaf at depths 1..D (-1 below the leaf's own depth)
        self.anc = torch.as_tensor(taxonomy.ancestor_table[taxonomy.leaf_nodes][:, 1:], device=device)
        self.leaf_nodes = torch.as_tensor(taxonomy.leaf_nodes, device=device)

    def per_level(self, f_star: torch.Tensor, leaf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sum over samples of −log q_d, number of samples)`` per level, each ``(D,)``."""
        target = self.anc[leaf]  # (B, D)
        present = target >= 0
        level_sum = f_star @ self.level  # (B, D)
        f_target = torch.gather(f_star, 1, target.clamp(min=0))
        nll = torch.log(level_sum.clamp(min=EPS)) - torch.log(f_target.clamp(min=EPS))
        nll = torch.where(present, nll, torch.zeros_like(nll))
        return nll.sum(0), present.sum(0).to(nll.dtype)

    def loss(self, f_star: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        """Mean over the levels present in the batch of the mean per-sample ``−log q_d``."""
        total, count = self.per_level(f_star, leaf)
        used = count > 0
        return (total[used] / count[used]).mean()

    def correct(self, f_star: torch.Tensor, leaf: torch.Tensor) -> int:
        """How many rows rank the true leaf first among the leaves."""
        return int((f_star[:, self.leaf_nodes].argmax(1) == leaf).sum())


@torch.no_grad()
def evaluate_map(model: nn.Module, targets: LevelTargets, f0: torch.Tensor, leaf: torch.Tensor,
                 device: torch.device, batch_rows: int = 4096) -> tuple[float, float]:
    """``(loss, leaf top-1)`` of ``model`` on a whole training set, the loss as :meth:`LevelTargets.loss`."""
    total = count = None
    correct = 0
    for start in range(0, len(f0), batch_rows):
        f = f0[start:start + batch_rows].to(device, torch.float64)
        y = leaf[start:start + batch_rows].to(device)
        out = model(f)
        t, c = targets.per_level(out, y)
        total = t if total is None else total + t
        count = c if count is None else count + c
        correct += targets.correct(out, y)
    used = count > 0
    return float((total[used] / count[used]).mean()), correct / len(f0)


def resolve_map_device(setting: str, where: str = "differentiable_diffusion") -> torch.device:
    """The device of option ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:1``); ``where`` names the inference."""
    try:
        return resolve_device(setting)
    except RuntimeError as exc:  # torch.device("nonsense")
        raise TaxonbenchError(f"{where}: option 'device': {exc}") from None


def train_map(taxonomy: Taxonomy, f0: np.ndarray, leaf: np.ndarray, opts: dict,
              seed: int = 0) -> tuple[EdgeDiffusion | FullMap, dict]:
    """Train the map on node scores ``f0`` with true leaves ``leaf``; returns it and a training record."""
    device = resolve_map_device(opts["device"])
    model = build_map(taxonomy, opts["parametrization"], opts["alpha"], device)
    targets = LevelTargets(taxonomy, device)
    f0_t = torch.as_tensor(f0)
    leaf_t = torch.as_tensor(leaf)
    n_rows = len(f0_t)
    batch = opts["batch_size"] or n_rows
    opt = torch.optim.Adam(model.parameters(), lr=opts["lr"], weight_decay=opts["weight_decay"])
    generator = torch.Generator().manual_seed(int(seed))
    loss_init, top1_init = evaluate_map(model, targets, f0_t, leaf_t, device)
    history = []
    for _ in range(opts["epochs"]):
        order = torch.randperm(n_rows, generator=generator)
        total, steps = 0.0, 0
        for start in range(0, n_rows, batch):
            idx = order[start:start + batch]
            f = f0_t[idx].to(device, torch.float64)
            loss = targets.loss(model(f), leaf_t[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if isinstance(model, FullMap):
                model.project()
            total += float(loss.detach())
            steps += 1
        history.append(total / steps)
    loss_final, top1_final = evaluate_map(model, targets, f0_t, leaf_t, device)
    record = {"n_train": n_rows, "history": history, "loss_init": loss_init, "loss_final": loss_final,
              "top1_init": top1_init, "top1_final": top1_final}
    return model, record


__all__ = ["EdgeDiffusion", "FullMap", "LevelTargets", "build_map", "evaluate_map", "resolve_map_device",
           "train_map", "tree_solve"]
