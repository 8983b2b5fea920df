"""Benchmark the metric families at iNat21 scale (docs/metrics.md §1: "for scale").

Builds an iNat21-shaped tree (a root and 7 ranks of 3/13/51/273/1103/4900/10000
nodes; 16,344 nodes, 10,000 leaves; children spread evenly over the rank
above), generates random hierarchically consistent node scores chunk by chunk
(a softmax over leaf logits, summed up the tree; ``--scores sigmoid`` turns
them into inconsistent per-node sigmoids), and runs every registered family
through :func:`taxonbench.metrics.evaluate`.

Two passes over identical data: a baseline that only generates the scores,
then generation + evaluate. Metric time = total - generation (the baseline
pass), and, less sensitive to load on a shared machine, total - the time the
second pass itself spent generating. Peak memory is the process's peak
resident set size (``getrusage``), read after each pass.

    .venv/bin/python bench/metrics.py --samples 100000 --chunk 4096
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Iterator

import numpy as np

from taxonbench.metrics import evaluate
from taxonbench.taxonomy import Taxonomy

RANK_SIZES = (3, 13, 51, 273, 1103, 4900, 10000)


def inat21_shaped_taxonomy() -> Taxonomy:
    """Root + 7 ranks; node ids rank by rank, each parent's children contiguous."""
    parent = [-1]
    above = np.array([0])
    next_id = 1
    for size in RANK_SIZES:
        j = np.arange(size)
        parent.extend(above[(j * len(above)) // size].tolist())  # even spread, no parent left out
        above = np.arange(next_id, next_id + size)
        next_id += size
    return Taxonomy.from_parents(parent, rank=["root"] + [f"rank{d}" for d, s in
                                                          enumerate(RANK_SIZES, 1) for _ in range(s)])


class ScoreGenerator:
    """Reproducible consistent node scores: chunk ``c`` depends only on (seed, c)."""

    def __init__(self, taxonomy: Taxonomy, seed: int = 0, kind: str = "softmax") -> None:
        self.tax = taxonomy
        self.seed = seed
        self.kind = kind
        parent, depth = taxonomy.parent, taxonomy.depth
        # Rank r occupies a contiguous id range; its nodes' parents are sorted,
        # so summing a rank into the one above is one reduceat per rank.
        self.levels = []
        for d in range(taxonomy.max_depth, 0, -1):
            ids = np.flatnonzero(depth == d)
            above = np.flatnonzero(depth == d - 1)
            assert np.array_equal(ids, np.arange(ids[0], ids[-1] + 1))
            par = parent[ids]
            assert np.all(np.diff(par) >= 0) and np.array_equal(np.unique(par), above)
            starts = np.flatnonzero(np.r_[True, par[1:] != par[:-1]])
            self.levels.append((slice(ids[0], ids[-1] + 1), slice(above[0], above[-1] + 1), starts))
        self.leaf_slice = self.levels[0][0]
        assert np.array_equal(taxonomy.leaf_nodes, np.arange(self.leaf_slice.start, self.leaf_slice.stop))

    def chunk(self, c: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        tax = self.tax
        rng = np.random.default_rng([self.seed, c])
        gt = rng.integers(0, tax.n_leaves, size=rows)
        logits = rng.random((rows, tax.n_leaves), dtype=np.float32)
        logits *= 6.0
        # A sample-dependent boost of the true leaf: a mix of easy and hard samples.
        logits[np.arange(rows), gt] += rng.random(rows, dtype=np.float32) * 14.0
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        p = np.empty((rows, tax.n_nodes), dtype=np.float32)
        p[:, self.leaf_slice] = logits
        for ids, above, starts in self.levels:
            p[:, above] = np.add.reduceat(p[:, ids], starts, axis=1)
        if self.kind == "sigmoid":
            # Inconsistent scores (independent per-node sigmoids) that still
            # follow the consistent ones: sigmoid(logit(p) + noise).
            noise = rng.standard_normal(p.shape, dtype=np.float32)
            np.clip(p, 1e-6, 1 - 1e-6, out=p)
            p = np.log(p / (1 - p)) + noise
            p = 1 / (1 + np.exp(-p))
        return p, gt

    def chunks(self, n_samples: int, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for c, start in enumerate(range(0, n_samples, chunk)):
            yield self.chunk(c, min(chunk, n_samples - start))


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=4096, help="rows per chunk fed to evaluate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--families", nargs="*", default=None, help="default: all registered")
    ap.add_argument("--scores", choices=["softmax", "sigmoid"], default="softmax",
                    help="consistent leaf softmax (default) or inconsistent per-node sigmoids")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    tax = inat21_shaped_taxonomy()
    gen = ScoreGenerator(tax, args.seed, args.scores)
    # Sanity: the level sums equal the leaf-ancestor matrix product.
    p, _ = ScoreGenerator(tax, args.seed).chunk(0, 8)
    leaf = p[:, gen.leaf_slice].astype(np.float64)
    np.testing.assert_allclose(p, np.asarray(leaf @ tax.leaf_ancestor_matrix), atol=1e-5)
    _ = tax.ancestor_table, tax.info, tax.n_children  # build cached structures up front
    t_setup = time.perf_counter() - t0
    rss_setup = peak_rss_gib()

    t0 = time.perf_counter()
    checksum = 0.0
    for p, gt in gen.chunks(args.samples, args.chunk):
        checksum += float(p[:, 0].sum())
    t_gen = time.perf_counter() - t0
    rss_gen = peak_rss_gib()

    in_pass_gen = [0.0]

    def timed_chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        it = gen.chunks(args.samples, args.chunk)
        while True:
            t = time.perf_counter()
            item = next(it, None)
            in_pass_gen[0] += time.perf_counter() - t
            if item is None:
                return
            yield item

    t0 = time.perf_counter()
    metrics, curve = evaluate(timed_chunks(), tax, args.families)
    t_total = time.perf_counter() - t0
    rss_total = peak_rss_gib()
    t_metric = t_total - t_gen
    t_metric_in_pass = t_total - in_pass_gen[0]

    print(f"iNat21-shaped tree: {tax.n_nodes} nodes, {tax.n_leaves} leaves, depth {tax.max_depth}; "
          f"{args.samples} samples in chunks of {args.chunk}; {args.scores} scores, float32")
    print(f"(mean root score {checksum / args.samples:.6f}; "
          f"{len(os.sched_getaffinity(0))} CPU(s) available)\n")
    rows = [
        ("setup (tree, caches)", t_setup, rss_setup),
        ("generation only (baseline)", t_gen, rss_gen),
        ("generation + evaluate", t_total, rss_total),
        ("  of which generating (timed)", in_pass_gen[0], float("nan")),
        ("metrics = total - generation", t_metric, float("nan")),
        ("metrics = total - timed gen.", t_metric_in_pass, float("nan")),
    ]
    print(f"{'phase':<32}{'seconds':>10}{'peak RSS GiB':>15}")
    for name, sec, rss in rows:
        print(f"{name:<32}{sec:>10.2f}{rss:>15.2f}")
    print(f"{'ratio total / generation':<32}{t_total / t_gen:>10.2f}")
    print(f"{'metric throughput (samples/s)':<32}{args.samples / max(t_metric_in_pass, 1e-9):>10.0f}\n")
    for key, value in metrics.items():
        print(f"  {key:<26}{value:.6g}" if isinstance(value, float) else f"  {key:<26}{value}")
    print(f"  curve: {', '.join(f'{k}[{len(v)}]' for k, v in curve.items())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
