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

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from taxonbench.declare import check_block, fields_of, param
from taxonbench.errors import TaxonbenchError
from taxonbench.registries import INFERENCE
from taxonbench.inference.base import Inference
from taxonbench.inference.diffusion import DEFAULT_ALPHA
from taxonbench.io import load_weights_only, write_torch_atomic
from taxonbench.inference._fitting import read_training_scores, state_option, tree_digest
from taxonbench.score_kinds import node_scores
from taxonbench.taxonomy import Taxonomy

NAME = "differentiable_diffusion"
FORMAT = "taxonbench.differentiable_diffusion/1"
PARAMETRIZATIONS = ("edges", "full")

@dataclass(frozen=True)
class DifferentiableDiffusionOptions:
    """``inference_options.differentiable_diffusion`` (the module docstring says what each does)."""

    parametrization: str = param("edges", choices=PARAMETRIZATIONS, doc="learned edge weights or a full n x n map")
    alpha: float = param(DEFAULT_ALPHA, gt=0.0, lt=1.0, doc="the closed form the map starts from (diffusion's)")
    epochs: int = param(30, ge=0, doc="0: the closed form itself (= diffusion)")
    lr: float = param(0.01, gt=0.0, doc="Adam's learning rate")
    batch_size: int | None = param(512, ge=0, doc="rows per step; 0 or null: the full batch")
    weight_decay: float = param(0.0, ge=0.0, doc="pulls the parameters towards the closed form")
    max_samples: int | None = param(None, ge=1, doc="a seeded random subset of the training rows; null: all")
    device: str = param("auto", doc="auto, cpu, cuda, cuda:1, ...")


DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields_of(DifferentiableDiffusionOptions)}
STRUCTURAL = ("parametrization", "alpha")  # fixed by the state; must agree at inference


def resolve_options(options: dict | None) -> dict:
    """Check the options (a typo or a bad value names its key) and fill the defaults; ``state`` is left out."""
    given = {k: v for k, v in (options or {}).items() if k != "state"}
    out = check_block(fields_of(DifferentiableDiffusionOptions), given, f"inference_options.{NAME}")
    out["alpha"] = float(out["alpha"])
    out["batch_size"] = out["batch_size"] or 0
    out["lr"], out["weight_decay"] = float(out["lr"]), float(out["weight_decay"])
    return out




# ------------------------------------------------------------------------ inference
@INFERENCE.register(NAME)
class DifferentiableDiffusion(Inference):
    """Diffusion with a linear map learned on the train split (HCCF §3.3); fitted: option ``state``."""

    requires = "native"
    Options = DifferentiableDiffusionOptions
    fitted = True

    @classmethod
    def fit(cls, taxonomy: Taxonomy, logits_path: str | os.PathLike, out_path: str | os.PathLike,
            options: dict | None = None, seed: int = 0) -> Path:
        """Train the map on ``logits_path`` (the train split's logits); write the state to ``out_path``."""
        opts = resolve_options(options)
        if taxonomy.max_depth == 0:
            raise TaxonbenchError(f"{NAME}: the taxonomy is a single node; there is nothing to diffuse")
        f0, leaf, sidecar = read_training_scores(taxonomy, logits_path, opts["max_samples"], seed, NAME)
        from taxonbench.inference._learned_maps import train_map

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
        return write_torch_atomic(state, out_path)

    def __init__(self, taxonomy: Taxonomy, options: dict | None = None) -> None:
        super().__init__(taxonomy, options)
        options = dict(options or {})
        path = state_option(NAME, self.fit_split, options)
        resolve_options(options)  # typos and bad values, before reading anything
        self.state_path = path
        self.meta, parameters = load_state(path, taxonomy)
        for key in STRUCTURAL:
            if key in options and options[key] is not None and options[key] != self.meta["options"][key]:
                raise TaxonbenchError(
                    f"{NAME}: option {key!r} is {options[key]!r} but the state {path} was fitted with "
                    f"{self.meta['options'][key]!r}; fit again or drop the option"
                )
        from taxonbench.inference._learned_maps import build_map, resolve_map_device

        self.device = resolve_map_device(options.get("device", DEFAULTS["device"]), NAME)
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

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        import torch

        f0 = torch.as_tensor(node_scores(scores, self.taxonomy, self.sidecar), dtype=torch.float64,
                             device=self.device)
        with torch.no_grad():
            return self.map(f0).cpu().numpy().astype(np.float32)


def load_state(path: str | os.PathLike, taxonomy: Taxonomy) -> tuple[dict, dict]:
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


__all__ = ["DEFAULTS", "DifferentiableDiffusion", "load_state", "read_training_scores", "resolve_options"]
