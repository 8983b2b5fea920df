"""Calibrate the synthetic taxonomy's difficulty (a script, not a test).

Generates the dataset in memory (the same pixels the PNG shards hold), trains
a flat softmax classifier (TinyCNN + linear layer; SGD lr 0.05, momentum 0.9,
weight decay 5e-4, cosine schedule, batch 128, random crop with padding 2) on
the train split on CPU, and reports on the test split:

- leaf top-1 accuracy (target 35-70 %, hard limits 25-85 %);
- the mean depth of the lowest common ancestor (LCA) of true and predicted
  leaf over the mistakes, against the exact expectation for a uniformly
  random wrong leaf (mistakes should be clearly deeper, i.e. closer in the tree);
- accuracy at every rank implied by the leaf prediction; training seconds.

Usage::

    .venv/bin/python bench/calibrate_synthetic.py                       # the defaults
    .venv/bin/python bench/calibrate_synthetic.py --set code_decay=0.75 --set noise=0.06
    .venv/bin/python bench/calibrate_synthetic.py --variant long_tailed --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from torch import nn

from taxonbench.datasets.synthetic import SyntheticTaxonomy
from taxonbench.models.backbones import TinyCNN, Preprocess
from taxonbench.taxonomy import Taxonomy


def load_split(adapter: SyntheticTaxonomy, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split as a normalised float tensor ``(N, 3, H, W)`` and leaf labels ``(N,)``."""
    images, leaves = [], []
    for _, im, lf in adapter.arrays(split):
        images.append(im)
        leaves.append(lf)
    pre = Preprocess()
    x = torch.from_numpy(np.concatenate(images)).permute(0, 3, 1, 2).float().div_(255)
    x = (x - torch.tensor(pre.mean).view(1, 3, 1, 1)) / torch.tensor(pre.std).view(1, 3, 1, 1)
    return x.contiguous(), torch.from_numpy(np.concatenate(leaves).astype(np.int64))


def random_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``pad`` and crop back at a random offset per image (vectorised)."""
    b, c, h, w = x.shape
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    return padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


def train_flat(x: torch.Tensor, y: torch.Tensor, n_classes: int, epochs: int, seed: int,
               batch: int = 128, lr: float = 0.05) -> tuple[nn.Module, float, np.ndarray]:
    """Train; return the model, the wall seconds and the time of every step.

    On a shared machine the wall time swings with other work; the median (or
    10th percentile) step time times the number of steps is a steadier
    estimate of the uncontended cost.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    backbone = TinyCNN()
    model = nn.Sequential(backbone, nn.Linear(backbone.num_features, n_classes))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    steps = epochs * math.ceil(len(x) / batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    step_times = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            t = time.perf_counter()
            idx = order[i: i + batch]
            loss = loss_fn(model(random_crop(x[idx], 2, gen)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step_times.append(time.perf_counter() - t)
    return model, time.perf_counter() - start, np.array(step_times)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    model.eval()
    return torch.cat([model(x[i: i + 512]).argmax(1) for i in range(0, len(x), 512)]).numpy()


def lca_depth_matrix(tax: Taxonomy) -> np.ndarray:
    """``D[i, j]`` = depth of LCA(leaf i, leaf j); an ancestor shared at depth d is shared above it."""
    anc = tax.ancestor_table[tax.leaf_nodes]
    return sum((anc[:, None, d] == anc[None, :, d]).astype(np.int64) for d in range(1, anc.shape[1]))


def report(tax: Taxonomy, y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    lca = lca_depth_matrix(tax)
    wrong = y_true != y_pred
    n = tax.n_leaves
    # E[depth LCA(true, uniform wrong leaf)]: per true leaf, the mean over the other n-1 leaves.
    off_diag = (lca.sum(1) - np.diag(lca)) / (n - 1)
    anc = tax.ancestor_table[tax.leaf_nodes]
    per_rank = {tax.rank_names[d - 1]: float((anc[y_true, d] == anc[y_pred, d]).mean())
                for d in range(1, anc.shape[1])}
    return {
        "leaf_top1": float((~wrong).mean()),
        "mistake_lca_depth": float(lca[y_true[wrong], y_pred[wrong]].mean()) if wrong.any() else float("nan"),
        "random_wrong_lca_depth": float(off_diag[y_true].mean()),
        "rank_accuracy": per_rank,
    }


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variant", default="balanced")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="override a SyntheticOptions field, e.g. --set code_decay=0.75")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the report to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    options = {"variant": args.variant}
    for item in args.set:
        key, _, value = item.partition("=")
        options[key] = parse_value(value)
    adapter = SyntheticTaxonomy(options, name="calibration", seed=args.seed)
    tax = adapter.taxonomy()

    t0 = time.perf_counter()
    x_train, y_train = load_split(adapter, "train")
    x_test, y_test = load_split(adapter, "test")
    gen_s = time.perf_counter() - t0
    model, train_s, steps = train_flat(x_train, y_train, tax.n_leaves, args.epochs, args.seed)
    out = {
        "options": options,
        "seed": args.seed,
        "n_leaves": tax.n_leaves,
        "n_train": len(x_train),
        "n_test": len(x_test),
        "generate_seconds": round(gen_s, 2),
        "train_seconds": round(train_s, 2),
        "train_seconds_median_step": round(float(np.median(steps)) * len(steps), 2),
        "train_seconds_p10_step": round(float(np.percentile(steps, 10)) * len(steps), 2),
        "epochs": args.epochs,
        "threads": args.threads,
        "train_top1": float((predict(model, x_train) == y_train.numpy()).mean()),
        **report(tax, y_test.numpy(), predict(model, x_test)),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
