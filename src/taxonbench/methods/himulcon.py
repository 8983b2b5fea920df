"""HiMulCon, HiConE and HiMulConE (Zhang et al., CVPR 2022, Eqs. 4, 6 and 7; Algorithm 1).

Per level ``l`` of the label hierarchy (the image instance, then the leaf, … up to the top rank),
positives share the label prefix down to ``l``; the level's SupCon-style loss is

* **HiMulCon** (Eq. 4): weighted by the level penalty ``λ_l = F(1/l)`` (``penalty: exp``, the reference
  training script's ``torch.exp``; ``pow2``, the reference class's default), finer levels weighing more;
* **HiConE** (Eqs. 5-6): constrained so a coarser level's pair loss is never below the largest pair loss
  of the finer levels (``constraint: paper``, per pair; ``code``: the reference code's batch-mean scalar);
* **HiMulConE** (Eq. 7): both.

The level losses are averaged over the levels (``normalization: paper``; ``code``: the reference code's
division by the label columns and its ``τ / 0.07`` factor). ``dedupe: code`` keeps, after each level,
one sample per label prefix as the reference code does (the paper does not: ``none``, the default);
``include_instance: false`` drops the instance level (the reference code has none). Formulas and
conventions: :func:`taxonbench.losses.contrastive.hierarchical_contrastive_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

from taxonbench.declare import param
from taxonbench.losses.contrastive import (
    CONSTRAINTS,
    DEDUPE,
    NORMALIZATIONS,
    PENALTIES,
    hierarchical_contrastive_loss,
)
from taxonbench.methods._encoders import ContrastiveHparams, TwoViewContrastive
from taxonbench.registries import METHODS


@dataclass(frozen=True)
class HierarchicalContrastiveHparams(ContrastiveHparams):
    penalty: str = param("exp", choices=PENALTIES, doc="level penalty λ = F(1/l): exp (reference script) or pow2")
    constraint: str = param("paper", choices=CONSTRAINTS, doc="HiConE's max: per pair (paper) or on the level mean (code)")
    dedupe: str = param("none", choices=DEDUPE, doc="one sample per label prefix after each level (code) or not (paper)")
    include_instance: bool = param(True, doc="the instance level (the other view) as the finest level")
    normalization: str = param("paper", choices=NORMALIZATIONS, doc="mean over levels (paper) or the reference code's")


class HierarchicalContrastive(TwoViewContrastive):
    Hparams = HierarchicalContrastiveHparams
    level_penalty: bool
    hierarchy_constraint: bool

    def contrastive_loss(self, features, labels):
        h = self.hparams
        return hierarchical_contrastive_loss(
            features, labels, h.temperature, level_penalty=self.level_penalty,
            hierarchy_constraint=self.hierarchy_constraint, penalty=h.penalty, constraint=h.constraint,
            dedupe=h.dedupe, include_instance=h.include_instance, normalization=h.normalization)


@METHODS.register("himulcon")
class HiMulCon(HierarchicalContrastive):
    level_penalty, hierarchy_constraint = True, False


@METHODS.register("hicone")
class HiConE(HierarchicalContrastive):
    level_penalty, hierarchy_constraint = False, True


@METHODS.register("himulcone")
class HiMulConE(HierarchicalContrastive):
    level_penalty, hierarchy_constraint = True, True
