"""Differentiable diffusion (HCCF §3.3): a learned linear map in place of diffusion's closed form.

Diffusion (:mod:`taxonbench.inference.diffusion`, HCCF Eq. 6) turns a sample's
node scores ``f⁰`` (the model's own, :func:`taxonbench.score_kinds.node_scores`)
into ``f* = (1 − α)(I − α W_n)^{-1} f⁰``, ``W`` the 0/1 parent–child adjacency
and ``W_n = D^{-1/2} W D^{-1/2}``. That is a linear map of ``f⁰``; differentiable
diffusion learns a linear map instead, initialised at the closed form and
trained on the train split's scores. It is a *fitted* inference:
:meth:`DifferentiableDiffusion.fit` trains the map and saves a state file;
the inference loads it from the option ``state``.

Parametrisations (option ``parametrization``):

``edges`` (default)
    ``W`` keeps the tree's edges, each with a learned positive weight
    ``w_e = exp(θ_e)`` (``θ = 0``: the 0/1 adjacency, i.e. the closed form;
    edge ``e`` joins node ``e + 1`` to its parent, the order of
    ``DiffusionOperator.edges``);
    ``D`` the weighted degrees; then the same ``W_n`` and ``f* = (1 − α)(I −
    αW_n)^{-1} f⁰``. ``I − αW_n`` is symmetric positive definite with the tree's
    sparsity, so it is solved exactly by elimination on the tree (leaves up,
    then root down, one vectorised step per depth): ``n − 1`` parameters,
    ``O(B·n)`` time and memory for a batch of ``B`` (no ``n × n`` matrix ever),
    differentiable. Scaling every weight alike leaves ``W_n`` unchanged, so the
    map can re-weight edges but cannot change the overall scale of ``f*``.
``full``
    a learned ``n × n`` matrix ``M``, ``f* = M f⁰``, initialised at
    ``M₀ = DiffusionOperator.dense_matrix()`` and trained as ``M = M₀ + Δ``
    (``Δ`` from 0). It is kept entry-wise nonnegative
    (projected after every optimiser step), as the closed form is (its Neumann
    series ``(1 − α) Σ_k α^k W_n^k`` has nonnegative terms), so ``f*`` of
    nonnegative ``f⁰`` stays nonnegative. ``n²`` parameters: ``O(n²)`` memory
    (0.8 GB in float64 at ``n = 10⁴``) and ``O(B·n²)`` time per batch — fine for
    the embedded default (``n`` in the hundreds), heavy at iNat scale.

Training objective: cross-entropy on every level. Node scores are
probabilities (every kind's rule gives values in [0, 1]) and ``f*`` is a
nonnegative mixture of them, so the scores of the nodes at depth ``d``,
renormalised, are read as that level's distribution::

    q_d(v | x) = f*_v / Σ_{u : depth(u) = d} f*_u
    loss = mean over levels d = 1..D of
           mean over samples whose leaf is at depth ≥ d of −log q_d(anc_d(y))

(``anc_d(y)`` the true leaf's ancestor at depth ``d``; a level with one node
adds 0; scores are floored at 1e-12 inside the logarithms). The log link, not
``softmax(f*)``, because it is scale-free: a level's prediction depends only
on ratios of scores, as the metrics' rankings do, whereas ``f*`` lives in a
bounded range ([0, 1]-ish; the edge map cannot rescale it at all) where
``softmax(f*)`` would stay near uniform and its cross-entropy nearly flat.
Adam (options ``lr``, ``weight_decay``; the decay acts on ``θ`` or ``Δ``, so
in both parametrisations it pulls towards the closed form), mini-batches of ``batch_size`` rows
(0 or null: full batch) for ``epochs`` epochs, the rows shuffled by a generator
seeded with the fit's ``seed``; float64 throughout. Deterministic for a seed on
CPU (on CUDA, scatter-adds may reorder float sums).

Output: ``node_prob = f*`` as float32, with no further transform — exactly
diffusion's output, so an untrained map (``epochs: 0``) reproduces
``diffusion``.

The state file (``torch.save``, written atomically, loadable with
``weights_only=True``) is ``{"format", "parameters": {name: tensor},
"meta": {...}}`` — ``parameters`` is ``{"log_weight": θ}`` (``edges``) or
``{"matrix": M}`` (``full``), float64; ``meta`` holds the resolved options, the taxonomy's size and
a digest of its parent array, the training scores' kind and method, and the
training curve (``history``: mean mini-batch loss per epoch; ``loss_init`` /
``loss_final`` and ``top1_init`` / ``top1_final`` on the whole training set).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from taxonbench.errors import TaxonbenchError
from taxonbench.inference import INFERENCE
from taxonbench.inference.base import Inference
from taxonbench.inference.diffusion import DEFAULT_ALPHA, DiffusionOperator
from taxonbench.io import atomic_path, load_weights_only
from taxonbench.matrix_io import iter_matrix, read_sidecar
from taxonbench.score_kinds import KINDS, node_scores
from taxonbench.taxonomy import Taxonomy

NAME = "differentiable_diffusion"
FORMAT = "taxonbench.differentiable_diffusion/1"
PARAMETRIZATIONS = ("edges", "full")
EPS = 1e-12  # floor of scores inside the logarithms of the loss

DEFAULTS: dict[str, Any] = {
    "parametrization": "edges",
    "alpha": DEFAULT_ALPHA,  # diffusion's default
    "epochs": 30,
    "lr": 0.01,
    "batch_size": 512,  # 0 or None: full batch
    "weight_decay": 0.0,
    "max_samples": None,  # a seeded random subset of the training rows; None: all
    "device": "auto",
}
STRUCTURAL = ("parametrization", "alpha")  # fixed by the state; must agree at inference
KNOWN = frozenset(DEFAULTS) | {"state"}


def resolve_options(options: dict | None) -> dict:
    """Check the options (a typo or a bad value names its key) and fill the defaults."""
    options = dict(options or {})
    unknown = sorted(set(options) - KNOWN)
    if unknown:
        raise TaxonbenchError(
            f"{NAME}: unknown option {unknown[0]!r}; known: {', '.join(sorted(KNOWN))}"
        )
    out = {**DEFAULTS, **{k: v for k, v in options.items() if k != "state"}}

    def bad(key: str, need: str) -> TaxonbenchError:
        return TaxonbenchError(f"{NAME}: option {key!r} must be {need}; got {out[key]!r}")

    if out["parametrization"] not in PARAMETRIZATIONS:
        raise bad("parametrization", " or ".join(PARAMETRIZATIONS))
    if out["alpha"] is None:
        out["alpha"] = DEFAULT_ALPHA
    if isinstance(out["alpha"], bool) or not isinstance(out["alpha"], (int, float)) or not 0 < out["alpha"] < 1:
        raise bad("alpha", "a number in (0, 1)")
    out["alpha"] = float(out["alpha"])
    if out["batch_size"] is None:
        out["batch_size"] = 0
    for key, low in (("epochs", 0), ("batch_size", 0)):
        if isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] < low:
            raise bad(key, f"an integer ≥ {low}")
    for key, positive in (("lr", True), ("weight_decay", False)):
        v = out[key]
        number = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not number or v < 0 or (positive and v == 0):
            raise bad(key, "a positive number" if positive else "a number ≥ 0")
        out[key] = float(v)
    ms = out["max_samples"]
    if ms is not None and (isinstance(ms, bool) or not isinstance(ms, int) or ms < 1):
        raise bad("max_samples", "null or an integer ≥ 1")
    if not isinstance(out["device"], str):
        raise bad("device", "a string (auto, cpu, cuda, ...)")
    return out


def tree_digest(taxonomy: Taxonomy) -> str:
    """A short digest of the parent array: a state only applies to the tree it was fitted on."""
    return hashlib.sha256(np.ascontiguousarray(taxonomy.parent, dtype="<i4").tobytes()).hexdigest()[:16]


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


# ---------------------------------------------------------------------- training data
def read_training_scores(taxonomy: Taxonomy, logits_path: str | os.PathLike, max_samples: int | None = None,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
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
        raise TaxonbenchError(f"{logits_path}: no rows to fit {NAME} on")
    bad = np.flatnonzero((leaf < 0) | (leaf >= taxonomy.n_leaves))
    if len(bad):
        raise TaxonbenchError(
            f"{logits_path}: leaf {int(leaf[bad[0]])} (row {int(bad[0])}) is not a leaf index of the taxonomy "
            f"(0..{taxonomy.n_leaves - 1})"
        )
    return f0, leaf.astype(np.int64), sidecar


def _device(setting: str) -> torch.device:
    from taxonbench.training import resolve_device

    try:
        return resolve_device(setting)
    except RuntimeError as exc:  # torch.device("nonsense")
        raise TaxonbenchError(f"{NAME}: option 'device': {exc}") from None


def train_map(taxonomy: Taxonomy, f0: np.ndarray, leaf: np.ndarray, opts: dict,
              seed: int = 0) -> tuple[EdgeDiffusion | FullMap, dict]:
    """Train the map on node scores ``f0`` with true leaves ``leaf``; returns it and a training record."""
    device = _device(opts["device"])
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


# ------------------------------------------------------------------------ inference
@INFERENCE.register(NAME)
class DifferentiableDiffusion(Inference):
    """Diffusion with a linear map learned on the train split (HCCF §3.3); fitted: option ``state``."""

    name = NAME
    kinds = frozenset(KINDS.names())
    fitted = True

    @classmethod
    def fit(cls, taxonomy: Taxonomy, logits_path: str | os.PathLike, out_path: str | os.PathLike,
            options: dict | None = None, seed: int = 0) -> Path:
        """Train the map on ``logits_path`` (the train split's logits); write the state to ``out_path``."""
        opts = resolve_options(options)
        if taxonomy.max_depth == 0:
            raise TaxonbenchError(f"{NAME}: the taxonomy is a single node; there is nothing to diffuse")
        f0, leaf, sidecar = read_training_scores(taxonomy, logits_path, opts["max_samples"], seed)
        model, record = train_map(taxonomy, f0, leaf, opts, seed)
        meta = {
            "inference": NAME,
            "options": {k: opts[k] for k in DEFAULTS},
            "seed": int(seed),
            "n_nodes": taxonomy.n_nodes,
            "n_leaves": taxonomy.n_leaves,
            "tree_digest": tree_digest(taxonomy),
            "kind": sidecar.get("kind"),
            "method": sidecar.get("method"),
            "logits": str(logits_path),
            **record,
        }
        state = {"format": FORMAT,
                 "parameters": model.export(),
                 "meta": meta}
        out_path = Path(out_path)
        with atomic_path(out_path) as tmp:
            torch.save(state, tmp)
        return out_path

    def __init__(self, taxonomy: Taxonomy, options: dict | None = None) -> None:
        super().__init__(taxonomy, options)
        options = dict(options or {})
        if not options.get("state"):
            raise TaxonbenchError(f"{NAME} is fitted: option 'state' (the file written by fit) is required")
        path = Path(options["state"])
        resolve_options(options)  # typos and bad values, before reading anything
        self.state_path = path
        self.meta, parameters = load_state(path, taxonomy)
        for key in STRUCTURAL:
            if key in options and options[key] is not None and options[key] != self.meta["options"][key]:
                raise TaxonbenchError(
                    f"{NAME}: option {key!r} is {options[key]!r} but the state {path} was fitted with "
                    f"{self.meta['options'][key]!r}; fit again or drop the option"
                )
        self.device = _device(options.get("device", DEFAULTS["device"]))
        opts = self.meta["options"]
        try:
            self.map = build_map(taxonomy, opts["parametrization"], opts["alpha"], self.device, parameters)
        except ValueError as exc:
            raise TaxonbenchError(f"{path}: parameters do not fit this taxonomy ({exc})") from None
        self.map.eval()

    def check(self, sidecar: dict, where: str) -> None:
        """Also refuse scores of another kind than the map was fitted on."""
        super().check(sidecar, where)
        kind = self.meta.get("kind")
        if kind is not None and sidecar.get("kind") != kind:
            raise TaxonbenchError(
                f"{where}: scores of kind {sidecar.get('kind')!r}, but the {NAME} state {self.state_path} was "
                f"fitted on scores of kind {kind!r} (method {self.meta.get('method')!r})"
            )

    @torch.no_grad()
    def __call__(self, scores: np.ndarray) -> np.ndarray:
        f0 = torch.as_tensor(node_scores(scores, self.taxonomy, self.sidecar), dtype=torch.float64,
                             device=self.device)
        return self.map(f0).cpu().numpy().astype(np.float32)


def load_state(path: str | os.PathLike, taxonomy: Taxonomy) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(meta, parameters)`` of a state file written by :meth:`DifferentiableDiffusion.fit`, checked."""
    path = Path(path)
    state = load_weights_only(path, f"{NAME} state", " (write it with fit-inference)")
    if not isinstance(state, dict) or state.get("format") != FORMAT or not isinstance(state.get("meta"), dict) \
            or not isinstance(state.get("parameters"), dict):
        raise TaxonbenchError(f"{path}: not a {NAME} state (expected format {FORMAT!r})")
    meta = state["meta"]
    try:
        opts = meta["options"]
        size = (meta["n_nodes"], meta["n_leaves"], meta["tree_digest"])
        if opts["parametrization"] not in PARAMETRIZATIONS or not 0 < opts["alpha"] < 1:
            raise ValueError(opts)
    except (KeyError, TypeError, ValueError):
        raise TaxonbenchError(f"{path}: {NAME} state with incomplete or invalid metadata") from None
    if size != (taxonomy.n_nodes, taxonomy.n_leaves, tree_digest(taxonomy)):
        raise TaxonbenchError(
            f"{path}: fitted on a taxonomy of {size[0]} nodes / {size[1]} leaves (tree {size[2]}), but this one "
            f"has {taxonomy.n_nodes} / {taxonomy.n_leaves} (tree {tree_digest(taxonomy)})"
        )
    return meta, state["parameters"]


__all__ = ["DifferentiableDiffusion", "EdgeDiffusion", "FullMap", "LevelTargets", "build_map", "load_state",
           "read_training_scores", "resolve_options", "train_map", "tree_solve", "DEFAULTS"]
