"""Scales for integer (additive) and float quantization: rules, granularity, the scale's format.

A *scaled* integer quantization stores codes ``k`` and, per group of elements, a scale ``s`` and
an integer zero point ``z``: the value of code ``k`` is ``(k - z) * s``. This module computes
``(s, z)`` per group (the "absmax" range with :mod:`qemu_arrays.kernels.scaled`) and, where the
group-shaped kernel of that module does not apply, expands them to one value per element for
``qemu_arrays.kernels.elements.quantize_int``. The semantics are those of ``docs/scaled.md``:

* granularity: per tensor (``axis=None``), per channel (``axis=k``: one scale per index along
  axis ``k``), or per group (``block_size=B``: groups of ``B`` consecutive elements along
  ``axis``, default the last axis; the last group may be shorter);
* rules: a given scale (number or array), ``"absmax"``, ``"percentile"`` and ``"mse"`` (the
  clipping ratio minimising the squared error, found by search over a fixed grid);
* symmetric (``z = 0``, ``s = amax / max``) or asymmetric (``s = (hi - lo) / (max - min)``,
  ``z = min - round(lo / s)`` with ``lo <= 0 <= hi``);
* the scale stored in a format (``scale_format``: float32, float16, bfloat16, E8M0, E4M3, ...),
  rounded into it (nearest-even, saturating) before the zero point is derived from it.

Float formats take the same rules and granularity, symmetric only: the scale is a float32 number
``s = float32(amax / max)`` that maps the largest magnitude of each group onto the format's
largest finite value (docs/scaled.md, "Scaled float formats").
"""

from __future__ import annotations

import numbers

import numpy as np

from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.spec import FloatFormat, IntFormat, Overflow, Rounding
from qemu_arrays.request import SCALE_RULES
from qemu_arrays.routes.cpu_elements import round_array
from qemu_arrays.validation import BF16, check_format, check_granularity, check_zero_point

__all__ = [
    "SCALE_RULES",
    "compute_scale",
    "float_scales_from_amax",
    "expand_groups",
    "flatten_groups",
    "group_geometry",
    "group_scales",
    "group_shape",
]

_MSE_RATIOS = np.linspace(1.0, 0.2, 81)  # clipping ratios searched by the "mse" rule


# ---- granularity ---------------------------------------------------------------------------


def group_shape(shape, axis, block_size):
    """Shape of the per-group scale array (dimensions of size 1 are kept, for broadcasting)."""
    if axis is None:
        return ()
    if block_size is None:
        return tuple(n if d == axis else 1 for d, n in enumerate(shape))
    nb = -(-shape[axis] // block_size)
    return tuple(nb if d == axis else n for d, n in enumerate(shape))


def _groups(x, axis, block_size):
    """``(G, gshape)``: the groups as rows of a 2-D float64 array (NaN-padded)."""
    x = np.asarray(x, dtype=np.float64)
    gshape = group_shape(x.shape, axis, block_size)
    if axis is None:
        return x.reshape(1, -1), gshape
    if block_size is None:
        return np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1), gshape
    xm = np.moveaxis(x, axis, -1)
    n = xm.shape[-1]
    nb = -(-n // block_size)
    if nb * block_size != n:
        pad = np.full((*xm.shape[:-1], nb * block_size - n), np.nan)
        xm = np.concatenate([xm, pad], axis=-1)
    return xm.reshape(-1, block_size), gshape


def _ungroup(vals, gshape, axis, block_size):
    """Per-group results (one per row of ``G``) back into the group shape."""
    if axis is None:
        return vals.reshape(())
    if block_size is None:
        return vals.reshape(gshape)
    moved = np.moveaxis(np.empty(gshape, dtype=np.int8), axis, -1).shape
    return np.moveaxis(vals.reshape(moved), -1, axis)


def expand_groups(a, shape, axis, block_size):
    """A group-shaped array expanded to one value per element of ``shape``."""
    a = np.asarray(a)
    if axis is None or block_size is None:
        return np.broadcast_to(a, shape)
    rep = np.repeat(a, block_size, axis=axis)
    return rep[
        tuple(slice(0, shape[axis]) if d == axis else slice(None) for d in range(len(shape)))
    ]


# ---- rules ---------------------------------------------------------------------------------


def _check_scale_format(scale_format):
    if scale_format is None:
        return None
    fmt = check_format(scale_format, "scale_format")
    if not isinstance(fmt, FloatFormat):
        msg = (
            f"scale_format must be a float format (float32, float16, bfloat16, "
            f"float8_e8m0fnu, float8_e4m3fn, ...), got {fmt.name!r}; hint: "
            "scale_format='float16'"
        )
        raise ValueError(msg)
    return fmt


def round_scale(s, scale_format):
    """Positive scales ``s`` (float64) rounded into ``scale_format`` as hardware stores them.

    Nearest-even, saturating at the format's maximum; a scale that would round to zero becomes
    the format's smallest positive value (a scale is never zero).
    """
    s = np.asarray(s, dtype=np.float64)
    if scale_format is None:
        return s
    r = round_array(s, scale_format, Rounding.NEAREST_EVEN, Overflow.SATURATE)
    tiny = scale_format.smallest_subnormal if scale_format.has_zero else scale_format.min
    return np.where(r > 0, r, tiny)


def _zero_point(lo, s, fmt):
    z = fmt.min - np.rint(lo / s)
    return np.clip(z, fmt.min, fmt.max).astype(np.int64)


def _range(G, rule, symmetric, percentile):
    """(lo, hi) per group row: symmetric gives (-amax, amax)."""
    with np.errstate(invalid="ignore"), _allnan_ok():
        if symmetric:
            a = np.abs(G)
            if rule == "percentile":
                hi = np.nanpercentile(a, percentile, axis=1)
            else:
                hi = np.nanmax(a, axis=1)
            return -hi, hi
        if rule == "percentile":
            lo = np.nanpercentile(G, 100.0 - percentile, axis=1)
            hi = np.nanpercentile(G, percentile, axis=1)
        else:
            lo = np.nanmin(G, axis=1)
            hi = np.nanmax(G, axis=1)
    return np.minimum(lo, 0.0), np.maximum(hi, 0.0)


class _allnan_ok:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def _scale_from_range(lo, hi, fmt, symmetric, scale_format):
    """``(s, z)`` from the range; symmetric uses ``hi`` (the largest magnitude) alone."""
    if symmetric:
        s = np.divide(hi, fmt.max, dtype=np.float64)
    else:
        s = np.subtract(hi, lo, dtype=np.float64)
        s /= fmt.max - fmt.min
    s = np.asarray(s, dtype=np.float64)
    np.copyto(s, 1.0, where=~((s > 0) & (s < np.inf)))  # in place: no copy of a big array
    s = round_scale(s, scale_format)
    z = np.zeros(s.shape, dtype=np.int64) if symmetric else _zero_point(lo, s, fmt)
    return s, z


def _absmax_range(x, axis, block_size, symmetric=False):
    """``(lo, hi, gshape)``: the "absmax" range of every group, in one pass over ``x``.

    ``lo = min(min finite x, 0)``, ``hi = max(max finite x, 0)`` per group, flat in the C order
    of the group shape (what :func:`_range` computes, without float64 copies of ``x``);
    ``symmetric``: ``lo`` is None and ``hi = max |finite x|``, found in one reduction.
    """
    from qemu_arrays.kernels import scaled as cpu_scaled

    gshape = group_shape(x.shape, axis, block_size)
    if symmetric:
        return None, cpu_scaled.group_absmax(x, axis, block_size), gshape
    lo, hi = cpu_scaled.group_range(x, axis, block_size)
    return lo, hi, gshape


def _sq_error(G, s, z, fmt):
    q = np.clip(np.rint(G / s[:, None]) + z[:, None], fmt.min, fmt.max)
    return np.nansum(((q - z[:, None]) * s[:, None] - G) ** 2, axis=1)


def compute_scale(
    x,
    format,
    *,
    rule="absmax",
    axis=None,
    block_size=None,
    symmetric=True,
    percentile=99.9,
    scale_format=None,
):
    """``(scale, zero_point)`` in the group shape for integer ``format`` and data ``x``.

    ``rule``: ``"absmax"`` (the range of the data), ``"percentile"`` (the ``percentile``-th
    percentile of ``|x|``, or of ``x`` at both ends when asymmetric) or ``"mse"`` (the clipped
    range ``c * range``, ``c`` in ``1.00, 0.99, ..., 0.20``, minimising the squared error after
    quantization with nearest-even rounding; the first minimum wins, i.e. the widest range).
    Groups holding only zeros get scale 1. NaN and infinities are ignored; a group with no
    finite value gets scale 1.
    """
    fmt = get_format(format)
    if not isinstance(fmt, (IntFormat, FloatFormat)):
        msg = (
            f"format must be an integer or float format for scale rules, got "
            f"{getattr(fmt, 'name', fmt)!r}; hint: 'int8' or 'float8_e4m3fn' (block formats "
            "compute their own scales: qemu_arrays.encode(x, fmt).scales)"
        )
        raise TypeError(msg)
    if not isinstance(rule, str) or rule not in SCALE_RULES:
        msg = f"rule must be one of {SCALE_RULES}, got {rule!r}; hint: rule='absmax'"
        raise ValueError(msg)
    if not isinstance(symmetric, bool):
        msg = f"symmetric must be a bool, got {symmetric!r}; hint: True or False"
        raise TypeError(msg)
    if isinstance(percentile, bool) or not isinstance(percentile, numbers.Real):
        msg = f"percentile must be a number in (0, 100], got {percentile!r}; hint: 99.9"
        raise TypeError(msg)
    if not 0 < percentile <= 100:
        msg = f"percentile must be in (0, 100], got {percentile}; hint: 99.9"
        raise ValueError(msg)
    sfmt = _check_scale_format(scale_format)
    x = _rule_data(x)
    axis, block_size = check_granularity(x.shape, axis, block_size)
    if isinstance(fmt, FloatFormat):
        if not symmetric:
            msg = (
                f"symmetric=False does not apply to the float format {fmt.name!r}: a scaled "
                "float format has no zero point; hint: leave symmetric out"
            )
            raise ValueError(msg)
        return _float_scale(x, fmt, rule, axis, block_size, float(percentile), sfmt), None
    if x.size == 0:  # no data: every group is as one holding no finite value (scale 1)
        gshape = group_shape(x.shape, axis, block_size)
        none = np.zeros(int(np.prod(gshape, dtype=np.int64)), dtype=np.float64)
        s, z = _scale_from_range(none, none, fmt, symmetric, sfmt)
        return s.reshape(gshape), z.reshape(gshape)
    if rule == "absmax" and x.size and x.dtype.kind == "f":
        lo, hi, gshape = _absmax_range(x, axis, block_size, symmetric)
        s, z = _scale_from_range(lo, hi, fmt, symmetric, sfmt)
        return s.reshape(gshape), z.reshape(gshape)
    G, gshape = _groups(x, axis, block_size)
    G = np.where(np.isfinite(G), G, np.nan)
    lo, hi = _range(G, rule, symmetric, float(percentile))
    lo = np.nan_to_num(lo)
    hi = np.nan_to_num(hi)
    s, z = _scale_from_range(lo, hi, fmt, symmetric, sfmt)
    if rule == "mse":
        best = _sq_error(G, s, z, fmt)
        for c in _MSE_RATIOS[1:]:
            sc, zc = _scale_from_range(lo * c, hi * c, fmt, symmetric, sfmt)
            err = _sq_error(G, sc, zc, fmt)
            better = err < best
            best = np.where(better, err, best)
            s = np.where(better, sc, s)
            z = np.where(better, zc, z)
    return _ungroup(s, gshape, axis, block_size), _ungroup(z, gshape, axis, block_size)


# ---- float formats ---------------------------------------------------------------------------

_F32_TINY = float(np.finfo(np.float32).smallest_subnormal)
_F32_MAX = float(np.finfo(np.float32).max)


def float_scales_from_amax(amax, fmt, scale_format=None):
    """float32 scales of a float format from group maxima: ``s = float32(amax / fmt.max)``.

    The division is one float64 division rounded to float32 (for float32 ``amax`` that is the
    correctly rounded float32 quotient: float64 holds more than twice float32's precision). A
    group without a finite non-zero value gets 1; a quotient below float32's range the smallest
    positive float32, above it float32's largest value. ``scale_format`` then rounds the scale
    into that format (nearest-even, saturating, never zero)."""
    a = np.asarray(amax, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        s = (a / float(fmt.max)).astype(np.float32)
    s = np.where((a > 0) & np.isfinite(a), s, np.float32(1.0))
    s = np.where(s > 0, s, np.float32(_F32_TINY))
    s = np.where(np.isfinite(s), s, np.float32(_F32_MAX)).astype(np.float32)
    if scale_format is not None:
        s = round_scale(s, scale_format).astype(np.float32)
    return s


def _float_sq_error(G, s, fmt):
    """Squared error per group row of the scaled float quantization (nearest-even)."""
    from qemu_arrays.formats.spec import Overflow as _Ovf

    sw = s.astype(G.dtype)[:, None]
    fin = np.isfinite(G)
    with np.errstate(over="ignore", invalid="ignore"):
        q = np.where(fin, G, 0) / sw
    r = round_array(q, fmt, Rounding.NEAREST_EVEN, _Ovf.SATURATE) * sw
    err = np.where(fin, r.astype(np.float64) - G, 0.0)
    return np.sum(err * err, axis=1)


def _float_scale(x, fmt, rule, axis, block_size, percentile, sfmt):
    """The float32 scales of float format ``fmt`` in the group shape (symmetric rules)."""
    if x.size == 0:  # no data: every group is as one holding no finite value (scale 1)
        return np.ones(group_shape(x.shape, axis, block_size), dtype=np.float32)
    if rule == "absmax" and x.size and x.dtype.kind == "f":
        amax = _absmax_range(x, axis, block_size, True)[1]
        return float_scales_from_amax(amax, fmt, sfmt).reshape(
            group_shape(x.shape, axis, block_size)
        )
    work = np.asarray(x, dtype=np.float64 if x.dtype == np.float64 else np.float32)
    G, gshape = _groups(work, axis, block_size)
    G = np.where(np.isfinite(G), G, np.nan)
    _, hi = _range(G, rule, True, percentile)
    hi = np.nan_to_num(hi)
    s = float_scales_from_amax(hi, fmt, sfmt)
    if rule == "mse":
        Gw = G.astype(work.dtype)
        best = _float_sq_error(Gw, s, fmt)
        for c in _MSE_RATIOS[1:]:
            sc = float_scales_from_amax(hi * c, fmt, sfmt)
            err = _float_sq_error(Gw, sc, fmt)
            better = err < best
            best = np.where(better, err, best)
            s = np.where(better, sc, s)
    return _ungroup(np.asarray(s, dtype=np.float32), gshape, axis, block_size)


def _rule_data(x):
    """The data of a scale rule as a NumPy array of real numbers (float or integer); the masked
    elements of a masked array become NaN, which every rule ignores."""
    if isinstance(x, np.ma.MaskedArray):
        x = np.ma.filled(x.astype(np.float64), np.nan)
    if (
        isinstance(x, (str, bytes))
        or not isinstance(x, (np.ndarray, np.generic, numbers.Real, list, tuple))
        or isinstance(x, (bool, np.bool_))
    ):
        msg = (
            f"x must be an array of real numbers (float or integer), got {type(x).__name__}; "
            "hint: np.asarray(x, dtype=np.float32)"
        )
        raise TypeError(msg)
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu" and arr.dtype != BF16:
        msg = f"x must hold real numbers (float or integer), got dtype {arr.dtype}; hint: " + (
            "np.real(x) or np.abs(x) for complex data"
            if arr.dtype.kind == "c"
            else "np.asarray(x, dtype=np.float32)"
        )
        raise TypeError(msg)
    return arr


def check_given_scale(scale, name="scale"):
    """A user-given scale (number or array) as a float64 array, checked finite and > 0."""
    if isinstance(scale, bool) or not isinstance(scale, (numbers.Real, np.ndarray, list, tuple)):
        msg = (
            f"{name} must be a positive number, an array of them, or one of {SCALE_RULES}, got "
            f"{scale!r} ({type(scale).__name__}); hint: {name}=0.05 or {name}='absmax'"
        )
        raise TypeError(msg)
    raw = np.asarray(scale)
    if raw.dtype.kind not in "fiu":
        msg = (
            f"{name} must be a positive number or an array of them, got an array of dtype "
            f"{raw.dtype}; hint: np.asarray({name}, dtype=np.float64)"
        )
        raise TypeError(msg)
    s = raw.astype(np.float64)
    bad = ~(np.isfinite(s) & (s > 0))
    if bad.any():
        where = "" if s.ndim == 0 else f" (in an array of shape {s.shape})"
        msg = (
            f"{name} must be finite and > 0, got {s[bad].flat[0]!r}{where}; hint: {name}=0.05, "
            "or a rule such as 'absmax'"
        )
        raise ValueError(msg)
    return s


def given_to_groups(a, shape, axis, block_size, name):
    """A user-given scale/zero-point array in the group shape (from 1-D per channel too)."""
    a = np.asarray(a)
    if a.ndim == 0 or axis is None:
        return a
    gshape = group_shape(shape, axis, block_size)
    if block_size is None and a.ndim == 1 and a.shape[0] == shape[axis]:
        return a.reshape(gshape)
    try:
        return np.broadcast_to(a, gshape)
    except ValueError:
        msg = (
            f"{name} of shape {a.shape} does not fit the groups of shape {gshape} "
            f"(axis={axis}, block_size={block_size}): it must broadcast to them; hint: one value "
            "per channel or per group"
        )
        raise ValueError(msg) from None


def group_scales(x, fmt, scale, zero_point, shape, *, axis=None, block_size=None, symmetric=True,
                 percentile=99.9, scale_format=None):  # fmt: skip
    """``(scales, zero points, axis, block_size)``: the scales and zero points of integer format
    ``fmt`` in the group shape of ``shape``, from a given scale (number or array) or a rule
    (computed from ``x``, which only rules need), with the granularity normalised."""
    axis, block_size = check_granularity(shape, axis, block_size)
    sfmt = _check_scale_format(scale_format)
    if isinstance(fmt, FloatFormat):
        return (*_float_group_scales(x, fmt, scale, shape, axis, block_size, percentile, sfmt),
                axis, block_size)  # fmt: skip
    if isinstance(scale, str):
        if x is None:
            msg = (
                f"scale={scale!r} is a rule, which needs data; decode needs the scale values; "
                "hint: pass the Encoded tuple from encode"
            )
            raise ValueError(msg)
        sg, zg = compute_scale(
            x, fmt, rule=scale, axis=axis, block_size=block_size, symmetric=symmetric,
            percentile=percentile, scale_format=sfmt,
        )  # fmt: skip
    else:
        sg = round_scale(check_given_scale(scale), sfmt)
        sg = given_to_groups(sg, shape, axis, block_size, "scale")
        zg = given_to_groups(
            check_zero_point(zero_point, fmt), shape, axis, block_size, "zero_point"
        )
    return np.asarray(sg), np.asarray(zg), axis, block_size


def _float_group_scales(x, fmt, scale, shape, axis, block_size, percentile, sfmt):
    """``(float32 scales in the group shape, None)`` of a scaled float format."""
    if isinstance(scale, str):
        if x is None:
            msg = f"scale={scale!r} is a rule, which needs data; decode needs the scale values"
            raise ValueError(msg)
        return _float_scale(x, fmt, scale, axis, block_size, percentile, sfmt), None
    s = check_given_scale(scale)
    with np.errstate(over="ignore", under="ignore"):
        s32 = s.astype(np.float32)
    if not np.all(np.isfinite(s32)) or np.any(s32 <= 0):
        msg = (
            f"scale must be a positive number within float32's range (scaled float formats keep "
            f"float32 scales), got {scale!r}; hint: a scale in [1.5e-45, 3.4e38]"
        )
        raise ValueError(msg)
    if sfmt is not None:
        s32 = round_scale(s32, sfmt).astype(np.float32)
    return np.asarray(given_to_groups(s32, shape, axis, block_size, "scale")), None


def per_element(sg, shape, axis, block_size):
    """Group-shaped scales as an array that broadcasts against ``shape`` (per element only for
    groups of ``block_size``; per tensor and per channel stay in their broadcasting shape)."""
    sg = np.asarray(sg)
    if sg.size == 1:
        return sg.reshape(())
    if axis is None:
        try:
            return np.broadcast_to(sg, shape)
        except ValueError:
            msg = (
                f"scale of shape {sg.shape} does not broadcast to x's shape {shape}; hint: one "
                "value per channel with axis=, or per group with block_size="
            )
            raise ValueError(msg) from None
    if block_size is None:
        return sg if sg.ndim == len(shape) else np.broadcast_to(sg, shape)
    return np.ascontiguousarray(expand_groups(sg, shape, axis, block_size))


def group_geometry(shape, sg, zg, axis, block_size):
    """``((outer, n, inner), scales, zero points, block)`` for the group-shaped integer kernel
    (``kernels.scaled.quantize_groups``), or None when the group arrays do not have the
    per-channel / per-group layout."""
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    n = shape[axis]
    inner = int(np.prod(shape[axis + 1 :], dtype=np.int64))
    blk = 1 if block_size is None else block_size
    groups = -(-n // blk)

    def to3(a):
        a = np.asarray(a)
        if a.size == 1:
            return a.reshape(1, 1, 1)
        if a.ndim != len(shape) or a.shape[axis] != groups:
            return None
        lead, trail = a.shape[:axis], a.shape[axis + 1 :]
        if lead not in (shape[:axis], (1,) * axis):
            return None
        if trail not in (shape[axis + 1 :], (1,) * len(trail)):
            return None
        return np.ascontiguousarray(a).reshape(int(np.prod(lead)), groups, int(np.prod(trail)))

    s3, z3 = to3(sg), to3(zg)
    if s3 is None or z3 is None:
        return None
    return (outer, n, inner), s3, z3, blk


def flatten_groups(sg, zg, shape, axis, block_size):
    """One scale and zero point per element in C order (or one value each when uniform)."""
    flat = []
    for name, a in (("scale", sg), ("zero_point", zg)):
        if name == "zero_point" and a.size > 1 and not np.any(a):
            a = np.zeros(1, dtype=np.int64)  # all zero (symmetric): one value serves all
        if a.size == 1:
            flat.append(
                np.ascontiguousarray(a, dtype=np.float64 if name == "scale" else np.int64).reshape(
                    1
                )
            )
            continue
        try:
            e = expand_groups(a, shape, axis, block_size)
            flat.append(np.ascontiguousarray(e).reshape(-1))
        except ValueError:
            msg = f"{name} of shape {a.shape} does not broadcast to x's shape {shape}"
            raise ValueError(msg) from None
    return flat[0], flat[1]
