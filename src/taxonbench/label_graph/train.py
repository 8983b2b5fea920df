"""Label-only embedding of a taxonomy (Dhall's thesis §5.5, Tables 6.1-6.2).

Training (after Ganea et al. 2018, as the thesis does): the basic edges and
``non_basic_fraction`` of the non-basic ones are the positives; every epoch
shuffles them and draws ``negatives`` corruptions per positive afresh
(:class:`~taxonbench.label_graph.edges.NegativeSampler`); each step of
``batch_size`` positives minimises the max-margin loss of Eq. 2.3. After every
epoch the validation edges are classified at their own best threshold; the
embedding of the epoch with the best validation F1 is kept (Table 6.1: "the
F1-score corresponding to the test set for the epoch with the best F1-score on
the val set"). With ``alpha_grid`` one embedding is trained per margin and
the one of best validation F1 kept (α tuned, §5.5). Then:

* ``test_edge_*``: the test edges at the validation threshold (Table 6.1);
* ``full_*``: graph reconstruction, the threshold of best F1 on all edges
  (:func:`~taxonbench.label_graph.edges.reconstruction_pairs`, Table 6.2).

Everything is float64 on the CPU (label graphs are small); one seed fixes the
initialisation, the edge order and the negatives.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from taxonbench.errors import TaxonbenchError
from taxonbench.io import atomic_path, write_json_atomic, write_text_atomic
from taxonbench.label_graph.edge_metrics import best_threshold, edge_scores
from taxonbench.label_graph.edges import NegativeSampler, read_edge_dataset, reconstruction_pairs, taxonomy_digest
from taxonbench.label_graph.models import LabelModel, build_label_model, max_margin_loss
from taxonbench.taxonomy import Taxonomy

#: energies are computed this many edges at a time when evaluating
CHUNK = 1 << 18


@dataclass
class Fit:
    points: torch.Tensor  # (n_nodes, d) in the model's space, row 0 (the root) unused
    alpha: float
    epoch: int
    val_f1: float
    log: list[dict]


def energies(model: LabelModel, points: torch.Tensor, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``E(points[u[i]], points[v[i]])`` for every edge, in chunks."""
    out = []
    with torch.no_grad():
        for s in range(0, len(u), CHUNK):
            uu, vv = torch.as_tensor(u[s:s + CHUNK]), torch.as_tensor(v[s:s + CHUNK])
            out.append(model.energy(points[uu], points[vv]).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def negatives_of(sampler: NegativeSampler, u: np.ndarray, v: np.ndarray, k: int, rng: np.random.Generator,
                 children_inclusive: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(B, 2k)`` negative edges per positive: ``k`` corrupted parents ``(x′, y)`` then ``k`` children ``(x, y′)``."""
    new_parent, new_child = sampler.corrupt(u, v, k, rng, children_inclusive)
    neg_u = np.concatenate([new_parent, np.repeat(u[:, None], k, 1)], axis=1)
    neg_v = np.concatenate([np.repeat(v[:, None], k, 1), new_child], axis=1)
    return neg_u, neg_v


def fit(model: LabelModel, tax: Taxonomy, train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray, np.ndarray], s: dict, alpha: float) -> Fit:
    """Train one embedding at margin ``alpha``; the points of the epoch with the best validation F1."""
    generator = torch.Generator().manual_seed(int(s["seed"]))
    rng = np.random.default_rng(int(s["seed"]))
    param = model.parameter(model.init(tax.n_nodes, int(s["dim"]), generator))
    optimizer = model.optimizer([param], float(s["lr"]))
    sampler = NegativeSampler(tax, s["sampling"])
    train_u, train_v = train
    half = int(s["negatives"]) // 2
    best: Fit | None = None
    log: list[dict] = []
    for epoch in range(1, int(s["epochs"]) + 1):
        order = rng.permutation(len(train_u))
        u, v = train_u[order], train_v[order]
        neg_u, neg_v = negatives_of(sampler, u, v, half, rng)
        total = 0.0
        for start in range(0, len(u), int(s["batch_size"])):
            b = slice(start, start + int(s["batch_size"]))
            points = model.points(param)
            loss = max_margin_loss(model.energy(points[u[b]], points[v[b]]),
                                   model.energy(points[neg_u[b]], points[neg_v[b]]), alpha)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
        points = model.points(param).detach()
        threshold, val_f1 = best_threshold(energies(model, points, val[0], val[1]), val[2])
        log.append({"alpha": alpha, "epoch": epoch, "loss": total, "val_f1": val_f1, "val_threshold": threshold})
        if best is None or val_f1 > best.val_f1:
            best = Fit(points.clone(), alpha, epoch, val_f1, log)
    assert best is not None
    best.log = log
    return best


def evaluate(model: LabelModel, tax: Taxonomy, points: torch.Tensor, data) -> dict[str, float]:
    """Hidden test edges at the validation threshold; graph reconstruction (module docstring)."""
    out: dict[str, float] = {}
    val_u, val_v, val_pos = data.labelled("val")
    threshold, val_f1 = best_threshold(energies(model, points, val_u, val_v), val_pos)
    out["val_edge_f1"] = val_f1
    test_u, test_v, test_pos = data.labelled("test")
    out |= edge_scores(energies(model, points, test_u, test_v), test_pos, threshold).as_metrics("test_edge")
    out |= reconstruction_scores(model, tax, points)
    out |= {"n_test_positive": int(test_pos.sum()), "n_test_negative": int((~test_pos).sum())}
    return out


def reconstruction_scores(model: LabelModel, tax: Taxonomy, points: torch.Tensor) -> dict[str, float]:
    """``full_*``: the basic edges against every pair outside the closure, at the threshold of best F1 there."""
    u, v, positive = reconstruction_pairs(tax)
    e = energies(model, points, u, v)
    threshold, _ = best_threshold(e, positive)
    return edge_scores(e, positive, threshold).as_metrics("full") | {
        "n_full_positive": int(positive.sum()), "n_full_negative": int((~positive).sum())}


UNITS = {"test_edge_threshold": "real", "full_threshold": "real", "alpha": "real", "best_epoch": "count",
         "n_test_positive": "count", "n_test_negative": "count", "n_full_positive": "count",
         "n_full_negative": "count"}


def write_log(path: str | os.PathLike, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def save_points(path: str | os.PathLike, model: LabelModel, points: torch.Tensor, tax: Taxonomy, extra: dict) -> None:
    """The embedding file: points of every node (row 0, the root, is not trained), the model and its options."""
    with atomic_path(path) as tmp:
        torch.save({"points": points.contiguous(), "model": model.name, "options": dict(model.opts.__dict__),
                    "taxonomy": taxonomy_digest(tax), **extra}, tmp)


def train_label_embedding(settings: dict, taxonomy_path: str | os.PathLike, edges_dir: str | os.PathLike,
                          out_dir: str | os.PathLike, metrics_path: str | os.PathLike) -> dict[str, float]:
    """Train (each margin of ``alpha_grid``), keep the best, write ``embedding.pt``, ``train_log.csv`` and metrics."""
    tax = Taxonomy.read(taxonomy_path)
    data = read_edge_dataset(edges_dir, tax)
    where = f"label_embeddings.experiments.{settings['experiment']}"
    model = build_label_model(settings["model"], settings["options"], where)
    torch.manual_seed(int(settings["seed"]))
    for split in ("val", "test"):
        if not data.positives(split)[0].size:
            raise TaxonbenchError(f"{edges_dir}: no {split} edge to select or score a label-only embedding on "
                                  f"({data.manifest.get('non_basic', 0)} non-basic edges: the taxonomy of "
                                  f"{tax.source} has too few levels)")
    train = data.train(float(settings["non_basic_fraction"]))
    val = data.labelled("val")
    fits = [fit(model, tax, train, val, settings, float(a)) for a in (settings["alpha_grid"] or [settings["alpha"]])]
    best = max(fits, key=lambda f: f.val_f1)  # the first of equal F1
    out = Path(out_dir)
    save_points(out / "embedding.pt", model, best.points, tax,
                {"dim": int(settings["dim"]), "alpha": best.alpha, "epoch": best.epoch})
    write_log(out / "train_log.csv", [row for f in fits for row in f.log])
    metrics = evaluate(model, tax, best.points, data) | {"alpha": best.alpha, "best_epoch": best.epoch}
    write_json_atomic(metrics_path, {**metrics, "units": {k: u for k, u in UNITS.items() if k in metrics}})
    return metrics


def load_points(path: str | os.PathLike, tax: Taxonomy, model: LabelModel, where: str) -> torch.Tensor:
    """An embedding written by :func:`save_points`, checked against the tree and the model (e.g. in the ball)."""
    from taxonbench.io import load_weights_only

    state = load_weights_only(path, "label embedding")
    if not isinstance(state, dict) or "points" not in state:
        raise TaxonbenchError(f"{path}: not a label embedding (no 'points')")
    if state.get("taxonomy") != taxonomy_digest(tax):
        raise TaxonbenchError(f"{path}: embeds another taxonomy than {tax.source}")
    if state.get("model") != model.name:
        raise TaxonbenchError(f"{where}: {path} is a {state.get('model')} embedding, not {model.name}")
    points = state["points"].to(torch.float64)
    if points.shape[0] != tax.n_nodes:
        raise TaxonbenchError(f"{path}: {points.shape[0]} points for {tax.n_nodes} nodes")
    model.check_points(points, tax.name, str(path))
    return points
