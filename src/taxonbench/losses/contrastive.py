"""Two-view contrastive losses, flat and hierarchical (pure torch).

Equation numbers refer to Zhang et al., "Use All The Labels: A Hierarchical
Multi-Label Contrastive Learning Framework", CVPR 2022 (HiMulCon), §3 and its
Algorithm 1. "The reference code" means the authors' public implementation,
github.com/salesforce/hierarchicalContrastiveLearning, ``losses/losses.py``
(class ``HMLC`` built on Khosla et al.'s ``SupConLoss``) and the training
script ``classification/train_deepfashion.py`` that configures it.

Conventions shared by every function here
-----------------------------------------
* ``features``: a ``(2N, d)`` float tensor of L2-normalised projections. The
  two views of image ``k`` sit at rows ``k`` and ``N + k`` (first all first
  views, then all second views, as ``torch.cat([view0, view1])`` gives). The
  functions do not re-normalise.
* ``labels``: a ``(N, L)`` integer tensor, one row per *image* (not per view),
  column ``l`` the label id at level ``l``, ordered coarse -> fine (column 0
  the coarsest). An image's labels are its root-to-leaf path, so two images
  "share the prefix up to level l" when ``labels[i, :l + 1] == labels[j, :l + 1]``.
  Label ids need only be comparable within a column. ``L = 0`` (no labels)
  is allowed.
* Implicitly there is one more, finest level: the *instance* (the image
  itself), whose positives are the other view of the same image.
* ``temperature`` is τ, default 0.1 (the paper's value, §4.2; the reference
  code defaults to 0.07).
* A "pair loss value" is ``ℓ(i, p) = -L^pair(i, p) >= 0`` (Eq. 3 is a
  log-probability, so its negative is the loss); losses returned are >= 0
  and are minimised.
* Anchors without any positive at a level are skipped at that level (they
  are not counted in the mean over anchors). A level at which *no* anchor
  has a positive raises :class:`ContrastiveInputError` naming the level.
  With two views the other view is a positive at every level (the views of
  an image share all its labels), so the hierarchical losses never hit this
  for well-formed input; :func:`masked_contrastive_loss` can.

Errors are :class:`ContrastiveInputError`, a ``ValueError`` that is also a
:class:`taxonbench.errors.TaxonbenchError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from taxonbench.errors import TaxonbenchError

__all__ = [
    "CODE_CONVENTIONS",
    "ContrastiveInputError",
    "LevelMask",
    "hicone_loss",
    "hierarchical_contrastive_loss",
    "himulcon_loss",
    "himulcone_loss",
    "level_masks",
    "masked_contrastive_loss",
    "pair_loss",
    "simclr_loss",
    "supcon_loss",
]

DEDUPE = ("none", "code")
CONSTRAINTS = ("paper", "code")
NORMALIZATIONS = ("paper", "code")
REDUCTIONS = ("mean", "sum")
PENALTIES = ("exp", "pow2")

#: keyword arguments that reproduce the reference code's ``HMLC`` loss exactly
#: (with ``penalty="exp"`` as its training script sets; use ``penalty="pow2"``
#: for the class's own default, and ``temperature=0.07`` for its default τ).
CODE_CONVENTIONS = {"include_instance": False, "dedupe": "code", "constraint": "code",
                    "normalization": "code"}


class ContrastiveInputError(TaxonbenchError, ValueError):
    """Malformed input to a contrastive loss; the message names what is wrong."""


# ------------------------------------------------------------------ validation
def _check_features(features: Tensor, n_images: int | None = None) -> int:
    """Validate ``features``; returns N (images per view)."""
    if not isinstance(features, Tensor):
        raise ContrastiveInputError(f"features must be a torch.Tensor, got {type(features).__name__}")
    if features.dim() != 2:
        raise ContrastiveInputError(f"features must be 2-D (2N, d), got shape {tuple(features.shape)}")
    if not features.is_floating_point():
        raise ContrastiveInputError(f"features must be floating point, got {features.dtype}")
    rows = features.shape[0]
    if n_images is None:
        if rows < 2 or rows % 2:
            raise ContrastiveInputError(
                f"features must hold two views per image (2N rows: view 0 of images 0..N-1, then view 1), "
                f"got {rows} rows")
        return rows // 2
    if rows != 2 * n_images:
        raise ContrastiveInputError(
            f"features must hold two views per image: expected 2N = {2 * n_images} rows for N = {n_images} "
            f"label rows, got {rows}")
    if n_images < 1:
        raise ContrastiveInputError("the batch is empty (N = 0 images)")
    return n_images


def _check_labels(labels: Tensor, dim: int) -> None:
    if not isinstance(labels, Tensor):
        raise ContrastiveInputError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dim() != dim:
        want = "(N, L) with levels coarse -> fine" if dim == 2 else "(N,)"
        raise ContrastiveInputError(f"labels must be {dim}-D {want}, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex():
        raise ContrastiveInputError(f"labels must hold integer label ids, got {labels.dtype}")


def _check_temperature(temperature: float) -> None:
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ContrastiveInputError(f"temperature must be a positive finite number, got {temperature!r}")


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ContrastiveInputError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def _level_name(level: int | str) -> str:
    return "'instance'" if level == "instance" else f"{level} (labels[:, {level}])"


# ------------------------------------------------------------------ building blocks
def pair_loss(features: Tensor, temperature: float = 0.1, active: Tensor | None = None) -> Tensor:
    """Eq. 3: the matrix ``P[i, p] = log( exp(f_i·f_p/τ) / Σ_{a ∈ A∖i} exp(f_i·f_a/τ) )``.

    Computed for every row ``i`` and column ``p`` of ``features`` (``(M, d)``,
    any M >= 2; no view layout is needed here). The diagonal ``p = i`` is not a
    pair; it is filled in by the same formula and never used by the losses.
    Entries are log-probabilities (<= 0 off the diagonal); the pair *loss value*
    is ``-P[i, p]``.

    ``active`` (optional ``(M,)`` bool) restricts the denominator set ``A`` to
    the active rows (used by the reference code's de-duplication, which drops
    samples from the batch); then only entries with both ``i`` and ``p`` active
    are meaningful.
    """
    if not isinstance(features, Tensor) or features.dim() != 2 or not features.is_floating_point():
        raise ContrastiveInputError("features must be a 2-D floating point tensor (M, d)")
    if features.shape[0] < 2:
        raise ContrastiveInputError(f"pair_loss needs at least two rows, got {features.shape[0]}")
    _check_temperature(temperature)
    m = features.shape[0]
    logits = features @ features.T / temperature
    excluded = torch.eye(m, dtype=torch.bool, device=features.device)
    if active is not None:
        active = active.to(device=features.device, dtype=torch.bool)
        if active.shape != (m,):
            raise ContrastiveInputError(f"active must have shape ({m},), got {tuple(active.shape)}")
        excluded = excluded | ~active[None, :]
    denominator = torch.logsumexp(logits.masked_fill(excluded, float("-inf")), dim=1, keepdim=True)
    return logits - denominator


def _reduce_level(values: Tensor, positive: Tensor, reduction: str) -> Tensor:
    """Σ_i (1/|P(i)|) Σ_{p ∈ P(i)} values[i, p], summed or averaged over anchors with |P(i)| > 0."""
    count = positive.sum(dim=1)
    has = count > 0
    per_anchor = torch.where(positive, values, torch.zeros((), dtype=values.dtype, device=values.device)).sum(1)
    per_anchor = per_anchor[has] / count[has].to(values.dtype)
    return per_anchor.mean() if reduction == "mean" else per_anchor.sum()


def masked_contrastive_loss(features: Tensor, positive: Tensor, temperature: float = 0.1, *,
                            active: Tensor | None = None, reduction: str = "mean",
                            level: int | str = "custom") -> Tensor:
    """SupCon form (Eq. 2) for an explicit ``(M, M)`` bool positive mask.

    ``(1/|I|) Σ_{i ∈ I} (-1/|P(i)|) Σ_{p ∈ P(i)} L^pair(i, p)`` with ``I`` the
    anchors that have at least one positive (others are skipped); with
    ``reduction="sum"`` the literal ``Σ_{i ∈ I}`` of the paper. The diagonal of
    ``positive`` is ignored (``i`` is never its own positive). ``active`` as in
    :func:`pair_loss`; positives of inactive rows/columns are ignored. Raises
    :class:`ContrastiveInputError` naming ``level`` when no anchor has a positive.
    """
    _check_choice("reduction", reduction, REDUCTIONS)
    if not isinstance(features, Tensor) or features.dim() != 2 or not features.is_floating_point():
        raise ContrastiveInputError("features must be a 2-D floating point tensor (M, d)")
    if not isinstance(positive, Tensor) or positive.shape != (features.shape[0], features.shape[0]):
        raise ContrastiveInputError(
            f"positive mask must have shape {(features.shape[0], features.shape[0])}, "
            f"got {tuple(getattr(positive, 'shape', ()))}")
    positive = positive.to(device=features.device, dtype=torch.bool)
    positive = positive & ~torch.eye(positive.shape[0], dtype=torch.bool, device=positive.device)
    if active is not None:
        a = active.to(device=features.device, dtype=torch.bool)
        positive = positive & a[:, None] & a[None, :]
    if not bool(positive.any()):
        raise ContrastiveInputError(f"level {_level_name(level)}: no anchor in the batch has a positive pair")
    return _reduce_level(-pair_loss(features, temperature, active), positive, reduction)


def simclr_loss(features: Tensor, temperature: float = 0.1, *, reduction: str = "mean") -> Tensor:
    """Eq. 1 (SimCLR / NT-Xent): the positive of view ``i`` is the other view of its image.

    ``-(1/2N) Σ_i log( exp(f_i·f_j/τ) / Σ_{k ∈ A∖i} exp(f_i·f_k/τ) )`` over all
    2N anchors (Eq. 1 as printed omits the log; NT-Xent has it). ``reduction="sum"``
    drops the 1/2N.
    """
    n = _check_features(features)
    _check_temperature(temperature)
    return masked_contrastive_loss(features, _view_mask(torch.eye(n, dtype=torch.bool, device=features.device)),
                                   temperature, reduction=reduction, level="instance")


def supcon_loss(features: Tensor, labels: Tensor, temperature: float = 0.1, *, reduction: str = "mean") -> Tensor:
    """Eq. 2 (Khosla et al., SupCon): positives of view ``i`` are all other views whose image has its label.

    ``labels`` is ``(N,)``, one label per image. Returns the mean over the 2N
    anchors of ``-(1/|P(i)|) Σ_{p ∈ P(i)} L^pair(i, p)``, the denominator over
    all ``a ≠ i`` (as Khosla et al.'s code and pytorch-metric-learning's
    ``SupConLoss``); ``reduction="sum"`` gives the literal ``Σ_{i ∈ I}`` of Eq. 2.
    """
    _check_labels(labels, 1)
    _check_features(features, labels.shape[0])
    _check_temperature(temperature)
    lab = labels.to(features.device)
    return masked_contrastive_loss(features, _view_mask(lab[:, None] == lab[None, :]), temperature,
                                   reduction=reduction, level=0)


# ------------------------------------------------------------------ level masks (Algorithm 1)
@dataclass(frozen=True)
class LevelMask:
    """Pairing at one level of the finest -> coarsest iteration.

    ``level``: ``"instance"`` or the label column ``l`` (0 = coarsest).
    ``active``: ``(N,)`` bool, images still in the batch at this level (all of
    them unless ``dedupe="code"``).
    ``image_positive``: ``(N, N)`` bool, ``[j, k]`` true when images j and k are
    both active and share the label prefix ``labels[:, :l + 1]`` (for the
    instance level: ``j == k``). The diagonal is true for active images: an
    image pairs with itself, i.e. its other view.
    ``positive``: ``(2N, 2N)`` bool view-level mask in the row layout of
    ``features``: ``image_positive`` tiled over the two views, minus the
    diagonal (a view is never its own positive).
    """

    level: int | str
    active: Tensor
    image_positive: Tensor
    positive: Tensor

    @property
    def active_views(self) -> Tensor:
        """``(2N,)`` bool: ``active`` for both views."""
        return self.active.repeat(2)


def _view_mask(image_mask: Tensor) -> Tensor:
    """(N, N) image-level mask -> (2N, 2N) view-level mask without the diagonal."""
    tiled = image_mask.repeat(2, 2)
    return tiled & ~torch.eye(tiled.shape[0], dtype=torch.bool, device=tiled.device)


def level_masks(labels: Tensor, *, dedupe: str = "none", include_instance: bool = True) -> list[LevelMask]:
    """The per-level pairings of Algorithm 1, finest level first.

    Levels, in order: ``"instance"`` (if ``include_instance``), then label
    columns ``L-1, L-2, ..., 0``. At label level ``l`` the positives of an
    image are the images sharing its prefix ``labels[:, :l + 1]`` (all labels at
    levels <= l equal; Algorithm 1's ``levelMask = M ⊙ B`` with the finer columns
    zeroed), which includes the image itself (its other view) and every finer
    level's positives.

    ``dedupe="none"`` (paper, Algorithm 1): all images take part at every level.

    ``dedupe="code"`` (the reference code, ``HMLC.forward``): after computing
    each label level, the batch is cut to one image per label prefix of that
    level (both of its views kept), before the next, coarser level is computed
    on what remains (so the denominators of Eq. 3 shrink too). The image kept
    per prefix is the one the code keeps: the first, in the current batch
    order, among the images with that prefix; the batch is then re-ordered by
    prefix, sorted lexicographically (``torch.unique(..., sorted=True)``), and
    that order decides the next cut. In effect at level ``l`` an anchor's
    positives are, besides its own other view, one representative of each
    *other* level-(l+1) subtree under its level-l ancestor, i.e. pairs whose
    lowest common ancestor is exactly level ``l`` (the paper's wording in §3).
    The instance level (absent from the code) cuts nothing.
    """
    _check_labels(labels, 2)
    _check_choice("dedupe", dedupe, DEDUPE)
    n, depth = labels.shape
    if n < 1:
        raise ContrastiveInputError("the batch is empty (N = 0 images)")
    if depth == 0 and not include_instance:
        raise ContrastiveInputError("no levels: labels has no columns and include_instance is False")
    device = labels.device
    active = torch.ones(n, dtype=torch.bool, device=device)
    order = torch.arange(n, device=device)  # current batch order (reference code's dedupe)
    out: list[LevelMask] = []
    if include_instance:
        image = torch.eye(n, dtype=torch.bool, device=device)
        out.append(LevelMask("instance", active.clone(), image, _view_mask(image)))
    for level in range(depth - 1, -1, -1):
        prefix = labels[:, :level + 1]
        same = (prefix[:, None, :] == prefix[None, :, :]).all(dim=2)
        image = same & active[:, None] & active[None, :]
        out.append(LevelMask(level, active.clone(), image, _view_mask(image)))
        if dedupe == "code" and level > 0:
            _, group = torch.unique(prefix[order], dim=0, sorted=True, return_inverse=True)
            positions = torch.arange(order.numel(), device=device)
            first = torch.full((int(group.max()) + 1,), order.numel(), dtype=positions.dtype, device=device)
            first = first.scatter_reduce(0, group, positions, reduce="amin")
            order = order[first]
            active = torch.zeros(n, dtype=torch.bool, device=device)
            active[order] = True
    return out


# ------------------------------------------------------------------ hierarchical losses
def _lambdas(n_levels: int, lambdas: Sequence[float] | None, penalty: str | Callable[[float], float]) -> list[float]:
    if lambdas is not None:
        values = [float(x) for x in lambdas]
        if len(values) != n_levels:
            raise ContrastiveInputError(
                f"lambdas must give one weight per level, finest first ({n_levels} levels), got {len(values)}")
        if not all(math.isfinite(x) for x in values):
            raise ContrastiveInputError(f"lambdas must be finite, got {values}")
        return values
    if callable(penalty):
        return [float(penalty(1.0 / k)) for k in range(1, n_levels + 1)]
    _check_choice("penalty", penalty, PENALTIES)
    base = math.e if penalty == "exp" else 2.0
    return [base ** (1.0 / k) for k in range(1, n_levels + 1)]


def hierarchical_contrastive_loss(
    features: Tensor,
    labels: Tensor,
    temperature: float = 0.1,
    *,
    level_penalty: bool = True,
    hierarchy_constraint: bool = False,
    lambdas: Sequence[float] | None = None,
    penalty: str | Callable[[float], float] = "exp",
    include_instance: bool = True,
    dedupe: str = "none",
    constraint: str = "paper",
    normalization: str = "paper",
    reduction: str = "mean",
    base_temperature: float = 0.07,
) -> Tensor:
    """Eqs. 4, 6 and 7 in one loop; see :func:`himulcon_loss`, :func:`hicone_loss`, :func:`himulcone_loss`.

    Iterates the levels of :func:`level_masks` from the finest to the coarsest.
    At each level ``l`` with positives ``P_l(i)`` and pair loss values
    ``ℓ(i, p) = -L^pair(i, p)`` (Eq. 3):

    * ``hierarchy_constraint`` (HiConE, Eqs. 5-6), ``constraint="paper"``
      (default): each pair's value becomes ``max(ℓ(i, p), ℓ_max(l-1))`` where
      ``ℓ_max(l-1)`` is the largest (constrained) pair loss value over all
      positive pairs of the previous, finer level (Eq. 5; since constrained
      values never drop below the previous maximum this is the running maximum
      over all finer levels). The finest level is unconstrained. In loss-value
      terms coarser-level pair losses are thus never smaller than the finer
      levels' largest (Eq. 6 as printed applies the max to the log-probabilities
      inside a negated sum, which would do the opposite; we follow the stated
      constraint). Gradients flow through the max, not detached, as in the
      reference code. ``constraint="code"`` (reference code): the constraint is
      on the level's scalar loss instead, ``max(level loss, running max of the
      finer levels' constrained level losses)``, each level loss being the mean
      over anchors of ``(1/|P_l(i)|) Σ_p ℓ(i, p)``.
    * ``level_penalty`` (HiMulCon, Eq. 4): the level's loss is multiplied by
      ``λ_l``. ``lambdas``: explicit weights, one per level *finest first*
      (the order of :func:`level_masks`). Otherwise ``λ = F(1/l')`` where ``l'``
      is the 1-based position of the level in the finest -> coarsest iteration
      (``l' = 1`` is the instance level, or the finest label level when
      ``include_instance=False``), so finer levels weigh more; ``penalty="exp"``
      (default) is ``λ = exp(1/l')``, the reference training script's
      ``layer_penalty=torch.exp``; ``"pow2"`` is ``2 ** (1/l')``, the ``HMLC``
      class's own default; a callable gets ``1/l'`` and returns ``λ``.
      Without ``level_penalty`` every λ is 1.
    * per level, anchors without positives are skipped; ``reduction="mean"``
      (default) averages over the remaining anchors, ``"sum"`` sums (the
      literal ``Σ_{i ∈ I}`` of Eqs. 2, 4, 6, 7; Khosla et al.'s code, the
      reference code and pytorch-metric-learning all average).

    ``normalization="paper"`` (default): the level losses are averaged,
    ``(1/|L|) Σ_l`` with ``|L|`` the number of levels in the sum (``L + 1``
    with the instance level). ``normalization="code"``: the reference code's
    ``cumulative_loss / labels.shape[1]`` where its label matrix carries an
    image-id column after the ``L`` label columns and no level is computed for
    it: the sum over levels is divided by ``L + 1`` whatever
    ``include_instance`` says, and every level loss is scaled by
    ``temperature / base_temperature`` (Khosla et al.'s ``SupConLoss`` factor;
    ``base_temperature`` 0.07). :data:`CODE_CONVENTIONS` collects the options
    that reproduce ``HMLC`` (``include_instance=False``, ``dedupe="code"``,
    ``constraint="code"``, ``normalization="code"``).
    """
    _check_labels(labels, 2)
    _check_features(features, labels.shape[0])
    _check_temperature(temperature)
    _check_choice("constraint", constraint, CONSTRAINTS)
    _check_choice("normalization", normalization, NORMALIZATIONS)
    _check_choice("reduction", reduction, REDUCTIONS)
    if normalization == "code":
        _check_temperature(base_temperature)
    levels = level_masks(labels.to(features.device), dedupe=dedupe, include_instance=include_instance)
    weights = _lambdas(len(levels), lambdas, penalty) if level_penalty else [1.0] * len(levels)

    shared = -pair_loss(features, temperature) if dedupe == "none" else None
    total = features.new_zeros(())
    running_max: Tensor | None = None
    for lv, weight in zip(levels, weights):
        positive = lv.positive
        if not bool(positive.any()):
            raise ContrastiveInputError(f"level {_level_name(lv.level)}: no anchor in the batch has a positive pair")
        values = shared if shared is not None else -pair_loss(features, temperature, lv.active_views)
        if hierarchy_constraint and constraint == "paper":
            if running_max is not None:
                values = torch.maximum(values, running_max)
            level_max = values.masked_fill(~positive, float("-inf")).amax()
            running_max = level_max if running_max is None else torch.maximum(running_max, level_max)
        level_loss = _reduce_level(values, positive, reduction)
        if hierarchy_constraint and constraint == "code":
            if running_max is not None:
                level_loss = torch.maximum(level_loss, running_max)
            running_max = level_loss if running_max is None else torch.maximum(running_max, level_loss)
        total = total + weight * level_loss
    if normalization == "paper":
        return total / len(levels)
    return total * (temperature / base_temperature) / (labels.shape[1] + 1)


def himulcon_loss(features: Tensor, labels: Tensor, temperature: float = 0.1, *,
                  lambdas: Sequence[float] | None = None, penalty: str | Callable[[float], float] = "exp",
                  include_instance: bool = True, dedupe: str = "none", normalization: str = "paper",
                  reduction: str = "mean", base_temperature: float = 0.07) -> Tensor:
    """HiMulCon, Eq. 4: ``(1/|L|) Σ_l λ_l · mean_i (1/|P_l(i)|) Σ_{p ∈ P_l(i)} -L^pair(i, p)``.

    Levels, masks and options as in :func:`hierarchical_contrastive_loss`
    (``level_penalty=True``, no constraint). Reductions: with ``labels`` of
    shape ``(N, 1)``, ``include_instance=False`` and ``lambdas=[1.0]`` it is
    :func:`supcon_loss` on ``labels[:, 0]``; with ``(N, 0)`` labels (instance
    level only) and ``lambdas=[1.0]`` it is :func:`simclr_loss` (the paper's
    reductions to Khosla et al. and SimCLR, §3.2 and after Algorithm 1).
    """
    return hierarchical_contrastive_loss(
        features, labels, temperature, level_penalty=True, hierarchy_constraint=False, lambdas=lambdas,
        penalty=penalty, include_instance=include_instance, dedupe=dedupe, normalization=normalization,
        reduction=reduction, base_temperature=base_temperature)


def hicone_loss(features: Tensor, labels: Tensor, temperature: float = 0.1, *, constraint: str = "paper",
                include_instance: bool = True, dedupe: str = "none", normalization: str = "paper",
                reduction: str = "mean", base_temperature: float = 0.07) -> Tensor:
    """HiConE, Eqs. 5-6: the level losses with the hierarchy constraint and ``λ = 1``.

    ``(1/|L|) Σ_l mean_i (1/|P_l(i)|) Σ_{p ∈ P_l(i)} max(ℓ(i, p), ℓ_max(l-1))``,
    computed from the finest level to the coarsest, ``ℓ = -L^pair`` the pair
    loss value and ``ℓ_max(l-1)`` the largest constrained pair loss value of
    the previous, finer level (none for the finest level), so a coarser-level
    pair loss is never smaller than any finer-level pair loss.
    ``constraint="code"``: the max is taken on the level's batch-mean loss
    against the previous level's (constrained) batch-mean loss instead. Other
    options as in :func:`hierarchical_contrastive_loss`.
    """
    return hierarchical_contrastive_loss(
        features, labels, temperature, level_penalty=False, hierarchy_constraint=True, constraint=constraint,
        include_instance=include_instance, dedupe=dedupe, normalization=normalization, reduction=reduction,
        base_temperature=base_temperature)


def himulcone_loss(features: Tensor, labels: Tensor, temperature: float = 0.1, *, constraint: str = "paper",
                   lambdas: Sequence[float] | None = None, penalty: str | Callable[[float], float] = "exp",
                   include_instance: bool = True, dedupe: str = "none", normalization: str = "paper",
                   reduction: str = "mean", base_temperature: float = 0.07) -> Tensor:
    """HiMulConE, Eq. 7: HiConE's constrained level losses, each weighted by HiMulCon's ``λ_l``.

    ``(1/|L|) Σ_l λ_l mean_i (1/|P_l(i)|) Σ_p max(ℓ(i, p), ℓ_max(l-1))``; the
    constraint compares unweighted values (λ is applied after the max, as in
    Eq. 7 and the reference code). Options as in
    :func:`hierarchical_contrastive_loss`.
    """
    return hierarchical_contrastive_loss(
        features, labels, temperature, level_penalty=True, hierarchy_constraint=True, constraint=constraint,
        lambdas=lambdas, penalty=penalty, include_instance=include_instance, dedupe=dedupe,
        normalization=normalization, reduction=reduction, base_temperature=base_temperature)
