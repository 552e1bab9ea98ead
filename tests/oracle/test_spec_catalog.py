"""Format descriptors and the catalogue: properties, derived values checked through behaviour,
errors, and the P3109 factory."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from qemu_arrays.formats.catalog import ML_DTYPES_NAMES, get_format, list_formats, minifloat, p3109
from qemu_arrays.formats.reference import decode_code, decode_exact, encode_value, quantize_value
from qemu_arrays.formats.spec import FloatFormat, IntFormat, Overflow, Rounding, Specials

# canonical names only (aliases such as "half" and "e8m0" would repeat a format)
FLOAT_NAMES = tuple(
    n for n in list_formats() if isinstance(get_format(n), FloatFormat) and get_format(n).name == n
)
INT_NAMES = tuple(
    n for n in list_formats() if isinstance(get_format(n), IntFormat) and get_format(n).name == n
)


# ---- descriptor properties -----------------------------------------------------------------


def test_descriptors_are_frozen():
    fmt = get_format("float8_e4m3fn")
    with pytest.raises(dataclasses.FrozenInstanceError):
        fmt.bias = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_format("int8").bits = 4


def test_descriptors_are_hashable_and_equal_by_value_ignoring_name():
    a = FloatFormat(exponent_bits=4, mantissa_bits=3, specials=Specials.FN, name="mine")
    b = get_format("float8_e4m3fn")
    assert a == b
    assert hash(a) == hash(b)
    assert {a: 1}[b] == 1
    assert a.name == "mine"
    assert b.name == "float8_e4m3fn"
    assert a != get_format("float8_e4m3")
    assert IntFormat(bits=8, name="x") == get_format("int8")
    assert hash(IntFormat(bits=8)) == hash(get_format("int8"))


def test_descriptors_are_keyword_only():
    with pytest.raises(TypeError):
        FloatFormat(4, 3)
    with pytest.raises(TypeError):
        IntFormat(8)


def test_default_bias_is_ieee():
    assert FloatFormat(exponent_bits=5, mantissa_bits=2).bias == 15
    assert FloatFormat(exponent_bits=4, mantissa_bits=3, bias=7) == FloatFormat(
        exponent_bits=4, mantissa_bits=3
    )


# ---- finfo-like values, checked through behaviour ------------------------------------------


def _finite_codes(fmt):
    return [c for c in range(1 << fmt.bits) if not isinstance(decode_exact(c, fmt), float)]


@pytest.mark.parametrize("name", [n for n in FLOAT_NAMES if get_format(n).bits <= 8])
def test_max_and_smallest_are_the_extreme_codes(name):
    fmt = get_format(name)
    values = [decode_code(c, fmt) for c in _finite_codes(fmt)]
    assert max(values) == fmt.max
    positive = [v for v in values if v > 0]
    assert min(positive) == fmt.smallest_subnormal
    normals = [v for v in positive if v >= fmt.smallest_normal]
    assert min(normals) == fmt.smallest_normal
    assert math.log2(fmt.smallest_normal) == fmt.minexp
    # eps: the gap between 1 and the next value (1 is representable in every catalogue format)
    assert 1.0 in values
    above_one = min(v for v in values if v > 1.0)
    assert above_one - 1.0 == fmt.eps
    # maxexp: 2**maxexp is past the largest finite value, 2**(maxexp - 1) is not
    assert math.ldexp(1.0, fmt.maxexp - 1) <= fmt.max < math.ldexp(1.0, fmt.maxexp)


@pytest.mark.parametrize("name", FLOAT_NAMES)
def test_max_rounds_to_itself_and_the_next_grid_point_overflows(name):
    fmt = get_format(name)
    mx = fmt.max
    assert quantize_value(mx, fmt) == mx
    if fmt.signed:
        assert quantize_value(-mx, fmt) == -mx
    nxt = fmt.max_exact + Fraction(2) ** (fmt.emax - fmt.mantissa_bits)  # exact, even past float64
    got = quantize_value(nxt, fmt)
    if fmt.has_inf:
        assert got == math.inf
    elif fmt.has_nan:
        assert math.isnan(got)
    else:
        assert got == mx
    # every policy and mode that does not round away at max gives max
    assert quantize_value(nxt, fmt, overflow=Overflow.SATURATE) == mx
    assert quantize_value(nxt, fmt, Rounding.TOWARD_ZERO) == mx
    assert quantize_value(nxt, fmt, Rounding.DOWN) == mx


@pytest.mark.parametrize("name", [n for n in FLOAT_NAMES if get_format(n).has_zero])
def test_half_the_smallest_subnormal_rounds_to_zero_under_nearest_even(name):
    fmt = get_format(name)
    tiny = fmt.smallest_subnormal
    half = Fraction(tiny) / 2  # exact even where float64 cannot hold it
    assert quantize_value(tiny, fmt) == tiny
    assert quantize_value(half, fmt) == 0.0
    assert quantize_value(half, fmt, Rounding.NEAREST_AWAY) == tiny
    assert quantize_value(half, fmt, Rounding.UP) == tiny
    if fmt.signed:
        assert quantize_value(-half, fmt, Rounding.UP) == 0.0
    else:  # an unsigned format holds no negative value: NaN, as ml_dtypes' float8_e5m3fnu
        assert math.isnan(quantize_value(-half, fmt, Rounding.UP))


@pytest.mark.parametrize("name", ML_DTYPES_NAMES)
@pytest.mark.parametrize("attr", ["max", "smallest_normal", "smallest_subnormal", "eps"])
def test_finfo_agrees_with_ml_dtypes(name, attr):
    fmt = get_format(name)
    fi = ml_dtypes.finfo(getattr(ml_dtypes, name))
    assert getattr(fmt, attr) == float(getattr(fi, attr))


@pytest.mark.parametrize("name", ML_DTYPES_NAMES)
def test_exponent_range_agrees_with_ml_dtypes(name):
    fmt = get_format(name)
    fi = ml_dtypes.finfo(getattr(ml_dtypes, name))
    assert (fmt.maxexp, fmt.minexp) == (fi.maxexp, fi.minexp)
    assert fmt.mantissa_bits == fi.nmant
    assert fmt.exponent_bits == fi.nexp


@pytest.mark.parametrize(
    ("name", "np_type"), [("float16", np.float16), ("float32", np.float32), ("float64", np.float64)]
)
def test_finfo_agrees_with_numpy(name, np_type):
    fmt = get_format(name)
    fi = np.finfo(np_type)
    for attr in ("max", "smallest_normal", "smallest_subnormal", "eps"):
        assert getattr(fmt, attr) == float(getattr(fi, attr)), attr
    assert (fmt.maxexp, fmt.minexp) == (fi.maxexp, fi.minexp)
    assert fmt.bits == 8 * np.dtype(np_type).itemsize


def test_tf32_values():
    fmt = get_format("tf32")
    assert fmt.bits == 19
    assert fmt.max == (2 - 2.0**-10) * 2.0**127
    assert fmt.eps == 2.0**-10
    assert fmt.smallest_subnormal == 2.0**-136


@pytest.mark.parametrize("name", INT_NAMES)
def test_int_format_ranges(name):
    fmt = get_format(name)
    n = fmt.bits
    if not fmt.signed:
        assert (fmt.min, fmt.max) == (0, 2**n - 1)
    elif fmt.narrow_range:
        assert (fmt.min, fmt.max) == (-(2 ** (n - 1)) + 1, 2 ** (n - 1) - 1)
    else:
        assert (fmt.min, fmt.max) == (-(2 ** (n - 1)), 2 ** (n - 1) - 1)
    vals = fmt.values()
    assert vals[0] == fmt.min
    assert vals[-1] == fmt.max
    assert np.all(np.diff(vals) == 1)
    # clamping through the reference: far beyond the range gives the ends
    assert quantize_value(1e9, fmt, scale=1.0) == fmt.max
    assert quantize_value(-1e9, fmt, scale=1.0) == fmt.min


# ---- values() -------------------------------------------------------------------------------


def _expected_count(fmt):
    """Distinct finite values, counted from the layout (independently of the decoder)."""
    e, m = fmt.exponent_bits, fmt.mantissa_bits
    signs = 2 if fmt.signed else 1
    sp = fmt.specials
    if sp is Specials.IEEE:
        special = signs * (1 << m)  # the whole all-ones exponent field
    elif sp is Specials.FN or sp is Specials.P3109:
        special = signs + (1 if sp is Specials.P3109 else 0)  # all-ones magnitudes (+ NaN)
    elif sp is Specials.FNUZ:
        special = 1
    else:
        special = 0
    finite_codes = (1 << fmt.bits) - special
    if not fmt.has_zero:
        return finite_codes
    zero_codes_per_sign = 1 if fmt.subnormals else (1 << m)
    zero_codes = signs * zero_codes_per_sign
    if sp in (Specials.FNUZ, Specials.P3109):
        zero_codes -= 1  # the negative-zero code is the NaN, already counted
    del e
    return finite_codes - zero_codes + 1


CUSTOM = (
    minifloat(3, 2, subnormals=False, name="e3m2_nosub"),
    minifloat(3, 2, signed=False, specials=Specials.FN, name="e3m2_ufn"),
    FloatFormat(exponent_bits=4, mantissa_bits=0, specials=Specials.IEEE, name="e4m0"),
    FloatFormat(
        exponent_bits=3,
        mantissa_bits=1,
        signed=False,
        subnormals=False,
        has_zero=False,
        specials=Specials.FN,
        name="e3m1_nozero",
    ),
    p3109(8, 3),
    p3109(6, 2),
    p3109(8, 4, extended=False),
)


@pytest.mark.parametrize(
    "fmt",
    [get_format(n) for n in FLOAT_NAMES if get_format(n).bits <= 16] + list(CUSTOM),
    ids=lambda f: f.name,
)
def test_values_length_sorted_and_extremes(fmt):
    vals = fmt.values()
    assert vals.dtype == np.float64
    assert len(vals) == _expected_count(fmt)
    assert np.all(np.diff(vals) > 0)
    assert vals[-1] == fmt.max
    assert vals[0] == fmt.min
    assert np.all(np.isfinite(vals))


def test_values_refuses_wide_formats():
    with pytest.raises(ValueError, match="16 bits"):
        get_format("float32").values()


# ---- the catalogue ---------------------------------------------------------------------------


def test_list_formats_is_sorted_and_contains_the_names():
    names = list_formats()
    assert names == sorted(names)
    for n in (
        *ML_DTYPES_NAMES,
        "float16",
        "float32",
        "int8",
        "uint8",
        "int8_narrow",
        "e8m0",
        "half",
    ):
        assert n in names
    assert get_format("half") is get_format("float16")
    assert get_format("e8m0") is get_format("float8_e8m0fnu")


def test_get_format_is_forgiving_about_case_and_passes_descriptors_through():
    fmt = get_format("float8_e4m3fn")
    assert get_format(" Float8_E4M3FN ") is fmt
    assert get_format(fmt) is fmt
    custom = minifloat(2, 1)
    assert get_format(custom) is custom


def test_get_format_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match="float8_e4m3fn") as info:
        get_format("float8_e4m3f")
    assert "unknown format name" in str(info.value)
    with pytest.raises(ValueError, match="list_formats"):
        get_format("no_such_format_at_all_zzz")


def test_get_format_rejects_non_strings():
    with pytest.raises(TypeError, match="format"):
        get_format(3.5)


# ---- bad parameters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"exponent_bits": 0, "mantissa_bits": 3}, ValueError, "exponent_bits"),
        ({"exponent_bits": 12, "mantissa_bits": 3}, ValueError, "exponent_bits"),
        ({"exponent_bits": 4, "mantissa_bits": -1}, ValueError, "mantissa_bits"),
        ({"exponent_bits": 4.0, "mantissa_bits": 3}, TypeError, "exponent_bits"),
        ({"exponent_bits": True, "mantissa_bits": 3}, TypeError, "exponent_bits"),
        ({"exponent_bits": 4, "mantissa_bits": 3, "bias": 7.0}, TypeError, "bias"),
        ({"exponent_bits": 4, "mantissa_bits": 3, "specials": 99}, ValueError, "specials"),
        ({"exponent_bits": 4, "mantissa_bits": 3, "signed": 1}, TypeError, "signed"),
        (
            {"exponent_bits": 8, "mantissa_bits": 0, "has_zero": False, "subnormals": True},
            ValueError,
            "subnormals",
        ),
        (
            {"exponent_bits": 4, "mantissa_bits": 3, "signed": False, "specials": Specials.FNUZ},
            ValueError,
            "signed",
        ),
        (
            {
                "exponent_bits": 4,
                "mantissa_bits": 3,
                "has_zero": False,
                "subnormals": False,
                "specials": Specials.P3109,
            },
            ValueError,
            "has_zero",
        ),
        (
            {"exponent_bits": 1, "mantissa_bits": 3, "specials": Specials.IEEE},
            ValueError,
            "exponent_bits",
        ),
        ({"exponent_bits": 11, "mantissa_bits": 52, "signed": True, "bias": 1}, None, None),
        ({"exponent_bits": 11, "mantissa_bits": 53}, ValueError, "mantissa_bits"),
    ],
)
def test_bad_float_parameters_raise_clear_errors(kwargs, exc, match):
    if exc is None:
        FloatFormat(**kwargs)  # valid: a control case
        return
    with pytest.raises(exc, match=match):
        FloatFormat(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"bits": 0}, ValueError, "bits"),
        ({"bits": 33}, ValueError, "bits"),
        ({"bits": 8.0}, TypeError, "bits"),
        ({"bits": 8, "signed": False, "narrow_range": True}, ValueError, "narrow_range"),
        ({"bits": 8, "narrow_range": "yes"}, TypeError, "narrow_range"),
    ],
)
def test_bad_int_parameters_raise_clear_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        IntFormat(**kwargs)


# ---- P3109 -----------------------------------------------------------------------------------


def test_p3109_binary8p3():
    fmt = p3109(8, 3)
    assert fmt.name == "binary8p3"
    assert (fmt.exponent_bits, fmt.mantissa_bits, fmt.bias) == (5, 2, 16)
    assert fmt.specials is Specials.P3109
    assert fmt.max == 49152.0
    assert fmt.smallest_subnormal == 2.0**-17
    assert fmt.smallest_normal == 2.0**-15
    assert math.isnan(decode_code(0x80, fmt))
    assert decode_code(0x7F, fmt) == math.inf
    assert decode_code(0xFF, fmt) == -math.inf
    assert decode_code(0x7E, fmt) == 49152.0
    assert decode_code(0xFE, fmt) == -49152.0
    assert not fmt.has_negative_zero
    assert encode_value(math.nan, fmt) == 0x80
    assert encode_value(-math.nan, fmt) == 0x80
    assert encode_value(math.inf, fmt) == 0x7F
    assert encode_value(-math.inf, fmt) == 0xFF
    assert encode_value(-0.0, fmt) == 0x00
    assert encode_value(1e6, fmt) == 0x7F
    assert encode_value(1e6, fmt, overflow=Overflow.SATURATE) == 0x7E
    assert encode_value(-1e6, fmt, overflow=Overflow.SATURATE) == 0xFE
    assert get_format("binary8p3") == fmt


def test_p3109_finite_domain_and_other_sizes():
    fin = get_format("binary8p3f")
    assert fin.specials is Specials.FNUZ
    assert fin.max == 57344.0
    assert not fin.has_inf
    six = p3109(6, 2)
    assert (six.exponent_bits, six.mantissa_bits, six.bias) == (4, 1, 8)
    assert six.max == 2.0**7 * 1.0  # E = 15 with F = 0 is the code below all-ones
    assert decode_code(0b011111, six) == math.inf
    assert math.isnan(decode_code(0b100000, six))
    one_bit = p3109(8, 1)
    assert one_bit.mantissa_bits == 0
    assert one_bit.max == 2.0 ** (126 - 64)


@pytest.mark.parametrize(
    ("k", "p", "exc"),
    [
        (1, 1, ValueError),
        (17, 3, ValueError),
        (8, 8, ValueError),
        (8, 0, ValueError),
        (8.0, 3, TypeError),
    ],
)
def test_p3109_bad_parameters(k, p, exc):
    with pytest.raises(exc, match="k|p"):
        p3109(k, p)
