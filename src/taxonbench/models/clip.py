"""open_clip backbones: any open_clip model by name, its weights, its preprocessing, its text tower.

``build_backbone("open_clip:<model>", pretrained)`` (registered as the
backbone family ``open_clip``) creates ``open_clip.create_model(<model>,
pretrained)`` and splits it in two:

- the **visual tower** (``model.visual``) is the backbone's module: images
  ``(B, 3, H, W)`` to embeddings ``(B, embed_dim)``; the transforms use the
  weights' own normalisation and input size (``open_clip.get_model_preprocess_cfg``);
- the **text tower** (the rest: token embedding, transformer, final norm,
  projection and the learnable ``logit_scale``) becomes :class:`TextTower`,
  with the model's own tokenizer (``open_clip.get_tokenizer``), for methods
  that read taxon names (HCCF and its ablations, :mod:`taxonbench.methods.hccf`).

``pretrained`` is ``None`` (random initialisation), an open_clip tag of that
model (``RN50`` + ``openai``; the files come from open_clip's download cache,
so they must be there or downloadable), or a local checkpoint path (a state
dict of the full CLIP model, loaded strictly with ``weights_only=True``). A
model name may carry open_clip's schemas (``hf-hub:org/repo``,
``local-dir:/path``), which bring their own weights. Anything else — an
unknown model, an unknown tag, a missing file, a checkpoint of another
architecture, weights that cannot be fetched — stops with a
:class:`~taxonbench.errors.TaxonbenchError` naming it and listing the valid
names: never a silently random model where weights were asked for.

The embedded default registers :data:`TINY_CLIP` with open_clip (config in
``clip_configs/``): a ModifiedResNet vision tower of width 8 on 32 px images
(0.34 M parameters, about the cost of ``tiny_cnn``) and a 2-layer, 64-wide
text transformer with a 48-token context, randomly initialised.

open_clip is imported only when such a backbone is built (it imports in
seconds and pulls timm and huggingface_hub).
"""

from __future__ import annotations

import contextlib
import difflib
import io
import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from taxonbench.errors import TaxonbenchError
from taxonbench.models.backbones import Backbone, Preprocess
from taxonbench.registries import BACKBONES

#: The tiny CLIP of the embedded default (``clip_configs/taxonbench-tiny-clip.json``).
TINY_CLIP = "taxonbench-tiny-clip"
SCHEMAS = ("hf-hub:", "local-dir:")
_configs_added = False


def _open_clip():
    """Import open_clip and register taxonbench's model configs with it (once)."""
    global _configs_added
    import open_clip

    if not _configs_added:
        with resources.as_file(resources.files("taxonbench.models").joinpath("clip_configs")) as path:
            open_clip.add_model_config(path)
        _configs_added = True
    return open_clip


class TextTower(nn.Module):
    """A CLIP model without its visual tower: ``encode(tokens) -> (T, embed_dim)``, tokenizer, temperature.

    ``logit_scale`` is CLIP's learnable log inverse temperature (``exp`` of it
    multiplies cosine similarities; 1/0.07 at random initialisation).
    """

    def __init__(self, clip: nn.Module, tokenizer, model_name: str) -> None:
        super().__init__()
        del clip.visual  # the backbone owns it; this module keeps the text side only
        self.clip = clip
        self.tokenizer = tokenizer
        self.model_name = model_name

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.clip.logit_scale

    @property
    def context_length(self) -> int:
        return int(getattr(self.tokenizer, "context_length", 0) or self.clip.context_length)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """Token ids ``(T, context_length)`` (open_clip's tokenizer; longer texts are truncated)."""
        return self.tokenizer(list(texts))

    def encode(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Text embeddings ``(T, embed_dim)``; unit-norm when ``normalize``."""
        return self.clip.encode_text(tokens.to(self.clip.logit_scale.device), normalize=normalize)


def _close(name: str, valid: Sequence[str]) -> str:
    hint = difflib.get_close_matches(name, list(valid), n=3)
    return f" (did you mean {', '.join(hint)}?)" if hint else ""


def _create(open_clip, model_name: str, pretrained: str | None) -> nn.Module:
    """``open_clip.create_model`` with quiet logs and errors that name what was asked."""
    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # open_clip logs "initialized randomly" at WARNING for every build
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            return open_clip.create_model(model_name, pretrained=pretrained, weights_only=True)
    except Exception as exc:  # open_clip raises RuntimeError / ValueError / OSError variously
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())  # one line
        if pretrained is not None and Path(pretrained).is_file():
            raise TaxonbenchError(
                f"{pretrained}: not a checkpoint of open_clip model {model_name!r} ({reason[:300]})"
            ) from None
        where = f"open_clip model {model_name!r}" + (f" with pretrained {pretrained!r}" if pretrained else "")
        raise TaxonbenchError(
            f"could not build {where}: {reason[:300]}. Weights named by a tag or a hub id are fetched "
            "into open_clip's cache; with no network, download them elsewhere and pass the local "
            "checkpoint path as `pretrained`"
        ) from None
    finally:
        quiet.setLevel(level)


def check_model_name(model_name: str) -> None:
    """An unknown open_clip model stops here, listing the close matches and where to see them all."""
    open_clip = _open_clip()
    if model_name.startswith(SCHEMAS):
        return
    valid = open_clip.list_models()
    if model_name.replace("/", "-") not in valid:
        raise TaxonbenchError(
            f"unknown open_clip model {model_name!r}{_close(model_name, valid)}; "
            f"{len(valid)} models are known, e.g. {TINY_CLIP}, RN50, ViT-B-16 "
            "(all: python -c 'import open_clip; print(open_clip.list_models())')"
        )


def check_pretrained(model_name: str, pretrained: str) -> None:
    """``pretrained`` must be a tag of the model or an existing file."""
    open_clip = _open_clip()
    if model_name.startswith(SCHEMAS):
        raise TaxonbenchError(
            f"open_clip model {model_name!r} brings its own weights; set pretrained to null "
            f"(got {pretrained!r})"
        )
    if Path(pretrained).is_file():
        return
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained in tags:
        return
    looks_like_path = any(ch in pretrained for ch in "/\\") or Path(pretrained).suffix in (
        ".pt", ".pth", ".bin", ".safetensors", ".npz")
    if looks_like_path:
        raise TaxonbenchError(f"pretrained checkpoint for open_clip model {model_name!r} not found: {pretrained}")
    raise TaxonbenchError(
        f"open_clip model {model_name!r}: unknown pretrained tag {pretrained!r}{_close(pretrained, tags)}; "
        f"valid tags: {', '.join(tags) if tags else '(none: use a checkpoint path or null)'}, "
        "or a local checkpoint path"
    )


def build_clip(model_name: str, pretrained: str | None = None) -> tuple[nn.Module, nn.Module, Preprocess]:
    """``(visual tower, TextTower, Preprocess)`` of an open_clip model, weights loaded as asked."""
    open_clip = _open_clip()
    check_model_name(model_name)
    if pretrained is not None:
        check_pretrained(model_name, pretrained)
    clip = _create(open_clip, model_name, pretrained)
    cfg = open_clip.get_model_preprocess_cfg(clip)
    size = cfg.get("size")
    if isinstance(size, (tuple, list)):
        size = int(size[0]) if len(set(size)) == 1 else None
        if size is None:
            raise TaxonbenchError(f"open_clip model {model_name!r}: non-square input size {cfg['size']} unsupported")
    preprocess = Preprocess(mean=tuple(float(x) for x in cfg["mean"]),
                            std=tuple(float(x) for x in cfg["std"]),
                            image_size=int(size) if size else None)
    visual = clip.visual
    tokenizer = open_clip.get_tokenizer(model_name)
    return visual, TextTower(clip, tokenizer, model_name), preprocess


def embed_dim(visual: nn.Module, text: TextTower) -> int:
    """The shared embedding width (the text projection's output)."""
    proj = text.clip.text_projection
    if isinstance(proj, nn.Linear):
        return proj.out_features
    if isinstance(proj, torch.Tensor):
        return int(proj.shape[1])
    return int(getattr(visual, "output_dim"))


@BACKBONES.register("open_clip")
def open_clip_backbone(pretrained: str | None = None, model: str = "") -> Backbone:
    """``open_clip:<model>``: the visual tower as backbone; the text tower rides along as ``Backbone.text``."""
    if not model:
        raise TaxonbenchError(
            f"backbone 'open_clip' needs a model name: open_clip:<model>, e.g. open_clip:{TINY_CLIP} "
            "or open_clip:RN50"
        )
    visual, text, preprocess = build_clip(model, pretrained)
    return Backbone(visual, embed_dim(visual, text), preprocess, text=text)


__all__ = ["TINY_CLIP", "TextTower", "build_clip", "check_model_name", "check_pretrained", "open_clip_backbone"]
