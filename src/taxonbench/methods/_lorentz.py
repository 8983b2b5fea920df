"""The Lorentz (hyperboloid) model as MERU uses it (Desai et al., "Hyperbolic Image-Text Representations",
ICML 2023, §3), on top of geoopt's Lorentz maths.

Space of constant curvature ``−c`` (``c > 0``): the upper sheet of ``⟨x, x⟩_L = −1/c`` in ``R^{E+1}``, with
the Lorentzian inner product ``⟨x, y⟩_L = x_s · y_s − x_t y_t`` (``x_t`` the time component, ``x_s`` the
``E`` space components). geoopt writes the same sheet as ``⟨x, x⟩_L = −k``, so ``k = 1/c``.

- :func:`lift`: MERU Eq. 2, the exponential map at the origin of a Euclidean vector ``v`` read as the
  tangent vector ``[0, v]``: ``x_s = sinh(√c ‖v‖) v / (√c ‖v‖)``, ``x_t = √(1/c + ‖x_s‖²)``
  (geoopt's ``expmap0``);
- :func:`pairwise_distance`: MERU Eq. 1, ``d(x, y) = (1/√c) arccosh(−c ⟨x, y⟩_L)`` for every pair of two
  sets, the inner products as one matrix product;
- :func:`half_aperture` and :func:`exterior_angle`: MERU Eqs. 5–6, the entailment cone of ``x`` and the
  angle at ``x`` between the origin and ``y``; :func:`entailment_violation` = ``max(0, ext(x, y) − aper(x))``,
  zero when ``y`` lies inside ``x``'s cone (MERU's entailment loss, Eq. 7, per pair).
"""

from __future__ import annotations

import functools
import warnings

import torch

#: MERU's minimum cone radius ``K`` near the origin (its ``_min_radius``)
MIN_RADIUS = 0.1
EPS = 1e-6


@functools.cache
def _geoopt_lorentz():
    """geoopt's Lorentz maths, imported on first use (about 0.5 s: every method module is imported when the
    method registry is read, so a job that never builds a hyperbolic model does not pay for it)."""
    with warnings.catch_warnings():  # geoopt 0.5 decorates with torch.jit.script, which torch 2.x deprecates
        warnings.simplefilter("ignore", FutureWarning)
        from geoopt.manifolds.lorentz import math
    return math


def lift(v: torch.Tensor, curvature: torch.Tensor) -> torch.Tensor:
    """Points ``(…, E + 1)`` on the hyperboloid (time component first): ``exp_0([0, v])`` (MERU Eq. 2)."""
    tangent = torch.cat([torch.zeros_like(v[..., :1]), v], dim=-1)
    return _geoopt_lorentz().expmap0(tangent, k=1.0 / curvature)


def lorentz_inner(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``⟨x_i, y_j⟩_L`` for every pair: ``(N, E+1) × (K, E+1) → (N, K)``."""
    return x[:, 1:] @ y[:, 1:].T - x[:, :1] @ y[:, :1].T


def pairwise_distance(x: torch.Tensor, y: torch.Tensor, curvature: torch.Tensor) -> torch.Tensor:
    """``(1/√c) arccosh(−c ⟨x_i, y_j⟩_L)`` for every pair (MERU Eq. 1; geoopt's ``arcosh``, clamped at 1)."""
    return _geoopt_lorentz().arcosh((-curvature * lorentz_inner(x, y)).clamp(min=1.0 + EPS)) / curvature.sqrt()


def half_aperture(x: torch.Tensor, curvature: torch.Tensor) -> torch.Tensor:
    """``aper(x) = arcsin(2K / (√c ‖x_s‖))`` (MERU Eq. 5), the argument clamped inside ``(−1, 1)``."""
    ratio = 2 * MIN_RADIUS / (curvature.sqrt() * x[:, 1:].norm(dim=-1) + EPS)
    return torch.asin(ratio.clamp(-1 + EPS, 1 - EPS))


def exterior_angle(x: torch.Tensor, y: torch.Tensor, curvature: torch.Tensor) -> torch.Tensor:
    """``ext(x_i, y_j)`` for every pair (MERU Eq. 6): the angle at ``x`` between the geodesic to the origin's
    far side and the one to ``y``:

        ext(x, y) = arccos( (y_t + c ⟨x, y⟩_L x_t) / (‖x_s‖ √((c ⟨x, y⟩_L)² − 1)) )
    """
    c_inner = curvature * lorentz_inner(x, y)  # (N, K)
    numerator = y[:, 0][None, :] + c_inner * x[:, :1]
    denominator = x[:, 1:].norm(dim=-1, keepdim=True) * (c_inner.pow(2) - 1).clamp(min=EPS).sqrt()
    return torch.acos((numerator / (denominator + EPS)).clamp(-1 + EPS, 1 - EPS))


def entailment_violation(x: torch.Tensor, y: torch.Tensor, curvature: torch.Tensor) -> torch.Tensor:
    """``max(0, ext(x_i, y_j) − aper(x_i))`` for every pair: how far ``y_j`` lies outside ``x_i``'s cone."""
    return (exterior_angle(x, y, curvature) - half_aperture(x, curvature)[:, None]).clamp(min=0)


__all__ = ["entailment_violation", "exterior_angle", "half_aperture", "lift", "lorentz_inner", "pairwise_distance"]
