"""qemu_arrays.quantize / encode / decode (the numba CPU path) against the exact reference, bit
for bit: every deciding input (every code's value, every midpoint, one ulp either side, the
overflow edges, ±0, ±inf, NaN) of every small float format, under every rounding mode."""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from qemu_arrays.formats.catalog import get_format, list_formats, minifloat, p3109
from qemu_arrays.formats.reference import decode_code, encode_value, quantize_value, random_bits
from qemu_arrays.formats.spec import FloatFormat, Overflow, Rounding, Specials

SEED = 1234
SMALL_CATALOG = tuple(
    get_format(n)
    for n in list_formats()
    if isinstance(get_format(n), FloatFormat)
    and get_format(n).bits <= 8
    and get_format(n).name == n
)
CUSTOM = (
    minifloat(3, 2, subnormals=False, name="e3m2_nosub"),
    FloatFormat(
        exponent_bits=4,
        mantissa_bits=3,
        subnormals=False,
        specials=Specials.FN,
        name="e4m3_nosub_fn",
    ),
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
    p3109(8, 1),
)
FORMATS = SMALL_CATALOG + CUSTOM
MODES = tuple(Rounding)
#: the first seven modes; the modes of issue 16 run on every deciding input of every format
#: (test_float32_every_deciding_input), and a few of them elsewhere (CI time)
CLASSIC = tuple(r for r in Rounding if r <= Rounding.STOCHASTIC)
SOME_NEW = (Rounding.NEAREST_ODD, Rounding.JAM, Rounding.STOCHASTIC_EQUAL)
BF16 = np.dtype(ml_dtypes.bfloat16)


def _ids(f):
    return f.name


def _kwargs(mode, seed=SEED):
    return {"seed": seed} if mode.stochastic else {}


def _with_nan(fmt, x, overflow):
    """Append NaN (both signs) where the policy gives it a result."""
    if fmt.has_nan or overflow is Overflow.ML_DTYPES:
        nan = np.array([np.nan, -np.nan], dtype=x.dtype)
        return np.concatenate([x, nan])
    return x


def _reference_codes(fmt, x, mode, overflow, r):
    out = []
    for i, v in enumerate(x.astype(np.float64).tolist()):
        kw = {"u": random_bits(SEED, 0, i, r), "r": r} if mode.stochastic else {}
        out.append(encode_value(v, fmt, mode, overflow, input_dtype=x.dtype, **kw))
    return np.array(out, dtype=np.uint64)


_TABLES: dict = {}


def _values_of(fmt, codes, dtype):
    """The reference value of each code (decode_code), cast to ``dtype`` like quantize does."""
    if fmt not in _TABLES:
        _TABLES[fmt] = np.array([decode_code(c, fmt) for c in range(1 << fmt.bits)])
    with np.errstate(over="ignore", invalid="ignore"):
        return _TABLES[fmt][codes.astype(np.intp)].astype(dtype)


def _check(fmt, x, mode, overflow, r, same_codes, same_floats, **kw):
    import qemu_arrays as qa

    x_before = x.copy()
    expected = _reference_codes(fmt, x, mode, overflow, r)
    context = f"{fmt.name} {mode.name} {overflow.name} {x.dtype}"
    codes = qa.encode(x, fmt, rounding=mode, overflow=overflow, **_kwargs(mode), **kw)
    assert codes.dtype == np.uint8
    same_codes(codes, expected, context, inputs=x)
    got = qa.quantize(x, fmt, rounding=mode, overflow=overflow, **_kwargs(mode), **kw)
    assert type(got) is np.ndarray
    same_floats(got, _values_of(fmt, expected, x.dtype), context)
    np.testing.assert_array_equal(x.view(np.uint8), x_before.view(np.uint8))  # not modified


# ---- float32 input: every format, every mode -------------------------------------------------


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
@pytest.mark.parametrize("fmt", FORMATS, ids=_ids)
def test_float32_every_deciding_input(fmt, mode, probe, same_codes, same_floats):
    x = _with_nan(fmt, probe(fmt, np.float32), Overflow.OWN)
    _check(fmt, x, mode, Overflow.OWN, 32, same_codes, same_floats)


def _edge_inputs(fmt, dtype):
    """The inputs where the overflow policies differ, plus a few ordinary ones."""
    spacing = math.ldexp(1.0, fmt.emax - fmt.mantissa_bits)
    mags = [
        fmt.max,
        fmt.max + spacing / 4,
        fmt.max + spacing / 2,
        fmt.max + spacing,
        4 * fmt.max,
        np.inf,
        0.0,
        fmt.smallest_subnormal / 4,
        fmt.smallest_subnormal,
        fmt.smallest_normal * 0.75,  # E8M0: float32 subnormals, where ML_DTYPES rounds up
        fmt.smallest_normal * 1.25,
        1.0,
        1.3,
    ]
    x = np.array(mags + [-m for m in mags] + [-0.0], dtype=np.float64)
    with np.errstate(over="ignore"):
        return x.astype(dtype)


@pytest.mark.parametrize("overflow", [Overflow.SATURATE, Overflow.ML_DTYPES], ids=lambda o: o.name)
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
@pytest.mark.parametrize("fmt", FORMATS, ids=_ids)
def test_overflow_policies_at_the_edges(fmt, mode, overflow, same_codes, same_floats):
    x = _with_nan(fmt, _edge_inputs(fmt, np.float32), overflow)
    _check(fmt, x, mode, overflow, 32, same_codes, same_floats)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if not f.has_nan], ids=_ids)
def test_nan_into_a_format_without_nan_raises(fmt):
    import qemu_arrays as qa

    x = np.array([1.0, np.nan], dtype=np.float32)
    for overflow in (Overflow.OWN, Overflow.SATURATE):
        with pytest.raises(ValueError, match="NaN"):
            qa.quantize(x, fmt, overflow=overflow)
        with pytest.raises(ValueError, match="NaN"):
            qa.encode(x, fmt, overflow=overflow)


def test_zero_into_e8m0_raises_only_without_nan():
    import qemu_arrays as qa

    fmt = get_format("float8_e8m0fnu")
    got = qa.encode(np.array([0.0, -0.0, -2.0], dtype=np.float32), fmt)
    assert got.tolist() == [0xFF, 0xFF, 0xFF]  # NaN: the format has one
    sat = qa.encode(np.array([0.0, -0.0, -2.0], dtype=np.float32), fmt, overflow=Overflow.SATURATE)
    assert sat.tolist() == [0, 0, 0]


# ---- float16, bfloat16 and float64 input --------------------------------------------------------

# 16-bit inputs are rounded by the float32 kernels after an exact widening, so two modes check
# the widening and the cast back; float64 input has kernels of its own: more modes.
MODES_16 = (Rounding.NEAREST_EVEN, Rounding.STOCHASTIC)
MODES_64 = (Rounding.NEAREST_EVEN, Rounding.UP, Rounding.TO_ODD, Rounding.STOCHASTIC)


@pytest.mark.parametrize("mode", MODES_16, ids=lambda m: m.name)
@pytest.mark.parametrize("dtype", [np.dtype(np.float16), BF16], ids=str)
@pytest.mark.parametrize("fmt", FORMATS, ids=_ids)
def test_16_bit_inputs(fmt, dtype, mode, probe, same_codes, same_floats):
    x = _with_nan(fmt, probe(fmt, dtype), Overflow.OWN)
    _check(fmt, x, mode, Overflow.OWN, 32, same_codes, same_floats)


@pytest.mark.parametrize("mode", MODES_64, ids=lambda m: m.name)
@pytest.mark.parametrize("fmt", FORMATS, ids=_ids)
def test_float64_input_rounds_once(fmt, mode, probe, same_codes, same_floats):
    x = _with_nan(fmt, probe(fmt, np.float64), Overflow.OWN)
    _check(fmt, x, mode, Overflow.OWN, 53, same_codes, same_floats)


@pytest.mark.parametrize(
    "fmt", [get_format("float8_e4m3fn"), get_format("float4_e2m1fn"), p3109(8, 3)], ids=_ids
)
def test_float64_via_float32_is_the_float32_path(fmt, probe, same_codes, same_floats):
    import qemu_arrays as qa

    x64 = probe(fmt, np.float32).astype(np.float64)
    x64 = x64[np.isfinite(x64)]
    # just above/below each float32 value: float32 rounding moves these onto the midpoints
    x64 = np.concatenate([x64, np.nextafter(x64, np.inf), np.nextafter(x64, -np.inf)])
    x32 = x64.astype(np.float32)
    for mode in (Rounding.NEAREST_EVEN, Rounding.STOCHASTIC):
        kw = _kwargs(mode)
        codes = qa.encode(x64, fmt, rounding=mode, via_float32=True, **kw)
        same_codes(codes, qa.encode(x32, fmt, rounding=mode, **kw), f"{fmt.name} {mode.name}")
        same_codes(codes, _reference_codes(fmt, x32, mode, Overflow.OWN, 32), fmt.name)
        got = qa.quantize(x64, fmt, rounding=mode, via_float32=True, **kw)
        assert got.dtype == np.float64
        same_floats(got, qa.quantize(x32, fmt, rounding=mode, **kw).astype(np.float64), fmt.name)
    # and it is a different function: double rounding shows on some of these inputs
    single = qa.encode(x64, fmt)
    assert (single != qa.encode(x64, fmt, via_float32=True)).any()


# ---- integer formats ----------------------------------------------------------------------------

INT_NAMES = ("int8", "int4", "uint8", "int8_narrow")


def _int_inputs(fmt, scale):
    k = np.arange(fmt.min - 3, fmt.max + 4, dtype=np.float64)
    k = k[(k < fmt.min + 16) | (np.abs(k) < 16) | (k > fmt.max - 16)]  # the ends and around 0
    base = np.concatenate([k * scale, (k + 0.5) * scale, (k + 0.25) * scale]).astype(np.float32)
    x = np.concatenate(
        [base, np.nextafter(base, np.float32(np.inf)), np.nextafter(base, np.float32(-np.inf))]
    )
    return np.concatenate([x, np.array([0.0, -0.0, np.inf, -np.inf, 1e30, -1e30], np.float32)])


@pytest.mark.parametrize("mode", CLASSIC + SOME_NEW, ids=lambda m: m.name)
@pytest.mark.parametrize("scale", [0.05, 0.25])
@pytest.mark.parametrize("name", INT_NAMES)
def test_int_formats(name, scale, mode, same_codes, same_floats):
    import qemu_arrays as qa

    fmt = get_format(name)
    f32 = get_format("float32")
    x = _int_inputs(fmt, scale)
    codes, values = [], []
    for i, v in enumerate(x.astype(np.float64).tolist()):
        kw = {"u": random_bits(SEED, 0, i, 32), "r": 32} if mode.stochastic else {}
        code = encode_value(v, fmt, mode, scale=scale, **kw)
        k = code - (1 << fmt.bits) if fmt.signed and code >> (fmt.bits - 1) else code
        assert quantize_value(v, fmt, mode, scale=scale, **kw) == k * scale
        codes.append(code)
        values.append(quantize_value(Fraction(k) * Fraction(scale), f32))  # k*s rounded once
    context = f"{name} scale={scale} {mode.name}"
    got_codes = qa.encode(x, fmt, rounding=mode, scale=scale, **_kwargs(mode))
    assert got_codes.dtype == np.uint8
    same_codes(got_codes, np.array(codes), context, inputs=x)
    got = qa.quantize(x, fmt, rounding=mode, scale=scale, **_kwargs(mode))
    same_floats(got, np.array(values, dtype=np.float32), context)
    dec = qa.decode(got_codes, fmt, scale=scale, dtype=np.float32)
    same_floats(dec, np.array(values, dtype=np.float32), context + " decode")


def test_int_nan_raises():
    import qemu_arrays as qa

    with pytest.raises(ValueError, match="NaN"):
        qa.quantize(np.array([np.nan], np.float32), "int8", scale=0.5)


# ---- 16-bit float formats on sampled float32 input ----------------------------------------------


@pytest.mark.parametrize("mode", CLASSIC, ids=lambda m: m.name)
@pytest.mark.parametrize("name", ["bfloat16", "float16"])
def test_16_bit_formats_on_sampled_float32(name, mode, rng, same_codes, same_floats):
    import qemu_arrays as qa

    fmt = get_format(name)
    mags = np.exp2(rng.uniform(math.log2(fmt.smallest_subnormal) - 4, math.log2(fmt.max) + 1, 700))
    mags = np.minimum(mags, np.finfo(np.float32).max)
    x = (mags * rng.choice([-1.0, 1.0], size=mags.size)).astype(np.float32)
    # midpoints of the target grid (exact in float32) and their neighbours
    with np.errstate(over="ignore"):
        t = x.astype(BF16 if name == "bfloat16" else np.float16)
        nxt = np.nextafter(t, t.dtype.type(np.inf)).astype(np.float32)
        fin = np.isfinite(nxt) & np.isfinite(t.astype(np.float32))
        mids = ((t.astype(np.float64)[fin] + nxt[fin].astype(np.float64)) / 2).astype(np.float32)
    x = np.concatenate(
        [x, mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf))]
    )
    x = np.concatenate([x, np.array([0.0, -0.0, np.inf, -np.inf, np.nan], np.float32)])
    expected = _reference_codes(fmt, x, mode, Overflow.OWN, 32)
    context = f"{name} {mode.name}"
    codes = qa.encode(x, fmt, rounding=mode, **_kwargs(mode))
    assert codes.dtype == np.uint16
    same_codes(codes, expected, context, inputs=x)
    got = qa.quantize(x, fmt, rounding=mode, **_kwargs(mode))
    with np.errstate(invalid="ignore"):
        want = expected.astype(np.uint16).view(BF16 if name == "bfloat16" else np.float16)
        same_floats(got, want.astype(np.float32), context)


# ---- decode, shapes, scalars --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS, ids=_ids)
def test_decode_every_code(fmt, same_floats):
    import qemu_arrays as qa

    codes = np.arange(1 << fmt.bits, dtype=np.uint8)
    expected = np.array([decode_code(int(c), fmt) for c in codes])
    same_floats(qa.decode(codes, fmt, dtype=np.float64), expected, fmt.name)


def test_shape_and_scalar_are_kept(rng):
    import qemu_arrays as qa

    x = rng.normal(size=(3, 4, 5)).astype(np.float32)
    y = qa.quantize(x, "float8_e4m3fn")
    assert y.shape == x.shape
    assert y.dtype == x.dtype
    flat = qa.quantize(x.reshape(-1), "float8_e4m3fn").reshape(x.shape)
    np.testing.assert_array_equal(y, flat)
    # stochastic indices run in C order over the whole array
    ys = qa.quantize(x, "float8_e4m3fn", rounding=Rounding.STOCHASTIC, seed=3)
    flat_s = qa.quantize(x.reshape(-1), "float8_e4m3fn", rounding=Rounding.STOCHASTIC, seed=3)
    np.testing.assert_array_equal(ys, flat_s.reshape(x.shape))
    codes = qa.encode(x, "float8_e4m3fn")
    assert codes.shape == x.shape
    assert codes.dtype == np.uint8
