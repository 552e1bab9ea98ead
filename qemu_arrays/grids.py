"""The one grid type: the sorted levels a quantizer rounds to.

A :class:`Grid` is shared by the gradient estimators (:mod:`qemu_arrays.estimators`, which place
their surrogate on its cells), the training quantizers
(:class:`qemu_arrays.training.quantizers.UniformQuantizer`) and the theory of paper 000
(:class:`qemu_arrays.theory.ste_dynamics.StepQuantizer`): the papers' uniform grids ``A``, ``M``,
``D`` and ``C`` (:class:`~qemu_arrays.theory.kinds.GridKind`) are defined here once, in
:meth:`Grid.of_kind`, and each of those classes hands its grid out as ``to_grid()``.

numpy only (array-API helpers import ``array_api_compat`` when called).
"""

from __future__ import annotations

import math

import numpy as np

from qemu_arrays.theory.kinds import GridKind, coerce_kind

__all__ = ["Grid", "GridKind"]


class Grid:
    """The sorted levels a quantizer rounds to, with cells between adjacent levels.

    Build one with :func:`grid_of` (from a format and a scale), :meth:`Grid.uniform` (constant
    step, e.g. the mid-rise grids of paper 001) or ``Grid(levels)`` (any ascending levels).
    """

    def __init__(self, levels, *, name: str = "grid", omega: float | None = None):
        lv = np.asarray(levels, dtype=np.float64)
        if lv.ndim != 1 or lv.size < 2:
            msg = f"levels must be a 1-D array of at least 2 values, got shape {lv.shape}"
            raise ValueError(msg)
        if not np.all(np.isfinite(lv)) or not np.all(np.diff(lv) > 0):
            msg = "levels must be finite and strictly increasing; hint: sort and deduplicate them"
            raise ValueError(msg)
        self.levels = lv
        self.name = name
        # the clip range [-omega, omega] of the papers' quantizers (the mid-rise grid M has no
        # level at omega); by default the largest magnitude of a level
        self.omega = float(max(abs(lv[0]), abs(lv[-1]))) if omega is None else float(omega)
        self.step: float | None = None  # constant step for uniform grids
        self.offset = 0.0
        self.lo_index = 0
        zero = np.flatnonzero(lv == 0.0)
        self._zero_index = int(zero[0]) if zero.size else None

    @classmethod
    def uniform(cls, step: float, lo: int, hi: int, *, offset: float = 0.0, name: str = ""):
        """Levels ``offset + step * j`` for the integers ``j`` in ``[lo, hi]``."""
        step = float(step)
        if not (math.isfinite(step) and step > 0):
            msg = f"step must be a positive finite number, got {step!r}"
            raise ValueError(msg)
        if not (isinstance(lo, int) and isinstance(hi, int) and hi > lo):
            msg = f"lo and hi must be ints with hi > lo, got lo={lo!r}, hi={hi!r}"
            raise ValueError(msg)
        g = cls(offset + step * np.arange(lo, hi + 1, dtype=np.float64), name=name or "uniform")
        g.step = step
        g.offset = float(offset)
        g.lo_index = lo
        return g

    @classmethod
    def of_kind(cls, bits: int, omega: float, kind: GridKind = GridKind.A) -> Grid:
        """The uniform grid ``Q_{b, omega}`` of the papers (``NOTES_ste_dynamics.md`` 2.3).

        ``GridKind.A``: 2^b levels ``-omega + k Delta`` with both ends (the most literal "b
        bits"); ``M``: 2^b cell centres (mid-rise); ``D``: 2^b + 1 mid-tread levels including 0;
        ``C``: 2^b - 1 mid-tread levels including 0 (``b >= 2``).
        """
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
            msg = f"bits must be an int in [1, 24], got {bits!r}"
            raise TypeError(msg)
        kind = coerce_kind(GridKind, kind, "grid", hint="GridKind.A is the literal 2^b-level grid")
        if not 1 <= bits <= 24 or (kind is GridKind.C and bits < 2):
            msg = (
                f"bits must be in [1, 24] ([2, 24] for GridKind.C), got {bits}; hint: "
                "GridKind.D is the ternary grid at b = 1"
            )
            raise ValueError(msg)
        if isinstance(omega, bool) or not isinstance(omega, (int, float, np.integer, np.floating)):
            msg = f"omega must be a positive finite number, got {omega!r}"
            raise TypeError(msg)
        omega = float(omega)
        if not (math.isfinite(omega) and omega > 0):
            msg = f"omega must be a positive finite number, got {omega!r}"
            raise ValueError(msg)
        bits = int(bits)
        n, half = 1 << bits, 1 << (bits - 1)
        if kind is GridKind.A:
            step, lo, hi, offset = 2 * omega / (n - 1), 0, n - 1, -omega
        elif kind is GridKind.M:
            step = 2 * omega / n
            lo, hi, offset = 0, n - 1, -omega + step / 2
        elif kind is GridKind.D:
            step, lo, hi, offset = omega / half, -half, half, 0.0
        else:
            step, lo, hi, offset = omega / (half - 1), -(half - 1), half - 1, 0.0
        g = cls.uniform(step, lo, hi, offset=offset, name=f"Q_{{{bits},{omega:g}}}[{kind.value}]")
        g.omega = omega
        return g

    @property
    def lower(self) -> float:
        return float(self.levels[0])

    @property
    def upper(self) -> float:
        return float(self.levels[-1])

    @property
    def widths(self) -> np.ndarray:
        return np.diff(self.levels)

    @property
    def jumps(self) -> np.ndarray:
        """The heights of the steps of the quantizer: the widths of the cells."""
        return self.widths

    def bin_index(self, x) -> np.ndarray:
        """For each x (numpy): the index of its nearest level, a tie on a threshold going to the
        lower level (the convention of the theory of paper 000)."""
        return np.searchsorted(self.thresholds, np.asarray(x, dtype=np.float64), side="left")

    @property
    def thresholds(self) -> np.ndarray:
        """Midpoints between adjacent levels: where round-to-nearest jumps (the paper's
        *boundary points*)."""
        return 0.5 * (self.levels[:-1] + self.levels[1:])

    def __repr__(self):
        kind = f"step={self.step}" if self.step is not None else "non-uniform"
        return f"Grid({self.name!r}, {self.levels.size} levels in [{self.lower}, {self.upper}], {kind})"

    # -- array-API helpers (x: a floating array of namespace xp) --
    def _levels_as(self, x, xp):
        import array_api_compat

        return xp.asarray(self.levels, dtype=x.dtype, device=array_api_compat.device(x))

    def locate(self, x, xp):
        """For each x: the (lo, width) of its cell, the edge cell for x outside the range."""
        if self.step is not None:
            n_cells = self.levels.size - 1
            j = xp.floor((x - self.offset) / self.step) - self.lo_index
            j = xp.clip(j, 0.0, float(n_cells - 1))
            lo = self.offset + (j + self.lo_index) * self.step
            return lo, xp.full_like(x, self.step)
        lv = self._levels_as(x, xp)
        flat = xp.reshape(x, (-1,))
        i = xp.searchsorted(lv, flat, side="right") - 1
        i = xp.clip(i, 0, self.levels.size - 2)
        lo = xp.reshape(xp.take(lv, i), x.shape)
        hi = xp.reshape(xp.take(lv, i + 1), x.shape)
        return lo, hi - lo

    def inside(self, x, xp):
        return (x >= self.lower) & (x <= self.upper)

    def round(self, x):
        """Round to the nearest level (ties to the even one), clamping to the range.

        For integer grids this is ``Rounding.NEAREST_EVEN`` with saturation; on float grids ties
        go to the level with the even significand, as in ``docs/formats.md``.
        """
        import array_api_compat

        xp = array_api_compat.array_namespace(x)
        if self.step is not None:
            k = xp.round((x - self.offset) / self.step)
            k = xp.clip(k, float(self.lo_index), float(self.lo_index + self.levels.size - 1))
            return self.offset + k * self.step
        xc = xp.reshape(xp.clip(x, self.lower, self.upper), (-1,))
        lv = self._levels_as(x, xp)
        i = xp.clip(xp.searchsorted(lv, xc, side="right") - 1, 0, self.levels.size - 2)
        lo = xp.take(lv, i)
        hi = xp.take(lv, i + 1)
        dlo = xc - lo
        dhi = hi - xc
        if self._zero_index is None:
            lo_even = xp.zeros_like(dlo, dtype=xp.bool)  # no zero: odd significands, ties up
        else:
            lo_even = ((i - self._zero_index) % 2) == 0
        take_hi = (dhi < dlo) | ((dhi == dlo) & ~lo_even)
        return xp.reshape(xp.where(take_hi, hi, lo), x.shape)
