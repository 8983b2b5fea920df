"""Parts shared by the CLIP-based methods (HCCF and its CE ablations, HCCF §3.2 and §4.3).

- :func:`text_tower_of`: the open_clip text tower a method needs, or a clear error;
- :func:`~taxonbench.methods._levels.resolve_levels` and
  :class:`~taxonbench.methods._levels.LevelLayout` (re-exported; every per-level method uses them);
- :class:`PromptHparams`, :class:`LevelPromptHparams`: the hyper-parameters
  these methods share (prompts; prompts and trained levels);
- :func:`encode_prompts` / :func:`prompt_embeddings`: unit-norm text embeddings
  of node prompts, in chunks (with gradients as the caller has them / frozen);
- :func:`place_columns`: per-level scores written into one non-root node vector;
- :func:`clip_scale_of`: CLIP's inverse temperature ``exp(logit_scale)``, clamped at 100 as CLIP does;
- :class:`NodeTextCache`: every node's text embedding, encoded once per evaluation;
- :class:`TextInitClassifier`: a cosine classifier whose weights start as the
  unit-norm text embeddings of its classes (HCCF §4.3, "CE loss + text embedding").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from taxonbench.declare import param
from taxonbench.errors import TaxonbenchError
from taxonbench.models.backbones import Backbone
from taxonbench.methods._levels import LevelLayout, resolve_levels
from taxonbench.taxon_text import DEFAULT_NAMES, DEFAULT_TEMPLATE, NAME_STYLES, node_prompts
from taxonbench.taxon_text import FIELDS as PROMPT_FIELDS
from taxonbench.taxonomy import Taxonomy


@dataclass(frozen=True)
class PromptHparams:
    """How taxa are written for the text tower (:mod:`taxonbench.taxon_text`)."""

    prompt_template: str = param(DEFAULT_TEMPLATE, template=PROMPT_FIELDS,
                                 doc="a template with {name} (and optionally {rank})")
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


def taxon_tokens(text: nn.Module, taxonomy: Taxonomy, template: str, names: str, where: str) -> torch.Tensor:
    """Token ids ``(n, context)`` of every node's prompt (:func:`taxonbench.taxon_text.node_prompts`)."""
    return text.tokenize(node_prompts(taxonomy, template, names, where))


def encode_prompts(text: nn.Module, tokens: torch.Tensor, chunk: int = 512, normalize: bool = True) -> torch.Tensor:
    """Text embeddings ``(T, E)`` of token rows (unit-norm when ``normalize``), ``chunk`` rows at a time."""
    return torch.cat([text.encode(tokens[i:i + chunk], normalize=normalize) for i in range(0, len(tokens), chunk)])


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


MAX_SCALE = 100.0  # CLIP clamps exp(logit_scale) at 100
TEXT_CHUNK = 1024  # prompts encoded at once when scoring every node


def clip_scale_of(text: nn.Module) -> torch.Tensor:
    """``s = exp(logit_scale)`` of a CLIP text tower, clamped at 100 (CLIP), with gradients."""
    return text.logit_scale.exp().clamp(max=MAX_SCALE)


class NodeTextCache:
    """A mixin for methods that score every node by its prompt's embedding (:meth:`node_text_embeddings`):
    :meth:`all_node_text` encodes them once in eval mode without gradients (evaluation; every batch reads
    the same), and anew whenever gradients may flow (training)."""

    _node_text: torch.Tensor | None = None

    def node_text_embeddings(self) -> torch.Tensor:
        raise NotImplementedError

    def train(self, mode: bool = True):
        self._node_text = None
        return super().train(mode)  # type: ignore[misc]

    def all_node_text(self) -> torch.Tensor:
        """Every node's text embedding (row = node id); cached in eval mode without gradients."""
        caching = not self.training and not torch.is_grad_enabled()  # type: ignore[attr-defined]
        if caching and self._node_text is not None:
            return self._node_text
        out = self.node_text_embeddings()
        if caching:
            self._node_text = out
        return out


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


__all__ = ["LevelLayout", "LevelPromptHparams", "MAX_SCALE", "NodeTextCache", "PromptHparams", "TEXT_CHUNK",
           "TextInitClassifier", "clip_scale", "clip_scale_of",
           "encode_prompts", "place_columns", "prompt_embeddings", "resolve_levels", "taxon_tokens", "text_tower_of"]
