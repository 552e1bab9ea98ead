"""Gradient estimators for quantizers, and the learning-rate factor α and weight remap M.

The forward pass of a quantized model always uses the hard quantizer ``Q``; a *gradient
estimator* only chooses what derivative ``Q̂'`` back-propagation uses in its place (the
derivative of a smooth *surrogate* ``Q̂``). Every estimator here is a frozen dataclass with

* ``forward(x)``: the surrogate ``Q̂(x)`` (for plots and for soft-quantization forward passes);
* ``derivative(x)``: ``Q̂'(x)``;
* ``backward(x, grad)``: ``grad * Q̂'(x)``, for hand-written training loops;

and works on any array-API array (numpy, torch, jax — also under ``jax.jit`` — ...): the
namespace is taken from ``x`` with ``array_api_compat.array_namespace``.

Estimators act on the *grid* of a format: its sorted representable values (the *levels*). The
interval between two adjacent levels is a *cell*; its midpoint is the *threshold* where ``Q``
jumps (round to nearest). Shaped estimators (DSQ, HTGE, EDE) place one copy of their shape on
every cell, **scaled to the cell's width**: with ``v = (x - lo) / width`` the position in the
cell, ``Q̂(x) = lo + width * q̂(v)`` and ``Q̂'(x) = q̂'(v)``. On an integer grid (constant step
``Δ``) this is the textbook definition with the sharpness in units of one step; on a
floating-point grid (cells of varying width) the same shape is used in every cell, which keeps
the estimator "cyclical" in the sense of paper 001 and gives a single α (see ``docs/estimators.md``).

:func:`alpha` and :func:`remap` compute α = Δ / ∫_cell ds / Q̂'(s) and
M(w) = w_b + α ∫_{w_b}^{w} ds / Q̂'(s), in closed form where one exists and by adaptive
Gauss–Legendre quadrature for any estimator.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from qemu_arrays.grids import Grid
from qemu_arrays.theory.kinds import OptimizerKind, coerce_kind

__all__ = [
    "DSQ",
    "EDE",
    "HTGE",
    "LSQ",
    "MAD",
    "PWL",
    "STE",
    "ClippedSTE",
    "Custom",
    "Estimator",
    "Grid",
    "Positivity",
    "Remap",
    "SteEquivalent",
    "alpha",
    "cell_alphas",
    "equivalent_ste",
    "grid_of",
    "remap",
]


@functools.lru_cache(maxsize=128)
def _grid_cached(fmt, scale: float) -> Grid:
    from qemu_arrays.formats.spec import IntFormat

    if isinstance(fmt, IntFormat):
        return Grid.uniform(scale, fmt.min, fmt.max, name=f"{fmt.name}*{scale:g}")
    return Grid(_float_values(fmt) * scale, name=f"{fmt.name}*{scale:g}")


def _float_values(fmt) -> np.ndarray:
    """Every finite value of a float format (<= 16 bits), ascending, zero once."""
    from qemu_arrays.formats.reference import decode_code

    vals = {decode_code(c, fmt) for c in range(1 << fmt.bits)}
    finite = sorted({abs(v) if v == 0 else v for v in vals if math.isfinite(v)})
    return np.array(finite, dtype=np.float64)


def grid_of(format, scale: float | None = None) -> Grid:  # noqa: A002
    """The grid of a format (name or descriptor) times ``scale`` (default 1), or a Grid as is."""
    if isinstance(format, Grid):
        if scale not in (None, 1, 1.0):
            msg = f"scale must be None with a Grid, got {scale!r}; hint: build the grid scaled"
            raise ValueError(msg)
        return format
    from qemu_arrays.formats.catalog import get_format
    from qemu_arrays.formats.spec import FloatFormat, IntFormat

    fmt = get_format(format)
    if not isinstance(fmt, (FloatFormat, IntFormat)):
        msg = (
            f"format must be an element format (FloatFormat/IntFormat), a name or a Grid, got "
            f"{format!r}; hint: use the element format of a block format with its scale"
        )
        raise TypeError(msg)
    if fmt.bits > 16:
        msg = (
            f"format {fmt.name!r} has {fmt.bits} bits; estimators enumerate the grid of formats "
            "of at most 16 bits; hint: quantization-aware training uses narrow formats"
        )
        raise ValueError(msg)
    s = 1.0 if scale is None else float(scale)
    if not (math.isfinite(s) and s > 0):
        msg = f"scale must be a positive finite number, got {scale!r}"
        raise ValueError(msg)
    return _grid_cached(fmt, s)


# ---- estimators ------------------------------------------------------------------------------


class Positivity(enum.Enum):
    """Where Q̂' is bounded below by a positive constant (the theorem's hypothesis)."""

    EVERYWHERE = "everywhere"
    """Bounded below on the whole real line (STE): the theorem applies as stated."""
    IN_RANGE = "in range"
    """Positive on the representable range, zero outside (PWL, DSQ, HTGE, LSQ): the theorem
    applies in range with a PWL STE-net (paper 001, appendix G)."""
    NO_LOWER_BOUND = "no lower bound"
    """Positive everywhere but tending to 0 outside the range (MAD, EDE): the theorem applies on
    bounded ranges only; the equivalence is the in-range one."""
    UNKNOWN = "unknown"
    """A user callable: checked numerically on the range by :func:`alpha`."""


def _namespace(x):
    import array_api_compat

    return array_api_compat.array_namespace(x)


def _sech2(z, xp):
    """sech² without overflow: 4 e^{-2|z|} / (1 + e^{-2|z|})²."""
    e = xp.exp(-2.0 * xp.abs(z))
    return 4.0 * e / ((1.0 + e) * (1.0 + e))


@dataclass(frozen=True, kw_only=True)
class Estimator:
    """Base class. ``format``/``scale`` (or a :class:`Grid` as ``format``) give the grid."""

    format: Any = None
    scale: float | None = None

    positivity: ClassVar[Positivity] = Positivity.UNKNOWN
    needs_grid: ClassVar[bool] = True

    def on(self, format, scale=None):  # noqa: A002
        """This estimator on another grid (a format and scale, or a Grid)."""
        return dataclasses.replace(self, format=format, scale=scale)

    @property
    def grid(self) -> Grid:
        if self.format is None:
            msg = (
                f"{type(self).__name__} needs a grid: got format=None; hint: pass format= (and "
                "scale=) when building it, or use estimator.on(format, scale)"
            )
            raise ValueError(msg)
        return grid_of(self.format, self.scale)

    def forward(self, x):
        """The surrogate forward value Q̂(x)."""
        return self._forward(x, _namespace(x))

    def derivative(self, x):
        """Q̂'(x), same shape and dtype as ``x``."""
        return self._derivative(x, _namespace(x))

    def backward(self, x, grad):
        """``grad * Q̂'(x)``: the gradient reaching the latent weights (x is not modified)."""
        xp = _namespace(x)
        return grad * xp.astype(self._derivative(x, xp), grad.dtype)

    # closed forms in cell units: I = ∫_0^1 dv / q̂'(v), G(u) = ∫_{1/2}^{1/2+u} dv / q̂'(v)
    has_closed_form: ClassVar[bool] = False

    def _unit_integral(self) -> float:
        raise NotImplementedError

    def _unit_antiderivative(self, u, xp):
        raise NotImplementedError

    def _forward(self, x, xp):
        raise NotImplementedError

    def _derivative(self, x, xp):
        raise NotImplementedError


def _range(est: Estimator, lower, upper) -> tuple[float, float]:
    if lower is not None and upper is not None:
        return float(lower), float(upper)
    g = est.grid
    return (g.lower if lower is None else float(lower)), (
        g.upper if upper is None else float(upper)
    )


@dataclass(frozen=True, kw_only=True)
class STE(Estimator):
    """Straight-through estimator (Hinton 2012; Bengio et al. 2013): Q̂(x) = x, Q̂' = 1
    everywhere, also outside the range. Needs no grid."""

    positivity: ClassVar[Positivity] = Positivity.EVERYWHERE
    needs_grid: ClassVar[bool] = False
    has_closed_form: ClassVar[bool] = True

    def _forward(self, x, xp):
        return x

    def _derivative(self, x, xp):
        return xp.ones_like(x)

    def _unit_integral(self):
        return 1.0

    def _unit_antiderivative(self, u, xp):
        return u


@dataclass(frozen=True, kw_only=True)
class PWL(Estimator):
    """Clipped STE / piecewise linear (Hubara et al. 2016): Q̂(x) = clip(x, lower, upper),
    Q̂' = 1 on [lower, upper] (inclusive) and 0 outside. The bounds default to the grid's range;
    explicit bounds give paper 001's ``PWL_{w_min, w_max}`` (then no grid is needed)."""

    lower: float | None = None
    upper: float | None = None

    positivity: ClassVar[Positivity] = Positivity.IN_RANGE
    has_closed_form: ClassVar[bool] = True

    def _forward(self, x, xp):
        lo, hi = _range(self, self.lower, self.upper)
        return xp.clip(x, lo, hi)

    def _derivative(self, x, xp):
        lo, hi = _range(self, self.lower, self.upper)
        return xp.astype((x >= lo) & (x <= hi), x.dtype)

    def _unit_integral(self):
        return 1.0

    def _unit_antiderivative(self, u, xp):
        return u


ClippedSTE = PWL


@dataclass(frozen=True, kw_only=True)
class MAD(Estimator):
    """Magnitude-aware differentiation (Sakr et al. 2022): Q̂' = 1 on the range, ``b / x``
    beyond a range end ``b`` (``upper / x`` above, ``lower / x`` below; 0 beyond a zero end).
    Surrogate outside: ``b * (1 + ln(x / b))``. Positive but with no lower bound outside the
    range, so the equivalence theorem applies in range only."""

    positivity: ClassVar[Positivity] = Positivity.NO_LOWER_BOUND
    has_closed_form: ClassVar[bool] = True

    def _forward(self, x, xp):
        lo, hi = _range(self, None, None)
        out = xp.clip(x, lo, hi)
        if hi > 0:
            above = hi * (1.0 + xp.log(xp.where(x > hi, x, hi) / hi))
            out = xp.where(x > hi, above, out)
        if lo < 0:
            below = lo * (1.0 + xp.log(xp.where(x < lo, x, lo) / lo))
            out = xp.where(x < lo, below, out)
        return out

    def _derivative(self, x, xp):
        lo, hi = _range(self, None, None)
        one = xp.ones_like(x)
        zero = xp.zeros_like(x)
        d = xp.where(x > hi, (hi / xp.where(x > hi, x, one)) if hi > 0 else zero, one)
        return xp.where(x < lo, (lo / xp.where(x < lo, x, -one)) if lo < 0 else zero, d)

    def _unit_integral(self):
        return 1.0

    def _unit_antiderivative(self, u, xp):
        return u


@dataclass(frozen=True, kw_only=True)
class _TanhCell(Estimator):
    """Q̂'(x) = A sech²(c (v - 1/2)) on each cell (v the position in the cell), with the
    surrogate lo + width (1/2 + (A/c) tanh(c (v - 1/2)))."""

    positivity: ClassVar[Positivity] = Positivity.IN_RANGE
    has_closed_form: ClassVar[bool] = True
    _continue_outside: ClassVar[bool] = False

    def _shape(self) -> tuple[float, float]:  # (A, c)
        raise NotImplementedError

    def _cell(self, x, xp):
        g = self.grid
        xi = x if self._continue_outside else xp.clip(x, g.lower, g.upper)
        lo, width = g.locate(xi, xp)
        return lo, width, (xi - lo) / width - 0.5

    def _forward(self, x, xp):
        a, c = self._shape()
        lo, width, u = self._cell(x, xp)
        return lo + width * (0.5 + (a / c) * xp.tanh(c * u))

    def _derivative(self, x, xp):
        a, c = self._shape()
        _, _, u = self._cell(x, xp)
        d = a * _sech2(c * u, xp)
        if self._continue_outside:
            return d
        return xp.where(self.grid.inside(x, xp), d, xp.zeros_like(d))

    def _unit_integral(self):
        a, c = self._shape()
        return (c + math.sinh(c)) / (2.0 * a * c)

    def _unit_antiderivative(self, u, xp):
        a, c = self._shape()
        cu = c * u
        return (cu + xp.sinh(cu) * xp.cosh(cu)) / (2.0 * a * c)


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        msg = f"{name} must be a positive number, got {value!r}"
        raise ValueError(msg)
    if not math.isfinite(value) or value > 700:
        msg = f"{name} must be finite and at most 700 (cosh overflows beyond), got {value!r}"
        raise ValueError(msg)


@dataclass(frozen=True, kw_only=True)
class DSQ(_TanhCell):
    """Differentiable soft quantization (Gong et al. 2019), normalised so that Q̂ meets the
    levels at the cell ends: on a cell, with u = v - 1/2 in cell units,

        q̂(v) = 1/2 + tanh(k u) / (2 tanh(k/2)),   q̂'(v) = k sech²(k u) / (2 tanh(k/2)),

    zero outside the range. ``k`` is the sharpness per cell width (``kΔ`` in DSQ's x units);
    DSQ's characteristic variable is ``alpha_char = 1 - tanh(k/2)``, see :meth:`from_alpha_char`.
    Closed form: α = k² / ((k + sinh k) tanh(k/2))."""

    k: float = 3.0

    def __post_init__(self):
        _positive("k", self.k)

    @classmethod
    def from_alpha_char(cls, alpha_char: float, **kw):
        """DSQ with ``k = ln(2 / alpha_char - 1)`` (``alpha_char`` in (0, 1))."""
        if (
            isinstance(alpha_char, bool)
            or not isinstance(alpha_char, (int, float))
            or not (0 < alpha_char < 1)
        ):
            msg = f"alpha_char must be a number in (0, 1), got {alpha_char!r}"
            raise ValueError(msg)
        return cls(k=math.log(2.0 / alpha_char - 1.0), **kw)

    @property
    def alpha_char(self) -> float:
        return 1.0 - math.tanh(self.k / 2.0)

    def _shape(self):
        return self.k / (2.0 * math.tanh(self.k / 2.0)), self.k


@dataclass(frozen=True, kw_only=True)
class HTGE(_TanhCell):
    """Hyperbolic-tangent gradient estimator (Pei et al. 2023) in the form paper 001 restates:
    round is replaced on each cell by H(v) = (a + b)/2 + tanh(t (v - (a + b)/2)) / 2, so

        q̂(v) = 1/2 + tanh(t u) / 2,   q̂'(v) = (t / 2) sech²(t u),   u = v - 1/2,

    zero outside the range. Not normalised: Q̂ does not reach the levels at the cell ends. With
    ``normalized=True`` it is the DSQ form with k = t. Closed form: α = t² / (t + sinh t)
    (``normalized``: divided by tanh(t/2))."""

    t: float = 4.0
    normalized: bool = False

    def __post_init__(self):
        _positive("t", self.t)

    def _shape(self):
        if self.normalized:
            return self.t / (2.0 * math.tanh(self.t / 2.0)), self.t
        return self.t / 2.0, self.t


@dataclass(frozen=True, kw_only=True)
class EDE(_TanhCell):
    """Error decay estimator (IR-Net, Qin et al. 2020): Q̂(x) = k tanh(t x) around each
    threshold, with x measured in half-cells, i.e. on a cell

        Q̂'(x) = k t sech²(2 t (v - 1/2)),

    which is exactly IR-Net's ``k t (1 - tanh²(t x))`` on the binary grid {-1, +1}. The formula
    continues beyond the range (no clipping), as IR-Net does. The schedule over training
    progress p in [0, 1]: ``t = t_min (t_max / t_min)^p``, ``k = max(1 / t, 1)``; use
    :meth:`at`. IR-Net's paper states t_min = 0.1, its code 1e-3."""

    t_min: float = 0.1
    t_max: float = 10.0
    progress: float = 0.0

    positivity: ClassVar[Positivity] = Positivity.NO_LOWER_BOUND
    _continue_outside: ClassVar[bool] = True

    def __post_init__(self):
        _positive("t_min", self.t_min)
        _positive("t_max", self.t_max)
        p = self.progress
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            msg = f"progress must be a number in [0, 1], got {p!r}; hint: step / total_steps"
            raise ValueError(msg)

    def at(self, progress: float):
        """The estimator at training progress ``progress`` in [0, 1]."""
        return dataclasses.replace(self, progress=progress)

    @property
    def t(self) -> float:
        return self.t_min * (self.t_max / self.t_min) ** self.progress

    @property
    def k(self) -> float:
        return max(1.0 / self.t, 1.0)

    def _shape(self):
        return self.k * self.t, 2.0 * self.t


@dataclass(frozen=True, kw_only=True)
class LSQ(Estimator):
    """Learned step size quantization (Esser et al. 2020). The input gradient is the clipped
    STE (as :class:`PWL`); :meth:`step_gradient` gives the gradient of the step size ``s`` of
    ``Q(x) = s * round_grid(clip(x / s))``:

        ∂Q/∂s = round(x/s) - x/s inside the range, the range end (in grid units) outside,

    summed against the upstream gradient and multiplied by the gradient scale
    ``g = 1 / sqrt(N * Q_P)`` (N elements, Q_P the largest level in grid units) unless
    ``grad_scale`` is given. The grid (``format`` with ``scale=None``) is in units of s."""

    grad_scale: float | None = None

    positivity: ClassVar[Positivity] = Positivity.IN_RANGE
    has_closed_form: ClassVar[bool] = True

    def _forward(self, x, xp):
        return PWL(format=self.format, scale=self.scale)._forward(x, xp)

    def _derivative(self, x, xp):
        return PWL(format=self.format, scale=self.scale)._derivative(x, xp)

    def _unit_integral(self):
        return 1.0

    def _unit_antiderivative(self, u, xp):
        return u

    def step_gradient(self, x, grad, step):
        """dL/ds for ``Q(x) = step * round_grid(x / step)`` (a 0-d array of x's namespace)."""
        xp = _namespace(x)
        g = grid_of(self.format)
        v = x / step
        q = g.round(v)
        inside = (v > g.lower) & (v < g.upper)
        end = xp.where(v <= g.lower, xp.full_like(v, g.lower), xp.full_like(v, g.upper))
        dq = xp.where(inside, q - v, end)
        if self.grad_scale is None:
            n = math.prod(x.shape)
            scale = 1.0 / math.sqrt(max(n, 1) * max(g.upper, 1.0))
        else:
            scale = float(self.grad_scale)
        return xp.sum(grad * xp.astype(dq, grad.dtype)) * scale


@dataclass(frozen=True, kw_only=True)
class Custom(Estimator):
    """Any user derivative: ``derivative_fn(x)`` returns Q̂'(x) for an array x (use array-API
    functions of x's namespace to stay backend-neutral); ``forward_fn`` optionally gives Q̂.
    α and M are computed numerically, after checking that Q̂' is positive on the range and has
    one α for every cell (the estimator is *cyclical*)."""

    derivative_fn: Callable | None = None
    forward_fn: Callable | None = None
    name: str = "custom"

    needs_grid: ClassVar[bool] = False

    def __post_init__(self):
        if not callable(self.derivative_fn):
            msg = f"derivative_fn must be callable, got {self.derivative_fn!r}"
            raise TypeError(msg)
        if self.forward_fn is not None and not callable(self.forward_fn):
            msg = f"forward_fn must be callable or None, got {self.forward_fn!r}"
            raise TypeError(msg)

    def _forward(self, x, xp):
        if self.forward_fn is None:
            msg = f"Custom estimator {self.name!r} has no forward_fn; pass forward_fn= for Q̂"
            raise NotImplementedError(msg)
        return self.forward_fn(x)

    def _derivative(self, x, xp):
        return xp.asarray(self.derivative_fn(x))


# ---- α and M -----------------------------------------------------------------------------------

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(20)


def _integrate(f, a, b, *, rtol=2e-14, max_pieces=1 << 12):
    """∫_a^b f for arrays a, b of the same shape: composite 20-point Gauss–Legendre on K equal
    pieces, K doubled until every integral changes by less than ``rtol`` (relative)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)

    def rule(k):
        t = (np.arange(k)[:, None] + 0.5 * (_GL_NODES[None, :] + 1.0)) / k  # (k, 20) in (0, 1)
        pts = a[..., None, None] + (b - a)[..., None, None] * t
        vals = f(pts)
        return np.sum(vals * _GL_WEIGHTS, axis=(-2, -1)) * (b - a) / (2.0 * k)

    k = 1
    prev = rule(k)
    while k < max_pieces:
        k *= 2
        cur = rule(k)
        if np.all(np.abs(cur - prev) <= rtol * (np.abs(cur) + np.abs(b - a)) + 1e-300):
            return cur
        prev = cur
    msg = (
        "numerical integration of 1/Q̂' did not converge (relative change "
        f"{np.max(np.abs(cur - prev) / np.abs(cur)):.3g}); hint: Q̂' must be smooth and positive "
        "inside each cell"
    )
    raise ValueError(msg)


def _bound(estimator, format, scale):  # noqa: A002
    if not isinstance(estimator, Estimator):
        msg = f"estimator must be a qemu_arrays.estimators.Estimator, got {estimator!r}"
        raise TypeError(msg)
    if format is None:
        if estimator.format is None:
            msg = (
                "format is None and the estimator has no grid; hint: alpha(est, 'int4', scale=0.1)"
            )
            raise ValueError(msg)
        return estimator, estimator.grid
    est = estimator.on(format, scale)
    return est, est.grid


def _inv_derivative(est):
    def f(s):
        d = np.asarray(est.derivative(s), dtype=np.float64)
        if not np.all(np.isfinite(d)) or np.any(d <= 0):
            msg = (
                f"{type(est).__name__}: Q̂' is not positive on the representable range (min "
                f"{np.nanmin(d):.3g}); α and M need 0 < Q̂' inside the range (paper 001 App. G)"
            )
            raise ValueError(msg)
        return 1.0 / d

    return f


def _half_cell_integrals(est, grid):
    lo, hi, tau = grid.levels[:-1], grid.levels[1:], grid.thresholds
    f = _inv_derivative(est)
    return _integrate(f, lo, tau), _integrate(f, tau, hi)


def cell_alphas(estimator, format=None, *, scale=None):  # noqa: A002
    """Per-cell α_i = width_i / ∫_cell ds/Q̂' and per-bin ratios (threshold to threshold),
    computed numerically; one value for all of them means the estimator is cyclical."""
    est, grid = _bound(estimator, format, scale)
    jl, ju = _half_cell_integrals(est, grid)
    cells = grid.widths / (jl + ju)
    bins = np.diff(grid.thresholds) / (ju[:-1] + jl[1:])
    return cells, bins


def alpha(estimator, format=None, *, scale=None, method: str = "auto") -> float:  # noqa: A002
    """The learning-rate factor α = Δ / ∫_{w₋}^{w₊} ds / Q̂'(s) of paper 001 (Eq. 4).

    ``method``: ``"closed"`` (closed form, DSQ/HTGE/EDE/STE/PWL/MAD/LSQ), ``"numeric"``
    (adaptive Gauss–Legendre over every in-range cell, any estimator; raises ValueError where the
    per-cell values disagree, i.e. where no single α exists) or ``"auto"`` (closed if available).
    Only the in-range part of Q̂' enters (paper 001 App. G for PWL-like estimators).

    For a *binary* grid (two levels, one threshold) paper 001 defines α := 1, and so does this
    function: there is no pair of adjacent boundary points to integrate between, and the cell
    integral (0.009 for HTGE with t = 10 on {-1, 1}) would rescale the learning rate absurdly.
    :func:`cell_alphas` still gives that integral.
    """
    est, grid = _bound(estimator, format, scale)
    method = _check_method(method, est)
    if grid.levels.size == 2:
        return 1.0  # paper 001, after Eq. 4: "for a binary Q, α := 1"
    if method == "closed":
        return 1.0 / est._unit_integral()
    cells, bins = cell_alphas(est)
    both = np.concatenate([cells, bins])
    a = float(cells[0])
    spread = float(np.max(np.abs(both - a)) / a)
    if spread > 1e-9:
        msg = (
            f"{type(est).__name__} on {grid!r} has no single α: the per-cell values range over "
            f"[{both.min():.6g}, {both.max():.6g}]; the equivalence theorem needs a cyclical "
            "estimator; hint: cell_alphas() gives the per-cell values"
        )
        raise ValueError(msg)
    return a


def _check_method(method, est):
    if method not in ("auto", "closed", "numeric"):
        msg = f"method must be 'auto', 'closed' or 'numeric', got {method!r}"
        raise ValueError(msg)
    if method == "closed" and not est.has_closed_form:
        msg = f"{type(est).__name__} has no closed form; hint: method='numeric'"
        raise ValueError(msg)
    if method == "auto":
        return "closed" if est.has_closed_form else "numeric"
    return method


class Remap:
    """The weight remap M(w) = w_b + α ∫_{w_b}^{w} ds / Q̂'(s) of paper 001, on the range.

    Anchored at the threshold of w's own cell (the paper's boundary points ``w_b``), so M fixes
    every threshold and maps every quantization bin onto itself: ``Q(M(w)) == Q(w)``. For the
    built-in estimators (shapes symmetric about the threshold) M also fixes every level. Outside
    the range M is the identity (weights there are left alone, paper 001 App. G / notes C.3).
    Call it on an array; ``derivative(w)`` is ``α / Q̂'(w)`` in range and 1 outside.
    """

    def __init__(self, estimator: Estimator, alpha_value: float, method: str):
        self.estimator = estimator
        self.grid = estimator.grid
        self.alpha = alpha_value
        self.method = method

    def __repr__(self):
        return f"Remap({type(self.estimator).__name__}, alpha={self.alpha:.12g}, {self.method})"

    def __call__(self, w):
        if self.method == "closed":
            xp = _namespace(w)
            g = self.grid
            wc = xp.clip(w, g.lower, g.upper)
            lo, width = g.locate(wc, xp)
            u = (wc - lo) / width - 0.5
            m = lo + width * (0.5 + self.alpha * self.estimator._unit_antiderivative(u, xp))
            return xp.where(g.inside(w, xp), m, w)
        arr = np.asarray(w, dtype=np.float64)
        g = self.grid
        wc = np.clip(arr, g.lower, g.upper)
        lo, width = g.locate(wc, np)
        tau = lo + 0.5 * width
        m = tau + self.alpha * _integrate(_inv_derivative(self.estimator), tau, wc)
        out = np.where(g.inside(arr, np), m, arr)
        if isinstance(w, np.ndarray) or np.isscalar(w):
            return out.astype(np.result_type(w, np.float32)) if np.ndim(w) else float(out)
        xp = _namespace(w)
        return xp.asarray(out, dtype=w.dtype)

    def derivative(self, w):
        xp = _namespace(w)
        d = self.estimator.derivative(w)
        inside = self.grid.inside(w, xp)
        safe = xp.where(inside, d, xp.ones_like(d))
        return xp.where(inside, self.alpha / safe, xp.ones_like(d))


def remap(estimator, format=None, *, scale=None, method: str = "auto") -> Remap:  # noqa: A002
    """The map M of paper 001 Eq. 4 as a callable :class:`Remap` (with ``.alpha``)."""
    est, _ = _bound(estimator, format, scale)
    method = _check_method(method, est)
    return Remap(est, alpha(est, method=method), method)


@dataclass(frozen=True)
class SteEquivalent:
    """What to train instead of a Q̂-net: ``estimator`` at learning rate ``lr_factor * η`` from
    initial weights ``remap(w0)`` (identity when ``remap`` is None). ``scope`` says where the
    theorem applies: ``"everywhere"`` or ``"in range"``."""

    estimator: Estimator
    lr_factor: float
    remap: Remap | None
    scope: str


def equivalent_ste(
    estimator,
    format=None,  # noqa: A002
    *,
    scale=None,
    optimizer: OptimizerKind = OptimizerKind.SGD,
):
    """The STE-net of paper 001 for a Q̂-net (Tables 1-2 and appendix G).

    ``optimizer`` is an :class:`~qemu_arrays.theory.kinds.OptimizerKind` (the strings ``"sgd"``,
    ``"adam"`` ... still work, with a DeprecationWarning). ``SGD`` or ``MOMENTUM`` (any schedule):
    the STE (or, for estimators that are zero outside the range, ``PWL_{M(w_min), M(w_max)}``) at
    learning rate α·η from M(w0). ``ADAM`` (and other adaptive optimizers): the STE (or
    ``PWL_{w_min, w_max}``) at η from w0.
    """
    optimizer = coerce_kind(
        OptimizerKind, optimizer, "optimizer", hint="OptimizerKind.ADAM for adaptive optimizers"
    )
    est, grid = _bound(estimator, format, scale)
    scope = "everywhere" if est.positivity is Positivity.EVERYWHERE else "in range"
    if optimizer is OptimizerKind.ADAM:
        if est.positivity is Positivity.IN_RANGE:
            return SteEquivalent(PWL(lower=grid.lower, upper=grid.upper), 1.0, None, scope)
        return SteEquivalent(STE(), 1.0, None, scope)
    m = remap(est)
    if est.positivity is Positivity.IN_RANGE:
        lo = float(np.asarray(m(np.array([grid.lower])))[0])
        hi = float(np.asarray(m(np.array([grid.upper])))[0])
        return SteEquivalent(PWL(lower=lo, upper=hi), m.alpha, m, scope)
    return SteEquivalent(STE(), m.alpha, m, scope)
