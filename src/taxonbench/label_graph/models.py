"""Order-preserving embedding models of a label hierarchy (Dhall's thesis §2.2, Chapter 5; Ganea et al. 2018).

Each model is a violation energy ``E(x, y) ≥ 0`` between the embedding ``x``
of a general concept and ``y`` of a specific one (``y`` is-a ``x``): zero when
the order holds, growing with the violation. All train with the max-margin
loss of the thesis's Eq. 2.3 (:func:`max_margin_loss`). Registered in
:data:`taxonbench.registries.LABEL_MODELS`:

``order_embeddings``
    Eq. 2.1-2.2 (Vendrov et al. 2016, without their positivity constraint,
    thesis §5.2): ``E(x, y) = ‖max(0, x − y)‖₂`` — zero iff ``y ≥ x``
    coordinate-wise (reversed product order: general concepts have smaller
    coordinates).
``euclidean_cones``
    Eq. 2.4-2.6: aperture ``ψ(x) = arcsin(K / ‖x‖)``, angle between the cone's
    axis and ``y − x`` ``Ξ(x, y) = arccos((‖y‖² − ‖x‖² − ‖x − y‖²) / (2 ‖x‖ ‖x − y‖))``,
    ``E = max(0, Ξ − ψ)`` (``space: angle``). ``space: cosine`` (thesis §6.1.2,
    which found it more stable and used it for its Euclidean-cone results, without
    an equation): the same comparison of cosines, ``E = max(0, cos ψ(x) − cos Ξ(x, y))``,
    which has no arcsin / arccos and so no unbounded gradient at the cone's edge.
``hyperbolic_cones``
    Eq. 2.7-2.11 on the Poincaré ball ``‖x‖ < 1`` (geoopt's ``PoincareBall``,
    curvature −1): ``ψ(x) = arcsin(K (1 − ‖x‖²) / ‖x‖)``,
    ``Ξ(x, y) = arccos((⟨x, y⟩ (1 + ‖x‖²) − ‖x‖² (1 + ‖y‖²)) / (‖x‖ ‖x − y‖ √(1 + ‖x‖² ‖y‖² − 2 ⟨x, y⟩)))``,
    ``E = max(0, Ξ − ψ)``. ``optimizer: rsgd`` keeps the points on the ball as
    geoopt ``ManifoldParameter``\\ s and steps with Riemannian SGD (Eq. 2.12-2.15:
    the Euclidean gradient rescaled by ``(1 − ‖u‖²)² / 4`` and applied through the
    exponential map: geoopt's ``RiemannianSGD`` on ``PoincareBallExact``, whose
    retraction is the exact ``exp_u``; the plain ``PoincareBall`` retracts to first
    order, ``projx(u + v)``); ``optimizer: adam`` keeps
    Euclidean (tangent-space) parameters ``t`` and maps them with ``exp₀(t)``
    (thesis §5.6 "Optimization details", the joint models), stepped by Adam.

Where an aperture's argument exceeds 1 (a point within ``K`` of the origin,
Euclidean, or of the inner radius on the ball) it is clipped to 1: ``ψ = π/2``,
the widest cone (Ganea et al. restrict the points away from that region instead).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

with warnings.catch_warnings():  # geoopt 0.5 decorates with torch.jit.script, which torch 2.x deprecates
    warnings.simplefilter("ignore", FutureWarning)
    import geoopt

from taxonbench.declare import NoOptions, build_options, param
from taxonbench.errors import TaxonbenchError
from taxonbench.registries import LABEL_MODELS

_EPS = 1e-12
_COS_CLIP = 1.0 - 1e-9  # float64: arccos stays differentiable


def _norm(x: torch.Tensor) -> torch.Tensor:
    return x.norm(dim=-1).clamp_min(_EPS)


def max_margin_loss(pos_energy: torch.Tensor, neg_energy: torch.Tensor, alpha: float) -> torch.Tensor:
    """Thesis Eq. 2.3: ``Σ_P E(f(u), f(v)) + Σ_N max(0, α − E(f(u′), f(v′)))`` over one batch's edges."""
    return pos_energy.sum() + torch.relu(alpha - neg_energy).sum()


class LabelModel:
    """An energy over a space of points, its parametrisation and its optimiser (module docstring).

    ``Options`` are declared like every other component's (checked at Snakemake
    start, :mod:`taxonbench.declarations`). ``parameter`` wraps initial values;
    ``points`` maps a parameter to the model's space.
    """

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    #: whether points must lie in the open unit ball
    on_ball: ClassVar[bool] = False

    def __init__(self, options: dict | None = None, where: str = "label model") -> None:
        self.where = where
        self.opts = build_options(self.Options, options or {}, where=where)

    def init(self, n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
        """Initial parameter values, ``N(0, 0.1²)`` per coordinate."""
        return 0.1 * torch.randn(n, dim, generator=generator, dtype=torch.float64)

    def parameter(self, values: torch.Tensor) -> nn.Parameter:
        return nn.Parameter(values.clone())

    def points(self, param: torch.Tensor) -> torch.Tensor:
        return param

    def from_points(self, points: torch.Tensor) -> torch.Tensor:
        """Parameter values whose :meth:`points` are ``points`` (initialising from another model's embedding)."""
        return points

    def energy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=lr)

    def check_points(self, points: torch.Tensor, names, where: str) -> None:
        """Stop on points the model cannot use (non-finite; outside the ball), naming the first node."""
        bad = ~torch.isfinite(points).all(dim=1)
        if bad[1:].any():
            v = int(torch.nonzero(bad[1:])[0]) + 1
            raise TaxonbenchError(f"{where}: the embedding of node {v} ({names[v]!r}) is not finite")


@LABEL_MODELS.register("order_embeddings")
class OrderEmbeddings(LabelModel):
    def energy(self, x, y):
        return torch.relu(x - y).norm(dim=-1)


@dataclass(frozen=True)
class ConeOptions:
    K: float = param(0.1, gt=0.0, doc="aperture constant of Eq. 2.4 / 2.9")


@dataclass(frozen=True)
class EuclideanConeOptions(ConeOptions):
    space: str = param("cosine", choices=("angle", "cosine"),
                       doc="compare angles (Eq. 2.6) or their cosines (thesis §6.1.2)")


@LABEL_MODELS.register("euclidean_cones")
class EuclideanCones(LabelModel):
    Options = EuclideanConeOptions

    def cos_xi(self, x, y):
        """``cos Ξ(x, y)`` of Eq. 2.5."""
        nx, ny, nxy = _norm(x), _norm(y), _norm(x - y)
        return ((ny**2 - nx**2 - nxy**2) / (2 * nx * nxy)).clamp(-_COS_CLIP, _COS_CLIP)

    def sin_psi(self, x):
        """``sin ψ(x) = K / ‖x‖`` (Eq. 2.4), at most 1."""
        return (self.opts.K / _norm(x)).clamp(max=1.0)

    def energy(self, x, y):
        sin_psi, cos_xi = self.sin_psi(x), self.cos_xi(x, y)
        if self.opts.space == "cosine":
            return torch.relu(torch.sqrt((1 - sin_psi**2).clamp_min(0.0)) - cos_xi)
        return torch.relu(torch.acos(cos_xi) - torch.asin(sin_psi.clamp(max=_COS_CLIP)))


@dataclass(frozen=True)
class HyperbolicConeOptions(ConeOptions):
    optimizer: str = param("rsgd", choices=("rsgd", "adam"),
                           doc="Riemannian SGD on the ball (Eq. 2.13-2.15), or Adam through exp0")


@LABEL_MODELS.register("hyperbolic_cones")
class HyperbolicCones(LabelModel):
    Options = HyperbolicConeOptions
    on_ball = True

    def __init__(self, options=None, where="label model") -> None:
        super().__init__(options, where)
        self.ball = geoopt.PoincareBallExact(c=1.0)

    @property
    def riemannian(self) -> bool:
        return self.opts.optimizer == "rsgd"

    def init(self, n, dim, generator):
        """``exp₀`` of ``N(0, 0.1² / d)`` per coordinate: points near norm ``tanh(0.1)`` whatever ``d`` (the
        ``N(0, 0.1²)`` of the Euclidean models would put them at the boundary for large ``d``)."""
        tangent = super().init(n, dim, generator) / dim**0.5
        return self.ball.expmap0(tangent) if self.riemannian else tangent

    def parameter(self, values):
        if self.riemannian:
            return geoopt.ManifoldParameter(self.ball.projx(values.clone()), manifold=self.ball)
        return nn.Parameter(values.clone())

    def points(self, param):
        return param if self.riemannian else self.ball.expmap0(param)

    def from_points(self, points):
        return points if self.riemannian else self.ball.logmap0(points)

    def energy(self, x, y):
        nx2, ny2 = (x * x).sum(-1), (y * y).sum(-1)
        nx, dot = nx2.clamp_min(_EPS).sqrt(), (x * y).sum(-1)
        sin_psi = (self.opts.K * (1 - nx2) / nx).clamp(max=_COS_CLIP)
        root = (1 + nx2 * ny2 - 2 * dot).clamp_min(_EPS).sqrt()
        cos_xi = ((dot * (1 + nx2) - nx2 * (1 + ny2)) / (nx * _norm(x - y) * root)).clamp(-_COS_CLIP, _COS_CLIP)
        return torch.relu(torch.acos(cos_xi) - torch.asin(sin_psi))

    def optimizer(self, params, lr):
        if self.riemannian:
            return geoopt.optim.RiemannianSGD(params, lr=lr)
        return torch.optim.Adam(params, lr=lr)

    def check_points(self, points, names, where):
        super().check_points(points, names, where)
        outside = points[1:].norm(dim=1) >= 1.0
        if outside.any():
            v = int(torch.nonzero(outside)[0]) + 1
            raise TaxonbenchError(f"{where}: the embedding of node {v} ({names[v]!r}) lies outside the Poincaré "
                                  f"ball (norm {float(points[v].norm()):.6g} >= 1)")


def build_label_model(name: str, options: dict | None, where: str) -> LabelModel:
    return LABEL_MODELS.get(name)(options, where)


def hyperbolic_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Thesis Eq. 2.7 through geoopt: ``arccosh(1 + 2 ‖x − y‖² / ((1 − ‖x‖²)(1 − ‖y‖²)))`` (for plots and tests)."""
    return geoopt.PoincareBall(c=1.0).dist(x, y)


__all__ = ["LabelModel", "build_label_model", "hyperbolic_distance", "max_margin_loss"]
