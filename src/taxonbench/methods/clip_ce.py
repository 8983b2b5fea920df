"""The cross-entropy ablations of HCCF on a CLIP visual tower (HCCF paper §4.3, Table 3).

Table 3's "CE loss baseline" is ``flat_softmax`` on the CLIP backbone (the paper prints Table 1's Flat
softmax numbers for it: one model), so it is not registered again here.

``ce_text_init``
    "CE loss + text embedding": the leaf classifier is a cosine classifier
    ``θ = s · normalize(f(I)) Wᵀ`` whose rows ``W_ℓ`` start as the unit-norm
    CLIP text embeddings of the leaves' prompts (:mod:`taxonbench.taxon_text`);
    ``s`` is CLIP's ``exp(logit_scale)`` at initialisation, fixed. Training
    starts from CLIP's zero-shot classifier; cross-entropy over leaves.
``ce_text_init_levels``
    "CE loss + text embedding + L67 / L1234567": one such text-initialised
    classifier per level ``d`` (over the nodes at depth ``d``), the loss the sum
    of the per-level cross-entropies over the trained levels ``𝓛``
    (hyper-parameter ``levels``; null = all)::

        loss = Σ_{d ∈ 𝓛} −log softmax_{v : depth(v) = d}(θ)_{anc_d(y)}

    The classifiers of the other levels stay at their text initialisation
    (frozen). Outputs ``level_softmax_logits``, read as for HCCF.

The text tower is used once, to initialise the classifiers; it is not trained
and not part of the saved model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from taxonbench.registries import METHODS
from taxonbench.methods._levels import level_cross_entropy
from taxonbench.methods._clip_levels import (
    LevelLayout,
    LevelPromptHparams,
    PromptHparams,
    TextInitClassifier,
    clip_scale,
    place_columns,
    prompt_embeddings,
    resolve_levels,
    taxon_tokens,
    text_tower_of,
)
from taxonbench.methods.base import Method, loss_precision


def node_prompt_tokens(method: Method, backbone) -> torch.Tensor:
    """Token ids of every node's prompt (checks the template and the text tower; cheap)."""
    text = text_tower_of(backbone, method.where)
    hp = method.hparams
    return taxon_tokens(text, method.taxonomy, hp.prompt_template, hp.names, method.where)


def node_text_embeddings(method: Method, tokens: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Unit-norm text embeddings ``(n, E)`` of the prompt ``tokens`` and CLIP's scale ``exp(logit_scale)``."""
    text = text_tower_of(method._clip_backbone, method.where)
    return prompt_embeddings(text, tokens), clip_scale(text)


@METHODS.register("ce_text_init")
class CETextInit(Method):
    """Leaf classifier initialised from the leaves' CLIP text embeddings (HCCF Table 3)."""

    output_kind = "leaf_logits"
    Hparams = PromptHparams

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        self._clip_backbone = backbone
        self._tokens = node_prompt_tokens(self, backbone)[torch.as_tensor(taxonomy.leaf_nodes)]
        self.head = TextInitClassifier(torch.zeros(taxonomy.n_leaves, self.num_features), 1.0)

    def initialise(self) -> None:
        """The leaf classifier := the leaves' text embeddings (HCCF Table 3, "CE + text embedding")."""
        self.head.reset(*node_text_embeddings(self, self._tokens))

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(loss_precision(outputs), leaf)

    def predict_leaf(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(dim=1)


@METHODS.register("ce_text_init_levels")
class CETextInitLevels(Method):
    """One text-initialised classifier per level; cross-entropy summed over the trained levels."""

    output_kind = "level_softmax_logits"
    Hparams = LevelPromptHparams

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        self.levels = resolve_levels(self.hparams.levels, taxonomy, self.where)
        self.layout = LevelLayout(taxonomy)
        self._clip_backbone = backbone
        self._tokens = node_prompt_tokens(self, backbone)
        self.heads = nn.ModuleList(
            TextInitClassifier(torch.zeros(len(self.layout.nodes(d)), self.num_features), 1.0)
            for d in range(1, taxonomy.max_depth + 1)
        )
        for d, head in enumerate(self.heads, start=1):
            head.requires_grad_(d in self.levels)

    def initialise(self) -> None:
        """Each level's classifier := its nodes' text embeddings."""
        embeddings, scale = node_text_embeddings(self, self._tokens)
        for d, head in enumerate(self.heads, start=1):
            head.reset(embeddings[self.layout.nodes(d)], scale)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(images)
        return place_columns([head(features) for head in self.heads],
                             [self.layout.columns(d) for d in range(1, len(self.heads) + 1)], self.output_dim())

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        return level_cross_entropy(loss_precision(outputs), leaf, self.layout, self.levels)
