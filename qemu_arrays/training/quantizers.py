"""Quantizers for the training harness: one protocol, many implementations.

A *quantizer* is any object with

``q(x, rng=None) -> array``
    the forward map (same shape and dtype as ``x``; ``x`` is never modified). ``rng`` is the
    ``numpy.random.Generator`` of the site the quantizer sits at; stochastic quantizers draw
    every random number from it (the harness gives each site its own stream, so a run is
    reproducible from one seed). Deterministic quantizers ignore it.
``q.derivative(x) -> array or float``
    the estimator's derivative ``Q̂'(x)`` used in the backward pass (the forward value is
    always the hard ``q(x)``). The straight-through estimator returns ``1.0``.
``q.stochastic`` (bool) and ``q.name`` (str).

The idealised noise models of the linear-regression theory are parametrised by the conditional
second moment of their error, see :meth:`Quantizer.moments`: a quantizer whose error ``e``
satisfies ``E[e_j e_k | v] = (s + m δ_jk) v_j v_k + a δ_jk`` reports ``(a, s, m)``
(additive, shared-multiplicative, elementwise-multiplicative). The "vector" a shared factor is
shared over is the last axis (features of a sample, coordinates of a weight vector, the batch
of activations or residuals of one replica).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from qemu_arrays.grids import Grid
from qemu_arrays.theory.kinds import GridKind, SteVariant, coerce_kind

__all__ = [
    "GRIDS",
    "AdditiveNoise",
    "FormatQuantizer",
    "Identity",
    "MultiplicativeNoise",
    "Quantizer",
    "QuantizerLike",
    "UniformQuantizer",
    "as_quantizer",
    "gaussian_moments",
]


@runtime_checkable
class QuantizerLike(Protocol):
    """The structural protocol every site quantizer satisfies."""

    name: str
    stochastic: bool

    def __call__(self, x, rng: np.random.Generator | None = None): ...

    def derivative(self, x): ...


def _xp(x):
    from array_api_compat import array_namespace

    return array_namespace(x)


def _is_numpy(x) -> bool:
    return isinstance(x, np.ndarray | np.generic)


def _noise(rng: np.random.Generator | None, shape, like, kind: str = "normal"):
    """Standard noise of ``shape`` drawn from ``rng`` (numpy), as an array like ``like``."""
    if rng is None:
        msg = (
            "rng must be a numpy.random.Generator for a stochastic quantizer, got None; "
            "hint: pass rng=numpy.random.default_rng(seed)"
        )
        raise ValueError(msg)
    dtype = np.float32 if str(getattr(like, "dtype", "")).endswith("float32") else np.float64
    if kind == "normal":
        z = rng.standard_normal(shape, dtype=dtype)
    else:  # uniform on [-1/2, 1/2)
        z = rng.random(shape, dtype=dtype) - dtype(0.5)
    if _is_numpy(like):
        return z
    xp = _xp(like)
    return xp.asarray(z, dtype=like.dtype, device=getattr(like, "device", None))


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, int | float | np.floating | np.integer):
        msg = f"eps must be a real number >= 0, got {eps!r}; hint: eps is the noise variance"
        raise TypeError(msg)
    eps = float(eps)
    if not (eps >= 0 and math.isfinite(eps)):
        msg = f"eps must be finite and >= 0, got {eps}; hint: eps is the noise variance"
        raise ValueError(msg)
    return eps


class Quantizer:
    """Base class with the STE backward and the documented defaults.

    Subclasses implement :meth:`__call__`; they may override :meth:`derivative` (the estimator)
    and :meth:`moments` (the second-moment description used by the linear-regression theory).
    """

    name = "quantizer"
    stochastic = False

    def __call__(self, x, rng: np.random.Generator | None = None):  # pragma: no cover
        raise NotImplementedError

    def derivative(self, x):
        """Straight-through estimator: ``Q̂'(x) = 1``."""
        return 1.0

    def moments(self) -> tuple[float, float, float] | None:
        """``(additive, shared, elementwise)`` error-variance parameters, or None if the
        quantizer is not one of the unbiased noise models of the linear-regression theory."""
        return None

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"


class Identity(Quantizer):
    """The identity map (quantization turned off)."""

    name = "identity"

    def __call__(self, x, rng=None):
        return x

    def moments(self):
        return (0.0, 0.0, 0.0)


class AdditiveNoise(Quantizer):
    """Additive (INT-like) unbiased noise with error variance ``eps`` per element.

    ``dither=False``: ``Q(x) = x + sqrt(eps) ξ`` with ξ ~ N(0, I) (the paper's ideal model).
    ``dither=True``: subtractive dither on the grid of step ``Δ = sqrt(12 eps)``:
    ``Q(x) = Δ·round(x/Δ + u) − Δu`` with ``u ~ U[-1/2, 1/2)``, whose error is exactly
    uniform on ``[-Δ/2, Δ/2)`` and independent of ``x`` (variance ``eps``).
    """

    stochastic = True

    def __init__(self, eps: float, *, dither: bool = False):
        self.eps = _check_eps(eps)
        self.dither = bool(dither)
        self.name = f"add{'_dither' if dither else ''}(eps={self.eps:g})"

    def __call__(self, x, rng=None):
        if self.eps == 0:
            return x
        if not self.dither:
            z = _noise(rng, tuple(x.shape), x)
            if _is_numpy(z):
                z *= math.sqrt(self.eps)
                z += x
                return z
            return x + math.sqrt(self.eps) * z
        delta = math.sqrt(12.0 * self.eps)
        u = _noise(rng, tuple(x.shape), x, kind="uniform")
        xp = np if _is_numpy(x) else _xp(x)
        return delta * xp.round(x / delta + u) - delta * u

    def moments(self):
        return (self.eps, 0.0, 0.0)


class MultiplicativeNoise(Quantizer):
    """Multiplicative (FP-like) unbiased noise with relative error variance ``eps``.

    ``shared=True`` (paper-faithful, rank one): ``Q(v) = (1 + sqrt(eps) ξ) v`` with one scalar
    ξ ~ N(0, 1) per vector (the last axis), so ``E[e eᵀ | v] = eps·v vᵀ``.
    ``shared=False`` (hardware-like): ``Q(v)_j = v_j (1 + sqrt(eps) ξ_j)`` with independent ξ_j,
    so ``E[e eᵀ | v] = eps·diag(v²)``.
    """

    stochastic = True

    def __init__(self, eps: float, *, shared: bool = True):
        self.eps = _check_eps(eps)
        self.shared = bool(shared)
        self.name = f"mul_{'shared' if shared else 'elementwise'}(eps={self.eps:g})"

    def __call__(self, x, rng=None):
        if self.eps == 0:
            return x
        shape = tuple(x.shape)
        if self.shared:
            shape = (*shape[:-1], 1) if shape else ()
        z = _noise(rng, shape, x)
        if _is_numpy(z):
            z *= math.sqrt(self.eps)
            z += 1.0
            if self.shared:
                return x * z
            z *= x
            return z
        return x * (1.0 + math.sqrt(self.eps) * z)

    def moments(self):
        return (0.0, self.eps, 0.0) if self.shared else (0.0, 0.0, self.eps)


#: The grid conventions of the uniform quantizer ``Q_{b,ω}`` (NOTES_ste_dynamics.md §2.3).
GRIDS = {
    "A": "mid-rise, 2^b levels with the endpoints ±ω included (DoReFa-like): -ω + kΔ, "
    "Δ = 2ω/(2^b - 1)",
    "M": "mid-rise, 2^b levels at cell centres: -ω + (k + 1/2)Δ, Δ = 2ω/2^b",
    "D": "mid-tread, 2^b + 1 levels including 0: kΔ, |k| <= 2^(b-1), Δ = ω/2^(b-1)",
    "C": "mid-tread, 2^b - 1 levels including 0: kΔ, |k| <= 2^(b-1) - 1, Δ = ω/(2^(b-1) - 1)",
}


def _estimator(estimator) -> SteVariant | Callable:
    """``SteVariant.IDENTITY`` (the STE), ``SteVariant.CLIPPED``, an Estimator's derivative or a
    callable. The strings 'ste' and 'clipped' work with a DeprecationWarning."""
    if isinstance(estimator, SteVariant):
        return estimator
    if hasattr(estimator, "derivative") and not isinstance(estimator, str):
        return estimator.derivative  # a qemu_arrays.estimators.Estimator (DSQ, MAD, ...)
    if callable(estimator) and not isinstance(estimator, str):
        return estimator
    if estimator == "ste":
        warnings.warn(
            "estimator='ste' as a string is deprecated; pass SteVariant.IDENTITY (from "
            "qemu_arrays.theory.kinds import SteVariant)",
            DeprecationWarning,
            stacklevel=3,
        )
        return SteVariant.IDENTITY
    return coerce_kind(
        SteVariant,
        estimator,
        "estimator",
        hint="SteVariant.IDENTITY is the straight-through estimator; an Estimator or a callable "
        "x -> Q̂'(x) also works",
        stacklevel=4,
    )


class UniformQuantizer(Quantizer):
    """The papers' uniform quantizer ``Q_{b,ω}``: clip to ``[-ω, ω]``, round to the grid.

    Parameters
    ----------
    bits
        Bit width ``b >= 1`` (grid ``C`` needs ``b >= 2``).
    omega
        Range ``ω > 0``.
    grid
        A :class:`~qemu_arrays.theory.kinds.GridKind` (described in :data:`GRIDS`);
        ``GridKind.A`` (2^b levels with ±ω included) is the most literal reading of "b bits,
        range ω" and the default. The strings ``"A"`` ... work with a DeprecationWarning.
    estimator
        ``SteVariant.IDENTITY`` (``Q̂' = 1``), ``SteVariant.CLIPPED`` (``Q̂' = 1{|x| <= ω}``),
        an :class:`~qemu_arrays.estimators.Estimator` or a callable returning
        ``Q̂'(x)``.
    stochastic
        Round to one of the two neighbouring levels with probability proportional to proximity
        (unbiased inside the range) instead of to the nearest.
    """

    def __init__(
        self,
        bits: int,
        omega: float,
        *,
        grid: GridKind = GridKind.A,
        estimator: SteVariant | Callable = SteVariant.IDENTITY,
        stochastic: bool = False,
    ):
        if isinstance(bits, bool) or not isinstance(bits, int | np.integer):
            msg = f"bits must be an int >= 1, got {bits!r}"
            raise TypeError(msg)
        grid = coerce_kind(GridKind, grid, "grid", hint="GridKind.A is the default")
        lattice = Grid.of_kind(bits, omega, grid)  # checks bits and omega
        self.bits, self.omega, self.grid = int(bits), lattice.omega, grid
        self.estimator = _estimator(estimator)
        self.stochastic = bool(stochastic)
        self.step = float(lattice.step or 0.0)  # of_kind grids are uniform: step is set
        self._offset, self._kmin = lattice.offset, lattice.lo_index
        self._kmax = lattice.lo_index + lattice.levels.size - 1
        self._lattice = lattice
        est = self.estimator.value if isinstance(self.estimator, SteVariant) else "custom"
        sr = ", stochastic" if self.stochastic else ""
        self.name = f"Q(b={self.bits}, ω={omega:g}, grid={grid.value}, {est}{sr})"

    @property
    def levels(self) -> np.ndarray:
        """The representable values, ascending (float64)."""
        return self._lattice.levels.copy()

    def to_grid(self) -> Grid:
        """The levels as the library's one :class:`~qemu_arrays.grids.Grid` (with ``omega``),
        which the gradient estimators take as their ``format``."""
        return self._lattice

    @property
    def thresholds(self) -> np.ndarray:
        """The midpoints between adjacent levels, where nearest rounding jumps."""
        lv = self.levels
        return 0.5 * (lv[1:] + lv[:-1])

    def __call__(self, x, rng=None):
        if _is_numpy(x):
            return self._call_numpy(x, rng)
        xp = _xp(x)
        v = (xp.clip(x, -self.omega, self.omega) - self._offset) / self.step
        if self.stochastic:
            lo = xp.floor(v)
            k = lo + xp.astype(
                (v - lo) > (_noise(rng, tuple(x.shape), x, "uniform") + 0.5), x.dtype
            )
        else:
            k = self._nearest(v, xp)
        k = xp.clip(k, float(self._kmin), float(self._kmax))
        return xp.astype(self._offset + k * self.step, x.dtype)

    def _nearest(self, v, xp):
        """Nearest level index. Mid-tread grids (centre index 0) round half to even, mid-rise
        grids (half-integer centre) take floor(v + 1/2); both keep Q odd except exactly on a
        threshold (a measure-zero set)."""
        if self._kmin + self._kmax == 0:
            return xp.round(v)
        return xp.floor(v + 0.5)

    def _call_numpy(self, x, rng):
        # in place on one temporary: a few passes over the data
        v = np.clip(x, -self.omega, self.omega)
        if self._offset:
            v -= self._offset
        v /= self.step  # the same operations as the generic path, so backends agree
        if self.stochastic:
            u = _noise(rng, v.shape, v, "uniform")
            u += 0.5
            lo = np.floor(v)
            v -= lo
            v = lo + (v > u)
        elif self._kmin + self._kmax == 0:
            np.rint(v, out=v)
        else:
            v += 0.5
            np.floor(v, out=v)
        np.clip(v, self._kmin, self._kmax, out=v)
        v *= self.step
        if self._offset:
            v += self._offset
        return v.astype(x.dtype, copy=False)

    def derivative(self, x):
        if self.estimator is SteVariant.IDENTITY:
            return 1.0
        if self.estimator is SteVariant.CLIPPED:
            xp = np if _is_numpy(x) else _xp(x)
            return xp.astype(xp.abs(x) <= self.omega, x.dtype)
        return self.estimator(x)

    def kappa(self) -> tuple[float, float]:
        """``(κ1, κ2) = (E[z Q(z)], E[Q(z)²])`` for z ~ N(0, 1), in closed form (deterministic
        rounding; stochastic rounding has the same κ1 and a larger κ2, computed numerically)."""
        if self.stochastic:
            return _kappa_numeric(self)
        lv, th = self.levels, self.thresholds
        pdf = np.exp(-0.5 * th**2) / math.sqrt(2 * math.pi)
        k1 = float(np.sum((lv[1:] - lv[:-1]) * pdf))
        cdf = np.concatenate([[0.0], _norm_cdf(th), [1.0]])
        k2 = float(np.sum(lv**2 * np.diff(cdf)))
        return k1, k2


def _norm_cdf(t):
    from math import erf

    return np.array([0.5 * (1 + erf(v / math.sqrt(2))) for v in np.atleast_1d(t)])


def _kappa_numeric(q) -> tuple[float, float]:
    """κ1, κ2 of a quantizer by a fine trapezoid rule (expected value over its randomness)."""
    z = np.linspace(-12.0, 12.0, 240_001)
    w = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi) * (z[1] - z[0])
    if getattr(q, "stochastic", False):
        if isinstance(q, UniformQuantizer):
            v = (np.clip(z, -q.omega, q.omega) - q._offset) / q.step
            lo = np.floor(v)
            p = v - lo
            a, b = q._offset + lo * q.step, q._offset + (lo + 1) * q.step
            mean, second = (1 - p) * a + p * b, (1 - p) * a**2 + p * b**2
        else:
            rng = np.random.default_rng(0)
            qs = np.stack([np.asarray(q(z, rng), dtype=np.float64) for _ in range(64)])
            mean, second = qs.mean(0), (qs**2).mean(0)
    else:
        mean = np.asarray(q(z), dtype=np.float64)
        second = mean**2
    return float(np.sum(w * z * mean)), float(np.sum(w * second))


def gaussian_moments(q) -> tuple[float, float]:
    """``(κ1, κ2) = (E[z Q(z)], E[Q(z)²])`` for z ~ N(0, 1) (NOTES_ste_dynamics §3).

    Closed form for :class:`UniformQuantizer` and :class:`Identity`, the exact values for the
    noise models, a fine quadrature otherwise."""
    q = as_quantizer(q)
    if isinstance(q, Identity):
        return 1.0, 1.0
    if isinstance(q, UniformQuantizer):
        return q.kappa()
    if isinstance(q, AdditiveNoise):
        return 1.0, 1.0 + q.eps
    if isinstance(q, MultiplicativeNoise):
        return 1.0, 1.0 + q.eps
    return _kappa_numeric(q)


class FormatQuantizer(Quantizer):
    """A hardware number format through :func:`qemu_arrays.quantize`.

    Parameters
    ----------
    format
        A format name (``"float8_e4m3fn"``, ``"int8"``, ...) or descriptor.
    rounding, overflow
        :class:`~qemu_arrays.formats.spec.Rounding` and :class:`~qemu_arrays.formats.spec.Overflow`; with
        ``Rounding.STOCHASTIC`` the random bits come from a fresh seed drawn from the site's
        generator at each call.
    scale
        Integer formats need a scale: a positive number (value = clamp(round(x/scale))·scale) or
        ``"absmax"`` (per vector, the last axis: ``scale = max|x| / max_code``). Float formats
        take ``None`` (no scaling), a number (quantize ``x/scale`` then multiply back), or
        ``"absmax"`` (per vector, scale so that ``max|x|`` maps to the format's max).
    estimator
        ``SteVariant.IDENTITY`` or ``SteVariant.CLIPPED`` (``Q̂' = 1`` inside the representable
        range), an Estimator or a callable (the strings 'ste'/'clipped' warn).
    """

    def __init__(
        self,
        format: Any,
        *,
        rounding=None,
        overflow=None,
        scale: float | str | None = None,
        estimator: SteVariant | Callable = SteVariant.IDENTITY,
    ):
        from qemu_arrays.formats.catalog import get_format
        from qemu_arrays.formats.spec import FloatFormat, IntFormat, Overflow, Rounding

        fmt = get_format(format) if isinstance(format, str) else format
        if not isinstance(fmt, FloatFormat | IntFormat):
            msg = f"format must be a format name or FloatFormat/IntFormat, got {format!r}"
            raise TypeError(msg)
        self.format = fmt
        self.rounding = Rounding.NEAREST_EVEN if rounding is None else Rounding(rounding)
        self.overflow = Overflow.OWN if overflow is None else Overflow(overflow)
        if isinstance(fmt, IntFormat) and scale is None:
            msg = (
                f"scale is required for the integer format {fmt.name}, got None; hint: pass a "
                "positive number or scale='absmax'"
            )
            raise ValueError(msg)
        if isinstance(scale, str) and scale != "absmax":
            msg = f"scale must be a positive number, None or 'absmax', got {scale!r}"
            raise ValueError(msg)
        if scale is not None and not isinstance(scale, str):
            scale = float(scale)
            if not (scale > 0 and math.isfinite(scale)):
                msg = f"scale must be a finite number > 0, got {scale}"
                raise ValueError(msg)
        self.scale = scale
        self.estimator = _estimator(estimator)
        self.stochastic = self.rounding.stochastic  # STOCHASTIC and STOCHASTIC_EQUAL
        sc = "" if scale is None else f", scale={scale if isinstance(scale, str) else f'{scale:g}'}"
        self.name = f"{fmt.name}({self.rounding.name.lower()}{sc})"

    @property
    def max(self) -> float:
        return float(self.format.max)

    def _range(self, x):
        """Half-width of the representable range for the clipped estimator."""
        if self.scale is None:
            return self.max
        if isinstance(self.scale, str):
            return None
        return self.max * self.scale

    def __call__(self, x, rng=None):
        import qemu_arrays
        from qemu_arrays.formats.spec import IntFormat

        kw = {"rounding": self.rounding, "overflow": self.overflow}
        if self.stochastic:
            if rng is None:
                msg = "rng must be a numpy.random.Generator for stochastic rounding, got None"
                raise ValueError(msg)
            kw["seed"] = int(rng.integers(0, 2**63 - 1))
        if self.scale is None:
            return qemu_arrays.quantize(x, self.format, **kw)
        xp = np if _is_numpy(x) else _xp(x)
        if isinstance(self.scale, str):
            amax = xp.max(xp.abs(x), axis=-1, keepdims=True)
            s = xp.where(amax > 0, amax / self.max, xp.ones_like(amax))
        else:
            s = self.scale
        if isinstance(self.format, IntFormat) and not isinstance(self.scale, str):
            return qemu_arrays.quantize(x, self.format, scale=s, **kw)
        if isinstance(self.format, IntFormat):
            return qemu_arrays.quantize(x / s, self.format, scale=1.0, **kw) * s
        return qemu_arrays.quantize(x / s, self.format, **kw) * s

    def derivative(self, x):
        if self.estimator is SteVariant.IDENTITY:
            return 1.0
        if self.estimator is SteVariant.CLIPPED:
            xp = np if _is_numpy(x) else _xp(x)
            r = self._range(x)
            if r is None:
                return 1.0  # absmax scaling never clips
            return xp.astype(xp.abs(x) <= r, x.dtype)
        return self.estimator(x)


def as_quantizer(q) -> QuantizerLike:
    """None -> :class:`Identity`; a format name or descriptor -> :class:`FormatQuantizer`;
    anything satisfying :class:`QuantizerLike` as is; a bare callable x -> Q(x) is wrapped with
    the STE."""
    if q is None:
        return Identity()
    if isinstance(q, QuantizerLike):
        return q
    from qemu_arrays.formats.spec import FloatFormat, IntFormat

    if isinstance(q, str | FloatFormat):
        return FormatQuantizer(q)
    if isinstance(q, IntFormat):
        msg = (
            f"an integer format needs a scale, got the bare format {q.name}; hint: use "
            "FormatQuantizer(fmt, scale=...)"
        )
        raise ValueError(msg)
    if callable(q):
        return _CallableQuantizer(q)
    msg = (
        f"a site quantizer must be None, a format name/descriptor, a callable or a Quantizer, "
        f"got {q!r} ({type(q).__name__})"
    )
    raise TypeError(msg)


class _CallableQuantizer(Quantizer):
    def __init__(self, fn):
        self.fn = fn
        self.name = getattr(fn, "__name__", "callable")

    def __call__(self, x, rng=None):
        return self.fn(x)
