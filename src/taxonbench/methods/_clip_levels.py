"""Parts shared by the CLIP-based methods (HCCF and its CE ablations, HCCF §3.2 and §4.3).

- :func:`text_tower_of`: the open_clip text tower a method needs, or a clear error;
- :func:`resolve_levels`: the trained levels (``levels: [6, 7]``; level ``d`` =
  depth ``d``, 1 the top rank, ``max_depth`` the leaves; ``null`` = all);
- :class:`LevelLayout`: where each level's nodes sit in a ``level_softmax_logits``
  vector (entry ``j`` = node ``j + 1``) and each leaf's ancestor per level;
- :class:`PromptHparams`, :class:`LevelPromptHparams`: the hyper-parameters
  these methods share (prompts; prompts and trained levels);
- :func:`encode_prompts` / :func:`prompt_embeddings`: unit-norm text embeddings
  of node prompts, in chunks (with gradients as the caller has them / frozen);
- :func:`place_columns`: per-level scores written into one non-root node vector;
- :class:`TextInitClassifier`: a cosine classifier whose weights start as the
  unit-norm text embeddings of its classes (HCCF §4.3, "CE loss + text embedding").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taxonbench.declare import param
from taxonbench.errors import TaxonbenchError
from taxonbench.models.backbones import Backbone
from taxonbench.taxon_text import DEFAULT_NAMES, DEFAULT_TEMPLATE, NAME_STYLES, node_prompts
from taxonbench.taxonomy import Taxonomy


@dataclass(frozen=True)
class PromptHparams:
    """How taxa are written for the text tower (:mod:`taxonbench.taxon_text`)."""

    prompt_template: str = param(DEFAULT_TEMPLATE, doc="a template with {name} (and optionally {rank})")
    names: str = param(DEFAULT_NAMES, choices=NAME_STYLES, doc="how a taxon is named in its prompt")


@dataclass(frozen=True)
class LevelPromptHparams(PromptHparams):
    """Prompts, and the trained levels (1 = top rank .. D = leaves; null = all)."""

    levels: list[int] | None = param(None, ge=1, doc="the trained levels, 1 = top rank .. D = leaves; null = all")


def text_tower_of(backbone: Backbone, where: str) -> nn.Module:
    """The backbone's text tower; methods that read taxon names need an open_clip backbone."""
    if backbone.text is None:
        raise TaxonbenchError(
            f"{where}: needs a CLIP backbone with a text tower (train.backbone: open_clip:<model>, "
            "e.g. open_clip:taxonbench-tiny-clip or open_clip:RN50)"
        )
    return backbone.text


def resolve_levels(levels: Sequence[int] | None, taxonomy: Taxonomy, where: str) -> tuple[int, ...]:
    """The trained levels, sorted; ``None`` means every level ``1 .. max_depth``."""
    depth = taxonomy.max_depth
    if depth < 1:
        raise TaxonbenchError(f"{where}: the taxonomy has no level below the root")
    if levels is None:
        return tuple(range(1, depth + 1))
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or not levels:
        raise TaxonbenchError(f"{where}.levels: expected a non-empty list of levels 1..{depth}, got {levels!r}")
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= depth:
            raise TaxonbenchError(
                f"{where}.levels: {level!r} is not a level of this taxonomy (1 = top rank .. {depth} = leaves)"
            )
    if len(set(levels)) != len(levels):
        raise TaxonbenchError(f"{where}.levels: repeated level in {list(levels)}")
    return tuple(sorted(levels))


class LevelLayout(nn.Module):
    """Index tensors of the per-level layout (buffers: they follow ``.to(device)``).

    ``columns(d)``: the columns of depth-``d`` nodes in a non-root node vector;
    ``target(leaf, d)``: the position, within level ``d``, of each leaf's ancestor
    at depth ``d`` (-1 where a leaf is shallower than ``d``).
    """

    def __init__(self, taxonomy: Taxonomy) -> None:
        super().__init__()
        self.max_depth = taxonomy.max_depth
        anc = taxonomy.ancestor_table[taxonomy.leaf_nodes]  # (L, D + 1) node ids, -1 below a leaf
        for d in range(1, self.max_depth + 1):
            nodes = taxonomy.nodes_at_depth(d).astype(np.int64)
            position = np.full(taxonomy.n_nodes, -1, dtype=np.int64)
            position[nodes] = np.arange(len(nodes))
            target = np.where(anc[:, d] >= 0, position[np.maximum(anc[:, d], 0)], -1)
            self.register_buffer(f"nodes_{d}", torch.as_tensor(nodes), persistent=False)
            self.register_buffer(f"target_{d}", torch.as_tensor(target), persistent=False)

    def nodes(self, d: int) -> torch.Tensor:
        """Node ids at depth ``d``."""
        return getattr(self, f"nodes_{d}")

    def columns(self, d: int) -> torch.Tensor:
        """Columns of the depth-``d`` nodes in a non-root vector (node ``v`` is column ``v - 1``)."""
        return self.nodes(d) - 1

    def target(self, leaf: torch.Tensor, d: int) -> torch.Tensor:
        """Position within level ``d`` of each leaf's depth-``d`` ancestor (-1: leaf above depth ``d``)."""
        return getattr(self, f"target_{d}")[leaf]

    def ancestor(self, leaf: torch.Tensor, d: int) -> torch.Tensor:
        """Node id of each leaf's depth-``d`` ancestor (-1: leaf above depth ``d``)."""
        target = self.target(leaf, d)
        return torch.where(target >= 0, self.nodes(d)[target.clamp(min=0)], target)


def taxon_tokens(text: nn.Module, taxonomy: Taxonomy, template: str, names: str, where: str) -> torch.Tensor:
    """Token ids ``(n, context)`` of every node's prompt (:func:`taxonbench.taxon_text.node_prompts`)."""
    return text.tokenize(node_prompts(taxonomy, template, names, where))


def encode_prompts(text: nn.Module, tokens: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Unit-norm text embeddings ``(T, E)`` of token rows, ``chunk`` rows at a time."""
    return torch.cat([text.encode(tokens[i:i + chunk], normalize=True) for i in range(0, len(tokens), chunk)])


@torch.no_grad()
def prompt_embeddings(text: nn.Module, tokens: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """:func:`encode_prompts` in eval mode, without gradients, as float32 (classifier initialisation)."""
    was_training = text.training
    text.eval()
    out = encode_prompts(text, tokens, chunk)
    text.train(was_training)
    return out.float()


def place_columns(parts: Sequence[torch.Tensor], columns: Sequence[torch.Tensor], width: int,
                  fill: float = 0.0) -> torch.Tensor:
    """A ``(B, width)`` tensor with ``parts[k]`` in ``columns[k]`` and ``fill`` elsewhere (differentiable)."""
    first = parts[0]
    out = torch.full((len(first), width), fill, dtype=first.dtype, device=first.device)
    return out.index_copy(1, torch.cat(list(columns)), torch.cat(list(parts), dim=1))


class TextInitClassifier(nn.Module):
    """Cosine classifier ``logits = s · normalize(x) Wᵀ`` with ``W`` initialised to unit text embeddings.

    ``s`` is CLIP's ``exp(logit_scale)`` at initialisation, kept fixed (a
    buffer); ``W`` is trained (or frozen, for a level that is not trained).
    """

    def __init__(self, embeddings: torch.Tensor, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(embeddings.detach().clone().float())
        self.register_buffer("scale", torch.tensor(float(scale)))

    @torch.no_grad()
    def reset(self, embeddings: torch.Tensor, scale: float) -> None:
        """Set ``W`` to ``embeddings`` and ``s`` to ``scale`` (same shapes as at construction)."""
        self.weight.copy_(embeddings.detach().float())
        self.scale.fill_(float(scale))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(features, dim=-1) @ self.weight.T


def clip_scale(text: nn.Module) -> float:
    """``exp(logit_scale)`` of a CLIP text tower: the multiplier of its cosine similarities."""
    return float(text.logit_scale.detach().exp())


__all__ = ["LevelLayout", "LevelPromptHparams", "PromptHparams", "TextInitClassifier", "clip_scale",
           "encode_prompts", "place_columns", "prompt_embeddings", "resolve_levels", "taxon_tokens", "text_tower_of"]
