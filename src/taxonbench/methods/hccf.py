"""HCCF: hierarchical cross-modal contrastive fine-tuning of CLIP (HCCF paper §3.2, Eq. 2).

Model. A CLIP visual tower ``f`` (the backbone, shared by all levels) and one
projection head ``h_d`` per taxonomy level ``d = 1 .. D`` (a ``E × E`` linear
layer initialised to the identity, so training starts from CLIP's own
embedding space); one shared text encoder ``g`` (the CLIP text tower) reads a
prompt per taxon (:mod:`taxonbench.taxon_text`, hyper-parameters
``prompt_template`` and ``names``). With unit-norm embeddings
``f̄^d(I) = normalize(h_d(f(I)))`` and ``ḡ(T) = normalize(g(T))``, the score
of node ``v`` at depth ``d`` for image ``I`` is ``θ_v = s · f̄^d(I) · ḡ(T_v)``,
``s = exp(logit_scale)`` CLIP's learnable inverse temperature (clamped at 100,
as in CLIP). The text embeddings of a level are that level's classifier.

Loss, for the trained levels ``𝓛`` (hyper-parameter ``levels``; null = all,
``L1234567`` for 7 ranks): per level, the symmetric image↔text InfoNCE over the
batch's ``N`` pairs ``(I_i, T_i^d)``, ``T_i^d`` the prompt of the true label's
depth-``d`` ancestor::

    S_ij = s · f̄^d(I_i) · ḡ(T_j^d)
    ℓ_d = ½ [ (1/N) Σ_i −log softmax_j(S_ij)_i + (1/N) Σ_i −log softmax_j(S_ji)_i ]
    loss = Σ_{d ∈ 𝓛} ℓ_d

— Eq. 2 of the HCCF paper divided by ``2N`` (CLIP's mean over pairs and over
the two directions; with one level this is exactly the standard CLIP loss,
``open_clip.ClipLoss``). As in Eq. 2, every pair is its own positive: two
images of one taxon appear as each other's negatives (their texts coincide).
Both encoders are updated (``train_text: false`` freezes the text tower). A
level outside ``𝓛`` keeps its head at the identity, untrained.

During training only the prompts of the taxa present in the batch are
encoded (at iNat scale encoding all 16k taxa every step would dominate); at
evaluation every node's prompt is encoded once and cached.

Outputs: ``level_softmax_logits``, one logit per non-root node. Node scores
(:mod:`taxonbench.score_kinds`): ``native`` (and ``diffusion``'s ``f⁰``) is the
softmax over each level's nodes — every level is scored by its own head and
text embeddings, so internal nodes are predicted directly, not inferred from
the leaves; ``bottom_up`` uses the leaf level alone (softmax over the leaves,
summed upwards: HCCF Eq. 1), which is the "HCCF" row of the paper's tables;
``top_down`` multiplies the softmax over siblings of each level's logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from taxonbench.declare import param
from taxonbench.registries import METHODS
from taxonbench.methods._clip_levels import (
    TEXT_CHUNK,
    LevelLayout,
    LevelPromptHparams,
    NodeTextCache,
    clip_scale_of,
    encode_prompts,
    place_columns,
    resolve_levels,
    taxon_tokens,
    text_tower_of,
)
from taxonbench.methods.base import Method, loss_precision


@dataclass(frozen=True)
class HCCFHparams(LevelPromptHparams):
    train_text: bool = param(True, doc="update the text encoder too (HCCF: both encoders)")


def identity_linear(width: int) -> nn.Linear:
    """A ``width × width`` linear layer equal to the identity map."""
    layer = nn.Linear(width, width)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(width))
        layer.bias.zero_()
    return layer


def clip_loss(similarity: torch.Tensor) -> torch.Tensor:
    """The symmetric InfoNCE of an ``N × N`` image-by-text similarity matrix (pairs on the diagonal)."""
    target = torch.arange(len(similarity), device=similarity.device)
    return 0.5 * (F.cross_entropy(similarity, target) + F.cross_entropy(similarity.T, target))


@METHODS.register("hccf")
class HCCF(NodeTextCache, Method):
    output_kind = "level_softmax_logits"
    Hparams = HCCFHparams
    label_set_forward = True  # encodes the text of the taxa present in the batch

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        hp = self.hparams
        self.text = text_tower_of(backbone, self.where)
        self.levels = resolve_levels(hp.levels, taxonomy, self.where)
        self.layout = LevelLayout(taxonomy)
        self.register_buffer("tokens", taxon_tokens(self.text, taxonomy, hp.prompt_template, hp.names, self.where),
                             persistent=False)
        self.register_buffer("leaf_columns", torch.as_tensor(taxonomy.leaf_nodes - 1), persistent=False)
        self.heads = nn.ModuleList(identity_linear(self.num_features) for _ in range(taxonomy.max_depth))
        for d, head in enumerate(self.heads, start=1):
            head.requires_grad_(d in self.levels)
        self.text.requires_grad_(bool(hp.train_text))

    def scale(self) -> torch.Tensor:
        return clip_scale_of(self.text)

    def level_embeddings(self, images: torch.Tensor, levels) -> dict[int, torch.Tensor]:
        """``{d: f̄^d(images)}`` for the given levels, each ``(B, E)`` unit-norm."""
        features = self.backbone(images)
        return {d: F.normalize(self.heads[d - 1](features), dim=-1) for d in levels}

    def encode_nodes(self, nodes: torch.Tensor) -> torch.Tensor:
        """Unit-norm text embeddings ``(len(nodes), E)`` of the nodes' prompts."""
        return self.text.encode(self.tokens[nodes], normalize=True)

    def node_text_embeddings(self) -> torch.Tensor:
        return encode_prompts(self.text, self.tokens, TEXT_CHUNK)

    def _assemble(self, images: torch.Tensor, text: dict[int, tuple[torch.Tensor, torch.Tensor]],
                  fill: float) -> torch.Tensor:
        """``(B, n − 1)`` logits: level ``d``'s ``(nodes, text embeddings)`` scored, ``fill`` elsewhere."""
        z = self.level_embeddings(images, text)
        scale = self.scale()
        parts = [scale * z[d] @ emb.to(z[d].dtype).T for d, (_, emb) in text.items()]
        return place_columns(parts, [nodes - 1 for nodes, _ in text.values()], self.output_dim(), fill)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Every node's logit ``s · f̄^d(I) · ḡ(T_v)`` (``d`` = the node's depth)."""
        every = self.all_node_text()
        levels = range(1, self.taxonomy.max_depth + 1)
        return self._assemble(images, {d: (self.layout.nodes(d), every[self.layout.nodes(d)]) for d in levels}, 0.0)

    def training_forward(self, images: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        """The logits of the batch's taxa at the trained levels; ``-inf`` elsewhere (never read by the loss)."""
        text = {}
        for d in self.levels:
            anc = self.layout.ancestor(leaf, d)
            nodes = torch.unique(anc[anc >= 0])
            text[d] = (nodes, self.encode_nodes(nodes))
        return self._assemble(images, text, float("-inf"))

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        """``Σ_{d ∈ 𝓛} ℓ_d`` (module docstring): each level's N × N block gathered from the logits."""
        theta = loss_precision(outputs)
        total = theta.new_zeros(())
        for d in self.levels:
            anc = self.layout.ancestor(leaf, d)
            keep = anc >= 0  # leaves above depth d have no label there
            if bool(keep.any()):
                total = total + clip_loss(theta[keep][:, anc[keep] - 1])
        return total

    def predict_leaf(self, outputs: torch.Tensor) -> torch.Tensor:
        """In training, the best of the batch's leaves (an in-batch top-1); otherwise by node scores."""
        if self.training:
            return outputs[:, self.leaf_columns].argmax(dim=1)
        return super().predict_leaf(outputs)
