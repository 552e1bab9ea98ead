"""High-dimensional linear regression with Gaussian data (paper 002's setting).

``x ~ N(0, H)`` with ``H = diag(λ)`` (the coordinates are the eigenbasis), ``y = ⟨w*, x⟩ + σ ξ``.
The excess risk of ``w`` is ``𝓔(w) = L(w) − L(w*) = ‖w − w*‖²_H`` with
``L(w) = E(y − ⟨w, x⟩)²`` (no ½, as in the paper).
"""

from __future__ import annotations

import numpy as np

from qemu_arrays.training.models import Model, _ns

__all__ = ["LinearRegression", "power_law_spectrum"]


def power_law_spectrum(d: int, a: float, scale: float = 1.0) -> np.ndarray:
    """``λ_i = scale · i^(−a)`` for ``i = 1..d``."""
    return scale * np.arange(1, d + 1, dtype=np.float64) ** (-float(a))


class LinearRegression(Model):
    """Linear regression ``y = ⟨w*, x⟩ + σξ``, ``x ~ N(0, diag(spectrum))``.

    Parameters
    ----------
    d
        Dimension.
    spectrum
        A number ``a`` for the power law ``λ_i = i^(−a)``, or the ``d`` eigenvalues.
    w_star
        The target: a number (every coordinate) or a length-``d`` array.
    noise
        The label-noise standard deviation ``σ`` (``σ² = noise**2``).
    w0
        Initial weights: a number or a length-``d`` array (default 0).
    """

    def __init__(self, d: int, spectrum=2.0, w_star=1.0, noise: float = 1.0, *, w0=0.0):
        if isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 1:
            msg = f"d must be a positive int, got {d!r}"
            raise ValueError(msg)
        self.dim = int(d)
        if np.ndim(spectrum) == 0:
            lam = power_law_spectrum(self.dim, float(spectrum))
        else:
            lam = np.asarray(spectrum, dtype=np.float64)
        if lam.shape != (self.dim,) or not np.all(lam > 0):
            msg = (
                f"spectrum must be a power-law exponent or {self.dim} positive eigenvalues, "
                f"got shape {lam.shape}"
            )
            raise ValueError(msg)
        self.eigenvalues = lam
        self.w_star = self._vec("w_star", w_star)
        self.w0 = self._vec("w0", w0)
        self.noise = float(noise)
        if not self.noise >= 0:
            msg = f"noise (the label-noise standard deviation) must be >= 0, got {noise}"
            raise ValueError(msg)
        self._sqrt_lam = np.sqrt(lam)
        self._cache: dict = {}

    def _vec(self, name, v):
        arr = np.broadcast_to(np.asarray(v, dtype=np.float64), (self.dim,)).copy()
        if not np.all(np.isfinite(arr)):
            msg = f"{name} must be finite"
            raise ValueError(msg)
        return arr

    def init_weights(self, replicas, rng):
        return np.broadcast_to(self.w0, (replicas, self.dim)).copy()

    def sample(self, replicas, batch, rng):
        X = rng.standard_normal((replicas, batch, self.dim))
        X *= self._sqrt_lam
        y = X @ self.w_star
        if self.noise:
            y += self.noise * rng.standard_normal((replicas, batch))
        return X, y

    def _consts(self, xp, like):
        key = (xp.__name__, str(like.dtype), str(getattr(like, "device", "")))
        if key not in self._cache:
            dev = getattr(like, "device", None)
            self._cache[key] = (
                xp.asarray(self.eigenvalues, dtype=like.dtype, device=dev),
                xp.asarray(self.w_star, dtype=like.dtype, device=dev),
            )
        return self._cache[key]

    def risk(self, w, sites=None, rng=None):
        """Excess risk ``‖w − w*‖²_H`` per replica."""
        xp = _ns(w)
        lam, ws = (self.eigenvalues, self.w_star) if xp is np else self._consts(xp, w)
        diff = w - ws
        return xp.sum(lam * diff * diff, axis=-1)

    @property
    def signal(self) -> float:
        """``‖w*‖²_H``."""
        return float(np.sum(self.eigenvalues * self.w_star**2))

    def __repr__(self):
        return f"LinearRegression(d={self.dim}, noise={self.noise})"
