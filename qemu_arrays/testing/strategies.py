"""Hypothesis strategies for number formats, and the deciding inputs of a format.

Strategies (need ``hypothesis``, imported lazily so that importing this module does not):

* :func:`float_formats`, :func:`int_formats`, :func:`block_formats`: valid custom formats;
* :func:`representable_values`: values a format holds exactly;
* :func:`values_near`: the inputs where roundings go wrong (values, midpoints, their neighbours,
  range boundaries, subnormals, overflow edges);
* :func:`arrays`: arrays of any array-API namespace filled with those inputs.

Plain NumPy helpers used by :mod:`qemu_arrays.testing.checks` (no hypothesis needed):
:func:`decode_model` (the value of every code, straight from the table of ``docs/formats.md``),
:func:`format_values` (the sorted finite values) and :func:`probe_points` (a deterministic set
of deciding inputs).
"""

from __future__ import annotations

import math

import numpy as np

from qemu_arrays.formats.spec import FloatFormat, IntFormat, Specials

__all__ = [
    "arrays",
    "block_formats",
    "decode_model",
    "float_formats",
    "format_values",
    "int_formats",
    "probe_points",
    "representable_values",
    "values_near",
]

ENUMERABLE_BITS = 16
"""Formats of at most this many bits are enumerated code by code; wider ones are sampled."""


# ---- argument checking -----------------------------------------------------------------------


def _check_int(name, value, lo, hi, hint):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        msg = f"{name} must be an int in [{lo}, {hi}], got {value!r}; {hint}"
        raise TypeError(msg)
    if not lo <= value <= hi:
        msg = f"{name} must be in [{lo}, {hi}], got {value}; {hint}"
        raise ValueError(msg)
    return int(value)


def _element_format(fmt, name="fmt"):
    from qemu_arrays.formats.catalog import get_format

    fmt = get_format(fmt)
    if not isinstance(fmt, (FloatFormat, IntFormat)):
        msg = (
            f"{name} must be an element format (FloatFormat or IntFormat), got {fmt!r}; hint: "
            "pass the element format of a block format"
        )
        raise TypeError(msg)
    return fmt


def _check_fits_float64(fmt):
    if isinstance(fmt, FloatFormat) and (fmt.emax > 1023 or fmt.emin - fmt.mantissa_bits < -1074):
        msg = (
            f"fmt {fmt.name!r} has values outside float64 (exponents {fmt.emin - fmt.mantissa_bits}"
            f" to {fmt.emax}); the testing kit works in float64; hint: use a bias that keeps "
            "the range within float64's"
        )
        raise ValueError(msg)


# ---- the value set, straight from the spec table ---------------------------------------------


def decode_model(fmt, codes) -> np.ndarray:
    """The float64 value of each code of a float format, from the table of ``docs/formats.md``.

    Independent of the kernels and of ``qemu_arrays.formats.reference``: plain NumPy on the fields. Zero
    codes carry their sign (``-0.0`` only where the format has a negative zero), inf and NaN
    codes give ``±inf`` and ``nan``.
    """
    fmt = _element_format(fmt)
    if not isinstance(fmt, FloatFormat):
        msg = f"fmt must be a FloatFormat, got {fmt!r}; hint: an integer code is k itself"
        raise TypeError(msg)
    _check_fits_float64(fmt)
    c = np.asarray(codes, dtype=np.uint64).astype(np.int64)
    e, m, b = fmt.exponent_bits, fmt.mantissa_bits, fmt.bias
    mag_code = c & ((1 << (e + m)) - 1)
    neg = (c >> (e + m)) & 1 if fmt.signed else np.zeros_like(c)
    ef = mag_code >> m
    ff = (mag_code & ((1 << m) - 1)).astype(np.float64)
    frac = np.ldexp(ff, -m)
    normal = np.ldexp(1.0 + frac, (ef - b).astype(np.int64))
    if fmt.has_zero:
        sub = np.ldexp(frac, 1 - b) if fmt.subnormals else np.zeros_like(frac)
        mag = np.where(ef == 0, sub, normal)
    else:
        mag = normal
    all_ones_field, all_ones_mag = (1 << e) - 1, (1 << (e + m)) - 1
    sp = fmt.specials
    if sp is Specials.IEEE:
        mag = np.where(ef == all_ones_field, np.where(ff == 0, np.inf, np.nan), mag)
    elif sp is Specials.FN:
        mag = np.where(mag_code == all_ones_mag, np.nan, mag)
    elif sp is Specials.P3109:
        mag = np.where(mag_code == all_ones_mag, np.inf, mag)
    val = np.where(neg == 1, -mag, mag)
    if not fmt.has_negative_zero:
        val = np.where(val == 0, 0.0, val)
    if sp in (Specials.FNUZ, Specials.P3109):
        val = np.where((neg == 1) & (mag_code == 0), np.nan, val)
    return val


def format_values(fmt, *, scale=None) -> np.ndarray:
    """Every distinct finite value of a format of at most 16 bits, ascending, zero once, float64.

    Integer formats give ``k * scale`` for every ``k`` of the range (``scale`` default 1).
    """
    fmt = _element_format(fmt)
    if fmt.bits > ENUMERABLE_BITS:
        msg = (
            f"fmt {fmt.name!r} has {fmt.bits} bits; format_values enumerates formats of at most "
            f"{ENUMERABLE_BITS} bits; hint: use probe_points(fmt) for wider formats"
        )
        raise ValueError(msg)
    if isinstance(fmt, IntFormat):
        return np.arange(fmt.min, fmt.max + 1, dtype=np.float64) * _scale(fmt, scale)
    v = decode_model(fmt, np.arange(1 << fmt.bits))
    v = v[np.isfinite(v)]
    return np.unique(v + 0.0)  # + 0.0 turns -0 into +0, so zero appears once


def _scale(fmt, scale):
    if scale is None:
        return 1.0
    if isinstance(fmt, FloatFormat):
        msg = f"scale applies to integer formats, got scale={scale!r} with {fmt.name!r}"
        raise ValueError(msg)
    s = float(scale)
    if not (math.isfinite(s) and s > 0):
        msg = f"scale must be a positive finite number, got {scale!r}; hint: scale=1.0"
        raise ValueError(msg)
    return s


# ---- deterministic probe points ----------------------------------------------------------------


def _sampled_float_values(fmt: FloatFormat, n: int, rng) -> np.ndarray:
    """``n`` random finite positive values of a wide float format (exponents uniform)."""
    m = fmt.mantissa_bits
    ex = rng.integers(fmt.emin, fmt.emax + 1, n)
    sig = rng.integers(0, 1 << min(m, 62), n, dtype=np.int64) if m else np.zeros(n, np.int64)
    if m > 62:  # pragma: no cover - mantissas wider than 62 bits do not exist (max 52)
        sig = sig << (m - 62)
    vals = np.ldexp(1.0 + np.ldexp(sig.astype(np.float64), -m), ex)
    if fmt.subnormals and m:
        k = rng.integers(1, 1 << min(m, 62), max(n // 8, 1), dtype=np.int64)
        vals = np.concatenate([vals, np.ldexp(k.astype(np.float64), fmt.emin - m)])
    return vals[vals <= fmt.max]


def probe_points(fmt, *, scale=None, max_values=1 << 16, seed=0) -> np.ndarray:
    """The inputs that decide a rounding, as a sorted float64 array without NaN.

    Every finite value (sampled when the format has more than ``max_values``), every midpoint
    between neighbouring values, the float64 neighbours of each, the range edges (max, the first
    point past max, the overflow threshold, tiny magnitudes below the smallest value), each
    negated, plus ``±0`` and ``±inf``. Deterministic for a given ``seed``.
    """
    fmt = _element_format(fmt)
    _check_fits_float64(fmt)
    s = _scale(fmt, scale)
    rng = np.random.default_rng(seed)
    if isinstance(fmt, IntFormat):
        n = fmt.max - fmt.min + 1
        if n <= max_values:
            k = np.arange(fmt.min - 2, fmt.max + 3, dtype=np.float64)
        else:
            k = np.concatenate(
                [
                    rng.integers(fmt.min, fmt.max, max_values, endpoint=True).astype(np.float64),
                    np.arange(-3, 4),
                    fmt.min + np.arange(-2, 3),
                    fmt.max + np.arange(-2, 3),
                ]
            )
        base = np.concatenate([k, k + 0.5, k + 0.25, [2.0 * fmt.max, 4.0 * fmt.max + 1]]) * s
    else:
        enumerated = fmt.bits <= ENUMERABLE_BITS and (1 << fmt.bits) <= 2 * max_values
        if enumerated:
            grid = format_values(fmt)
        else:
            pos = _sampled_float_values(fmt, max_values // 2, rng)
            edges = [fmt.max, fmt.smallest_normal, fmt.smallest_subnormal, 1.0]
            grid = np.unique(np.concatenate([pos, -pos, edges, [0.0]]))
            grid = grid[np.abs(grid) <= fmt.max]
        pos = grid[grid > 0]
        with np.errstate(over="ignore"):
            top = fmt.max + math.ldexp(1.0, fmt.emax - fmt.mantissa_bits)
        # midpoints between neighbours (and from 0 to the smallest value); for sampled grids
        # the midpoint above each value
        if enumerated and grid.size > 1:
            full = np.unique(np.concatenate([grid, -grid]))
            mids = (full[1:] + full[:-1]) / 2
        else:
            with np.errstate(over="ignore"):
                mids = pos + _ulp_at(fmt, pos) / 2
        tiny = pos[0] * np.array([0.5, 0.25, 0.75, 2.0**-8]) if pos.size else np.array([])
        with np.errstate(over="ignore"):
            extra = np.array([top, (top + fmt.max) / 2, 2 * top, fmt.max * 4])
        base = np.concatenate([grid, mids, tiny, extra[np.isfinite(extra)]])
    base = np.concatenate([base, -base])
    base = base[np.isfinite(base)]
    with np.errstate(over="ignore"):
        x = np.concatenate([base, np.nextafter(base, np.inf), np.nextafter(base, -np.inf)])
    x = np.unique(x[np.isfinite(x) & (x != 0)])
    return np.concatenate([x, [0.0, -0.0, np.inf, -np.inf]])


def _ulp_at(fmt: FloatFormat, mag: np.ndarray) -> np.ndarray:
    """The grid spacing of a float format at positive magnitudes ``mag`` (within range)."""
    _, ex = np.frexp(mag)
    e = ex.astype(np.int64) - 1
    return np.ldexp(1.0, np.maximum(e, fmt.emin) - fmt.mantissa_bits)


# ---- hypothesis strategies ---------------------------------------------------------------------


def _st():
    try:
        from hypothesis import strategies as st
    except ImportError:  # pragma: no cover - hypothesis is a test dependency
        msg = "qemu_arrays.testing strategies need hypothesis; hint: pip install hypothesis"
        raise ImportError(msg) from None
    return st


_DEFAULT_SPECIALS = tuple(Specials)


def float_formats(
    *,
    min_bits: int = 3,
    max_bits: int = 8,
    max_exponent_bits: int = 5,
    specials=None,
    signed: bool | None = None,
    subnormals: bool | None = None,
    has_zero: bool | None = None,
    bias_offsets: tuple[int, int] = (-2, 2),
):
    """A strategy for valid custom :class:`FloatFormat` descriptors.

    ``min_bits``/``max_bits`` bound the total width (sign included), ``max_exponent_bits`` the
    exponent field; ``specials`` is a sequence of allowed :class:`Specials` (default all);
    ``signed``/``subnormals``/``has_zero`` fix a flag (``None``: drawn). The bias is the IEEE
    default plus an offset drawn from ``bias_offsets``. Shrinks toward small signed IEEE-like
    formats with zero and subnormals.
    """
    st = _st()
    hint = "try float_formats(min_bits=3, max_bits=8)"
    max_bits = _check_int("max_bits", max_bits, 3, 16, hint)
    min_bits = _check_int("min_bits", min_bits, 2, max_bits, hint)
    max_e = _check_int("max_exponent_bits", max_exponent_bits, 2, 8, hint)
    allowed = _DEFAULT_SPECIALS if specials is None else tuple(Specials(s) for s in specials)
    if not allowed:
        msg = "specials must name at least one Specials member, got an empty sequence"
        raise ValueError(msg)
    for name, flag in (("signed", signed), ("subnormals", subnormals), ("has_zero", has_zero)):
        if flag is not None and not isinstance(flag, bool):
            msg = f"{name} must be True, False or None (drawn), got {flag!r}"
            raise TypeError(msg)
    lo_off, hi_off = (int(v) for v in bias_offsets)
    if lo_off > hi_off:
        msg = f"bias_offsets must be (low, high) with low <= high, got {bias_offsets!r}"
        raise ValueError(msg)

    def flag(value, default_first=True):
        if value is not None:
            return st.just(value)
        return st.sampled_from([default_first, not default_first])

    @st.composite
    def draw_format(draw):
        sp = draw(st.sampled_from(allowed))
        needs_signed_zero = sp in (Specials.FNUZ, Specials.P3109)
        if needs_signed_zero and (signed is False or has_zero is False):
            from hypothesis import assume

            assume(False)
        sgn = True if needs_signed_zero else draw(flag(signed))
        zero = True if needs_signed_zero else draw(flag(has_zero))
        sub = False if not zero else draw(flag(subnormals))
        if not zero and subnormals:
            from hypothesis import assume

            assume(False)
        min_e = 2 if sp is Specials.IEEE else 1
        hi_e = min(max_e, max_bits - int(sgn))
        from hypothesis import assume

        assume(min_e <= hi_e)
        e = draw(st.integers(min_e, hi_e))
        lo_m = max(0, min_bits - int(sgn) - e)
        hi_m = max_bits - int(sgn) - e
        assume(lo_m <= hi_m)
        m = draw(st.integers(lo_m, hi_m))
        assume(not (sp is Specials.FN and e == 1 and m == 0))
        bias = (1 << (e - 1)) - 1 + draw(st.integers(lo_off, hi_off))
        return FloatFormat(
            exponent_bits=e,
            mantissa_bits=m,
            bias=bias,
            signed=sgn,
            subnormals=sub,
            has_zero=zero,
            specials=sp,
        )

    return draw_format()


def int_formats(
    *, min_bits: int = 2, max_bits: int = 16, signed: bool | None = None, narrow_range=None
):
    """A strategy for valid :class:`IntFormat` descriptors of ``min_bits..max_bits`` bits."""
    st = _st()
    hint = "try int_formats(min_bits=2, max_bits=16)"
    max_bits = _check_int("max_bits", max_bits, 1, 32, hint)
    min_bits = _check_int("min_bits", min_bits, 1, max_bits, hint)
    for name, flag in (("signed", signed), ("narrow_range", narrow_range)):
        if flag is not None and not isinstance(flag, bool):
            msg = f"{name} must be True, False or None (drawn), got {flag!r}"
            raise TypeError(msg)

    @st.composite
    def draw_format(draw):
        sgn = draw(st.sampled_from([True, False])) if signed is None else signed
        bits = draw(st.integers(max(min_bits, 2 if sgn and narrow_range else 1), max_bits))
        if not sgn:
            narrow = False
            if narrow_range:
                from hypothesis import assume

                assume(False)
        elif narrow_range is None:
            narrow = bits >= 2 and draw(st.booleans())
        else:
            narrow = narrow_range
        return IntFormat(bits=bits, signed=sgn, narrow_range=narrow)

    return draw_format()


def block_formats(*, element_formats=None, scale_formats=None, block_sizes=(16, 32)):
    """A strategy for block-scaled formats (``qemu_arrays.formats.block_spec.BlockFormat``).

    ``element_formats`` and ``scale_formats`` are strategies of element descriptors (default:
    signed :func:`float_formats` and :func:`int_formats` of at most 8 bits; the E8M0 scale),
    ``block_sizes`` the allowed block sizes. The scale rule and the fixed-point fraction bits of
    integer elements are drawn; scale formats that are not powers of two get the tensor scale
    (the NVFP4 rule). Combinations ``BlockFormat`` rejects are not drawn.
    """
    st = _st()
    from hypothesis import assume

    try:
        from qemu_arrays.formats import block_spec
    except ImportError:  # pragma: no cover - the module ships with qemu_arrays
        msg = "block_formats needs qemu_arrays.formats.block_spec (BlockFormat); hint: update qemu_arrays"
        raise ImportError(msg) from None
    from qemu_arrays.formats.catalog import get_format

    if element_formats is None:
        element_formats = st.one_of(
            float_formats(max_bits=8, signed=True), int_formats(min_bits=2, max_bits=8, signed=True)
        )
    if scale_formats is None:
        scale_formats = st.just(get_format("float8_e8m0fnu"))
    sizes = list(block_sizes)
    if not sizes or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in sizes):
        msg = f"block_sizes must be a non-empty sequence of positive ints, got {block_sizes!r}"
        raise ValueError(msg)

    @st.composite
    def draw_block(draw):
        element = draw(element_formats)
        scale = draw(scale_formats)
        pow2 = scale.mantissa_bits == 0
        assume(element.signed and (pow2 or isinstance(element, FloatFormat)))
        assume(element.bits <= 16 and scale.bits <= 8)
        frac = 0
        if isinstance(element, IntFormat):
            frac = draw(st.integers(0, max(element.bits - 2, 0)))
        return block_spec.BlockFormat(
            element=element,
            scale=scale,
            block_size=draw(st.sampled_from(sizes)),
            scale_rule=draw(st.sampled_from(list(block_spec.ScaleRule))),
            tensor_scale=not pow2,  # a scale with mantissa bits takes the NVFP4 rule
            element_fraction_bits=frac,
        )

    return draw_block()


def representable_values(fmt, *, scale=None, signed_zero: bool = True):
    """A strategy for finite values the format holds exactly (as Python floats).

    Formats of at most 16 bits draw from the full value set (shrinking toward 0); wider float
    formats draw a sign, an exponent and a significand. ``-0.0`` is included where the format
    has a negative zero and ``signed_zero`` is true.
    """
    st = _st()
    fmt = _element_format(fmt)
    _check_fits_float64(fmt)
    s = _scale(fmt, scale)
    if fmt.bits <= ENUMERABLE_BITS or isinstance(fmt, IntFormat):
        if isinstance(fmt, IntFormat):
            return st.integers(fmt.min, fmt.max).map(lambda k: float(k) * s)
        vals = format_values(fmt)
        order = np.argsort(np.abs(vals), kind="stable")
        out = [float(v) for v in vals[order]]
        if signed_zero and fmt.has_negative_zero:
            out.append(-0.0)
        return st.sampled_from(out)

    m = fmt.mantissa_bits

    def build(args):
        neg, ex, sig = args
        if ex < fmt.emin:  # subnormal
            v = math.ldexp(float(sig), fmt.emin - m)
        else:
            v = math.ldexp(1.0 + math.ldexp(float(sig), -m), ex)
        v = min(v, fmt.max)
        return -v if neg and fmt.signed else v

    lo_ex = fmt.emin - 1 if fmt.subnormals else fmt.emin
    return st.tuples(st.booleans(), st.integers(lo_ex, fmt.emax), st.integers(0, (1 << m) - 1)).map(
        build
    )


def values_near(fmt, *, scale=None, dtype=None, include_special: bool = True):
    """A strategy for the inputs where roundings go wrong, as Python floats.

    Representable values, midpoints between neighbours (ties), the float64 (or ``dtype``)
    neighbours of each, the range boundaries, subnormals, tiny magnitudes below the smallest
    value and the overflow edges, with both signs; ``±inf`` when ``include_special``. With
    ``dtype`` (a NumPy float dtype) only values exactly representable in it are drawn.
    """
    st = _st()
    pts = _points_for_dtype(probe_points(_element_format(fmt), scale=scale), dtype)
    if not include_special:
        pts = pts[np.isfinite(pts)]
    order = np.lexsort((np.abs(pts), _complexity(pts)))
    return st.sampled_from([float(v) for v in pts[order]])


def _points_for_dtype(pts, dtype):
    if dtype is None:
        return pts
    dt = np.dtype(dtype)
    if dt.kind != "f":
        msg = f"dtype must be a floating dtype, got {dt}; hint: dtype=np.float32"
        raise TypeError(msg)
    with np.errstate(over="ignore"):
        cast = pts.astype(dt)
        exact = cast.astype(np.float64) == pts
        near = np.concatenate(
            [
                cast[exact],
                np.nextafter(cast[exact], dt.type(np.inf)),
                np.nextafter(cast[exact], dt.type(-np.inf)),
            ]
        )
    near = near.astype(np.float64)
    return np.unique(np.concatenate([near, pts[~np.isfinite(pts)]]))


def _complexity(x) -> np.ndarray:
    """How 'complicated' each float64 is: significant bits plus exponent size (for ordering)."""
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x) & (x != 0)
    mant, ex = np.frexp(np.where(finite, np.abs(x), 1.0))
    sig = np.ldexp(mant, 53).astype(np.int64)
    low = sig & -sig
    tz = np.round(np.log2(low.astype(np.float64))).astype(np.int64)
    bits = 53 - tz
    score = bits * 4 + np.abs(ex - 1)
    score = np.where(finite, score, 0)
    return np.where(np.isfinite(x), score, 10_000)


def arrays(xp, fmt, *, shape=(8,), dtype=None, scale=None, elements=None):
    """A strategy for arrays of namespace ``xp`` (numpy, array_api_strict, torch via
    array_api_compat, ...) filled with :func:`values_near` ``fmt`` inputs.

    ``dtype`` is a dtype of ``xp`` (default ``xp.float64``), ``shape`` an int or a tuple or a
    strategy of shapes, ``elements`` a strategy of Python floats overriding the default.
    """
    st = _st()
    from hypothesis.extra import array_api as hxa

    if not hasattr(xp, "asarray"):
        msg = f"xp must be an array namespace (numpy, array_api_strict, ...), got {xp!r}"
        raise TypeError(msg)
    dtype = xp.float64 if dtype is None else dtype
    np_dtype = {2: np.float16, 4: np.float32, 8: np.float64}.get(_itemsize(xp, dtype))
    if np_dtype is None:
        msg = f"dtype must be a float16, float32 or float64 dtype of xp, got {dtype!r}"
        raise TypeError(msg)
    if elements is None:
        elements = values_near(fmt, scale=scale, dtype=np_dtype)
    if getattr(xp, "__name__", "") == "numpy":
        from hypothesis.extra import numpy as hnp

        return hnp.arrays(np.dtype(np_dtype), shape, elements=elements)
    ns = hxa.make_strategies_namespace(xp)
    del st
    return ns.arrays(dtype, shape, elements=elements)


def _itemsize(xp, dtype) -> int | None:
    for name, size in (("float16", 2), ("float32", 4), ("float64", 8)):
        if getattr(xp, name, None) is not None and dtype == getattr(xp, name):
            return size
    try:
        return np.dtype(dtype).itemsize if np.dtype(dtype).kind == "f" else None
    except TypeError:
        return None
