"""Parts shared by the CLIP-based methods (HCCF and its CE ablations, HCCF §3.2 and §4.3).

- :func:`text_tower_of`: the open_clip text tower a method needs, or a clear error;
- :func:`~taxonbench.methods._levels.resolve_levels` and
  :class:`~taxonbench.methods._levels.LevelLayout` (re-exported; every per-level method uses them);
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
