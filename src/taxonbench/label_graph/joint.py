"""Jointly embedding images with the label hierarchy (Dhall's thesis §5.6, Tables 6.3-6.4).

The graph ``G`` holds the labels and, below them, the training images: an
image is-a its leaf and every ancestor of it. Images are embedded from frozen
encoder features (the trained CNN's, :func:`taxonbench.logits.dump_logits` with
``features``) through a learnable linear map, Eq. 5.2::

    f_i(image) = W · CNN(image)            (hyperbolic models: exp₀(W · CNN(image)))

labels by a lookup table ``f_l`` (started from a label-only embedding,
``init``, or at random). Training (§5.6 "Training details"): every edge of the
transitive closure of ``G`` is a positive, label → label and label → image;
each step takes ``batch_size`` positives and ``negatives`` corruptions of each,
half ``(x′, y)`` and half ``(x, y′)``, pick-per-level, always replacing a side
by a *label* (two images are never pushed apart by a negative); the loss is
Eq. 2.3. The labels are stepped by the model's optimiser at ``lr``
(hyperbolic cones: ``options.optimizer``; the thesis's joint models use Adam
through exp₀), ``W`` by Adam at ``image_lr``.

Classification, Eq. 5.1, per level ``d``: the label of depth ``d`` of least
violation, ``argmin_l E(f_l(l), f_i(image))``. The dumped logits are
``θ_v = −E(f_l(v), f_i(image))`` for every label ``v`` (score kind
``level_softmax_logits``), so ``level_argmax`` inference gives Eq. 5.1 and
``native`` the per-level ranking that hit@k reads. After every epoch the
validation images are classified; the state of the best validation micro-F1
(over the levels' predictions) is kept. Graph reconstruction (``full_*``)
uses the label → label edges only (§5.6 "Graph reconstruction task").
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from taxonbench.errors import TaxonbenchError
from taxonbench.io import atomic_path, load_weights_only, write_json_atomic
from taxonbench.label_graph.edges import NegativeSampler, closure_edges, taxonomy_digest
from taxonbench.label_graph.models import LabelModel, build_label_model, max_margin_loss
from taxonbench.label_graph.settings import JOINT_KIND
from taxonbench.label_graph.train import UNITS, load_points, reconstruction_scores, write_log
from taxonbench.matrix_io import iter_matrix, read_sidecar, write_matrix
from taxonbench.taxonomy import Taxonomy

#: images scored at a time when classifying (``images x labels x d`` energies)
CHUNK = 256


def read_features(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, leaf, features)`` of a features file (kind ``embeddings``)."""
    kind = read_sidecar(path).get("kind")
    if kind != "embeddings":
        raise TaxonbenchError(f"{path}: holds {kind!r} outputs; the joint embedding needs encoder features "
                              "(`taxonbench logits --features`)")
    parts = list(iter_matrix(path, "scores"))
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]).astype(np.float64))


class JointEmbedding(nn.Module):
    """Label points ``f_l`` and the image map ``W`` of one label model."""

    def __init__(self, model: LabelModel, labels: torch.Tensor, n_features: int, dim: int, seed: int) -> None:
        super().__init__()
        self.model = model
        self.labels = model.parameter(labels)
        generator = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(torch.randn(dim, n_features, generator=generator, dtype=torch.float64)
                              / np.sqrt(n_features))

    def label_points(self) -> torch.Tensor:
        return self.model.points(self.labels)

    def image_points(self, features: torch.Tensor) -> torch.Tensor:
        """Eq. 5.2 (and exp₀ onto the ball for a model on the Poincaré ball)."""
        y = features @ self.W.T
        return self.model.ball.expmap0(y) if self.model.on_ball else y

    def energies(self, features: torch.Tensor) -> torch.Tensor:
        """``(images, n_nodes)``: ``E(f_l(v), f_i(image))`` for every node (column 0, the root, unused)."""
        with torch.no_grad():
            labels = self.label_points()
            out = [self.model.energy(labels[None, :, :], self.image_points(features[s:s + CHUNK])[:, None, :])
                   for s in range(0, len(features), CHUNK)]
        return torch.cat(out) if out else torch.zeros(0, labels.shape[0], dtype=torch.float64)


def level_micro_f1(energy: np.ndarray, leaf: np.ndarray, tax: Taxonomy) -> float:
    """Micro-F1 of Eq. 5.1's one label per level: each image has one true label per level, so it is the share
    of (image, level) decisions that are right."""
    right = total = 0
    truth = tax.ancestor_table[tax.leaf_nodes[leaf]]
    for d in range(1, tax.max_depth + 1):
        nodes = tax.nodes_at_depth(d)
        keep = truth[:, d] >= 0
        pred = nodes[energy[keep][:, nodes].argmin(axis=1)]
        right += int((pred == truth[keep, d]).sum())
        total += int(keep.sum())
    return right / total if total else float("nan")


def _positives(tax: Taxonomy, leaf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(parent label, child, child is an image)``: the closure's label edges, then (ancestor, image) pairs
    (``child`` is then the image's row)."""
    lu, lv = closure_edges(tax)
    path = tax.ancestor_table[tax.leaf_nodes[leaf]]
    rows, depth = np.nonzero(path > 0)
    iu = path[rows, depth]
    return (np.concatenate([lu, iu]), np.concatenate([lv, rows]),
            np.concatenate([np.zeros(len(lu), bool), np.ones(len(iu), bool)]))


def _negatives(sampler: NegativeSampler, tax: Taxonomy, u, v, img, leaf, k: int, rng):
    """``(B, k)`` corrupted parents ``x′`` of ``(x′, y)`` and ``(B, k)`` corrupted children ``y′`` of ``(x, y′)``,
    all labels; an image child is sampled against through its leaf, inclusively (an image is-a its leaf)."""
    neg_parent = np.empty((len(u), k), dtype=np.int64)
    neg_child = np.empty((len(u), k), dtype=np.int64)
    for rows, inclusive in ((~img, False), (img, True)):
        if rows.any():
            nodes = tax.leaf_nodes[leaf[v[rows]]] if inclusive else v[rows]
            neg_parent[rows], neg_child[rows] = sampler.corrupt(u[rows], nodes, k, rng, children_inclusive=inclusive)
    return neg_parent, neg_child


def train_joint(settings: dict, taxonomy_path, features: dict[str, str], out_dir, metrics_path,
                init_path: str | os.PathLike | None = None) -> dict[str, float]:
    """Train on ``features["train"]``, select on ``features["val"]``; write ``model.pt``, ``train_log.csv`` and
    the graph-reconstruction metrics."""
    tax = Taxonomy.read(taxonomy_path)
    where = f"label_embeddings.joint.{settings['experiment']}"
    model = build_label_model(settings["model"], settings["options"], where)
    seed, dim = int(settings["seed"]), int(settings["dim"])
    generator = torch.Generator().manual_seed(seed)
    if settings.get("init") is not None:
        if init_path is None:
            raise TaxonbenchError(f"{where}.init: {settings['init']!r} needs its embedding (--init)")
        points = load_points(init_path, tax, model, where)
        if points.shape[1] != dim:
            raise TaxonbenchError(f"{where}.init: {init_path} embeds in d={points.shape[1]}, not dim {dim}")
        labels = model.from_points(points)
    else:
        labels = model.init(tax.n_nodes, dim, generator)
    _, train_leaf, train_x = read_features(features["train"])
    _, val_leaf, val_x = read_features(features["val"])
    if val_x.shape[1] != train_x.shape[1]:
        raise TaxonbenchError(f"{features['val']}: {val_x.shape[1]} features per image; the train split's "
                              f"{features['train']} has {train_x.shape[1]}")
    net = JointEmbedding(model, labels, train_x.shape[1], dim, seed)
    label_opt = model.optimizer([net.labels], float(settings["lr"]))
    image_opt = torch.optim.Adam([net.W], lr=float(settings["image_lr"]))
    x_train, x_val = torch.as_tensor(train_x), torch.as_tensor(val_x)
    parent, child, is_image = _positives(tax, train_leaf)
    sampler = NegativeSampler(tax, settings["sampling"])
    rng = np.random.default_rng(seed)
    half = int(settings["negatives"]) // 2
    batch = int(settings["batch_size"])
    best_f1, best_state, best_epoch, log = -1.0, None, 0, []
    for epoch in range(1, int(settings["epochs"]) + 1):
        order = rng.permutation(len(parent))
        u, v, img = parent[order], child[order], is_image[order]
        neg_parent, neg_child = _negatives(sampler, tax, u, v, img, train_leaf, half, rng)
        total = 0.0
        for s in range(0, len(u), batch):
            b = slice(s, s + batch)
            labels_now = net.label_points()
            x = labels_now[torch.as_tensor(u[b])]
            y = labels_now[torch.as_tensor(np.where(img[b], 0, v[b]))]
            if img[b].any():  # image children: f_i of their features
                rows = torch.as_tensor(np.flatnonzero(img[b]))
                y = y.index_copy(0, rows, net.image_points(x_train[torch.as_tensor(v[b][img[b]])]))
            negative = torch.cat([model.energy(labels_now[torch.as_tensor(neg_parent[b])], y[:, None, :]),
                                  model.energy(x[:, None, :], labels_now[torch.as_tensor(neg_child[b])])], dim=1)
            loss = max_margin_loss(model.energy(x, y), negative, float(settings["alpha"]))
            label_opt.zero_grad(set_to_none=True)
            image_opt.zero_grad(set_to_none=True)
            loss.backward()
            label_opt.step()
            image_opt.step()
            total += float(loss.detach())
        val_f1 = level_micro_f1(net.energies(x_val).numpy(), val_leaf, tax)
        log.append({"epoch": epoch, "loss": total, "val_micro_f1": val_f1})
        if val_f1 > best_f1:
            best_f1, best_epoch = val_f1, epoch
            best_state = {k: t.detach().clone() for k, t in net.state_dict().items()}
    net.load_state_dict(best_state)
    out = Path(out_dir)
    with atomic_path(out / "model.pt") as tmp:
        torch.save({"labels": net.labels.detach().clone(), "W": net.W.detach().clone(), "model": model.name,
                    "options": dict(model.opts.__dict__), "dim": dim, "taxonomy": taxonomy_digest(tax),
                    "epoch": best_epoch, "experiment": settings["experiment"]}, tmp)
    write_log(out / "train_log.csv", log)
    metrics = reconstruction_scores(model, tax, net.label_points().detach()) | {
        "val_micro_f1": best_f1, "best_epoch": best_epoch}
    write_json_atomic(metrics_path, {**metrics, "units": {k: u for k, u in UNITS.items() if k in metrics}})
    return metrics


def load_joint(path: str | os.PathLike, tax: Taxonomy) -> JointEmbedding:
    state = load_weights_only(path, "joint embedding")
    if not isinstance(state, dict) or "W" not in state:
        raise TaxonbenchError(f"{path}: not a joint embedding (no 'W')")
    if state.get("taxonomy") != taxonomy_digest(tax):
        raise TaxonbenchError(f"{path}: embeds another taxonomy than {tax.source}")
    model = build_label_model(state["model"], state["options"], str(path))
    net = JointEmbedding(model, state["labels"], state["W"].shape[1], int(state["dim"]), 0)
    net.load_state_dict({"labels": state["labels"], "W": state["W"]})
    return net


def joint_logits(model_path, taxonomy_path, features_path, out_path) -> int:
    """Write ``θ_v = −E(f_l(v), f_i(image))`` for every label ``v`` (module docstring) with its sidecar."""
    tax = Taxonomy.read(taxonomy_path)
    net = load_joint(model_path, tax)
    ids, leaf, x = read_features(features_path)
    if x.shape[1] != net.W.shape[1]:
        raise TaxonbenchError(f"{features_path}: {x.shape[1]} features per image; {model_path} embeds "
                              f"{net.W.shape[1]} (features of another encoder?)")
    theta = -net.energies(torch.as_tensor(x))[:, 1:].numpy()
    sidecar = {"kind": JOINT_KIND, "dim": tax.n_nodes - 1, "method": f"joint:{net.model.name}",
               "split": read_sidecar(features_path).get("split"), "dataset": read_sidecar(features_path).get("dataset"),
               "order": "non-root nodes 1..n-1"}
    return write_matrix(out_path, "scores", iter([(ids, leaf, theta)]), sidecar)
