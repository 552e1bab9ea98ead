"""The linear teacher-student model of paper 000 (NOTES_ste_dynamics.md §2-3).

Inputs ``x ~ N(0, I_d)``, teacher ``y = w*·x/√d + σξ``, student ``ŷ = Q_w(ŵ)·Q_x(x)/√d`` with
latent weights ``ŵ``; online SGD (one fresh sample per step, batch 1) on
``ℓ = ½(y − ŷ)² + (λ/d)Σ r(ŵ_i)``, ``r(u) = u²/2``::

    ŵ ← ŵ + (η/√d)·e·Q_x(x)⊙g(ŵ) − (ηλ/d)·ŵ,   e = y − ŷ

with ``g`` the weight quantizer's estimator derivative. Time is ``τ = t/d`` (``time_unit = d``)
and the generalisation error, exact at finite ``d`` given ``ŵ``, is

    ε_g = ½(ρ − 2κ1·m_Q + κ2·q_Q),  ρ = ‖w*‖²/d, m_Q = w*·Q_w(ŵ)/d, q_Q = ‖Q_w(ŵ)‖²/d

with ``κ1 = E[zQ_x(z)]``, ``κ2 = E[Q_x(z)²]`` (test MSE = 2ε_g + σ²).
"""

from __future__ import annotations

import math

import numpy as np

from qemu_arrays.training.models import Model, _ns
from qemu_arrays.training.quantizers import as_quantizer, gaussian_moments
from qemu_arrays.training.sites import Sites

__all__ = ["TeacherStudent"]


class TeacherStudent(Model):
    """Paper 000's quantized linear teacher-student model.

    Parameters
    ----------
    d
        Dimension.
    w_star
        Teacher: a number (every coordinate; the paper's Fig. 1 uses 1) or a length-``d`` array.
    noise
        Label-noise standard deviation ``σ``.
    reg
        L2 strength ``λ`` (regulariser ``(λ/d)·Σ ŵ_i²/2``).
    init
        Initial latent weights: a number ``s`` for ``ŵ_i ~ N(0, s²)`` (default 1, µ0 = N(0,1)),
        or a length-``d`` array used for every replica.
    weight_quantizer, input_quantizer
        ``Q_w`` and ``Q_x`` (any site quantizer, e.g. ``UniformQuantizer(2, 2.0)``), the
        defaults of :meth:`default_sites` (sites ``weights`` and ``data``). ``Q_x`` must be odd
        (``E[Q_x(z)] = 0``) for the 1/√d scaling to hold.
    """

    batch_size_hint = 1

    def __init__(
        self,
        d: int,
        *,
        w_star=1.0,
        noise: float = 0.0,
        reg: float = 0.0,
        init=1.0,
        weight_quantizer=None,
        input_quantizer=None,
    ):
        if isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 1:
            msg = f"d must be a positive int, got {d!r}"
            raise ValueError(msg)
        self.dim = int(d)
        self.time_unit = float(d)
        self.output_scale = 1.0 / math.sqrt(d)
        self.w_star = np.broadcast_to(np.asarray(w_star, dtype=np.float64), (self.dim,)).copy()
        self.noise = float(noise)
        self.reg = float(reg)
        if self.noise < 0 or self.reg < 0:
            msg = f"noise and reg must be >= 0, got noise={noise}, reg={reg}"
            raise ValueError(msg)
        self.init = init
        self.weight_quantizer = as_quantizer(weight_quantizer)
        self.input_quantizer = as_quantizer(input_quantizer)
        self.rho = float(np.mean(self.w_star**2))
        self._kappa_cache: dict = {}

    def default_sites(self) -> Sites:
        return Sites(data=self.input_quantizer, weights=self.weight_quantizer)

    def init_weights(self, replicas, rng):
        if np.ndim(self.init) == 0:
            return float(self.init) * rng.standard_normal((replicas, self.dim))
        w = np.asarray(self.init, dtype=np.float64)
        return np.broadcast_to(w, (replicas, self.dim)).copy()

    def sample(self, replicas, batch, rng):
        X = rng.standard_normal((replicas, batch, self.dim))
        y = (X @ self.w_star) * self.output_scale
        if self.noise:
            y += self.noise * rng.standard_normal((replicas, batch))
        return X, y

    def regularizer_grad(self, w):
        if self.reg == 0:
            return None
        return w * (self.reg / self.dim)

    def kappa(self, input_quantizer=None) -> tuple[float, float]:
        """``(κ1, κ2)`` of an input quantizer (default: this model's ``Q_x``)."""
        q = self.input_quantizer if input_quantizer is None else as_quantizer(input_quantizer)
        key = id(q)
        if key not in self._kappa_cache:
            self._kappa_cache[key] = (q, gaussian_moments(q))
        return self._kappa_cache[key][1]

    def order_parameters(self, w, weight_quantizer=None, rng=None):
        """``(m_Q, q_Q)`` per replica for latent weights ``w`` of shape ``(R, d)``."""
        qw = self.weight_quantizer if weight_quantizer is None else as_quantizer(weight_quantizer)
        xp = _ns(w)
        wq = qw(w, rng)
        ws = self.w_star if xp is np else xp.asarray(self.w_star, dtype=w.dtype)
        return xp.mean(wq * ws, axis=-1), xp.mean(wq * wq, axis=-1)

    def risk(self, w, sites=None, rng=None):
        """Generalisation error ε_g per replica (the ½ convention, σ excluded)."""
        sites = self.default_sites() if sites is None else sites
        k1, k2 = self.kappa(sites.data)
        m, q = self.order_parameters(w, sites.weights, rng)
        return 0.5 * (self.rho - 2 * k1 * m + k2 * q)

    def __repr__(self):
        return (
            f"TeacherStudent(d={self.dim}, noise={self.noise}, reg={self.reg}, "
            f"Q_w={self.weight_quantizer.name}, Q_x={self.input_quantizer.name})"
        )
