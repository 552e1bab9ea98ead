"""The CPU kernels' paths agree bit for bit: the vectorized nearest-even kernel for float32
input against the general per-element kernel, on random bit patterns of every kind (normals,
subnormals, zeros, infinities, NaNs), for every eligible format and overflow policy."""

from __future__ import annotations

import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.kernels import elements as cpu

FORMATS = [
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e4m3b11fnuz",
    "float8_e4m3",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e3m4",
    "float6_e2m3fn",
    "float6_e3m2fn",
    "float4_e2m1fn",
    "bfloat16",
    "float16",
    "tf32",
    "binary8p3",
    "binary8p1",
    qa.FloatFormat(exponent_bits=3, mantissa_bits=0, specials=qa.Specials.FINITE),
    qa.FloatFormat(exponent_bits=5, mantissa_bits=2, bias=3, specials=qa.Specials.FN),
]


def _bits(n, seed):
    rng = np.random.default_rng(seed)
    b = rng.integers(0, 1 << 32, size=n, dtype=np.uint64).astype(np.uint32)
    # plus values near every binade of interest, and the specials
    x = (rng.standard_normal(n) * np.exp2(rng.integers(-140, 20, n))).astype(np.float32)
    extra = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 2.0**-149, 1.5, 2.5], np.float32)
    return np.concatenate([b, x.view(np.uint32), extra.view(np.uint32)])


@pytest.mark.parametrize("name", FORMATS, ids=str)
@pytest.mark.parametrize("overflow", list(qa.Overflow), ids=lambda o: o.name)
def test_vectorized_nearest_even_equals_general_kernel(name, overflow):
    fmt = qa.get_format(name)
    p = fmt.params()
    plan = cpu.rne_f32_plan(p, int(overflow))
    assert plan is not None, "every format listed here should take the vectorized kernel"
    xb = _bits(20000, 7)
    if not fmt.has_nan and overflow is not qa.Overflow.ML_DTYPES:
        nan = (xb & 0x7F800000 == 0x7F800000) & (xb & 0x7FFFFF != 0)
        xb = xb[~nan]  # NaN into a format without NaN is an error: counted below
    fast = np.empty_like(xb)
    slow = np.empty_like(xb)
    e1 = cpu.quantize_f32_rne(xb, fast, plan, p, int(overflow))
    e2 = cpu.quantize_float_bits(
        xb, slow, slow.view(np.float32), 8, 23, p, 0, int(overflow), 0, 0, 0, 0, 32
    )
    assert e1 == e2
    bad = np.nonzero(fast != slow)[0]
    assert bad.size == 0, (
        f"{fmt.name} {overflow.name}: input {xb[bad[0]]:#010x} gave {fast[bad[0]]:#010x}, "
        f"general kernel {slow[bad[0]]:#010x}"
    )


def test_nan_into_format_without_nan_counts_errors_in_both_kernels():
    fmt = qa.get_format("float4_e2m1fn")
    p = fmt.params()
    xb = np.array([0x7FC00000, 0x3F800000, 0xFFC00001], np.uint32)
    plan = cpu.rne_f32_plan(p, 0)
    out = np.empty_like(xb)
    assert cpu.quantize_f32_rne(xb, out, plan, p, 0) == 2


@pytest.mark.parametrize(
    "fmt",
    [
        "float8_e8m0fnu",  # no zero
        qa.FloatFormat(exponent_bits=4, mantissa_bits=3, signed=False, specials=qa.Specials.FN),
        qa.FloatFormat(exponent_bits=4, mantissa_bits=3, subnormals=False),
        "float32",
    ],
    ids=str,
)
def test_formats_the_vectorized_kernel_does_not_take(fmt):
    assert cpu.rne_f32_plan(qa.get_format(fmt).params(), 0) is None


@pytest.mark.parametrize("name", ["int8", "int8_narrow", "int4", "uint8", "int16", "int2"])
@pytest.mark.parametrize("scale", [0.05, 0.25, 3.0e-3, 1.7e5])
@pytest.mark.parametrize("zero_point", [0, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vectorized_integer_nearest_even_equals_general_kernel(name, scale, zero_point, dtype):
    fmt = qa.get_format(name)
    xb = _bits(5000, 11)
    x32 = xb.view(np.float32)
    x = x32[~np.isnan(x32)].astype(dtype)  # signalling NaNs would warn in the cast
    x = np.concatenate([x, (np.arange(-300, 300) * 0.5 * scale).astype(dtype)])  # ties
    lo, hi = float(fmt.min - zero_point), float(fmt.max - zero_point)
    fast = np.empty_like(x)
    slow = np.empty_like(x)
    assert cpu.quantize_int_rne(x, fast, scale, lo, hi) == 0
    s = np.array([scale])
    z = np.array([zero_point], np.int64)
    cpu.quantize_int(x, slow, np.empty(1, np.int64), s, z, fmt.min, fmt.max, 0, 0, 0, 0, 0, 32, 1)
    np.testing.assert_array_equal(fast.view(np.uint8), slow.view(np.uint8))  # bits, -0 included


def test_vectorized_integer_kernel_counts_nans():
    x = np.array([1.0, np.nan, -np.nan, np.inf], np.float32)
    out = np.empty_like(x)
    assert cpu.quantize_int_rne(x, out, 0.1, -128.0, 127.0) == 2
    assert out[3] == np.float32(12.7)


@pytest.mark.parametrize(
    ("shape", "axis", "block_size"),
    [((37, 50), 0, None), ((37, 50), 1, None), ((4, 6, 70), 1, None), ((37, 50), 1, 8),
     ((3, 40, 5), 1, 16), ((64,), 0, None), ((5, 33), 0, 4)],
)  # fmt: skip
@pytest.mark.parametrize(
    ("name", "symmetric"),
    [("int8", True), ("int8", False), ("int4", True), ("int4", False), ("uint8", False)],
)
def test_grouped_integer_kernel_equals_general_kernel(shape, axis, block_size, symmetric, name):
    from qemu_arrays.scales import flatten_groups, group_geometry, group_scales

    fmt = qa.get_format(name)
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(shape) * rng.uniform(0.1, 10, shape[-1])).astype(np.float32)
    x.flat[::17] = 0.0
    kw = {"axis": axis, "block_size": block_size, "symmetric": symmetric}
    got = qa.quantize(x, fmt, scale="absmax", **kw)
    sg, zg, g_axis, g_bs = group_scales(x, fmt, "absmax", None, x.shape, **kw)
    assert group_geometry(x.shape, sg, zg, g_axis, g_bs) is not None
    s, z = flatten_groups(sg, zg, x.shape, g_axis, g_bs)
    want = np.empty_like(x)
    cpu.quantize_int(
        x.reshape(-1), want.reshape(-1), np.empty(1, np.int64), s, z, fmt.min, fmt.max,
        0, 0, 0, 0, 0, 32, 1,
    )  # fmt: skip
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
