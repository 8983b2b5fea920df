"""Level-restricted contrastive fine-tuning of CLIP ("Beyond Flat Labels: Level-Restricted Contrastive
Learning for Hierarchical Fine-Grained Vision Classification", arXiv 2606.21838, §3 and Fig. 1).

Model. A CLIP (BioCLIP ViT-B/16 in the paper): one image embedding ``z(I)`` shared by every level, one text
tower ``g`` reading a prompt per taxon (:mod:`taxonbench.taxon_text`; the paper's cumulative-prefix names,
``names: cumulative``). No per-level head: the text embeddings of a level's taxa are that level's
classifier, so the model classifies on any taxonomy whose prompts it can read (``open_vocabulary``:
zero-shot on another dataset).

Similarity of image ``i`` and text ``k`` (one shared temperature across levels, as the paper states):

- ``geometry: euclidean`` (default): ``S_ik = s · ẑ_i · t̂_k``, unit vectors, ``s = exp(logit_scale)``
  clamped at 100 (CLIP);
- ``geometry: hyperbolic``: MERU (Desai et al. 2023): ``z`` and ``t`` scaled by learnable ``α_img``,
  ``α_txt`` (initialised to ``1/√E``) and lifted onto the Lorentz model of curvature ``−c``
  (:mod:`taxonbench.methods._lorentz`), ``S_ik = −s · d_L(z_i, t_k)``; ``c`` learnable
  (``learn_curvature``) from ``curvature``, kept within ``[c₀/10, 10 c₀]`` as MERU does; plus MERU's
  entailment loss (each taxon's text entails its images), weight ``entailment_weight``.

Loss. For every trained level ``l`` (``levels``; null = all), the batch's *unique* level-``l`` texts
``k = 1..K_l`` (taxa whose prompts are identical are one text, so a label is never both a positive and a
negative), the positives ``P_k = {i : the level-l text of image i is k}``::

    i→t:  ℓ^{i→t}_l = mean over pairs (i, k ∈ positives of i) of −log softmax_k'(S_ik')_k       (one per image)
    t→i:  ℓ^{t→i}_l = mean over texts k of  mean over i ∈ P_k of −log softmax_i'(S_i'k)_i      (multi-positive)
    ℓ_l = ½ (ℓ^{i→t}_l + ℓ^{t→i}_l),       loss = mean over trained levels of ℓ_l

The paper gives the restriction (``comparison: level``: the softmax of image ``i`` runs over level ``l``'s
texts only) and a group-balanced design "ensuring each taxonomic level receives adequate optimization":
here every level weighs the same (the mean over levels). ``balance: group`` also balances the image term
within each text group (``ℓ^{i→t}_l`` = mean over texts ``k`` of the mean over ``i ∈ P_k``), so frequent taxa
do not dominate it. The multi-positive text→image term is UniCL's (Yang et al., "Unified Contrastive
Learning in Image-Text-Label Space", CVPR 2022, Eq. 3: targets spread evenly over the positives), the
closest published implementation of a bidirectional loss with several images per text.

``comparison: pooled`` is the paper's baseline: all trained levels' unique texts in one bank, every
(image, level) pair a positive of the image→text term with the bank's other texts — the image's own
ancestors at the other levels included: the cross-level false negatives — and one text→image term over
the bank's texts (no per-level balance).

Outputs: ``level_softmax_logits``, ``S`` with every node's text (node ``v`` is column ``v − 1``); the
native node scores are the softmax over each level's nodes, i.e. per-level zero-shot classification
over the evaluated taxonomy's labels. Training outputs are compact: one column per unique text of the
batch (:meth:`LevelRestricted.batch_texts`, level by level), then, for the hyperbolic geometry, the same
columns' entailment violations; the loss rebuilds the layout from the labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from taxonbench.declare import param
from taxonbench.methods import _lorentz
from taxonbench.methods._clip_levels import (
    TEXT_CHUNK,
    LevelLayout,
    LevelPromptHparams,
    NodeTextCache,
    clip_scale_of,
    encode_prompts,
    resolve_levels,
    taxon_tokens,
    text_tower_of,
)
from taxonbench.methods.base import Method, loss_precision
from taxonbench.registries import METHODS

CURVATURE_RANGE = 10.0  # MERU keeps c within [c0 / 10, 10 c0]


@dataclass(frozen=True)
class LevelRestrictedHparams(LevelPromptHparams):
    comparison: str = param("level", choices=("level", "pooled"),
                            doc="level: each level's texts compared apart (the paper); pooled: one bank (baseline)")
    balance: str = param("level", choices=("level", "group"),
                         doc="level: every level weighs the same; group: also every text group within the image term")
    geometry: str = param("euclidean", choices=("euclidean", "hyperbolic"),
                          doc="euclidean: cosine similarity; hyperbolic: Lorentz model (MERU)")
    curvature: float = param(1.0, gt=0, doc="hyperbolic: initial c of the space of curvature -c (c > 0)")
    learn_curvature: bool = param(True, doc="hyperbolic: learn c (within [c/10, 10 c], as MERU)")
    entailment_weight: float = param(0.2, ge=0, doc="hyperbolic: weight of MERU's entailment loss (MERU: 0.2)")
    train_text: bool = param(True, doc="update the text encoder too")


def contrastive_terms(similarity: torch.Tensor, positive: torch.Tensor, balance: str) -> torch.Tensor:
    """``½ (ℓ^{i→t} + ℓ^{t→i})`` of an image-by-text similarity ``(N, K)`` and its positives ``(N, K)``
    (module docstring); every text has at least one positive image."""
    log_i2t = F.log_softmax(similarity, dim=1)
    log_t2i = F.log_softmax(similarity, dim=0)
    weight = positive.to(similarity.dtype)
    per_text = weight.sum(dim=0)
    if balance == "group":
        i2t = -((log_i2t * weight).sum(dim=0) / per_text).mean()
    else:
        i2t = -(log_i2t * weight).sum() / weight.sum()
    t2i = -((log_t2i * weight).sum(dim=0) / per_text).mean()
    return 0.5 * (i2t + t2i)


@METHODS.register("level_restricted")
class LevelRestricted(NodeTextCache, Method):
    output_kind = "level_softmax_logits"
    Hparams = LevelRestrictedHparams
    label_set_forward = True  # the columns are the batch's texts, read from the set of its labels
    open_vocabulary = True  # nothing is tied to the taxa: the evaluated taxonomy's prompts are its classes
    training_top1 = False  # training outputs are the batch's texts, not the taxonomy's leaves

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        hp = self.hparams
        self.text = text_tower_of(backbone, self.where)
        self.levels = resolve_levels(hp.levels, taxonomy, self.where)
        self.layout = LevelLayout(taxonomy)
        tokens = taxon_tokens(self.text, taxonomy, hp.prompt_template, hp.names, self.where)
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("text_id", _first_of_equal_rows(tokens), persistent=False)
        self.text.requires_grad_(bool(hp.train_text))
        self.hyperbolic = hp.geometry == "hyperbolic"
        if self.hyperbolic:
            start = math.log(1.0 / math.sqrt(self.num_features))
            self.log_alpha_image = nn.Parameter(torch.tensor(start))
            self.log_alpha_text = nn.Parameter(torch.tensor(start))
            self.log_curvature = nn.Parameter(torch.tensor(math.log(hp.curvature)),
                                              requires_grad=bool(hp.learn_curvature))

    # ------------------------------------------------------------------ embeddings and similarity
    def scale(self) -> torch.Tensor:
        return clip_scale_of(self.text)

    def curvature(self) -> torch.Tensor:
        c0 = math.log(self.hparams.curvature)
        return self.log_curvature.clamp(c0 - math.log(CURVATURE_RANGE), c0 + math.log(CURVATURE_RANGE)).exp()

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """Unit vectors ``(B, E)``, or points ``(B, E + 1)`` on the hyperboloid."""
        features = self.backbone(images).float()
        if self.hyperbolic:
            return _lorentz.lift(features * self.log_alpha_image.exp(), self.curvature())
        return F.normalize(features, dim=-1)

    def embed_texts(self, tokens: torch.Tensor) -> torch.Tensor:
        """The texts' embeddings in the same space as :meth:`embed_images`."""
        if self.hyperbolic:
            features = encode_prompts(self.text, tokens, TEXT_CHUNK, normalize=False).float()
            return _lorentz.lift(features * self.log_alpha_text.exp(), self.curvature())
        return encode_prompts(self.text, tokens, TEXT_CHUNK).float()

    def similarity(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        """``S (B, K)``: ``s`` times the cosine, or ``−s`` times the Lorentz distance."""
        if self.hyperbolic:
            return -self.scale() * _lorentz.pairwise_distance(images, texts, self.curvature())
        return self.scale() * images @ texts.T

    def node_text_embeddings(self) -> torch.Tensor:
        return self.embed_texts(self.tokens)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Every non-root node's logit ``S(image, text of the node)``."""
        return self.similarity(self.embed_images(images), self.all_node_text()[1:])

    # ------------------------------------------------------------------ training
    def batch_texts(self, leaf: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The banks of the batch: per trained level (or one pooled bank), the sorted unique text ids and the
        positives ``(N, K)`` of the batch's images."""
        per_level = []
        for d in self.levels:
            anc = self.layout.ancestor(leaf, d)
            text = torch.where(anc >= 0, self.text_id[anc.clamp(min=0)], -1)
            per_level.append(text)
        if self.hparams.comparison == "pooled":
            texts = torch.stack(per_level, dim=1)  # (N, levels)
            bank = torch.unique(texts[texts >= 0])
            positive = (texts[:, :, None] == bank[None, None, :]).any(dim=1)
            return [(bank, positive)]
        banks = []
        for text in per_level:
            bank = torch.unique(text[text >= 0])
            if len(bank):
                banks.append((bank, text[:, None] == bank[None, :]))
        return banks

    def training_forward(self, images: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        """``[S | violations]`` over the batch's banks, concatenated (module docstring)."""
        banks = self.batch_texts(leaf)
        ids = torch.cat([bank for bank, _ in banks])
        z = self.embed_images(images)
        t = self.embed_texts(self.tokens[ids])
        outputs = self.similarity(z, t)
        if self.hyperbolic:
            outputs = torch.cat([outputs, _lorentz.entailment_violation(t, z, self.curvature()).T], dim=1)
        return outputs

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        """The mean over the banks of :func:`contrastive_terms` (+ the weighted mean entailment violation
        over the positive pairs, hyperbolic)."""
        outputs = loss_precision(outputs)
        banks = self.batch_texts(leaf)
        width = sum(len(bank) for bank, _ in banks)
        total = outputs.new_zeros(())
        start = 0
        for bank, positive in banks:
            columns = slice(start, start + len(bank))
            total = total + contrastive_terms(outputs[:, columns], positive, self.hparams.balance)
            if self.hyperbolic and self.hparams.entailment_weight > 0:
                violation = outputs[:, width:][:, columns]
                total = total + self.hparams.entailment_weight * violation[positive].mean()
            start += len(bank)
        return total / max(len(banks), 1)


def _first_of_equal_rows(tokens: torch.Tensor) -> torch.Tensor:
    """For every row, the index of the first row with the same tokens: one id per distinct prompt."""
    _, inverse = torch.unique(tokens, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), len(tokens), dtype=torch.long)
    first = first.scatter_reduce(0, inverse, torch.arange(len(tokens)), reduce="amin")
    return first[inverse]
