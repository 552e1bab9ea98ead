"""The exact reference codec: ``docs/formats.md`` transcribed into rational arithmetic.

This module is the oracle every fast path is tested against. It works on one value at a time with
:class:`fractions.Fraction` and Python integers, never with floating-point arithmetic or bit
tricks, so that it is independent of the kernels it checks:

* a finite input is converted to its exact rational value;
* the grid spacing ``2^q`` at ``|x|`` is found from the exact binade of ``|x|``;
* ``|x| = (K + f) * 2^q`` is split exactly, and the rounding mode picks ``K`` or ``K + 1``
  following the table of the doc, line by line;
* the special cases (NaN, infinities, overflow, negative input to unsigned formats, zero into
  formats without zero) follow the doc's ``Overflow`` table.

It also holds the counter-based random generator of the doc in plain Python integers.

Public functions: :func:`quantize_value`, :func:`encode_value`, :func:`decode_code`,
:func:`decode_exact`, :func:`key`, :func:`mix32`, :func:`random_word`, :func:`random_bits`, and
for block formats (``docs/blocks.md``) :func:`shared_exponent`, :func:`quantize_mx_block`,
:func:`quantize_nv_block`, :func:`quantize_blocks`; for dot products (``docs/matmul.md``)
:func:`dot_reference` (a rounded accumulator, each order) and :func:`fused_dot_reference` (the
truncating block adder of the tensor-core models).
Slow (tens of microseconds per value) and obviously right; use it in tests, not in loops over
large arrays.
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass
from fractions import Fraction

from qemu_arrays.formats import decoding
from qemu_arrays.formats.enums import ScaleRule
from qemu_arrays.formats.ml_dtypes_rules import MlDtypesRules
from qemu_arrays.formats.ml_dtypes_rules import installed as installed_ml_dtypes_rules
from qemu_arrays.formats.spec import FloatFormat, IntFormat, Overflow, Rounding, Specials

__all__ = [
    "ORDERS",
    "decode_code",
    "dot_reference",
    "fused_dot_reference",
    "quantize_blocks",
    "quantize_mx_block",
    "quantize_nv_block",
    "shared_exponent",
    "decode_exact",
    "encode_value",
    "key",
    "mix32",
    "quantize_value",
    "random_bits",
    "random_word",
]

_M32 = 0xFFFFFFFF
_FLOAT32_EMIN = -126  # float32 values below 2^-126 are subnormal
_HALF = Fraction(1, 2)


# ---- argument checking -------------------------------------------------------------------------


def _as_format(fmt):
    if isinstance(fmt, (FloatFormat, IntFormat)):
        return fmt
    if isinstance(fmt, str):
        from qemu_arrays.formats.catalog import get_format

        return _as_format(get_format(fmt))
    msg = (
        f"fmt must be a FloatFormat, an IntFormat or a catalogue name, got {fmt!r} "
        f"({type(fmt).__name__}); hint: the reference handles element formats only, quantize "
        "block formats element by element"
    )
    raise TypeError(msg)


def _as_enum(name, value, enum_cls):
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(f"{enum_cls.__name__}.{v.name}" for v in enum_cls)
        msg = f"{name} must be one of {allowed}, got {value!r}"
        raise ValueError(msg) from None


def _as_int(name, value):
    if isinstance(value, bool):
        msg = f"{name} must be an integer, got the bool {value!r}"
        raise TypeError(msg)
    try:
        return operator.index(value)
    except TypeError:
        msg = f"{name} must be an integer, got {value!r} ({type(value).__name__})"
        raise TypeError(msg) from None


def _check_random(u, r):
    if u is None or r is None:
        msg = (
            f"Rounding.STOCHASTIC needs the random integer u and its width r, got u={u!r}, "
            f"r={r!r}; hint: u = random_bits(seed, stream, index, r)"
        )
        raise ValueError(msg)
    u = _as_int("u", u)
    r = _as_int("r", r)
    if not 1 <= r <= 64:
        msg = f"r (random bits) must be in [1, 64], got {r}"
        raise ValueError(msg)
    if not 0 <= u < (1 << r):
        msg = f"u must be an r-bit integer in [0, 2**{r}), got {u}"
        raise ValueError(msg)
    return u, r


@dataclass(frozen=True)
class _Carry:
    """Caller-supplied random bits (``rbits``), already reduced to their low ``r`` bits."""

    bits: int


def _check_rbits(rbits, u, r):
    if u is not None:
        msg = f"pass either u (the generator's integer) or rbits, not both (u={u!r})"
        raise ValueError(msg)
    if r is None:
        msg = "rbits needs r, the number of random bits the rule uses; hint: r=16"
        raise ValueError(msg)
    r = _as_int("r", r)
    rbits = _as_int("rbits", rbits)
    if rbits < 0:
        msg = f"rbits must be a non-negative integer (its low r bits are used), got {rbits}"
        raise ValueError(msg)
    if not 1 <= r <= 64:
        msg = f"r (random bits) must be in [1, 64], got {r}"
        raise ValueError(msg)
    return _Carry(rbits & ((1 << r) - 1)), r


# ---- exact values ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Value:
    """A rounded result: ``kind`` is "finite", "inf" or "nan"; ``magnitude`` is exact."""

    kind: str
    negative: bool
    magnitude: Fraction = Fraction(0)


def _split_input(x):
    """(kind, negative, exact magnitude) of a Python float, int or Fraction (or numpy scalar)."""
    if isinstance(x, Fraction):
        return "finite", x < 0, abs(x)
    if isinstance(x, (bool, str, bytes)):
        msg = f"x must be a real number (float, int or Fraction), got {x!r} ({type(x).__name__})"
        raise TypeError(msg)
    if isinstance(x, int):
        return "finite", x < 0, Fraction(abs(x))
    try:
        xf = float(x)  # exact for float16/bfloat16/float32/float64 scalars
    except (TypeError, ValueError):
        msg = f"x must be a real number (float, int or Fraction), got {x!r} ({type(x).__name__})"
        raise TypeError(msg) from None
    negative = math.copysign(1.0, xf) < 0
    if math.isnan(xf):
        return "nan", negative, Fraction(0)
    if math.isinf(xf):
        return "inf", negative, Fraction(0)
    return "finite", negative, Fraction(abs(xf))


@functools.lru_cache(maxsize=4096)
def _pow2(k: int) -> Fraction:
    """2^k as an exact Fraction (cached: the reference builds many powers of two)."""
    return Fraction(1 << k) if k >= 0 else Fraction(1, 1 << -k)


@functools.lru_cache(maxsize=256)
def _max_exact(fmt: FloatFormat) -> Fraction:
    return fmt.max_exact


def _floor_log2(v: Fraction) -> int:
    """The integer e with 2^e <= v < 2^(e+1), for v > 0, exactly."""
    e = v.numerator.bit_length() - v.denominator.bit_length()
    if v < _pow2(e):
        e -= 1
    return e


def _to_float(negative: bool, v: Fraction) -> float:
    """The exact rational ``(-1)^negative * v`` rounded to float64 (nearest-even, ±inf)."""
    try:
        out = float(v)  # int / int true division: correctly rounded
    except OverflowError:
        out = math.inf
    return -out if negative else out


def _round_significand(
    K: int, f: Fraction, rounding: Rounding, negative: bool, u, r, dropped: bool = True
) -> int:
    """Choose K' for |x| = (K + f) * 2^q, 0 <= f < 1: the table of docs/formats.md.

    ``dropped``: whether the destination grid is coarser than the input's at ``|x|`` (JAM sets
    the last bit exactly then)."""
    if rounding in _NEAREST_TIES:
        if f != _HALF:
            return K + 1 if f > _HALF else K
        return K + 1 if _NEAREST_TIES[rounding](K, negative) else K
    if rounding is Rounding.AWAY_FROM_ZERO:
        return K + 1 if f > 0 else K
    if rounding is Rounding.JAM:
        return K | 1 if dropped else K
    if isinstance(u, _Carry):  # caller-supplied bits: the carry rule
        if rounding is Rounding.STOCHASTIC_EQUAL:
            return K + 1 if f > 0 and u.bits >= (1 << (r - 1)) else K
        return K + 1 if math.floor(f * (1 << r)) + u.bits >= (1 << r) else K
    if rounding is Rounding.STOCHASTIC_EQUAL:
        # one fair bit: the top bit of the r-bit integer is 0
        return K + 1 if f > 0 and u < (1 << (r - 1)) else K
    if rounding is Rounding.NEAREST_EVEN:
        return K + 1 if f > _HALF or (f == _HALF and K % 2 == 1) else K
    if rounding is Rounding.NEAREST_AWAY:
        return K + 1 if f >= _HALF else K
    if rounding is Rounding.TOWARD_ZERO:
        return K
    if rounding is Rounding.UP:
        return K + 1 if f > 0 and not negative else K
    if rounding is Rounding.DOWN:
        return K + 1 if f > 0 and negative else K
    if rounding is Rounding.TO_ODD:
        return K | 1 if f > 0 else K
    # STOCHASTIC: away from zero when u < floor(f * 2^r)
    threshold = math.floor(f * (1 << r))
    return K + 1 if u < threshold else K


#: the nearest modes added with issue 16: whether a tie (f = 1/2) goes up, given (K, negative)
_NEAREST_TIES = {
    Rounding.NEAREST_ZERO: lambda K, neg: False,
    Rounding.NEAREST_ODD: lambda K, neg: K % 2 == 0,
    Rounding.NEAREST_UP: lambda K, neg: not neg,
    Rounding.NEAREST_DOWN: lambda K, neg: neg,
}


def _rounds_away_at_max(rounding: Rounding, negative: bool) -> bool:
    if rounding is Rounding.UP:
        return not negative
    if rounding is Rounding.DOWN:
        return negative
    # TOWARD_ZERO, TO_ODD and JAM never move a magnitude up past max; every other mode does
    return rounding not in (Rounding.TOWARD_ZERO, Rounding.TO_ODD, Rounding.JAM)


# ---- float formats -----------------------------------------------------------------------------


def _smallest_magnitude(fmt: FloatFormat) -> Fraction:
    """The smallest positive finite magnitude."""
    if fmt.has_zero and fmt.subnormals and fmt.mantissa_bits > 0:
        return _pow2(fmt.emin - fmt.mantissa_bits)
    return _pow2(fmt.emin)


def _smallest_value(fmt: FloatFormat, negative: bool) -> _Value:
    """'The smallest value' of the doc: zero where the format has zero, else the smallest
    magnitude (negative only for a signed format asked for a negative one)."""
    if fmt.has_zero:
        return _Value("finite", negative and fmt.has_negative_zero, Fraction(0))
    return _Value("finite", negative and fmt.signed, _smallest_magnitude(fmt))


def _zero(fmt: FloatFormat, negative: bool) -> _Value:
    return _Value("finite", negative and fmt.has_negative_zero, Fraction(0))


def _nan(fmt: FloatFormat, negative: bool, why: str) -> _Value:
    if not fmt.has_nan:
        msg = (
            f"{why}: the format {fmt.name} has no NaN to represent it; hint: pass "
            "overflow=Overflow.SATURATE or filter the input (NaN input always needs a NaN)"
        )
        raise ValueError(msg)
    return _Value("nan", negative and fmt.signed)


def _overflowed(fmt: FloatFormat, negative: bool, away: bool, overflow: Overflow) -> _Value:
    """Result of a magnitude beyond max (or an infinite input) per the Overflow table."""
    if overflow is Overflow.SATURATE or not away:
        return _Value("finite", negative, _max_exact(fmt))
    if fmt.has_inf:
        return _Value("inf", negative)
    if fmt.has_nan:
        return _Value("nan", negative and fmt.signed)
    return _Value("finite", negative, _max_exact(fmt))


def _quantize_float(
    x, fmt: FloatFormat, rounding, overflow, u, r, held_as_float32, rules=None
) -> _Value:
    if overflow is Overflow.ML_DTYPES and not held_as_float32 and rules.float64_via_float32:
        # ml_dtypes before 0.7: float64 input rounded to float32 first (nearest-even)
        v = _quantize_float(x, _FLOAT32, Rounding.NEAREST_EVEN, Overflow.OWN, None, None, False)
        x = _value_as_input(v)
        held_as_float32 = True
    kind, negative, mag = _split_input(x)

    # NaN input
    if kind == "nan":
        if fmt.has_nan:
            return _Value("nan", negative and fmt.signed)
        if overflow is Overflow.ML_DTYPES:
            # ml_dtypes' FP6/FP4 behaviour: zero with the opposite sign of the NaN
            if fmt.has_zero:
                return _zero(fmt, not negative)
            return _nan(fmt, False, "NaN input became zero, which a format without zero lacks")
        return _nan(fmt, negative, "NaN input")

    # negative input to an unsigned format (-0 only matters when the format has no zero)
    if negative and not fmt.signed and (kind != "finite" or mag != 0 or not fmt.has_zero):
        if overflow is not Overflow.SATURATE and fmt.has_nan:
            return _Value("nan", False)
        return _smallest_value(fmt, False)

    # infinite input
    if kind == "inf":
        return _overflowed(fmt, negative, True, overflow)

    # exact zero
    if mag == 0:
        if fmt.has_zero:
            return _zero(fmt, negative)
        if overflow is Overflow.SATURATE:
            return _smallest_value(fmt, negative)
        return _nan(fmt, False, "zero input")

    # a non-zero finite magnitude: |x| = (K + f) * 2^q
    m, emin = fmt.mantissa_bits, fmt.emin
    e = _floor_log2(mag)
    if (
        overflow is Overflow.ML_DTYPES
        and rules.e8m0_subnormal_up
        and not fmt.has_zero
        and held_as_float32
        and mag < _pow2(_FLOAT32_EMIN)
    ):
        # ml_dtypes' quirk before 0.7 (docs/formats.md): a float32 subnormal input into a
        # format without zero goes *up* to the next grid value, whatever the rounding mode
        rounding = Rounding.UP if not negative else Rounding.DOWN
    if not fmt.subnormals and e < emin:
        q = emin  # no subnormals: the only candidates below 2^emin are 0 and 2^emin
    else:
        q = max(e, emin) - m
    scaled = mag / _pow2(q)
    K = math.floor(scaled)
    f = scaled - K
    # the input's own grid at |x| (float32 or float64): JAM sets the last bit when q is coarser
    in_m, in_emin = (23, -126) if held_as_float32 else (52, -1022)
    dropped = q > max(e, in_emin) - in_m
    K_new = _round_significand(K, f, rounding, negative, u, r, dropped)
    result = K_new * _pow2(q)

    if result > _max_exact(fmt):
        return _overflowed(fmt, negative, _rounds_away_at_max(rounding, negative), overflow)
    if result == 0:
        if fmt.has_zero:
            return _zero(fmt, negative)
        return _smallest_value(fmt, negative)  # a non-zero magnitude rounded to 0, no zero
    return _Value("finite", negative, result)


_FLOAT32 = FloatFormat(exponent_bits=8, mantissa_bits=23, bias=127, specials=Specials.IEEE)


def _value_as_input(v: _Value):
    """A rounded value as an input of :func:`_split_input` (NaN, ±inf or an exact Fraction)."""
    if v.kind == "nan":
        return math.copysign(math.nan, -1.0 if v.negative else 1.0)
    if v.kind == "inf":
        return -math.inf if v.negative else math.inf
    if v.magnitude == 0:
        return -0.0 if v.negative else 0.0
    return -v.magnitude if v.negative else v.magnitude


def _ml_dtypes_rules(rules):
    if rules is None:
        return installed_ml_dtypes_rules()
    if not isinstance(rules, MlDtypesRules):
        msg = (
            f"ml_dtypes_rules must be a qemu_arrays.formats.ml_dtypes_rules.MlDtypesRules (e.g. BEFORE_0_7, "
            f"SINCE_0_7) or None for the installed ml_dtypes, got {rules!r}"
        )
        raise TypeError(msg)
    return rules


def _encode_float(v: _Value, fmt: FloatFormat) -> int:
    e, m = fmt.exponent_bits, fmt.mantissa_bits
    sign_bit = (1 << (e + m)) if (v.negative and fmt.signed) else 0
    all_ones_field = (1 << e) - 1
    all_ones_magnitude = (1 << (e + m)) - 1
    if v.kind == "nan":
        if fmt.specials in (Specials.FNUZ, Specials.P3109):
            return 1 << (e + m)
        if fmt.specials is Specials.IEEE:
            return sign_bit | (all_ones_field << m) | (1 << (m - 1))
        return sign_bit | all_ones_magnitude  # FN
    if v.kind == "inf":
        if fmt.specials is Specials.IEEE:
            return sign_bit | (all_ones_field << m)
        return sign_bit | all_ones_magnitude  # P3109
    mag = v.magnitude
    if mag == 0:
        return sign_bit if fmt.has_negative_zero else 0
    if fmt.subnormals and mag < _pow2(fmt.emin):
        ef = 0
        ff = mag / _pow2(fmt.emin - m)
    else:
        ex = _floor_log2(mag)
        ef = ex + fmt.bias
        ff = mag / _pow2(ex - m) - (1 << m)
    if ff.denominator != 1 or not 0 <= ef <= all_ones_field or not 0 <= ff < (1 << m):
        msg = f"internal error: {mag} is not a value of {fmt!r}"
        raise RuntimeError(msg)
    return sign_bit | (ef << m) | int(ff)


def decode_exact(code, fmt) -> Fraction | float:
    """The exact value of a code: a Fraction for finite codes (zero as ``Fraction(0)``, whatever
    its sign), ``±inf`` or ``nan`` (floats) for the special codes."""
    fmt = _as_format(fmt)
    if not isinstance(fmt, FloatFormat):
        msg = f"decode_exact takes a FloatFormat, got {fmt!r}; hint: an integer code is k itself"
        raise TypeError(msg)
    return decoding.decode_exact(_as_int("code", code), fmt)


def decode_code(code, fmt) -> float:
    """The value of ``code`` in the float format ``fmt`` as a float64: exact for every format
    whose values float64 holds, ``±0.0`` with the code's sign, ``±inf``, ``nan``."""
    fmt = _as_format(fmt)
    if not isinstance(fmt, FloatFormat):
        msg = f"decode_code takes a FloatFormat, got {fmt!r}; hint: an integer code is k itself"
        raise TypeError(msg)
    return decoding.decode_float(_as_int("code", code), fmt)


# ---- integer formats ---------------------------------------------------------------------------


def _check_scale(scale):
    if scale is None:
        msg = "scale is required for integer formats: value = clamp(round(x / scale)) * scale"
        raise ValueError(msg)
    if isinstance(scale, bool):
        msg = f"scale must be a positive finite number, got the bool {scale!r}"
        raise TypeError(msg)
    try:
        s = Fraction(scale) if isinstance(scale, (int, Fraction)) else Fraction(float(scale))
    except (TypeError, ValueError, OverflowError):
        msg = f"scale must be a positive finite number, got {scale!r}"
        raise ValueError(msg) from None
    if s <= 0:
        msg = f"scale must be a positive finite number, got {scale!r}; hint: use abs(scale)"
        raise ValueError(msg)
    return s


def _quantize_int(x, fmt: IntFormat, rounding, u, r, scale) -> int:
    """The integer k of docs/formats.md: float64 quotient x / s, rounded, clamped."""
    s = _check_scale(scale)
    kind, negative, mag = _split_input(x)
    if kind == "nan":
        msg = f"NaN input: the integer format {fmt.name} has no NaN; hint: filter the input"
        raise ValueError(msg)
    if kind == "inf":
        return fmt.min if negative else fmt.max
    quotient = _to_float(negative, mag / s)  # the float64 quotient, one correct rounding
    if math.isinf(quotient):
        return fmt.min if negative else fmt.max
    qmag = Fraction(abs(quotient))
    K = math.floor(qmag)
    # JAM: the float64 quotient's grid is finer than the integers for 0 < |quotient| < 2^52
    dropped = 0 < qmag < (1 << 52)
    k_mag = _round_significand(K, qmag - K, rounding, negative, u, r, dropped)
    k = -k_mag if negative else k_mag
    return min(max(k, fmt.min), fmt.max)


# ---- public codec ------------------------------------------------------------------------------


_HELD_AS_FLOAT32 = ("float16", "bfloat16", "float32")


@functools.lru_cache(maxsize=64)
def _held_as_float32(input_dtype) -> bool:
    """Whether the input type is one the kernels read as float32 (16-bit types widen exactly)."""
    if input_dtype is None:
        return False
    name = input_dtype if isinstance(input_dtype, str) else getattr(input_dtype, "name", None)
    if name is None:
        name = getattr(input_dtype, "__name__", None)
    allowed = (*_HELD_AS_FLOAT32, "float64")
    if name not in allowed:
        msg = f"input_dtype must be one of {allowed} (or None for float64), got {input_dtype!r}"
        raise ValueError(msg)
    return name in _HELD_AS_FLOAT32


def _prepare(fmt, rounding, overflow, u, r, scale, rbits=None):
    fmt = _as_format(fmt)
    rounding = _as_enum("rounding", rounding, Rounding)
    overflow = _as_enum("overflow", overflow, Overflow)
    if rbits is not None and not rounding.stochastic:
        msg = (
            f"rbits applies to the stochastic modes only, got rounding={rounding!r}; hint: "
            "rounding=Rounding.STOCHASTIC"
        )
        raise ValueError(msg)
    if rbits is not None:
        u, r = _check_rbits(rbits, u, r)
    elif rounding.stochastic:
        u, r = _check_random(u, r)
    if isinstance(fmt, FloatFormat) and scale is not None:
        msg = (
            f"scale applies to integer formats, got scale={scale!r} with {fmt.name}; hint: "
            "divide by the scale before quantizing to a float format"
        )
        raise ValueError(msg)
    return fmt, rounding, overflow, u, r


def quantize_value(
    x,
    fmt,
    rounding=Rounding.NEAREST_EVEN,
    overflow=Overflow.OWN,
    *,
    u=None,
    r=None,
    rbits=None,
    scale=None,
    input_dtype=None,
    ml_dtypes_rules=None,
) -> float:
    """``x`` rounded to ``fmt`` exactly, returned as a float64 (exact when float64 holds it).

    ``x`` is a Python float (or anything ``float()`` converts exactly), an int or a Fraction.
    ``Rounding.STOCHASTIC`` needs ``u``, an ``r``-bit random integer, rounding away when
    ``u < floor(f 2^r)`` (the counter-based generator's rule); or ``rbits``, caller-supplied bits
    of which the low ``r`` are used, rounding away when ``floor(f 2^r) + rbits >= 2^r`` (the
    carry rule of PTX ``cvt.rs`` and gfloat's ``StochasticFastest``).
    ``Rounding.STOCHASTIC_EQUAL`` rounds an inexact value away when ``u``'s top bit is 0, or
    ``rbits``' bit ``r - 1`` is 1. Integer formats need
    ``scale`` and return ``k * scale``. ``input_dtype`` (a name or dtype: "float16", "bfloat16",
    "float32", "float64") says what type held ``x``; only ``Overflow.ML_DTYPES`` uses it, with
    ``ml_dtypes_rules`` (:mod:`qemu_arrays.formats.ml_dtypes_rules`; ``None``: those of the installed
    ml_dtypes): whether float64 input is rounded to float32 first, and whether float32
    subnormals go up into formats without zero. ``None`` means float64.
    """
    fmt, rounding, overflow, u, r = _prepare(fmt, rounding, overflow, u, r, scale, rbits)
    if isinstance(fmt, IntFormat):
        k = _quantize_int(x, fmt, rounding, u, r, scale)
        return _to_float(k < 0, abs(k) * _check_scale(scale))
    held = _held_as_float32(input_dtype)
    rules = _ml_dtypes_rules(ml_dtypes_rules) if overflow is Overflow.ML_DTYPES else None
    v = _quantize_float(x, fmt, rounding, overflow, u, r, held, rules)
    if v.kind == "nan":
        return math.copysign(math.nan, -1.0 if v.negative else 1.0)
    if v.kind == "inf":
        return -math.inf if v.negative else math.inf
    if v.magnitude == 0:
        return -0.0 if v.negative else 0.0
    return _to_float(v.negative, v.magnitude)


def encode_value(
    x,
    fmt,
    rounding=Rounding.NEAREST_EVEN,
    overflow=Overflow.OWN,
    *,
    u=None,
    r=None,
    rbits=None,
    scale=None,
    input_dtype=None,
    ml_dtypes_rules=None,
) -> int:
    """The code of ``x`` rounded to ``fmt``: the format's bit pattern as a non-negative int.

    NaN results get the canonical NaN code of ``docs/formats.md``. Integer formats return the
    ``bits``-bit two's-complement pattern of ``k`` (``k`` itself when unsigned). Arguments as
    :func:`quantize_value`.
    """
    fmt, rounding, overflow, u, r = _prepare(fmt, rounding, overflow, u, r, scale, rbits)
    if isinstance(fmt, IntFormat):
        k = _quantize_int(x, fmt, rounding, u, r, scale)
        return k & ((1 << fmt.bits) - 1)
    held = _held_as_float32(input_dtype)
    rules = _ml_dtypes_rules(ml_dtypes_rules) if overflow is Overflow.ML_DTYPES else None
    return _encode_float(_quantize_float(x, fmt, rounding, overflow, u, r, held, rules), fmt)


# ---- the counter-based random bits -------------------------------------------------------------


def mix32(x: int) -> int:
    """Wellons' lowbias32 hash of a 32-bit word (a bijection of [0, 2^32))."""
    x &= _M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    x ^= x >> 16
    return x


def key(seed, stream=0) -> tuple[int, int, int]:
    """The three key words (k0, k1, k2) of ``(seed mod 2^64, stream mod 2^32)``."""
    seed = _as_int("seed", seed) % (1 << 64)
    stream = _as_int("stream", stream) % (1 << 32)
    k0 = mix32((seed & _M32) ^ 0x243F6A88)
    k1 = mix32((seed >> 32) ^ k0 ^ 0x85A308D3)
    k2 = mix32(stream ^ k1 ^ 0x13198A2E)
    return k0, k1, k2


def random_word(seed, stream, index, j) -> int:
    """The 32-bit word ``word(index, j)`` (j = 0 or 1) of the generator keyed by seed, stream."""
    k0, k1, k2 = key(seed, stream)
    index = _as_int("index", index) % (1 << 64)
    j = _as_int("j", j)
    if j not in (0, 1):
        msg = f"j must be 0 or 1, got {j}"
        raise ValueError(msg)
    h = mix32((index & _M32) ^ k2)
    h = mix32(h ^ (((index >> 32) + j * 0x9E3779B9) & _M32) ^ k1)
    return mix32((h + k0) & _M32)


def random_bits(seed, stream, index, r) -> int:
    """The element's ``r``-bit random integer u (1 <= r <= 64), as in docs/formats.md."""
    r = _as_int("r", r)
    if not 1 <= r <= 64:
        msg = f"r (random bits) must be in [1, 64], got {r}; hint: 32 for float32 input"
        raise ValueError(msg)
    w0 = random_word(seed, stream, index, 0)
    if r <= 32:
        return w0 >> (32 - r)
    w1 = random_word(seed, stream, index, 1)
    return ((w0 << 32) | w1) >> (64 - r)


# ---- block formats (docs/blocks.md) -----------------------------------------------------------


def _round_int_up_or_even(v: Fraction, up: bool) -> int:
    k = math.floor(v)
    f = v - k
    if up:
        return k + (f > 0)
    return k + (f > _HALF or (f == _HALF and k % 2 == 1))


def shared_exponent(amax, fmt) -> int:
    """The power-of-two block-scale exponent of an MX block whose largest magnitude is ``amax``
    (a positive finite number), by the format's :class:`~qemu_arrays.formats.enums.ScaleRule`,
    before the clamp to E8M0's range."""
    amax = Fraction(amax)
    fl = _floor_log2(amax)
    emax = fmt.element_emax
    rule = fmt.scale_rule
    if rule is ScaleRule.FLOOR:
        return fl - emax
    if rule is ScaleRule.RCEIL:
        e = fl - emax
        return e + (amax > Fraction(fmt.element_max) * _pow2(e))
    if rule is ScaleRule.CEIL_POW2:
        return fl + (amax != _pow2(fl)) - emax
    if rule in (ScaleRule.RFLOOR, ScaleRule.RHALF_UP):
        q = amax / Fraction(fmt.element_max)
        k = _floor_log2(q)
        if rule is ScaleRule.RFLOOR:
            return k
        return k + (q >= _pow2(k) * Fraction(3, 2))
    if rule not in (ScaleRule.CEIL, ScaleRule.EVEN):
        msg = f"no scale rule {rule!r}; allowed: {', '.join(r.name for r in ScaleRule)}"
        raise ValueError(msg)
    el = fmt.element
    p = el.mantissa_bits + 1 if isinstance(el, FloatFormat) else el.max.bit_length()
    K = _round_int_up_or_even(amax / _pow2(fl - p + 1), up=rule is ScaleRule.CEIL)
    return fl - emax + (1 << p == K)


def _element_kw(rounding, u, r):
    return {"u": u, "r": r} if rounding.stochastic else {}


def quantize_mx_block(values, fmt, rounding=Rounding.NEAREST_EVEN, us=None, r=None):
    """One MX block: ``(values, scale exponent)``, the exponent None for a NaN scale.

    ``values`` are the block's inputs (floats), ``us`` their ``r``-bit random integers under
    ``Rounding.STOCHASTIC``. A block with a NaN or an infinity gets a NaN scale (every value
    NaN); the exponent is clamped below at -127 and a block above 2^127 gets a NaN scale.
    """
    us = [None] * len(values) if us is None else us
    if any(not math.isfinite(v) for v in values):
        return [math.nan] * len(values), None
    amax = max(Fraction(abs(v)) for v in values)
    e = -127 if amax == 0 else max(shared_exponent(amax, fmt), -127)
    if e > 127:
        return [math.nan] * len(values), None
    two_e = _pow2(e)
    out = []
    for v, u in zip(values, us):
        kw = _element_kw(rounding, u, r)
        if isinstance(fmt.element, FloatFormat):
            xv = v if v == 0 else Fraction(v) / two_e  # a Fraction has no -0
            q = quantize_value(xv, fmt.element, rounding, Overflow.SATURATE, **kw)
            out.append(math.copysign(0.0, q) if q == 0 else float(Fraction(q) * two_e))
        else:
            scale = Fraction(1, 1 << fmt.element_fraction_bits)
            q = quantize_value(Fraction(v) / two_e, fmt.element, rounding, scale=scale, **kw)
            out.append(float(Fraction(q) * two_e))
    return out, e


def quantize_nv_block(values, fmt, tensor_scale, rounding=Rounding.NEAREST_EVEN, us=None, r=None):
    """One NVFP4 block: ``s_b = E4M3(amax / (6 * ts))``, ``d = f32(s_b * ts)``, each element
    ``E2M1(f32(x / d))`` times ``d`` in float32 (docs/blocks.md). A block with a NaN or an
    infinity is all NaN."""
    us = [None] * len(values) if us is None else us
    if any(not math.isfinite(v) for v in values):
        return [math.nan] * len(values)
    amax = max(Fraction(abs(v)) for v in values)
    ts = Fraction(float(tensor_scale))
    sb = Fraction(
        quantize_value(
            amax / (Fraction(fmt.element.max) * ts), fmt.scale, overflow=Overflow.SATURATE
        )
    )
    d = Fraction(quantize_value(sb * ts, _FLOAT32))
    out = []
    for v, u in zip(values, us):
        if d == 0:  # the block scale rounded to zero: a zero of the input's sign (E2M1 has -0)
            neg = fmt.element.has_negative_zero and math.copysign(1.0, v) < 0
            out.append(-0.0 if neg else 0.0)
            continue
        q32 = v if v == 0 else quantize_value(Fraction(v) / d, _FLOAT32)  # float32 quotient
        p = quantize_value(
            q32, fmt.element, rounding, Overflow.SATURATE, **_element_kw(rounding, u, r)
        )
        out.append(math.copysign(0.0, p) if p == 0 else quantize_value(Fraction(p) * d, _FLOAT32))
    return out


def quantize_blocks(
    rows, fmt, rounding=Rounding.NEAREST_EVEN, seed=0, tensor_scale=None, r=32, rbits=None
):
    """Block formats, block by block along the last axis of a 2-D array (a list of rows or any
    2-D array-like of floats), as float64 values in nested lists.

    The stochastic modes draw element ``i * n + j``'s bits from ``(seed, stream 0)``, ``r``
    bits wide, or take the caller's ``rbits[i][j]`` (its low ``r`` bits ``b``: the carry rule
    ``floor(f 2^r) + b >= 2^r``, i.e. ``u = 2^r - 1 - b``); NVFP4 needs ``tensor_scale``.
    """
    rows = [[float(v) for v in row] for row in rows]
    bs = fmt.block_size
    mask = (1 << r) - 1
    out = []
    for i, row in enumerate(rows):
        n = len(row)
        res_row = []
        for b0 in range(0, n, bs):
            vals = row[b0 : b0 + bs]
            us = None
            idx = range(b0, b0 + len(vals))
            if rounding.stochastic and rbits is not None:
                us = [mask - (int(rbits[i][j]) & mask) for j in idx]
            elif rounding.stochastic:
                us = [random_bits(seed, 0, i * n + j, r) for j in idx]
            if fmt.tensor_scale:
                res_row += quantize_nv_block(vals, fmt, tensor_scale, rounding, us, r)
            else:
                res_row += quantize_mx_block(vals, fmt, rounding, us, r)[0]
        out.append(res_row)
    return out


# ---- dot products with a rounded accumulator (docs/matmul.md) ---------------------------------


@dataclass(frozen=True)
class _Num:
    """An exact value of the dot-product reference: "nan", "inf" or "finite" (a signed zero
    is a finite value with ``magnitude == 0``)."""

    kind: str
    negative: bool = False
    magnitude: Fraction = Fraction(0)

    @property
    def value(self) -> Fraction:
        return -self.magnitude if self.negative else self.magnitude


def _num(x) -> _Num:
    """An input float (or Fraction) as an exact value; a Fraction zero is +0."""
    kind, negative, mag = _split_input(x)
    if kind == "nan":
        return _Num("nan")
    return _Num(kind, negative, mag)


def _from_value(v: Fraction) -> _Num:
    return _Num("finite", v < 0, abs(v))


def _mul(x: _Num, y: _Num) -> _Num:
    if x.kind == "nan" or y.kind == "nan":
        return _Num("nan")
    neg = x.negative != y.negative
    if x.kind == "inf" or y.kind == "inf":
        if (x.kind == "finite" and x.magnitude == 0) or (y.kind == "finite" and y.magnitude == 0):
            return _Num("nan")  # 0 * inf
        return _Num("inf", neg)
    return _Num("finite", neg, x.magnitude * y.magnitude)


def _add(x: _Num, y: _Num, rounding: Rounding) -> _Num:
    """The exact sum, IEEE 754's special cases and zero signs (an exact zero sum is -0 only
    under DOWN, or when both operands are -0)."""
    if x.kind == "nan" or y.kind == "nan":
        return _Num("nan")
    if x.kind == "inf" and y.kind == "inf":
        return _Num("inf", x.negative) if x.negative == y.negative else _Num("nan")
    if x.kind == "inf":
        return x
    if y.kind == "inf":
        return y
    v = x.value + y.value
    if v != 0:
        return _from_value(v)
    if x.magnitude == 0 and y.magnitude == 0 and x.negative == y.negative:
        return _Num("finite", x.negative)
    return _Num("finite", rounding is Rounding.DOWN)


def _round_num(x: _Num, fmt, rounding: Rounding, u, r) -> _Num:
    """``x`` rounded into ``fmt`` (the format's own overflow policy); NaN into a format without
    NaN raises ``ValueError`` (as quantize does)."""
    if x.kind == "nan":
        q = quantize_value(math.nan, fmt, rounding, u=u, r=r)
    elif x.kind == "inf":
        q = quantize_value(-math.inf if x.negative else math.inf, fmt, rounding, u=u, r=r)
    elif x.magnitude == 0:
        q = quantize_value(-0.0 if x.negative else 0.0, fmt, rounding, u=u, r=r)
    else:
        q = quantize_value(x.value, fmt, rounding, u=u, r=r)
    return _num(q)


def _as_float(x: _Num) -> float:
    if x.kind == "nan":
        return math.nan
    if x.kind == "inf":
        return -math.inf if x.negative else math.inf
    if x.magnitude == 0:
        return -0.0 if x.negative else 0.0
    return _to_float(x.negative, x.magnitude)


def _exact_sum(terms) -> _Num:
    """The exact sum of values as a rational (a zero sum is +0), NaN and infinities as IEEE."""
    kinds = [t for t in terms if t.kind != "finite"]
    if any(t.kind == "nan" for t in kinds):
        return _Num("nan")
    signs = {t.negative for t in kinds}
    if len(signs) == 2:
        return _Num("nan")
    if signs:
        return _Num("inf", signs.pop())
    return _from_value(sum((t.value for t in terms), Fraction(0)))


ORDERS = ("sequential", "pairwise", "blocked")


def dot_reference(
    a,
    b,
    *,
    accumulator="float32",
    rounding=Rounding.NEAREST_EVEN,
    order="sequential",
    block_k=None,
    promote_to="float32",
    fma=True,
    out_format="float32",
    block_scales=None,
    seed=None,
    stream=0,
    element=0,
    r=32,
) -> float:
    """One emulated dot product ``sum(a[k] * b[k])``, exactly as ``docs/matmul.md`` defines it.

    Products are exact. ``accumulator`` (a float format, or None for the exact sum) receives
    every addition, rounded with ``rounding``; ``fma=False`` rounds each product into it first.
    ``order``: "sequential" (``acc = R(acc + p_k)`` from +0), "pairwise" (``S(lo, hi) =
    R(S(lo, mid) + S(mid, hi))``, ``mid = lo + (hi - lo) // 2``) or "blocked" (each run of
    ``block_k`` products summed sequentially from +0 in the accumulator, times
    ``block_scales[t]`` when given, then added into ``promote_to`` with one rounding). Without
    an accumulator and not blocked, the exact sum is rounded once into ``out_format``.

    Stochastic rounding: the ``r``-bit integer of rounding event ``t`` of output element
    ``element`` is ``random_bits(seed, stream, element * 2**32 + t, r)``;
    the events are numbered as ``docs/matmul.md`` says. Returns the result as a float64.
    """
    if len(a) != len(b):
        msg = f"a and b must have the same length, got {len(a)} and {len(b)}"
        raise ValueError(msg)
    rounding = _as_enum("rounding", rounding, Rounding)
    if order not in ORDERS:
        msg = f"order must be one of {ORDERS}, got {order!r}"
        raise ValueError(msg)
    acc_fmt = None if accumulator is None else _as_format(accumulator)
    K = len(a)
    prods = [_mul(_num(x), _num(y)) for x, y in zip(a, b)]

    def u_of(t):
        if rounding is not Rounding.STOCHASTIC:
            return None
        return random_bits(seed, stream, (element << 32) | t, r)

    def rnd(x, fmt, t):
        return _round_num(x, fmt, rounding, u_of(t), r)

    zero = _Num("finite")
    if order == "blocked":
        if block_k is None or block_k < 1:
            msg = f"order='blocked' needs block_k >= 1, got {block_k!r}"
            raise ValueError(msg)
        pfmt = _as_format(promote_to)
        nb = -(-K // block_k)
        n_add = 0 if acc_fmt is None else (K if fma else 2 * K)
        total = zero
        for t in range(nb):
            ks = range(t * block_k, min(K, (t + 1) * block_k))
            if acc_fmt is None:
                part = _exact_sum([prods[k] for k in ks])
            else:
                part = zero
                for k in ks:
                    if fma:
                        part = rnd(_add(part, prods[k], rounding), acc_fmt, k)
                    else:
                        pk = rnd(prods[k], acc_fmt, 2 * k)
                        part = rnd(_add(part, pk, rounding), acc_fmt, 2 * k + 1)
            if block_scales is not None:
                part = _mul(part, _num(block_scales[t]))
            total = rnd(_add(total, part, rounding), pfmt, n_add + t)
        return _as_float(total)
    if block_scales is not None:
        msg = "block_scales apply to order='blocked'"
        raise ValueError(msg)
    if acc_fmt is None:
        return _as_float(_round_num(_exact_sum(prods), _as_format(out_format), rounding,
                                    u_of(0), r))  # fmt: skip
    if order == "sequential":
        acc = zero
        for k, p in enumerate(prods):
            if fma:
                acc = rnd(_add(acc, p, rounding), acc_fmt, k)
            else:
                acc = rnd(_add(acc, rnd(p, acc_fmt, 2 * k), rounding), acc_fmt, 2 * k + 1)
        return _as_float(acc)
    # pairwise: nodes numbered in post-order (left subtree, right subtree, node)
    if K == 0:
        return 0.0
    counter = [0]

    def node(lo, hi, root):
        if hi - lo == 1:
            t = counter[0]
            counter[0] += 1
            return rnd(prods[lo], acc_fmt, t) if (not fma or root) else prods[lo]
        mid = lo + (hi - lo) // 2
        left = node(lo, mid, False)
        right = node(mid, hi, False)
        t = counter[0]
        counter[0] += 1
        return rnd(_add(left, right, rounding), acc_fmt, t)

    return _as_float(node(0, K, True))


def _nominal_exponent(v: Fraction, emin: int) -> int:
    return max(_floor_log2(abs(v)), emin)


def fused_dot_reference(
    a,
    b,
    c=0.0,
    *,
    emin_a,
    emin_b,
    group,
    frac_bits,
    out_precision=24,
    scale_exps=None,
) -> float:
    """A chain of tensor-core fused steps (``docs/matmul.md``, "Hardware models"): for each
    group of ``group`` products in k order, the products (exact, times ``2**scale_exps[g]``
    when given) and the running value ``c`` are truncated (magnitude) onto the grid
    ``2**(Emax - frac_bits)`` and added exactly; ``Emax`` is the largest *nominal* exponent
    among the non-zero terms (a product's is ``E(a) + E(b)`` (+ the scale exponents), with
    ``E(x) = max(floor(log2 |x|), emin_x)``; the running value's with ``emin`` -126). The sum
    is rounded toward zero to ``out_precision`` significand bits on the binary32 grid
    (subnormals kept); ``2**128`` or more is ±inf, an exact zero +0. NaN inputs, ``0 * inf``
    and opposite infinities give NaN, another infinity gives that infinity.
    """
    if len(a) != len(b):
        msg = f"a and b must have the same length, got {len(a)} and {len(b)}"
        raise ValueError(msg)
    out = FloatFormat(exponent_bits=8, mantissa_bits=out_precision - 1)
    acc = _num(c)
    for g, g0 in enumerate(range(0, len(a), group)):
        xs = [_num(x) for x in a[g0 : g0 + group]]
        ys = [_num(y) for y in b[g0 : g0 + group]]
        prods = [_mul(x, y) for x, y in zip(xs, ys)]
        if scale_exps is not None and scale_exps[g] is None:  # a NaN block scale
            acc = _Num("nan")
            continue
        special = _exact_sum([*prods, acc])
        if special.kind != "finite" or acc.kind != "finite":
            acc = special
            continue
        se = 0 if scale_exps is None else scale_exps[g]
        terms = [
            (p.value * _pow2(se), _nominal_exponent(x.value, emin_a)
             + _nominal_exponent(y.value, emin_b) + se)
            for p, x, y in zip(prods, xs, ys) if p.magnitude != 0
        ]  # fmt: skip
        if acc.magnitude != 0:
            terms.append((acc.value, _nominal_exponent(acc.value, -126)))
        if not terms:
            acc = _Num("finite")
            continue
        emax = max(e for _, e in terms)
        grid = _pow2(emax - frac_bits)
        S = 0
        for v, _ in terms:
            t = math.floor(abs(v) / grid)
            S += -t if v < 0 else t
        V = S * grid
        if abs(V) >= _pow2(128):
            acc = _Num("inf", V < 0)
            continue
        acc = _num(quantize_value(V, out, Rounding.TOWARD_ZERO))
        if acc.magnitude == 0:
            acc = _Num("finite")  # +0
    return _as_float(acc)
