"""Benchmark retrieval top-k / MAP@R against pytorch-metric-learning's AccuracyCalculator (docs/metrics.md §3).

Random clustered embeddings: ``--classes`` unit-norm class centres in
``--dim`` dimensions; every query and gallery item gets a uniformly random
class and is its centre plus Gaussian noise of standard deviation
``--noise / sqrt(dim)`` per coordinate (so a noise vector has norm about
``--noise``), float32. Both sets are generated from ``--seed`` alone, chunk by
chunk.

Two measurements on the same embeddings, each in its own spawned process (so
each peak resident set size, ``getrusage`` of that process, is its own; it
includes the embeddings, generated before the clock starts):

* ours: :func:`taxonbench.representation.retrieval.retrieval_scores`, the top-k
  curve to ``--k`` (100) and MAP@R, over all queries;
* the baseline: ``AccuracyCalculator(include=("precision_at_1",
  "mean_average_precision_at_r"), k="max_bin_count")`` with
  ``ref_includes_query=False`` and, faiss aside, pml's own exact cosine k-NN
  ``CustomKNN(CosineSimilarity(), batch_size=--pml-batch)``, over the first
  ``--baseline-queries`` queries (all by default) against the whole gallery.

Agreement: on the baseline's queries, ours (per-query first-hit ranks and
AP@R restricted to those queries) must equal pml's ``precision_at_1`` and
``mean_average_precision_at_r`` to ``--tolerance`` (1e-6). The speed ratio is
pml's seconds per query over ours (> 1: ours is faster), which is the plain
ratio of seconds when the baseline runs on every query. Torch is kept at
``--threads`` (2) threads in both processes.

    .venv/bin/python bench/retrieval.py                       # 100k x 100k x 128, 10k classes
    .venv/bin/python bench/retrieval.py --queries 10000 --gallery 20000 --classes 2000
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import sys
import time
from typing import Any

import numpy as np
from metrics import peak_rss_gib


def make_embeddings(n: int, centres: np.ndarray, noise: float, seed: list[int],
                    chunk: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """``n`` float32 points, class uniform, ``centre + noise/sqrt(dim) * N(0, I)``; reproducible from ``seed``."""
    n_classes, dim = centres.shape
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=n)
    x = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        x[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32)
        x[start:stop] *= noise / math.sqrt(dim)
        x[start:stop] += centres[labels[start:stop]]
    return x, labels


def dataset(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng([args.seed, 0])
    centres = rng.standard_normal((args.classes, args.dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    q, qy = make_embeddings(args.queries, centres, args.noise, [args.seed, 1])
    g, gy = make_embeddings(args.gallery, centres, args.noise, [args.seed, 2])
    return q, qy, g, gy


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def run_ours(args: argparse.Namespace) -> dict[str, Any]:
    _set_threads(args.threads)
    from taxonbench.representation.retrieval import retrieval_scores

    q, qy, g, gy = dataset(args)
    rss_data = peak_rss_gib()
    t0 = time.perf_counter()
    s = retrieval_scores(q, qy, g, gy, k=args.k, chunk_size=args.chunk)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rss": peak_rss_gib(), "rss_data": rss_data, "curve": s.top_k_accuracy,
            "map_at_r": s.map_at_r, "n_evaluated": s.n_evaluated, "first_hit": s.first_hit_rank,
            "ap": s.average_precision_at_r, "r_max": int(s.r.max())}


def run_pml(args: argparse.Namespace) -> dict[str, Any]:
    _set_threads(args.threads)
    import torch
    from pytorch_metric_learning.distances import CosineSimilarity
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    q, qy, g, gy = dataset(args)
    n = args.baseline_queries
    q, qy = q[:n], qy[:n]
    rss_data = peak_rss_gib()
    t0 = time.perf_counter()
    calc = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count",
                              device=torch.device("cpu"),
                              knn_func=CustomKNN(CosineSimilarity(), batch_size=args.pml_batch))
    acc = calc.get_accuracy(q, qy, g, gy, ref_includes_query=False)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rss": peak_rss_gib(), "rss_data": rss_data, **acc}


def _child(target_name: str, args: argparse.Namespace, conn: Any) -> None:
    try:
        conn.send(("ok", globals()[target_name](args)))
    except BaseException as exc:  # noqa: BLE001 -- report it, do not leave the parent waiting
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def in_child(target_name: str, args: argparse.Namespace) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(target_name, args, child))
    proc.start()
    child.close()
    try:
        status, payload = parent.recv()
    except EOFError:
        proc.join()
        raise RuntimeError(f"{target_name} died (exit code {proc.exitcode}; out of memory?)") from None
    proc.join()
    if status != "ok":
        raise RuntimeError(f"{target_name} failed: {payload}")
    return payload


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=100_000)
    ap.add_argument("--gallery", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--classes", type=int, default=10_000)
    ap.add_argument("--noise", type=float, default=1.6, help="norm of an item's offset from its class centre")
    ap.add_argument("--k", type=int, default=100, help="largest k of the top-k curve")
    ap.add_argument("--chunk", type=int, default=None, help="our queries per chunk (default: from the memory budget)")
    ap.add_argument("--pml-batch", type=int, default=1024, help="queries per batch of pml's CustomKNN")
    ap.add_argument("--baseline-queries", type=int, default=None,
                    help="run pml on the first N queries only (default: all) and compare per-query rates")
    ap.add_argument("--threads", type=int, default=2, help="torch threads in both processes")
    ap.add_argument("--tolerance", type=float, default=1e-6)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.baseline_queries is None:
        args.baseline_queries = args.queries
    args.baseline_queries = min(args.baseline_queries, args.queries)

    print(f"{args.queries} queries x {args.gallery} gallery x {args.dim}-d float32, {args.classes} classes, "
          f"noise {args.noise}; top-k to {args.k} + MAP@R; torch threads {args.threads} "
          f"({len(os.sched_getaffinity(0))} CPU(s) available)")
    subset = args.baseline_queries < args.queries
    print(f"baseline: pytorch-metric-learning AccuracyCalculator (CustomKNN cosine, batch {args.pml_batch}) on "
          + (f"the first {args.baseline_queries} queries (a subset: compared per query)" if subset
             else "all queries") + "\n", flush=True)

    ours = in_child("run_ours", args)
    base = in_child("run_pml", args)

    nb = args.baseline_queries
    kept = np.flatnonzero(ours["first_hit"][:nb] >= 0)
    sub_p1 = float((ours["first_hit"][:nb][kept] == 0).mean()) if len(kept) else float("nan")
    sub_map = float(ours["ap"][:nb][kept].mean()) if len(kept) else float("nan")
    d_p1 = abs(sub_p1 - base["precision_at_1"])
    d_map = abs(sub_map - base["mean_average_precision_at_r"])
    agree = d_p1 <= args.tolerance and d_map <= args.tolerance

    per_q_ours = ours["seconds"] / args.queries
    per_q_pml = base["seconds"] / nb
    print(f"{'':<34}{'queries':>9}{'seconds':>10}{'ms/query':>10}{'peak RSS GiB':>14}{'(data only)':>13}")
    print(f"{f'ours (top-k to {args.k} + MAP@R)':<34}{args.queries:>9}{ours['seconds']:>10.2f}"
          f"{1e3 * per_q_ours:>10.3f}{ours['rss']:>14.2f}{ours['rss_data']:>13.2f}")
    print(f"{'pml AccuracyCalculator':<34}{nb:>9}{base['seconds']:>10.2f}{1e3 * per_q_pml:>10.3f}"
          f"{base['rss']:>14.2f}{base['rss_data']:>13.2f}")
    print(f"{'speed ratio pml / ours (per query)':<34}{per_q_pml / per_q_ours:>29.2f}")
    print(f"\nlargest R (gallery matches of a query's label): {ours['r_max']}; "
          f"queries with a match: {ours['n_evaluated']} / {args.queries}")
    print(f"ours, all queries: top-1 {ours['curve'][0]:.6f}, top-10 {ours['curve'][min(9, args.k - 1)]:.6f}, "
          f"top-{args.k} {ours['curve'][-1]:.6f}, MAP@R {ours['map_at_r']:.6f}")
    print(f"on the baseline's {nb} queries ({len(kept)} with a match):")
    print(f"  precision_at_1               ours {sub_p1:.9f}  pml {base['precision_at_1']:.9f}  |diff| {d_p1:.2e}")
    print(f"  mean_average_precision_at_r  ours {sub_map:.9f}  pml {base['mean_average_precision_at_r']:.9f}  "
          f"|diff| {d_map:.2e}")
    print(f"agreement to {args.tolerance:g}: {'yes' if agree else 'NO'}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
