"""The select-only float32 kernel for stochastic and directed rounding
(``qemu_arrays.kernels.elements.quantize_f32_select``) agrees bit for bit with the general
per-element kernel, random bits included: every float32 exponent with edge mantissas (ties,
one ulp either side, the extremes), random patterns, both signs, zeros, subnormals, infinities
and NaNs, for every eligible format and overflow policy, several ``random_bits`` and element
offsets (one across a 2**32 word boundary, one negative in two's complement)."""

from __future__ import annotations

import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats.cores import random_key
from qemu_arrays.kernels import elements as cpu

from .test_cpu_paths import FORMATS, _bits

R = qa.Rounding
MODES = [R.TOWARD_ZERO, R.UP, R.DOWN, R.STOCHASTIC]
# (random_bits, seed, stream, offset): stochastic runs every one, the directed modes the first
RANDOM = [(32, 5, 2, 0), (3, 7, 0, (1 << 32) - 5000), (24, 9, 1, -3), (1, 1, 3, 123)]


def _edge_bits():
    e = np.arange(256, dtype=np.uint32) << 23
    mants = np.array(
        [0, 1, 2, 3, 0x7FFFFF, 0x7FFFFE, 0x400000, 0x400001, 0x3FFFFF, 0x100000, 0x0FFFFF,
         0x080000, 0x080001, 0x07FFFF, 0x0C0000, 0x0A0000, 0x000FFF, 0x123457],
        np.uint32,
    )  # fmt: skip
    edge = (e[:, None] | mants[None, :]).ravel()
    return np.concatenate([_bits(6000, 11), edge, edge | np.uint32(0x80000000)])


XB = _edge_bits()


def _both(fmt, overflow, rnd, r, seed, stream, offset):
    p = fmt.params()
    plan = cpu.round_f32_plan(p, int(overflow), int(rnd), r)
    assert plan is not None, "every format listed here should take the select-only kernel"
    xb = XB
    if not fmt.has_nan and overflow is not qa.Overflow.ML_DTYPES:
        nan = (xb & 0x7F800000 == 0x7F800000) & (xb & 0x7FFFFF != 0)
        xb = xb[~nan]  # NaN into a format without NaN is an error: counted separately
    k = random_key(seed, stream)
    fast = np.empty_like(xb)
    slow = np.empty_like(xb)
    e1 = cpu.quantize_f32_select(xb, fast, plan, p, int(rnd), int(overflow), *k, offset, r)
    e2 = cpu.quantize_float_bits(
        xb, slow, slow.view(np.float32), 8, 23, p, int(rnd), int(overflow), *k, offset, r
    )
    return xb, fast, slow, e1, e2


@pytest.mark.parametrize("name", FORMATS, ids=str)
@pytest.mark.parametrize("rnd", MODES, ids=lambda m: m.name)
def test_select_kernel_equals_general_kernel(name, rnd):
    fmt = qa.get_format(name)
    for overflow in qa.Overflow:
        for r, seed, stream, offset in RANDOM if rnd is R.STOCHASTIC else RANDOM[:1]:
            xb, fast, slow, e1, e2 = _both(fmt, overflow, rnd, r, seed, stream, offset)
            assert e1 == e2
            bad = np.nonzero(fast != slow)[0]
            assert bad.size == 0, (
                f"{fmt.name} {overflow.name} {rnd.name} r={r} offset={offset}: input "
                f"{xb[bad[0]]:#010x} gave {fast[bad[0]]:#010x}, general {slow[bad[0]]:#010x}"
            )


def test_nan_into_format_without_nan_counts_errors():
    fmt = qa.get_format("float4_e2m1fn")
    p = fmt.params()
    xb = np.array([0x7FC00000, 0x3F800000, 0xFFC00001], np.uint32)
    plan = cpu.round_f32_plan(p, 0, int(R.STOCHASTIC), 32)
    out = np.empty_like(xb)
    assert cpu.quantize_f32_select(xb, out, plan, p, int(R.STOCHASTIC), 0, 1, 2, 3, 0, 32) == 2


def test_plan_only_for_its_modes_and_random_bits():
    p = qa.get_format("float8_e4m3fn").params()
    assert cpu.round_f32_plan(p, 0, int(R.STOCHASTIC), 33) is None  # two random words
    assert cpu.round_f32_plan(p, 0, int(R.NEAREST_AWAY), 32) is None
    assert cpu.round_f32_plan(qa.get_format("float8_e8m0fnu").params(), 0, int(R.UP), 32) is None


@pytest.mark.parametrize("rnd", [R.NEAREST_EVEN, R.STOCHASTIC, R.TOWARD_ZERO])
def test_out_is_written_directly_and_in_place_is_right(rnd):
    x = np.random.default_rng(3).standard_normal(5000).astype(np.float32)
    kw = {"rounding": rnd, "seed": 4} if rnd is R.STOCHASTIC else {"rounding": rnd}
    want = qa.quantize(x, "float8_e4m3fn", **kw)
    out = np.empty_like(x)
    assert qa.quantize(x, "float8_e4m3fn", out=out, **kw) is out
    np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32))
    y = x.copy()
    qa.quantize(y, "float8_e4m3fn", out=y, **kw)  # in place
    np.testing.assert_array_equal(y.view(np.uint32), want.view(np.uint32))
    z = np.concatenate([x[-1:], x])
    qa.quantize(z[1:], "float8_e4m3fn", out=z[:-1], **kw)  # overlapping, shifted by one
    np.testing.assert_array_equal(z[:-1].view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("dtype", [np.float16, "bfloat16"], ids=str)
def test_16_bit_kernel_equals_the_float32_route(dtype):
    """Every float16/bfloat16 bit pattern, every eligible format and policy: the one-pass 16-bit
    kernel gives the float32 route's result cast back (``cast_float``), bit for bit."""
    from qemu_arrays.float_casts import cast_float

    dt = np.dtype(dtype) if dtype is np.float16 else np.dtype(qa_ml_dtypes().bfloat16)
    h = np.arange(1 << 16, dtype=np.uint16).view(dt)
    for name in FORMATS:
        fmt = qa.get_format(name)
        for overflow in qa.Overflow:
            x = h
            if not fmt.has_nan and overflow is not qa.Overflow.ML_DTYPES:
                x = h[~np.isnan(h.astype(np.float32))]
            want = cast_float(qa.quantize(x.astype(np.float32), fmt, overflow=overflow), dt)
            got = qa.quantize(x, fmt, overflow=overflow)
            assert got.dtype == dt
            bad = np.nonzero(got.view(np.uint16) != want.view(np.uint16))[0]
            assert bad.size == 0, (
                f"{fmt.name} {overflow.name}: {x.view(np.uint16)[bad[0]]:#06x} gave "
                f"{got.view(np.uint16)[bad[0]]:#06x}, float32 route {want.view(np.uint16)[bad[0]]:#06x}"
            )


def qa_ml_dtypes():
    import ml_dtypes

    return ml_dtypes


def _bits64(n, seed):
    rng = np.random.default_rng(seed)
    b = rng.integers(-(1 << 63), 1 << 63, size=n, dtype=np.int64)
    x = rng.standard_normal(n) * np.exp2(rng.integers(-1070, 20, n).astype(np.float64))
    e = np.arange(2048, dtype=np.int64) << 52
    mants = np.array([0, 1, 3, 1 << 51, (1 << 51) + 1, (1 << 51) - 1, (1 << 52) - 1, 1 << 49,
                      (1 << 49) - 1, (1 << 49) + 1, 0x3000000000000, 0x123456789ABCD], np.int64)  # fmt: skip
    edge = (e[:, None] | mants[None, :]).ravel()
    return np.concatenate([b, x.view(np.int64), edge, edge | np.int64(-(1 << 63))])


@pytest.mark.parametrize("name", FORMATS, ids=str)
def test_float64_nearest_even_kernel_equals_general_kernel(name):
    fmt = qa.get_format(name)
    p = fmt.params()
    xb0 = _bits64(4000, 5)
    for overflow in qa.Overflow:
        plan = cpu.rne_f64_plan(p, int(overflow))
        assert plan is not None
        xb = xb0
        if not fmt.has_nan and overflow is not qa.Overflow.ML_DTYPES:
            xb = xb[~np.isnan(xb.view(np.float64))]
        fast = np.empty_like(xb)
        slow = np.empty_like(xb)
        e1 = cpu.quantize_f64_rne(xb, fast, plan, p, int(overflow))
        e2 = cpu.quantize_float_bits(
            xb, slow, slow.view(np.float64), 11, 52, p, 0, int(overflow), 0, 0, 0, 0, 53
        )
        assert e1 == e2
        bad = np.nonzero(fast != slow)[0]
        assert bad.size == 0, (
            f"{fmt.name} {overflow.name}: {xb[bad[0]] & 0xFFFFFFFFFFFFFFFF:#018x} gave "
            f"{fast[bad[0]] & 0xFFFFFFFFFFFFFFFF:#018x}, general {slow[bad[0]] & 0xFFFFFFFFFFFFFFFF:#018x}"
        )


@pytest.mark.parametrize("name", FORMATS, ids=str)
def test_nearest_even_codes_kernel_equals_general_kernel(name):
    from qemu_arrays.validation import code_dtype

    fmt = qa.get_format(name)
    p = fmt.params()
    for overflow in qa.Overflow:
        plan = cpu.rne_f32_plan(p, int(overflow))
        xb = XB
        if not fmt.has_nan and overflow is not qa.Overflow.ML_DTYPES:
            nan = (xb & 0x7F800000 == 0x7F800000) & (xb & 0x7FFFFF != 0)
            xb = xb[~nan]
        fast = np.empty(xb.size, code_dtype(fmt.bits))
        slow = np.empty_like(fast)
        e1 = cpu.encode_f32_rne(xb, fast, plan, p, int(overflow))
        e2 = cpu.encode_float_bits(xb, slow, 8, 23, p, 0, int(overflow), 0, 0, 0, 0, 32)
        assert e1 == e2
        bad = np.nonzero(fast != slow)[0]
        assert bad.size == 0, (
            f"{fmt.name} {overflow.name}: input {xb[bad[0]]:#010x} gave code {fast[bad[0]]:#x}, "
            f"general kernel {slow[bad[0]]:#x}"
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, "bfloat16"], ids=str)
@pytest.mark.parametrize("rnd", [R.NEAREST_EVEN, R.STOCHASTIC], ids=lambda m: m.name)
def test_a_failing_call_leaves_out_untouched(dtype, rnd):
    """A direct ``out=`` (the kernels' own output buffer) is not written when the call raises:
    a NaN late in the array into a format without NaN (before the pre-scan, the kernels had
    written the elements before it)."""
    dt = np.dtype(qa_ml_dtypes().bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    kw = {"rounding": rnd, "seed": 2} if rnd is R.STOCHASTIC else {"rounding": rnd}
    for fmt in ("float4_e2m1fn", "float6_e3m2fn"):
        x = np.linspace(-3, 3, 20000).astype(dt)
        x[15000] = np.nan
        out = np.full_like(x, 7)
        with pytest.raises(ValueError, match="no NaN"):
            qa.quantize(x, fmt, out=out, **kw)
        assert (out.astype(np.float32) == 7).all(), f"{fmt}: out was modified by a failing call"
        x[15000] = 1.0
        assert qa.quantize(x, fmt, out=out, **kw) is out  # the same call succeeds in place
        want = qa.quantize(x, fmt, **kw)
        np.testing.assert_array_equal(out.astype(np.float32), want.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float16, "bfloat16"], ids=str)
@pytest.mark.parametrize("rnd", MODES, ids=lambda m: m.name)
def test_16_bit_select_kernel_equals_the_float32_route(dtype, rnd):
    """Every float16/bfloat16 bit pattern, every eligible format, two policies: the one-pass
    16-bit stochastic/directed kernel gives the float32 route's result (same random bits per
    element, an offset across a 2**32 boundary) cast back, bit for bit."""
    from qemu_arrays.float_casts import cast_float

    dt = np.dtype(dtype) if dtype is np.float16 else np.dtype(qa_ml_dtypes().bfloat16)
    h = np.arange(1 << 16, dtype=np.uint16).view(dt)
    kw = {"rounding": rnd}
    if rnd is R.STOCHASTIC:
        kw.update(seed=3, stream=1, offset=(1 << 32) - 30000, random_bits=32)
    for name in FORMATS:
        fmt = qa.get_format(name)
        for overflow in (qa.Overflow.OWN, qa.Overflow.SATURATE):
            x = h if fmt.has_nan else h[~np.isnan(h.astype(np.float32))]
            want = cast_float(qa.quantize(x.astype(np.float32), fmt, overflow=overflow, **kw), dt)
            got = qa.quantize(x, fmt, overflow=overflow, **kw)
            assert got.dtype == dt
            bad = np.nonzero(got.view(np.uint16) != want.view(np.uint16))[0]
            assert bad.size == 0, (
                f"{fmt.name} {overflow.name}: {x.view(np.uint16)[bad[0]]:#06x} gave "
                f"{got.view(np.uint16)[bad[0]]:#06x}, float32 route {want.view(np.uint16)[bad[0]]:#06x}"
            )


@pytest.mark.parametrize("name", FORMATS, ids=str)
@pytest.mark.parametrize("rnd", MODES, ids=lambda m: m.name)
def test_select_codes_kernel_equals_general_kernel(name, rnd):
    from qemu_arrays.validation import code_dtype

    fmt = qa.get_format(name)
    p = fmt.params()
    if cpu.code_plan(p) is None:
        pytest.skip("the general kernel encodes this format")
    for overflow in qa.Overflow:
        for r, seed, stream, offset in RANDOM[:2] if rnd is R.STOCHASTIC else RANDOM[:1]:
            plan = cpu.round_f32_plan(p, int(overflow), int(rnd), r)
            xb = XB
            if not fmt.has_nan and overflow is not qa.Overflow.ML_DTYPES:
                nan = (xb & 0x7F800000 == 0x7F800000) & (xb & 0x7FFFFF != 0)
                xb = xb[~nan]
            k = random_key(seed, stream)
            fast = np.empty(xb.size, code_dtype(fmt.bits))
            slow = np.empty_like(fast)
            e1 = cpu.encode_f32_select(xb, fast, plan, p, int(rnd), int(overflow), *k, offset, r)
            e2 = cpu.encode_float_bits(xb, slow, 8, 23, p, int(rnd), int(overflow), *k, offset, r)
            assert e1 == e2
            bad = np.nonzero(fast != slow)[0]
            assert bad.size == 0, (
                f"{fmt.name} {overflow.name} {rnd.name} r={r}: input {xb[bad[0]]:#010x} gave "
                f"code {fast[bad[0]]:#x}, general kernel {slow[bad[0]]:#x}"
            )


DECODE_FORMATS = [*FORMATS, "float16", "bfloat16", "float8_e5m3fnu", "float8_e8m0fnu"]


def test_decode_kernels_equal_the_decode_rule():
    """Every code of every format of at most 16 bits (and P3109 formats): ``decode`` into each
    float dtype (the arithmetic float32 kernel where it applies, else the one-pass gather)
    gives the value of the exact reference's ``decode_code``, cast to the dtype (NaN: any
    NaN)."""
    from qemu_arrays.float_casts import cast_float
    from qemu_arrays.formats.reference import decode_code

    dts = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)]
    dts.append(np.dtype(qa_ml_dtypes().bfloat16))
    formats = [qa.get_format(n) for n in DECODE_FORMATS] + [qa.p3109(8, 3), qa.p3109(6, 1)]
    for fmt in formats:
        codes = np.arange(1 << fmt.bits, dtype=np.uint8 if fmt.bits <= 8 else np.uint16)
        if fmt.bits > 8:  # a sample of the 16-bit codes: every exponent, edge mantissas
            codes = codes[(codes % 61 == 0) | (codes % 128 < 3) | (codes % 128 > 125)]
        ref = np.array([decode_code(int(c), fmt) for c in codes], np.float64)
        for dt in dts:
            want = cast_float(ref, dt)
            got = qa.decode(codes, fmt, dtype=dt)
            ok = (got.view(f"u{dt.itemsize}") == want.view(f"u{dt.itemsize}")) | (
                np.isnan(got.astype(np.float64)) & np.isnan(want.astype(np.float64))
            )
            bad = np.nonzero(~ok)[0]
            assert bad.size == 0, f"{fmt.name} {dt}: code {codes[bad[0]]:#x} gave {got[bad[0]]}"
        if fmt.bits < 16:  # a code out of range, found by the kernel's pass
            with pytest.raises(ValueError, match="must lie in"):
                qa.decode(np.array([0, 1 << fmt.bits], np.uint16), fmt)


XB64 = _bits64(3000, 6)
# (random_bits, seed, stream, offset) for float64 input: the default 53, both words' edges
RANDOM64 = [(53, 5, 2, (1 << 32) - 3000), (62, 7, 0, -3), (32, 9, 1, 0), (3, 1, 3, 123)]


# an 11-bit exponent: 2**(m - emin) beyond float64's range, the subnormal scaling in two steps
WIDE = qa.FloatFormat(exponent_bits=11, mantissa_bits=10)


@pytest.mark.parametrize("name", [*FORMATS, WIDE], ids=str)
@pytest.mark.parametrize("rnd", MODES, ids=lambda m: m.name)
def test_float64_select_kernel_equals_general_kernel(name, rnd):
    fmt = qa.get_format(name)
    p = fmt.params()
    xb0 = XB64
    for overflow in qa.Overflow:
        xb = xb0
        if not fmt.has_nan and overflow is not qa.Overflow.ML_DTYPES:
            xb = xb[~np.isnan(xb.view(np.float64))]
        for r, seed, stream, offset in RANDOM64 if rnd is R.STOCHASTIC else RANDOM64[:1]:
            plan = cpu.round_f64_plan(p, int(overflow), int(rnd), r)
            assert plan is not None
            k = random_key(seed, stream)
            fast = np.empty_like(xb)
            slow = np.empty_like(xb)
            e1 = cpu.quantize_f64_select(xb, fast, plan, p, int(rnd), int(overflow), *k, offset, r)
            e2 = cpu.quantize_float_bits(
                xb, slow, slow.view(np.float64), 11, 52, p, int(rnd), int(overflow), *k, offset, r
            )
            assert e1 == e2
            bad = np.nonzero(fast != slow)[0]
            assert bad.size == 0, (
                f"{fmt.name} {overflow.name} {rnd.name} r={r}: {xb[bad[0]] & 0xFFFFFFFFFFFFFFFF:#018x}"
                f" gave {fast[bad[0]] & 0xFFFFFFFFFFFFFFFF:#018x}, general "
                f"{slow[bad[0]] & 0xFFFFFFFFFFFFFFFF:#018x}"
            )
