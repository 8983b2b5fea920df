"""Benchmark the metric families at iNat21 scale (docs/metrics.md §1: "for scale").

Builds an iNat21-shaped tree (a root and 7 ranks of 3/13/51/273/1103/4900/10000
nodes; 16,344 nodes, 10,000 leaves; children spread evenly over the rank
above), or with ``--tree random`` an unbalanced 7-rank tree of about 2,000
nodes, generates random node scores chunk by chunk and runs every registered
family through :func:`taxonbench.metrics.evaluate`, for both kinds of scores:

- ``softmax``: hierarchically consistent scores, a softmax over leaf logits
  summed up the tree (rank by rank on the iNat21-shaped tree; on the random
  tree as the product with the leaf-ancestor matrix, whose result is
  column-major, as a caller's sparse product would be);
- ``sigmoid``: inconsistent per-node sigmoids that follow them,
  ``sigmoid(logit(p) + noise)``.

Each kind runs in its own process (so that its peak memory is its own) with
two passes over identical data: a baseline that only generates the scores,
then generation + evaluate. Metric time = total - the time the second pass
itself spent generating (less sensitive to load on a shared machine than
total - baseline, also printed). Peak memory is the process's peak resident
set size (``getrusage``), read after each pass. The last line is the ratio of
the consistent to the inconsistent metric time, measured in the same run.

    .venv/bin/python bench/metrics.py --samples 100000 --chunk 4096
    .venv/bin/python bench/metrics.py --tree random --samples 20000 --families operating_curve
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
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


#: Rank sizes of the ``--tree random`` tree: 1,992 nodes, every rank at least as wide as the one above.
RANDOM_RANK_SIZES = (3, 8, 20, 60, 200, 600, 1100)


def random_taxonomy(seed: int = 0) -> Taxonomy:
    """Root + 7 ranks; every node of a rank has a child, the others' parents drawn at random (unbalanced)."""
    rng = np.random.default_rng(seed)
    parent = [-1]
    above = np.array([0])
    next_id = 1
    for size in RANDOM_RANK_SIZES:
        parent.extend(np.sort(np.r_[above, rng.choice(above, size - len(above))]).tolist())
        above = np.arange(next_id, next_id + size)
        next_id += size
    return Taxonomy.from_parents(parent, rank=["root"] + [f"rank{d}" for d, s in
                                                          enumerate(RANDOM_RANK_SIZES, 1) for _ in range(s)])


#: tree -> (builder, how the consistent scores are summed up the tree: by rank, or by the matrix product)
TREES = {"inat21": (inat21_shaped_taxonomy, True), "random": (random_taxonomy, False)}


class ScoreGenerator:
    """Reproducible node scores: chunk ``c`` depends only on (seed, c).

    With ``by_rank`` (a tree whose ranks occupy contiguous id ranges with
    sorted parents: the iNat21-shaped one) the leaf softmax is summed up rank
    by rank (one ``reduceat`` a rank); otherwise it is multiplied by the sparse
    leaf-ancestor matrix (a column-major result).
    """

    def __init__(self, taxonomy: Taxonomy, seed: int = 0, kind: str = "softmax", by_rank: bool = True) -> None:
        self.tax = taxonomy
        self.seed = seed
        self.kind = kind
        parent, depth = taxonomy.parent, taxonomy.depth
        self.levels: list[tuple[slice, slice, np.ndarray]] | None = [] if by_rank else None
        for d in range(taxonomy.max_depth, 0, -1) if by_rank else ():
            ids = np.flatnonzero(depth == d)
            above = np.flatnonzero(depth == d - 1)
            par = parent[ids]
            if not (np.array_equal(ids, np.arange(ids[0], ids[-1] + 1)) and np.all(np.diff(par) >= 0)
                    and np.array_equal(np.unique(par), above)):
                raise ValueError("summing by rank needs contiguous ranks with sorted parents")
            starts = np.flatnonzero(np.r_[True, par[1:] != par[:-1]])
            self.levels.append((slice(ids[0], ids[-1] + 1), slice(above[0], above[-1] + 1), starts))
        leaves = taxonomy.leaf_nodes
        self.by_rank = by_rank
        if by_rank and not np.array_equal(leaves, np.arange(leaves[0], leaves[-1] + 1)):
            raise ValueError("summing by rank needs the leaves to be the last, contiguous rank")

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
        if self.by_rank:
            p = np.empty((rows, tax.n_nodes), dtype=np.float32)
            p[:, tax.leaf_nodes[0]:tax.leaf_nodes[-1] + 1] = logits
            for ids, above, starts in self.levels:
                p[:, above] = np.add.reduceat(p[:, ids], starts, axis=1)
        else:
            p = np.asarray(logits @ tax.leaf_ancestor_matrix, dtype=np.float32)
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


def measure(args: argparse.Namespace) -> dict:
    """One kind of scores, in this process: the two passes' times, peak memory and the metrics."""
    t0 = time.perf_counter()
    build, by_rank = TREES[args.tree]
    tax = build()
    gen = ScoreGenerator(tax, args.seed, args.scores, by_rank)
    # Sanity: the generated consistent scores equal the leaf-ancestor matrix product.
    p, _ = ScoreGenerator(tax, args.seed).chunk(0, 8)
    leaf = p[:, tax.leaf_nodes].astype(np.float64)
    np.testing.assert_allclose(p, np.asarray(leaf @ tax.leaf_ancestor_matrix), atol=1e-5)
    _ = tax.ancestor_table, tax.info, tax.n_children  # build cached structures up front
    t_setup = time.perf_counter() - t0
    rss_setup = peak_rss_gib()

    t0 = time.perf_counter()
    checksum = 0.0
    for p, _gt in gen.chunks(args.samples, args.chunk):
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
    return {
        "tree": f"{tax.n_nodes} nodes, {tax.n_leaves} leaves, depth {tax.max_depth}",
        "root_mean": checksum / args.samples,
        "setup": t_setup, "rss_setup": rss_setup, "generation": t_gen, "rss_generation": rss_gen,
        "total": t_total, "rss_total": peak_rss_gib(), "generating_in_pass": in_pass_gen[0],
        "metrics": {k: float(v) for k, v in metrics.items()},
        "curve": {k: len(v) for k, v in curve.items()},
    }


def report(kind: str, r: dict, samples: int) -> float:
    """Print one kind's phases; return its metric time (total - timed generation)."""
    t_metric = r["total"] - r["generating_in_pass"]
    print(f"## {kind} scores (mean root score {r['root_mean']:.6f})")
    rows = [
        ("setup (tree, caches)", r["setup"], r["rss_setup"]),
        ("generation only (baseline)", r["generation"], r["rss_generation"]),
        ("generation + evaluate", r["total"], r["rss_total"]),
        ("  of which generating (timed)", r["generating_in_pass"], float("nan")),
        ("metrics = total - generation", r["total"] - r["generation"], float("nan")),
        ("metrics = total - timed gen.", t_metric, float("nan")),
    ]
    print(f"{'phase':<32}{'seconds':>10}{'peak RSS GiB':>15}")
    for name, sec, rss in rows:
        print(f"{name:<32}{sec:>10.2f}{rss:>15.2f}")
    print(f"{'ratio total / generation':<32}{r['total'] / r['generation']:>10.2f}")
    print(f"{'metric throughput (samples/s)':<32}{samples / max(t_metric, 1e-9):>10.0f}\n")
    for key, value in r["metrics"].items():
        print(f"  {key:<26}{value:.6g}")
    print(f"  curve: {', '.join(f'{k}[{n}]' for k, n in r['curve'].items())}\n")
    return t_metric


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=4096, help="rows per chunk fed to evaluate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tree", choices=sorted(TREES), default="inat21")
    ap.add_argument("--families", nargs="*", default=None, help="default: all registered")
    ap.add_argument("--scores", choices=["both", "softmax", "sigmoid"], default="both",
                    help="consistent leaf softmax, inconsistent per-node sigmoids, or both (default), "
                         "each in its own process")
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)  # a child process's result file
    args = ap.parse_args(argv)

    if args.scores != "both":
        result = measure(args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f)
        else:
            report(args.scores, result, args.samples)
        return 0

    results = {}
    for kind in ("softmax", "sigmoid"):
        out = f"/tmp/taxonbench_bench_metrics_{os.getpid()}_{kind}.json"
        cmd = [sys.executable, __file__, "--samples", str(args.samples), "--chunk", str(args.chunk),
               "--seed", str(args.seed), "--tree", args.tree, "--scores", kind, "--json", out]
        if args.families is not None:
            cmd += ["--families", *args.families]
        subprocess.run(cmd, check=True)
        with open(out) as f:
            results[kind] = json.load(f)
        os.unlink(out)
    print(f"{args.tree} tree: {results['softmax']['tree']}; {args.samples} samples in chunks of "
          f"{args.chunk}; float32 scores; {len(os.sched_getaffinity(0))} CPU(s) available\n")
    t = {kind: report(kind, r, args.samples) for kind, r in results.items()}
    print(f"ratio of metric times, consistent / sigmoid: {t['softmax'] / t['sigmoid']:.2f} "
          f"({t['softmax']:.2f} s vs {t['sigmoid']:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
