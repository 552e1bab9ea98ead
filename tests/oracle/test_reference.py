"""The exact reference codec (formats/reference.py) against ml_dtypes and against the properties
that define each rounding mode, overflow policy and the counter-based random generator."""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from qemu_arrays.formats.catalog import ML_DTYPES_NAMES, get_format, minifloat, p3109
from qemu_arrays.formats.ml_dtypes_rules import BEFORE_0_7, SINCE_0_7
from qemu_arrays.formats.reference import (
    decode_code,
    decode_exact,
    encode_value,
    key,
    mix32,
    quantize_value,
    random_bits,
    random_word,
)
from qemu_arrays.formats.spec import FloatFormat, IntFormat, Overflow, Rounding, Specials

ML_SMALL = tuple(n for n in ML_DTYPES_NAMES if n != "bfloat16")
CUSTOM = (
    minifloat(3, 2, subnormals=False, name="e3m2_nosub"),
    minifloat(3, 2, signed=False, specials=Specials.FN, name="e3m2_ufn"),
    minifloat(3, 2, signed=False, specials=Specials.FINITE, name="e3m2_ufinite"),
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
)
SMALL_FORMATS = tuple(get_format(n) for n in ML_SMALL) + CUSTOM
ALL_MODES = tuple(Rounding)
NEAREST_MODES = (Rounding.NEAREST_EVEN, Rounding.NEAREST_AWAY)


def _uint(dt):
    return np.uint8 if np.dtype(dt).itemsize == 1 else np.uint16


# ---- decode --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ML_SMALL)
def test_decode_every_code_matches_ml_dtypes(name, same_floats):
    fmt = get_format(name)
    codes = np.arange(1 << fmt.bits, dtype=np.uint8)
    with np.errstate(invalid="ignore"):
        expected = codes.view(getattr(ml_dtypes, name)).astype(np.float64)
    got = np.array([decode_code(int(c), fmt) for c in codes], dtype=np.float64)
    same_floats(got, expected, name)


def test_decode_every_bfloat16_code_matches_ml_dtypes(same_floats):
    fmt = get_format("bfloat16")
    codes = np.arange(1 << 16, dtype=np.uint16)
    with np.errstate(invalid="ignore"):
        expected = codes.view(ml_dtypes.bfloat16).astype(np.float64)
    got = np.array([decode_code(int(c), fmt) for c in codes.tolist()], dtype=np.float64)
    same_floats(got, expected, "bfloat16")


@pytest.mark.parametrize("name", ["float16", "float32"])
def test_decode_sampled_ieee_codes_match_numpy(name, rng, same_floats):
    fmt = get_format(name)
    np_t, u_t = {"float16": (np.float16, np.uint16), "float32": (np.float32, np.uint32)}[name]
    codes = rng.integers(0, 1 << fmt.bits, size=3000, dtype=np.uint64).astype(u_t)
    extremes = np.array([0, 1, (1 << (fmt.bits - 1)), (1 << fmt.bits) - 1], dtype=u_t)
    codes = np.concatenate([codes, extremes])
    with np.errstate(invalid="ignore"):
        expected = codes.view(np_t).astype(np.float64)
    got = np.array([decode_code(int(c), fmt) for c in codes.tolist()], dtype=np.float64)
    same_floats(got, expected, name)


@pytest.mark.parametrize("fmt", SMALL_FORMATS, ids=lambda f: f.name)
def test_encode_of_decode_is_the_canonical_code(fmt):
    canonical_nan = encode_value(math.nan, fmt) if fmt.has_nan else None
    for code in range(1 << fmt.bits):
        value = decode_code(code, fmt)
        exact = decode_exact(code, fmt)
        if math.isnan(value):
            assert encode_value(value, fmt) == canonical_nan
            continue
        if not isinstance(exact, float):
            assert Fraction(value) == exact  # float64 holds every value of these formats
        again = encode_value(value, fmt)
        assert decode_code(again, fmt) == value
        assert math.copysign(1, decode_code(again, fmt)) == math.copysign(1, value)
        if value != 0 or fmt.subnormals:
            assert again == code, (fmt.name, hex(code), value, hex(again))


def test_decode_rejects_bad_codes_and_int_formats():
    fmt = get_format("float8_e4m3fn")
    with pytest.raises(ValueError, match="code"):
        decode_code(256, fmt)
    with pytest.raises(ValueError, match="code"):
        decode_code(-1, fmt)
    with pytest.raises(TypeError, match="code"):
        decode_code(1.0, fmt)
    with pytest.raises(TypeError, match="FloatFormat"):
        decode_code(3, get_format("int8"))


# ---- nearest-even against ml_dtypes --------------------------------------------------------


def _check_against_ml(fmt, ml_type, x32, same_codes, same_floats, context):
    kw = {"input_dtype": "float32"}
    ne, ml_policy = Rounding.NEAREST_EVEN, Overflow.ML_DTYPES
    ref_codes = np.array([encode_value(float(v), fmt, ne, ml_policy, **kw) for v in x32])
    ref_vals = np.array([quantize_value(float(v), fmt, ne, ml_policy, **kw) for v in x32])
    with np.errstate(invalid="ignore", over="ignore"):
        ml = x32.astype(ml_type)
        ml_vals = ml.astype(np.float64)
    same_codes(ref_codes, ml.view(_uint(ml_type)), context, inputs=x32)
    same_floats(ref_vals, ml_vals, context)


@pytest.mark.parametrize("name", ML_SMALL)
def test_nearest_even_matches_ml_dtypes_on_every_deciding_input(
    name, probe, same_codes, same_floats
):
    fmt = get_format(name)
    x = probe(fmt, np.float32)
    x = np.concatenate([x, np.array([np.nan, -np.nan], dtype=np.float32)])
    _check_against_ml(fmt, getattr(ml_dtypes, name), x, same_codes, same_floats, name)


def test_nearest_even_matches_ml_dtypes_for_sampled_bfloat16(rng, same_codes, same_floats):
    fmt = get_format("bfloat16")
    codes = rng.integers(0, 1 << 16, size=1500, dtype=np.int64)
    # the extremes: zero, smallest subnormals, the normal boundary, max
    codes = np.concatenate([codes, [0, 1, 2, 0x7F, 0x80, 0x81, 0x7F7E, 0x7F7F]]).astype(np.uint16)
    with np.errstate(invalid="ignore"):
        vals = codes.view(ml_dtypes.bfloat16).astype(np.float32)
    vals = vals[np.isfinite(vals)]
    nxt = np.nextafter(vals.astype(ml_dtypes.bfloat16), ml_dtypes.bfloat16(np.inf)).astype(
        np.float32
    )
    ok = np.isfinite(nxt)
    mids = ((vals[ok].astype(np.float64) + nxt[ok]) / 2).astype(np.float32)  # exact in float32
    top = np.float32(2.0**128 - 2.0**119)  # past max: the midpoint to the next grid point
    base = np.concatenate([vals, mids, [top, -top]]).astype(np.float32)
    x = np.concatenate(
        [
            base,
            np.nextafter(base, np.float32(np.inf)),
            np.nextafter(base, np.float32(-np.inf)),
            np.array([np.inf, -np.inf, np.nan, 0.0, -0.0], dtype=np.float32),
        ]
    )
    _check_against_ml(fmt, ml_dtypes.bfloat16, x, same_codes, same_floats, "bfloat16")


E8M0_TINY = np.array(
    [1.25 * 2.0**-127, np.nextafter(np.float32(2.0**-127), np.float32(1)), 0.75 * 2.0**-127],
    dtype=np.float32,
)


@pytest.mark.parametrize(
    ("rules", "expected"),
    [(BEFORE_0_7, [0x01, 0x01, 0x00]), (SINCE_0_7, [0x00, 0x00, 0x00])],
    ids=["before-0.7", "since-0.7"],
)
def test_ml_dtypes_e8m0_subnormal_rule_of_each_release(rules, expected):
    """ml_dtypes before 0.7 sends float32 subnormals into E8M0 *up* to the next power of two (so
    those in (2^-127, 1.5 * 2^-127) go to 2^-126, not to the nearest 2^-127); 0.7 rounds them
    to nearest. Overflow.ML_DTYPES with each release's rules gives that release's answer for
    input held as float32, whatever the mode; OWN, SATURATE and other rules round normally."""
    fmt = get_format("float8_e8m0fnu")
    for mode in ALL_MODES:
        kw = {"u": 0, "r": 8} if mode.stochastic else {}
        got = [
            encode_value(
                float(v),
                fmt,
                mode,
                Overflow.ML_DTYPES,
                input_dtype="float32",
                ml_dtypes_rules=rules,
                **kw,
            )  # fmt: skip
            for v in E8M0_TINY
        ]
        if mode is Rounding.NEAREST_EVEN or rules.e8m0_subnormal_up:
            assert got == expected, mode
    nearest = [0x00, 0x00, 0x00]
    assert [encode_value(float(v), fmt) for v in E8M0_TINY] == nearest
    # float64 input is not affected, unless the release rounds float64 to float32 first
    f64 = [
        encode_value(
            float(v),
            fmt,
            overflow=Overflow.ML_DTYPES,
            input_dtype=np.dtype(np.float64),
            ml_dtypes_rules=rules,
        )  # fmt: skip
        for v in E8M0_TINY
    ]
    assert f64 == (expected if rules.float64_via_float32 else nearest)
    # float32 normals are not affected
    assert (
        encode_value(
            1.25 * 2.0**-126,
            fmt,
            overflow=Overflow.ML_DTYPES,
            input_dtype="float32",
            ml_dtypes_rules=rules,
        )  # fmt: skip
        == 1
    )
    with pytest.raises(ValueError, match="input_dtype"):
        encode_value(1.0, fmt, input_dtype="int8")
    with pytest.raises(TypeError, match="ml_dtypes_rules"):
        encode_value(1.0, fmt, overflow=Overflow.ML_DTYPES, ml_dtypes_rules="0.6")


def test_reference_follows_the_installed_ml_dtypes_by_default():
    """Without ml_dtypes_rules the reference's ML_DTYPES policy is that of the installed
    ml_dtypes, whose own casts decide: the E8M0 subnormals and a float64 double-rounding case
    (1 + 2^-4 + 2^-30: 1.125 in one rounding, 1.0 through float32)."""
    fmt = get_format("float8_e8m0fnu")
    ml = E8M0_TINY.astype(ml_dtypes.float8_e8m0fnu).view(np.uint8).tolist()
    ours = [
        encode_value(float(v), fmt, overflow=Overflow.ML_DTYPES, input_dtype="float32")
        for v in E8M0_TINY
    ]
    assert ours == ml
    x = 1 + 2.0**-4 + 2.0**-30
    e4m3 = get_format("float8_e4m3fn")
    ml64 = int(np.array([x]).astype(ml_dtypes.float8_e4m3fn).view(np.uint8)[0])
    assert encode_value(x, e4m3, overflow=Overflow.ML_DTYPES) == ml64
    assert encode_value(x, e4m3) == 0x39  # OWN: one rounding, whatever ml_dtypes does
    assert encode_value(x, e4m3, overflow=Overflow.ML_DTYPES, ml_dtypes_rules=BEFORE_0_7) == 0x38
    assert encode_value(x, e4m3, overflow=Overflow.ML_DTYPES, ml_dtypes_rules=SINCE_0_7) == 0x39


# ---- the defining properties of each mode --------------------------------------------------


def _inputs_in_range(fmt, rng, n=400):
    """Random float64 inputs within [-max, max] (positive only for unsigned formats), log-spread,
    plus every midpoint of the grid, without magnitudes below the smallest for no-zero formats."""
    mags = np.exp2(rng.uniform(math.log2(fmt.smallest_subnormal) - 3, math.log2(fmt.max), n))
    mags = np.concatenate([mags, rng.uniform(0, fmt.max, n // 4)])
    if not fmt.has_zero:
        mags = mags[mags >= fmt.smallest_normal]
    mags = mags[mags <= fmt.max]
    signs = rng.choice([-1.0, 1.0], size=mags.size) if fmt.signed else 1.0
    return (mags * signs).tolist()


@pytest.mark.parametrize("fmt", SMALL_FORMATS, ids=lambda f: f.name)
def test_directed_modes_bracket_x_with_adjacent_grid_points(fmt, rng, grid):
    g = grid(fmt)
    for x in _inputs_in_range(fmt, rng):
        down = quantize_value(x, fmt, Rounding.DOWN)
        up = quantize_value(x, fmt, Rounding.UP)
        tz = quantize_value(x, fmt, Rounding.TOWARD_ZERO)
        assert down <= x <= up, (fmt.name, x, down, up)
        assert down in g
        assert up in g
        if down == up:
            assert x == down
        else:  # no grid value strictly between: they are neighbours
            i = np.searchsorted(g, down)
            assert g[i + 1] == up, (fmt.name, x, down, up)
        assert tz == (down if x > 0 else up)
        assert abs(tz) <= abs(x)


@pytest.mark.parametrize("fmt", SMALL_FORMATS, ids=lambda f: f.name)
def test_nearest_modes_pick_the_closer_neighbour_and_break_ties_as_named(fmt, rng, grid):
    g = grid(fmt)
    mids = ((g[1:] + g[:-1]) / 2).tolist()
    if not fmt.has_zero:
        mids = [m for m in mids if m >= fmt.smallest_normal]
    for x in _inputs_in_range(fmt, rng, 200) + mids + [-m for m in mids if fmt.signed]:
        down = quantize_value(x, fmt, Rounding.DOWN)
        up = quantize_value(x, fmt, Rounding.UP)
        ne = quantize_value(x, fmt, Rounding.NEAREST_EVEN)
        na = quantize_value(x, fmt, Rounding.NEAREST_AWAY)
        dd, du = Fraction(x) - Fraction(down), Fraction(up) - Fraction(x)
        if dd != du:
            closer = down if dd < du else up
            assert ne == na == closer, (fmt.name, x)
            continue
        # a tie: away picks the larger magnitude, even picks the even significand K
        assert abs(na) == max(abs(down), abs(up))
        assert ne in (down, up)
        if fmt.mantissa_bits > 0:
            assert encode_value(ne, fmt) & 1 == 0, (fmt.name, x, ne)  # last mantissa bit 0
        elif min(abs(down), abs(up)) == 0:
            assert ne == 0  # K = 0 is even
        else:
            assert abs(ne) == max(abs(down), abs(up))  # K = 1 is odd: E8M0-like ties go up


@pytest.mark.parametrize(
    "fmt", [f for f in SMALL_FORMATS if f.mantissa_bits > 0], ids=lambda f: f.name
)
def test_to_odd_truncates_then_sets_the_last_bit(fmt, rng):
    for x in _inputs_in_range(fmt, rng):
        tz = quantize_value(x, fmt, Rounding.TOWARD_ZERO)
        odd = quantize_value(x, fmt, Rounding.TO_ODD)
        if tz == x:
            assert odd == x
            continue
        away = quantize_value(x, fmt, Rounding.UP if x > 0 else Rounding.DOWN)
        assert odd in (tz, away)
        if fmt.subnormals or abs(x) >= fmt.smallest_normal:
            assert encode_value(odd, fmt) & 1 == 1, (fmt.name, x, odd)


@pytest.mark.parametrize(("e", "m"), [(4, 3), (5, 2), (3, 4), (2, 1)])
def test_to_odd_with_two_extra_bits_makes_double_rounding_innocuous(e, m, rng):
    """Rounding to odd at p + 2 bits, then to nearest-even at p bits, equals rounding x to
    nearest-even at p bits directly (the reason TO_ODD exists); same exponent range."""
    narrow = minifloat(e, m)
    wide = minifloat(e, m + 2)
    for x in _inputs_in_range(narrow, rng, 600):
        via = quantize_value(quantize_value(x, wide, Rounding.TO_ODD), narrow)
        assert via == quantize_value(x, narrow), (e, m, x)


@pytest.mark.parametrize("fmt", SMALL_FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("mode", ALL_MODES, ids=lambda m: m.name)
def test_quantize_value_is_decode_of_encode_and_idempotent(fmt, mode, rng):
    xs = _inputs_in_range(fmt, rng, 60) + [fmt.max * 1.7, -fmt.max * 1.7, math.inf]
    for i, x in enumerate(xs):
        if not fmt.signed and x < 0:
            continue
        kw = {"u": random_bits(7, 0, i, 32), "r": 32} if mode.stochastic else {}
        q = quantize_value(x, fmt, mode, **kw)
        code = encode_value(x, fmt, mode, **kw)
        d = decode_code(code, fmt)
        assert (math.isnan(q) and math.isnan(d)) or (
            q == d and math.copysign(1, q) == math.copysign(1, d)
        ), (fmt.name, mode.name, x)
        if math.isfinite(q) and mode is not Rounding.JAM:  # JAM sets the last bit of exact values
            assert quantize_value(q, fmt, mode, **kw) == q


# ---- overflow, specials, signs -------------------------------------------------------------


def _kind(v):
    return "nan" if math.isnan(v) else ("inf" if math.isinf(v) else "finite")


@pytest.mark.parametrize(
    ("name", "own_kind"),
    [
        ("float8_e5m2", "inf"),
        ("float8_e4m3", "inf"),
        ("float8_e4m3fn", "nan"),
        ("float8_e4m3fnuz", "nan"),
        ("float6_e2m3fn", "max"),
        ("binary8p3", "inf"),
    ],
)
def test_overflow_table(name, own_kind):
    fmt = get_format(name)
    big = fmt.max * 4
    away = {
        Rounding.NEAREST_EVEN: (True, True),
        Rounding.NEAREST_AWAY: (True, True),
        Rounding.STOCHASTIC: (True, True),
        Rounding.UP: (True, False),
        Rounding.DOWN: (False, True),
        Rounding.TOWARD_ZERO: (False, False),
        Rounding.TO_ODD: (False, False),
    }
    for mode, (pos_away, neg_away) in away.items():
        kw = {"u": 0, "r": 8} if mode.stochastic else {}
        for x, rounds_away in ((big, pos_away), (-big, neg_away)):
            sat = quantize_value(x, fmt, mode, Overflow.SATURATE, **kw)
            assert sat == math.copysign(fmt.max, x)
            for policy in (Overflow.OWN, Overflow.ML_DTYPES):
                got = quantize_value(x, fmt, mode, policy, **kw)
                if not rounds_away or own_kind == "max":
                    assert got == math.copysign(fmt.max, x), (name, mode.name, x)
                elif own_kind == "inf":
                    assert got == math.copysign(math.inf, x)
                else:
                    assert math.isnan(got)
    # infinite inputs follow the "rounds away" row under every mode
    for policy in (Overflow.OWN, Overflow.ML_DTYPES):
        got = quantize_value(-math.inf, fmt, Rounding.TOWARD_ZERO, policy)
        assert _kind(got) == ("finite" if own_kind == "max" else own_kind)
    assert quantize_value(math.inf, fmt, overflow=Overflow.SATURATE) == fmt.max


def test_canonical_nan_codes_keep_the_sign_where_they_can():
    assert encode_value(-math.nan, get_format("float8_e5m2")) == 0xFE
    assert encode_value(math.nan, get_format("float8_e5m2")) == 0x7E
    assert encode_value(-math.nan, get_format("float8_e4m3fn")) == 0xFF
    assert encode_value(1e9, get_format("float8_e4m3fn")) == 0x7F
    assert encode_value(-1e9, get_format("float8_e4m3fn")) == 0xFF
    assert encode_value(-math.nan, get_format("float8_e4m3fnuz")) == 0x80
    assert encode_value(math.nan, get_format("float8_e8m0fnu")) == 0xFF
    assert encode_value(-math.nan, get_format("bfloat16")) == 0xFFC0
    assert encode_value(math.nan, get_format("float32")) == 0x7FC00000


@pytest.mark.parametrize("name", ["float6_e2m3fn", "float6_e3m2fn", "float4_e2m1fn"])
def test_nan_into_a_format_without_nan(name):
    fmt = get_format(name)
    for policy in (Overflow.OWN, Overflow.SATURATE):
        with pytest.raises(ValueError, match="NaN"):
            quantize_value(math.nan, fmt, overflow=policy)
    # ml_dtypes: a zero of the opposite sign
    pos = quantize_value(math.nan, fmt, overflow=Overflow.ML_DTYPES)
    neg = quantize_value(-math.nan, fmt, overflow=Overflow.ML_DTYPES)
    assert pos == 0.0
    assert math.copysign(1, pos) == -1
    assert neg == 0.0
    assert math.copysign(1, neg) == 1
    assert encode_value(math.nan, fmt, overflow=Overflow.ML_DTYPES) == 1 << (fmt.bits - 1)


def test_negative_input_to_unsigned_formats():
    e8m0 = get_format("float8_e8m0fnu")
    ufin = minifloat(3, 2, signed=False)
    for x in (-1.0, -1e-30, -math.inf, -0.0):
        assert math.isnan(quantize_value(x, e8m0))
        assert quantize_value(x, e8m0, overflow=Overflow.SATURATE) == 2.0**-127
    for x in (-1.0, -1e-30, -math.inf):
        assert quantize_value(x, ufin) == 0.0
    r = quantize_value(-0.0, ufin)
    assert r == 0.0
    assert math.copysign(1, r) == 1  # no negative zero in an unsigned format


def test_zero_and_tiny_values_into_a_format_without_zero():
    e8m0 = get_format("float8_e8m0fnu")
    assert math.isnan(quantize_value(0.0, e8m0))
    assert quantize_value(0.0, e8m0, overflow=Overflow.SATURATE) == 2.0**-127
    for mode in ALL_MODES:
        kw = {"u": 0, "r": 4} if mode.stochastic else {}
        assert quantize_value(2.0**-140, e8m0, mode, **kw) == 2.0**-127
    nozero = CUSTOM[4]
    with pytest.raises(ValueError, match="NaN"):
        quantize_value(
            0.0,
            FloatFormat(
                exponent_bits=3,
                mantissa_bits=1,
                signed=False,
                subnormals=False,
                has_zero=False,
                specials=Specials.FINITE,
            ),
        )
    assert quantize_value(1e-9, nozero) == nozero.smallest_normal


def test_e8m0_ties_round_up():
    e8m0 = get_format("float8_e8m0fnu")
    for k in (-20, 0, 5, 100):
        assert quantize_value(1.5 * 2.0**k, e8m0) == 2.0 ** (k + 1)
        assert quantize_value(1.5 * 2.0**k - 2.0 ** (k - 30), e8m0) == 2.0**k


def test_zero_keeps_its_sign_only_where_the_format_has_negative_zero():
    for name, neg in (("float8_e4m3fn", True), ("float8_e4m3fnuz", False), ("binary8p3", False)):
        fmt = get_format(name)
        z = quantize_value(-1e-30, fmt)
        assert z == 0.0
        assert (math.copysign(1, z) < 0) is neg
        assert encode_value(-1e-30, fmt) == (0x80 if neg else 0x00)


def test_fraction_inputs_are_exact():
    fmt = get_format("float8_e4m3fn")
    third = Fraction(1, 3)
    assert (
        quantize_value(third, fmt, Rounding.DOWN) < third < quantize_value(third, fmt, Rounding.UP)
    )
    tie = Fraction(1) + Fraction(1, 16)  # midpoint between 1 and 1.125
    assert quantize_value(tie, fmt) == 1.0
    assert quantize_value(tie + Fraction(1, 10**30), fmt) == 1.125
    f64 = get_format("float64")
    assert quantize_value(Fraction(1, 10), f64) == 0.1


def test_argument_errors():
    fmt = get_format("float8_e4m3fn")
    with pytest.raises(ValueError, match="u"):
        quantize_value(1.0, fmt, Rounding.STOCHASTIC)
    with pytest.raises(ValueError, match="u must be"):
        quantize_value(1.0, fmt, Rounding.STOCHASTIC, u=16, r=4)
    with pytest.raises(ValueError, match="r"):
        quantize_value(1.0, fmt, Rounding.STOCHASTIC, u=0, r=65)
    with pytest.raises(ValueError, match="rounding"):
        quantize_value(1.0, fmt, 17)
    with pytest.raises(ValueError, match="overflow"):
        quantize_value(1.0, fmt, overflow=9)
    with pytest.raises(TypeError, match="fmt"):
        quantize_value(1.0, 3)
    with pytest.raises(ValueError, match="scale"):
        quantize_value(1.0, fmt, scale=2.0)
    with pytest.raises(TypeError, match="x"):
        quantize_value("1.0", fmt)
    assert quantize_value(1.0, "float8_e4m3fn", 0, 0) == 1.0  # names and plain ints are fine


# ---- integer formats -----------------------------------------------------------------------


def test_int_rounding_modes_on_the_float64_quotient():
    int8 = get_format("int8")
    assert quantize_value(0.074, int8, scale=0.05) == 0.05
    assert quantize_value(0.125, int8, scale=0.25) == 0.0  # quotient 0.5: tie to even 0
    assert quantize_value(0.375, int8, scale=0.25) == 0.5  # 1.5 -> 2
    assert quantize_value(0.125, int8, Rounding.NEAREST_AWAY, scale=0.25) == 0.25
    assert quantize_value(-0.125, int8, Rounding.NEAREST_AWAY, scale=0.25) == -0.25
    assert quantize_value(-0.1, int8, Rounding.UP, scale=0.25) == 0.0
    assert quantize_value(-0.1, int8, Rounding.DOWN, scale=0.25) == -0.25
    assert quantize_value(0.6, int8, Rounding.TO_ODD, scale=0.25) == 0.75  # 2.4 -> 3
    assert quantize_value(0.5, int8, Rounding.TO_ODD, scale=0.25) == 0.5  # exact 2 stays
    # the quotient is the float64 0.3 / 0.1 = 2.9999999999999996, not the real 3
    assert 0.3 / 0.1 < 3
    assert quantize_value(0.3, int8, Rounding.TOWARD_ZERO, scale=0.1) == 0.2
    assert quantize_value(0.3, int8, scale=0.1) == 3 * 0.1
    # stochastic: 0.1 / 0.25 = 0.4 -> up iff u < floor(0.4 * 2^4) = 6
    ups = [quantize_value(0.1, int8, Rounding.STOCHASTIC, u=u, r=4, scale=0.25) for u in range(16)]
    assert ups == [0.25] * 6 + [0.0] * 10


@pytest.mark.parametrize(
    ("name", "x", "k"),
    [
        ("int8", 1e9, 127),
        ("int8", -1e9, -128),
        ("int8", math.inf, 127),
        ("int8", -math.inf, -128),
        ("int8_narrow", -1e9, -127),
        ("uint8", -3.0, 0),
        ("uint8", 300.0, 255),
        ("int4", 7.6, 7),
        ("int4", -8.4, -8),
        ("int4_narrow", -8.4, -7),
    ],
)
def test_int_clamp_and_codes(name, x, k):
    fmt = get_format(name)
    assert quantize_value(x, fmt, scale=1.0) == k
    assert encode_value(x, fmt, scale=1.0) == k % (1 << fmt.bits)
    for mode in (m for m in ALL_MODES if m is not Rounding.JAM):  # JAM: k | 1 (test_rounding_modes)
        kw = {"u": 3, "r": 5} if mode.stochastic else {}
        assert quantize_value(x, fmt, mode, scale=1.0, **kw) == k


def test_int_errors():
    int8 = get_format("int8")
    with pytest.raises(ValueError, match="NaN"):
        quantize_value(math.nan, int8, scale=1.0)
    with pytest.raises(ValueError, match="scale"):
        quantize_value(1.0, int8)
    with pytest.raises(ValueError, match="scale"):
        quantize_value(1.0, int8, scale=-1.0)
    with pytest.raises(ValueError, match="scale"):
        quantize_value(1.0, int8, scale=math.inf)
    assert isinstance(int8, IntFormat)


# ---- the counter-based random generator ----------------------------------------------------

# Regression values computed by this implementation of the doc's pseudo-code (2024 text); the
# kernels on every backend must reproduce them bit for bit.
GOLDEN_KEY_0_0 = (0x212CA684, 0x6131BE34, 0x6B459820)
GOLDEN_KEY_MAX = (0x54C76685, 0xF6E2BB3D, 0x1BC6B5D0)
GOLDEN_WORD0 = (0x26C1C4D1, 0x5BD566BD, 0x5FFB7D85, 0x371AD765)  # seed 0, stream 0, index 0..3
GOLDEN_WORD1 = (0xC131B9FB, 0xFFEB3580, 0x81A180FE, 0x78ED7056)
GOLDEN_SEED_12345_STREAM_7 = {
    0: 0x79B2E2C8,
    1: 0xE2FF63E2,
    2**32: 0xC81A6811,
    2**40 + 5: 0x9AF5C054,
}
GOLDEN_BITS8_SEED1 = (163, 95, 229, 66, 221, 30)
GOLDEN_BITS53_SEED1 = (0x147CDB1A1F9C36, 0xBE5F169B586E7, 0x1CBB304555D4EF)
GOLDEN_BITS64_SEED1 = (0xA3E6D8D0FCE1B60B, 0x5F2F8B4DAC3739C8)


def test_random_golden_values():
    assert key(0, 0) == GOLDEN_KEY_0_0
    assert key(2**64 - 1, 2**32 - 1) == GOLDEN_KEY_MAX
    assert tuple(random_word(0, 0, i, 0) for i in range(4)) == GOLDEN_WORD0
    assert tuple(random_word(0, 0, i, 1) for i in range(4)) == GOLDEN_WORD1
    for i, w in GOLDEN_SEED_12345_STREAM_7.items():
        assert random_word(12345, 7, i, 0) == w
    assert tuple(random_bits(1, 0, i, 8) for i in range(6)) == GOLDEN_BITS8_SEED1
    assert tuple(random_bits(1, 0, i, 53) for i in range(3)) == GOLDEN_BITS53_SEED1
    assert tuple(random_bits(1, 0, i, 64) for i in range(2)) == GOLDEN_BITS64_SEED1
    assert (mix32(0), mix32(1), mix32(0xDEADBEEF)) == (0, 0x688990C0, 0xE628C683)


def test_seed_stream_and_index_are_reduced_modulo_their_widths():
    assert key(-1, -1) == GOLDEN_KEY_MAX
    assert key(2**64, 2**32) == GOLDEN_KEY_0_0
    assert random_word(-1, -1, -1, 0) == random_word(2**64 - 1, 2**32 - 1, 2**64 - 1, 0)
    assert random_word(5, 0, 2**64 + 3, 0) == random_word(5, 0, 3, 0)


def test_random_bits_are_prefixes_of_the_64_bit_word():
    for i in range(20):
        full = random_bits(99, 3, i, 64)
        assert full == (random_word(99, 3, i, 0) << 32) | random_word(99, 3, i, 1)
        for r in (1, 4, 8, 16, 31, 32, 33, 53, 62):
            assert random_bits(99, 3, i, r) == full >> (64 - r)


def _mix32_inverse(x: int) -> int:
    m = 0xFFFFFFFF
    x ^= x >> 16
    x = (x * pow(0x846CA68B, -1, 1 << 32)) & m
    x ^= (x >> 15) ^ (x >> 30)
    x = (x * pow(0x7FEB352D, -1, 1 << 32)) & m
    x ^= x >> 16
    return x


def test_mix32_is_a_bijection(rng):
    sample = rng.integers(0, 1 << 32, size=2000, dtype=np.uint64).tolist() + [0, 1, 2**32 - 1]
    for x in sample:
        assert _mix32_inverse(mix32(x)) == x


def test_word_is_a_bijection_in_the_low_index_word():
    """For fixed (seed, stream, hi32(index), j) the word is a composition of bijections of
    lo32(index): on a sample of 2^16 consecutive and 2^12 spread indices no two words collide,
    and the chain inverts."""
    words = {random_word(2024, 1, i, 0) for i in range(1 << 16)}
    assert len(words) == 1 << 16
    spread = {random_word(2024, 1, (7 << 32) | (i * 1048573), 1) for i in range(1 << 12)}
    assert len(spread) == 1 << 12
    k0, k1, k2 = key(2024, 1)
    for lo in (0, 1, 12345, 2**32 - 1):
        w = random_word(2024, 1, lo, 0)
        h = (_mix32_inverse(w) - k0) & 0xFFFFFFFF
        h = _mix32_inverse(h) ^ k1 ^ 0  # hi32 = 0, j = 0
        assert _mix32_inverse(h) ^ k2 == lo


def test_numpy_transcription_agrees(rng):
    """A second transcription of the doc's pseudo-code, in numpy uint32 arithmetic."""

    def mix(x):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x7FEB352D)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x846CA68B)
        return x ^ (x >> np.uint32(16))

    seed, stream = 0x0123456789ABCDEF, 11
    idx = np.concatenate(
        [rng.integers(0, 2**63, size=500, dtype=np.uint64), np.arange(50, dtype=np.uint64)]
    )
    lo = (idx & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    hi = (idx >> np.uint64(32)).astype(np.uint32)
    with np.errstate(over="ignore"):
        k0 = mix(np.uint32(seed & 0xFFFFFFFF) ^ np.uint32(0x243F6A88))
        k1 = mix(np.uint32(seed >> 32) ^ k0 ^ np.uint32(0x85A308D3))
        k2 = mix(np.uint32(stream) ^ k1 ^ np.uint32(0x13198A2E))
        for j in (0, 1):
            h = mix(lo ^ k2)
            h = mix(h ^ (hi + np.uint32(j * 0x9E3779B9)) ^ k1)
            w = mix(h + k0)
            expected = [random_word(seed, stream, int(i), j) for i in idx]
            assert w.tolist() == expected


def test_random_bits_look_uniform():
    """A coarse, deterministic sanity check: the top 4 bits of 16,384 consecutive indices fill
    the 16 bins within 5 standard deviations of 1024 each."""
    counts = np.bincount([random_bits(5, 0, i, 4) for i in range(1 << 14)], minlength=16)
    sd = math.sqrt((1 << 14) * (1 / 16) * (15 / 16))
    assert np.all(np.abs(counts - 1024) < 5 * sd)


def test_random_argument_errors():
    with pytest.raises(ValueError, match="r"):
        random_bits(0, 0, 0, 0)
    with pytest.raises(ValueError, match="r"):
        random_bits(0, 0, 0, 65)
    with pytest.raises(ValueError, match="j"):
        random_word(0, 0, 0, 2)
    with pytest.raises(TypeError, match="seed"):
        key(1.5, 0)
    with pytest.raises(TypeError, match="seed"):
        key(True, 0)
