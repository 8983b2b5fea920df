"""Benchmark HCCF diffusion (Eq. 6) at iNat21 scale: the factorised sparse path vs a dense inverse.

Tree: ``inat21_shaped_taxonomy`` of ``bench/metrics.py`` (a root and 7 ranks
of 3/13/51/273/1103/4900/10000 nodes; 16,344 nodes). Scores: that script's
``ScoreGenerator`` (consistent bottom-up node scores of a random leaf softmax),
made float64 before timing; they play ``f⁰``.

For every chunk of samples the same ``f⁰`` goes through

* **sparse**: ``DiffusionOperator.apply`` — the ``L Δ Lᵀ`` factorisation of
  ``I − αW_n`` (computed once) and two level sweeps per block of samples;
* **dense**: ``f⁰ @ M`` with ``M = (1 − α)(I − αW_n)^{-1}`` held as a dense
  ``n × n`` matrix (float64, ~2.1 GB; ``--dense-dtype float32`` halves it and
  the baseline's time, and its accuracy), computed once before the loop.

Both write into preallocated outputs (the page faults of a fresh 0.5 GB array
per chunk would otherwise dominate on some machines). Reported: seconds of
each path over the samples it ran, the per-sample speed ratio, and the largest
absolute difference between the two. ``--dense-samples`` runs the (slow)
baseline on the first samples only — the ratio is then per sample, and says so.
``--splu-samples`` also times SuperLU's own multi-right-hand-side solve
(``splu(A).solve(B)``) on a few samples, the reason the sweeps exist.

    .venv/bin/python bench/diffusion.py --samples 100000 --chunk 4096
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from metrics import ScoreGenerator, inat21_shaped_taxonomy, peak_rss_gib

from taxonbench.inference.diffusion import DiffusionOperator


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dense-samples", type=int, default=None, help="baseline on the first N samples (default: all)")
    ap.add_argument("--dense-dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--splu-samples", type=int, default=4096,
                    help="samples (as one right-hand side per chunk) for the SuperLU reference; 0 skips it")
    args = ap.parse_args(argv)
    dense_samples = args.samples if args.dense_samples is None else min(args.dense_samples, args.samples)
    ddtype = np.dtype(args.dense_dtype)

    tax = inat21_shaped_taxonomy()
    gen = ScoreGenerator(tax, args.seed)
    n = tax.n_nodes
    t0 = time.perf_counter()
    op = DiffusionOperator(tax, args.alpha)
    t_factor = time.perf_counter() - t0
    t0 = time.perf_counter()
    dense = op.dense_matrix()
    if ddtype != dense.dtype:
        dense = dense.astype(ddtype)
    t_dense_setup = time.perf_counter() - t0
    rss_setup = peak_rss_gib()

    out_sparse = np.zeros((args.chunk, n))  # zeros: pages touched before any timing
    out_dense = np.zeros((args.chunk, n), dtype=ddtype)
    out_sparse += 0.0
    out_dense += 0
    t_sparse = t_dense = t_splu = 0.0
    n_sparse = n_dense = n_splu = 0
    max_diff = 0.0
    max_abs = 0.0
    splu_diff = 0.0
    for c, start in enumerate(range(0, args.samples, args.chunk)):
        rows = min(args.chunk, args.samples - start)
        p, _ = gen.chunk(c, rows)
        f0 = p.astype(np.float64)

        t = time.perf_counter()
        op.apply(f0, out=out_sparse[:rows])
        t_sparse += time.perf_counter() - t
        n_sparse += rows
        max_abs = max(max_abs, float(np.abs(out_sparse[:rows]).max()))

        k = min(rows, dense_samples - start)
        if k > 0:
            x = f0[:k] if ddtype == np.float64 else f0[:k].astype(ddtype)
            t = time.perf_counter()
            np.matmul(x, dense, out=out_dense[:k])
            t_dense += time.perf_counter() - t
            n_dense += k
            diff = out_dense[:k]  # reused in place: no 0.5 GB temporaries
            np.subtract(diff, out_sparse[:k], out=diff)
            np.abs(diff, out=diff)
            max_diff = max(max_diff, float(diff.max()))

        k = min(rows, args.splu_samples - start)
        if k > 0:
            t = time.perf_counter()
            ref = op.apply_splu(f0[:k])
            t_splu += time.perf_counter() - t
            n_splu += k
            splu_diff = max(splu_diff, float(np.abs(ref - out_sparse[:k]).max()))
        print(f"  chunk {c}: {start + rows} samples, sparse {t_sparse:.2f} s, dense {t_dense:.2f} s "
              f"({n_dense} samples), max diff {max_diff:.3g}", file=sys.stderr, flush=True)

    per_sparse = t_sparse / n_sparse
    per_dense = t_dense / max(n_dense, 1)
    print(f"iNat21-shaped tree: {n} nodes, {tax.n_leaves} leaves; alpha {args.alpha}; {args.samples} samples "
          f"in chunks of {args.chunk}; {len(os.sched_getaffinity(0))} CPU(s) available")
    print(f"setup: factorisation {t_factor * 1e3:.1f} ms; dense M ({ddtype}, {dense.nbytes / 2**30:.2f} GiB) "
          f"{t_dense_setup:.1f} s; peak RSS after setup {rss_setup:.2f} GiB\n")
    print(f"{'path':<36}{'samples':>9}{'seconds':>10}{'ms/sample':>11}")
    print(f"{'sparse (L D L^T level sweeps)':<36}{n_sparse:>9}{t_sparse:>10.2f}{per_sparse * 1e3:>11.4f}")
    print(f"{'dense f0 @ M (' + str(ddtype) + ')':<36}{n_dense:>9}{t_dense:>10.2f}{per_dense * 1e3:>11.4f}")
    if n_splu:
        print(f"{'SuperLU splu(A).solve(B) (ref.)':<36}{n_splu:>9}{t_splu:>10.2f}{t_splu / n_splu * 1e3:>11.4f}")
    note = "" if n_dense == n_sparse else f"  (per sample; dense ran on {n_dense} of {n_sparse} samples)"
    print(f"\nspeed ratio dense / sparse: {per_dense / per_sparse:.1f}x{note}")
    print(f"max |sparse - dense|: {max_diff:.3g} (largest |f*| {max_abs:.3g})")
    if n_splu:
        print(f"max |sparse - SuperLU|: {splu_diff:.3g}")
    print(f"peak RSS: {peak_rss_gib():.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
