"""The training-method interface.

A method owns a backbone and its head(s) and defines the training loss. It
declares, as class attributes, what the pipeline must know before any job runs:

``name``
    set by ``@METHODS.register(name)`` (written once);
``output_kind``
    the score kind of its dumped outputs (:mod:`taxonbench.score_kinds`), which
    decides the inference methods that apply to it;
``Hparams``
    its hyper-parameters as a dataclass with types, choices and ranges
    (:func:`taxonbench.declare.param`), checked under ``methods.<experiment>``
    at Snakemake start and again when the method is built;
``views``
    augmented views of each training image the loss reads (2 for contrastive
    losses; docs/training.md).

Those declarations are read without torch at Snakemake start through the
declarations index (:mod:`taxonbench.declarations`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from taxonbench.declare import NoOptions, build_options
from taxonbench.models.backbones import Backbone
from taxonbench.score_kinds import KINDS, node_scores
from taxonbench.taxonomy import Taxonomy


def loss_precision(outputs: torch.Tensor) -> torch.Tensor:
    """Outputs in at least float32 (half / bfloat16 under autocast are upcast; float64 kept for gradcheck)."""
    return outputs if outputs.dtype == torch.float64 else outputs.float()


NoHparams = NoOptions  # a method without hyper-parameters


class Method(nn.Module):
    """Backbone + head. ``forward`` gives the raw outputs that are dumped as logits."""

    name: ClassVar[str]  # set by ``@METHODS.register(name)``
    output_kind: ClassVar[str]  # e.g. "leaf_logits" (one logit per leaf index)
    Hparams: ClassVar[type] = NoHparams
    #: augmented views of each training image: 1, or 2 for two-view (contrastive) losses
    views: ClassVar[int] = 1
    #: True when ``training_forward`` reads only the *set* of labels in the batch (to choose the outputs
    #: it computes): given the whole global batch's labels on every rank, it stays exact under DDP
    label_set_forward: ClassVar[bool] = False
    #: False when the training outputs are not node scores (training then logs no in-batch top-1)
    training_top1: ClassVar[bool] = True
    #: True when no weight is tied to the taxa (the classes are the taxonomy's prompts): the model's
    #: outputs can be computed on another dataset's taxonomy (zero-shot), :func:`taxonbench.logits.training_taxonomy`
    open_vocabulary: ClassVar[bool] = False

    def __init__(self, backbone: Backbone, taxonomy: Taxonomy, hparams: dict[str, Any] | None = None,
                 experiment: str | None = None) -> None:
        super().__init__()
        self.backbone = backbone.module
        self.num_features = backbone.num_features
        self.min_image_size = backbone.min_image_size
        self.taxonomy = taxonomy
        #: the params block messages name: ``methods.<experiment>`` (the experiment may rename the method)
        self.where = f"methods.{experiment or self.name}"
        self.hparams = build_options(self.Hparams, hparams, where=self.where)

    def initialise(self) -> None:
        """Initialisation that reads the backbone's (pretrained) weights, e.g. classifiers set to text
        embeddings. :func:`taxonbench.training.build_method` runs it for a new model and skips it when a
        saved state dict follows (dumping logits), where it would be overwritten. Default: nothing."""

    def observe_training_labels(self, leaf_counts: np.ndarray) -> None:
        """Called by training before the first epoch with the number of training rows of every leaf (after
        ``train.train_subset``): methods that re-weight their loss by class frequency read it. Default: nothing."""

    def output_dim(self) -> int:
        """The width of the dumped outputs: what the score kind prescribes for this taxonomy (a method of a
        kind without a prescribed width, such as ``embeddings``, overrides this)."""
        dim = KINDS.get(self.output_kind).dim
        if dim is None:
            raise NotImplementedError(f"method {self.name!r}: kind {self.output_kind!r} needs output_dim()")
        return dim(self.taxonomy)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The head (a subclass sets ``self.head``) on the backbone's features."""
        return self.head(self.backbone(images))

    def training_forward(self, images: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        """The outputs the training loss reads; the labels are given for methods that only need some
        columns (HCCF encodes only the batch's taxa). Default: ``forward``."""
        return self(images)

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def splittable(cls) -> bool:
        """Whether the training outputs of a batch are the same however the batch is split between
        processes: ``training_forward`` not overridden, or declared ``label_set_forward``."""
        return cls.training_forward is Method.training_forward or cls.label_set_forward

    @property
    def scores_leaves(self) -> bool:
        """Whether training can log top-1 accuracy: one view, and outputs of a kind with node scores."""
        return self.views == 1 and KINDS.get(self.output_kind).dim is not None

    def predict_leaf(self, outputs: torch.Tensor) -> torch.Tensor:
        """The top-1 leaf index under the method's own node scores (for training logs)."""
        p = node_scores(outputs.detach().double().cpu().numpy(), self.taxonomy, self.sidecar())
        return torch.as_tensor(p[:, self.taxonomy.leaf_nodes].argmax(axis=1), device=outputs.device)

    def sidecar(self) -> dict:
        """What the dumped scores are, for the logits sidecar JSON."""
        return {"kind": self.output_kind, "dim": self.output_dim(), "method": self.name}
