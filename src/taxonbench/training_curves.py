"""Scores of whole splits after every epoch: the training curves of Dhall's thesis (Fig. 4.3).

For each split of ``train.curve_splits`` (``train``, ``val``, ``test``), after
every epoch, with the model in eval mode (no augmentation, no gradient):

* ``<split>_eval_loss``: the method's own loss (:meth:`Method.loss`) over the
  split in eval mode, the mean of its batch losses weighted by batch size (the
  log's ``train_loss`` is the running loss of the training steps, under
  augmentation and the sampler);
* ``<split>_micro_f1`` / ``<split>_macro_f1``: micro- and macro-F1 over all
  labels (:mod:`taxonbench.metrics.set_prf`, thesis Eq. 4.3-4.7) of the set
  prediction with one label per level, the per-level argmax of the method's
  node scores (:func:`~taxonbench.inference.level_argmax.level_argmax_sets`),
  whatever inference the experiment's tables decode with later.

The thesis plots these for train, val and test over 100 epochs. A split is
only scored, never used to choose anything. Under DDP each rank scores its
slice of every batch and the sums are added. Only methods whose training
outputs are their scores qualify (no label-set forward, one view):
:func:`check_curves` says so before the first epoch.
"""

from __future__ import annotations

import numpy as np
import torch

from taxonbench.batches import epoch_generator
from taxonbench.distributed import DataParallel
from taxonbench.errors import TaxonbenchError
from taxonbench.inference.level_argmax import level_argmax_sets
from taxonbench.methods import Method
from taxonbench.metrics.set_prf import SetPRF, micro_macro
from taxonbench.score_kinds import node_scores
from taxonbench.taxonomy import Taxonomy

MEASURES = ("eval_loss", "micro_f1", "macro_f1")


def curve_columns(splits: list[str]) -> list[str]:
    """The train-log columns of ``train.curve_splits``."""
    return [f"{split}_{measure}" for split in splits for measure in MEASURES]


def check_curves(model: Method, splits: list[str], available: list[str], where: str) -> None:
    """The splits exist and the method's training outputs are node scores of one view."""
    if not splits:
        return
    missing = [s for s in splits if s not in available]
    if missing:
        raise TaxonbenchError(f"{where}: train.curve_splits names {missing}, which the shards do not have "
                              f"(they have {available})")
    if not model.scores_leaves or type(model).training_forward is not Method.training_forward:
        raise TaxonbenchError(f"{where}: train.curve_splits: method {model.name!r} trains on outputs other than "
                              "its scores (a label-set forward or two views); it has no per-epoch curve")


@torch.no_grad()
def split_scores(model: Method, batches, batch_size: int, amp: bool, ranks: DataParallel,
                 taxonomy: Taxonomy, split: str) -> tuple[dict[str, float], float]:
    """``{<split>_eval_loss, <split>_micro_f1, <split>_macro_f1}`` of one split (module docstring), and the
    split's top-1 of the same forward pass (what the log's ``val_top1`` is for ``val``)."""
    device = ranks.device
    model.eval()
    prf = SetPRF(taxonomy)
    loss_sum = seen = correct = 0.0
    for images, leaf, _ in batches.epoch_parts(batch_size, None, epoch_generator(0, 0), ranks.part):
        if len(leaf):
            with torch.autocast(device.type, enabled=amp):
                outputs = model(images)
            loss_sum += float(model.loss(outputs, leaf)) * len(leaf)
            correct += int((model.predict_leaf(outputs) == leaf).sum())
            p = node_scores(outputs.detach().double().cpu().numpy(), taxonomy, model.sidecar())
            prf.update(level_argmax_sets(p, taxonomy), leaf.cpu().numpy())
            seen += len(leaf)
    n = taxonomy.n_nodes
    sums = np.asarray(ranks.sum([loss_sum, seen, correct, *prf.tp, *prf.fp, *prf.fn]))
    tp, fp, fn = sums[3:3 + n], sums[3 + n:3 + 2 * n], sums[3 + 2 * n:]
    scores = micro_macro(tp[1:], fp[1:], fn[1:])  # the labels: every node but the root
    seen = max(1.0, float(sums[1]))
    return ({f"{split}_eval_loss": float(sums[0] / seen), f"{split}_micro_f1": scores["micro_f1"],
             f"{split}_macro_f1": scores["macro_f1"]}, float(sums[2] / seen))


__all__ = ["MEASURES", "check_curves", "curve_columns", "split_scores"]
