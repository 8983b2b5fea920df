"""Benchmark label-only hyperbolic-cone training (RSGD): the vectorised trainer vs a per-edge Python loop.

Tree: a root and ``--depth`` levels, ``--nodes`` nodes in all (default 5,000;
level ``d`` holds about ``b^d`` nodes, the last level the remainder, children
spread evenly over the level above). Edge dataset: ``build_edge_table`` with
the default split (5 % val, 5 % test); train = the basic edges and
``--non-basic-fraction`` of the non-basic ones (``EdgeDataset.train``).
Model: ``hyperbolic_cones`` with ``optimizer: rsgd`` (geoopt
``ManifoldParameter`` + ``RiemannianSGD``), float64, margin ``--alpha``,
``--negatives`` negatives per positive (pick-per-level).

Two paths, same model, same loss (Eq. 2.3), same optimiser:

* **vectorised**: :func:`taxonbench.label_graph.train.fit` itself, ``--epochs``
  epochs of batches of ``--batch-size`` positives: per batch one energy call
  on the positives and one on all their negatives. Timed as a whole (its
  per-epoch negative sampling and validation included); the validation's share
  is timed separately and a training-only rate given as well.
* **baseline**: a plain Python loop over the first ``--baseline-edges``
  shuffled training positives (negatives from the same ``negatives_of``): for
  each positive and each of its negatives one ``model.energy`` call on 1-row
  tensors, the max-margin loss accumulated term by term, then ``backward`` and
  an RSGD step per batch of ``--batch-size`` positives.

Edges/s counts positive edges processed per second of training, each with its
negatives. Before timing, both paths compute the first batch of ``fit`` (same
initial points, same shuffled order, same negatives, reproduced from the seed)
and their losses and gradients are compared (to ``--tol``): the speed
comparison is of equal work. Torch threads: ``--threads`` (both paths).

    .venv/bin/python bench/label_cones.py --nodes 5000 --epochs 5 --batch-size 100 --baseline-edges 2000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch
from metrics import peak_rss_gib

from taxonbench.label_graph.edge_metrics import best_threshold
from taxonbench.label_graph.edges import EdgeDataset, EdgeOptions, NegativeSampler, build_edge_table
from taxonbench.label_graph.models import build_label_model, max_margin_loss
from taxonbench.label_graph.train import energies, fit, negatives_of
from taxonbench.taxonomy import Taxonomy

warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.script deprecation inside geoopt


def level_sizes(nodes: int, depth: int) -> list[int]:
    """``round(b^d)`` nodes at level ``d < depth`` and the rest at the last, ``Σ = nodes − 1``."""
    labels = nodes - 1
    lo, hi = 1.0, float(labels)
    for _ in range(100):  # b with Σ_{d=1..depth} b^d = labels
        b = (lo + hi) / 2
        lo, hi = (b, hi) if sum(b**d for d in range(1, depth + 1)) < labels else (lo, b)
    sizes = [max(1, round(b**d)) for d in range(1, depth)]
    sizes.append(labels - sum(sizes))
    if any(s2 < s1 for s1, s2 in zip(sizes, sizes[1:])) or sizes[-1] < 1:
        raise SystemExit(f"--nodes {nodes} is too small for --depth {depth}")
    return sizes


def synthetic_tree(sizes: list[int]) -> Taxonomy:
    """Root + levels of the given sizes; each level's nodes spread evenly over the level above."""
    parent = [-1]
    above = np.array([0])
    next_id = 1
    for size in sizes:
        j = np.arange(size)
        parent.extend(above[(j * len(above)) // size].tolist())
        above = np.arange(next_id, next_id + size)
        next_id += size
    return Taxonomy.from_parents(parent, rank=["root"] + [f"level{d}" for d, s in enumerate(sizes, 1) for _ in range(s)])


def edge_dataset(tax: Taxonomy, seed: int) -> EdgeDataset:
    table = build_edge_table(tax, EdgeOptions(), seed)
    split, label = np.asarray(table["split"]), np.asarray(table["label"])
    return EdgeDataset.from_table(table, {"non_basic": int(((label == 1) & (split != "basic")).sum())})


def vectorised_loss(model, param, u, v, neg_u, neg_v, alpha):
    """The loss of one batch exactly as ``fit`` computes it."""
    points = model.points(param)
    return max_margin_loss(model.energy(points[u], points[v]), model.energy(points[neg_u], points[neg_v]), alpha)


def per_edge_loss(model, param, u, v, neg_u, neg_v, alpha):
    """The same loss, one energy call on 1-row tensors per positive and per negative edge."""
    points = model.points(param)
    loss = torch.zeros((), dtype=points.dtype)
    for i in range(len(u)):
        a, b = int(u[i]), int(v[i])
        loss = loss + model.energy(points[a:a + 1], points[b:b + 1]).sum()
        for j in range(neg_u.shape[1]):
            a, b = int(neg_u[i, j]), int(neg_v[i, j])
            loss = loss + torch.relu(alpha - model.energy(points[a:a + 1], points[b:b + 1])).sum()
    return loss


def first_batch(model, tax, train, s):
    """``fit``'s initial parameter values and its first batch (same seed, same draws in the same order)."""
    generator = torch.Generator().manual_seed(int(s["seed"]))
    rng = np.random.default_rng(int(s["seed"]))
    init = model.init(tax.n_nodes, int(s["dim"]), generator)
    order = rng.permutation(len(train[0]))
    u, v = train[0][order], train[1][order]
    neg_u, neg_v = negatives_of(NegativeSampler(tax, s["sampling"]), u, v, int(s["negatives"]) // 2, rng)
    b = slice(0, int(s["batch_size"]))
    return init, (u[b], v[b], neg_u[b], neg_v[b]), (u, v, neg_u, neg_v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=5000, help="nodes of the tree, root included")
    ap.add_argument("--depth", type=int, default=4, help="levels below the root")
    ap.add_argument("--non-basic-fraction", type=float, default=0.5, help="share of non-basic edges in train")
    ap.add_argument("--dim", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--alpha", type=float, default=1.0, help="margin of the negatives")
    ap.add_argument("--K", type=float, default=0.1, help="aperture constant")
    ap.add_argument("--negatives", type=int, default=10, help="negatives per positive (even)")
    ap.add_argument("--batch-size", type=int, default=100, help="positive edges per step (both paths)")
    ap.add_argument("--epochs", type=int, default=5, help="epochs of the vectorised trainer")
    ap.add_argument("--baseline-edges", type=int, default=2000, help="positive edges the per-edge loop runs on")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-9, help="loss / gradient agreement required")
    ap.add_argument("--target", type=float, default=20.0, help="speed ratio to meet")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    sizes = level_sizes(args.nodes, args.depth)
    tax = synthetic_tree(sizes)
    data = edge_dataset(tax, args.seed)
    train = data.train(args.non_basic_fraction)
    val = data.labelled("val")
    t_setup = time.perf_counter() - t0
    n_train = len(train[0])
    n_basic = int((data.split == "basic").sum())
    s = {"seed": args.seed, "dim": args.dim, "lr": args.lr, "sampling": "pick_per_level",
         "negatives": args.negatives, "epochs": args.epochs, "batch_size": args.batch_size}
    model = build_label_model("hyperbolic_cones", {"optimizer": "rsgd", "K": args.K}, "bench")

    # ---- equal work: the first batch of fit, both ways, from the same points and negatives
    init, batch, (u_all, v_all, nu_all, nv_all) = first_batch(model, tax, train, s)
    losses, grads = [], []
    for path in (vectorised_loss, per_edge_loss):
        param = model.parameter(init)
        loss = path(model, param, *batch, args.alpha)
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append(param.grad.detach().clone())
    loss_diff = abs(losses[0] - losses[1])
    grad_diff = float((grads[0] - grads[1]).abs().max())
    same = loss_diff <= args.tol and grad_diff <= args.tol

    # ---- vectorised: the package's trainer
    t0 = time.perf_counter()
    result = fit(model, tax, train, val, s, args.alpha)
    t_vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(3):  # fit's per-epoch validation, timed on its own
        best_threshold(energies(model, result.points, val[0], val[1]), val[2])
    t_val = (time.perf_counter() - t0) / 3 * args.epochs
    vec_edges = args.epochs * n_train
    rate_vec = vec_edges / t_vec
    rate_vec_train = vec_edges / max(t_vec - t_val, 1e-9)
    finite = bool(torch.isfinite(result.points).all()) and bool((result.points[1:].norm(dim=1) < 1).all())

    # ---- baseline: per-edge Python loop on the first shuffled positives (fresh init, same negatives' sampler)
    m = min(args.baseline_edges, n_train)
    param = model.parameter(init)
    optimizer = model.optimizer([param], args.lr)
    rng = np.random.default_rng(args.seed + 1)
    sampler = NegativeSampler(tax, "pick_per_level")
    t0 = time.perf_counter()
    order = rng.permutation(n_train)[:m]
    u, v = train[0][order], train[1][order]
    neg_u, neg_v = negatives_of(sampler, u, v, args.negatives // 2, rng)
    base_total = 0.0
    for start in range(0, m, args.batch_size):
        b = slice(start, start + args.batch_size)
        loss = per_edge_loss(model, param, u[b], v[b], neg_u[b], neg_v[b], args.alpha)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        base_total += float(loss.detach())
    t_base = time.perf_counter() - t0
    rate_base = m / t_base
    ratio = rate_vec / rate_base

    print(f"tree: {tax.n_nodes} nodes (root + levels {'/'.join(map(str, sizes))}), {tax.n_leaves} leaves; "
          f"closure {int(data.label.sum())} edges ({n_basic} basic); train {n_train} positive edges "
          f"(basic + {args.non_basic_fraction:g} of non-basic), val {len(val[0])} edges")
    print(f"model: hyperbolic_cones, RSGD, d={args.dim}, K={args.K}, alpha={args.alpha}, lr={args.lr}, "
          f"{args.negatives} negatives/positive, batch {args.batch_size}, float64; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), {len(os.sched_getaffinity(0))} CPU(s) available; "
          f"setup {t_setup:.2f} s\n")
    print(f"equal work, first batch of fit ({len(batch[0])} positives, {batch[2].size} negatives, same init):")
    print(f"  loss vectorised {losses[0]:.12f}   per-edge {losses[1]:.12f}   |diff| {loss_diff:.3g}")
    print(f"  max |grad diff| {grad_diff:.3g}   -> {'SAME' if same else 'DIFFERENT'} (tol {args.tol:g})\n")
    print(f"{'path':<40}{'edges':>9}{'seconds':>10}{'edges/s':>12}")
    print(f"{'vectorised fit (incl. sampling, val)':<40}{vec_edges:>9}{t_vec:>10.2f}{rate_vec:>12.0f}")
    print(f"{'  training only (minus val, est.)':<40}{vec_edges:>9}{t_vec - t_val:>10.2f}{rate_vec_train:>12.0f}")
    print(f"{'baseline per-edge loop':<40}{m:>9}{t_base:>10.2f}{rate_base:>12.1f}")
    print(f"\nspeed ratio vectorised / baseline: {ratio:.1f}x (target >= {args.target:g}x: "
          f"{'MET' if ratio >= args.target else 'NOT MET'}); training only {rate_vec_train / rate_base:.1f}x")
    print(f"vectorised: {args.epochs} epochs, final loss {result.log[-1]['loss']:.6g}, best val F1 "
          f"{result.val_f1:.4f} (epoch {result.epoch}); points finite and in the ball: {finite}")
    print(f"baseline: {m} edges, summed loss {base_total:.6g}")
    print(f"peak RSS: {peak_rss_gib():.2f} GiB")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
