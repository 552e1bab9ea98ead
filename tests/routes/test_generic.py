"""The generic array-API implementation against the numba CPU kernels, bit for bit."""

from __future__ import annotations

import array_api_compat.numpy as cnp
import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats import cores
from qemu_arrays.routes import generic
from tests.conftest import assert_same_codes, assert_same_floats, probe_values

R = qa.Rounding
O = qa.Overflow
#: the first seven modes and three of issue 16 (the others run against the exact reference on
#: the generic route in tests/oracle/test_rounding_modes.py)
MODES = (*(r for r in R if r <= R.STOCHASTIC), R.NEAREST_ODD, R.JAM, R.STOCHASTIC_EQUAL)
SMALL = [
    n
    for n in qa.list_formats()
    if isinstance(qa.get_format(n), qa.FloatFormat) and qa.get_format(n).bits <= 16
]


def _inputs(fmt, dtype, rng):
    if fmt.bits <= 8:
        x = probe_values(fmt, dtype)
    else:  # random bit patterns (probe_values enumerates every code: slow for 16 bits)
        bits = rng.integers(0, 1 << 32, 3000, dtype=np.uint64).astype(np.uint32)
        with np.errstate(over="ignore", invalid="ignore"):
            x = bits.view(np.float32).astype(dtype)
        x = np.concatenate([x[np.isfinite(x)], np.array([0.0, -0.0, np.inf, -np.inf], dtype)])
    extra = (rng.standard_normal(300) * min(fmt.max, 1e4) / 3).astype(dtype)
    nan = np.array([np.nan, -np.nan], dtype=dtype) if fmt.has_nan else np.empty(0, dtype)
    return np.concatenate([x, extra, nan])


def _both(fn_name, x, fmt, **kw):
    """(numba CPU result, generic result), or the two exceptions' types."""
    with np.errstate(over="ignore"):  # results beyond float16's range cast to inf
        return _both_inner(fn_name, x, fmt, **kw)


def _both_inner(fn_name, x, fmt, **kw):
    try:
        a = getattr(qa, fn_name)(x, fmt, **kw)
    except ValueError as e:
        a = type(e)
    try:
        b = getattr(generic, fn_name)(x, fmt, xp=cnp, **kw)
    except ValueError as e:
        b = type(e)
    return a, b


CASES = [(n, np.float32) for n in SMALL] + [
    (n, dt)
    for n in ("float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "float8_e8m0fnu", "bfloat16")
    for dt in (np.float64, np.float16)
]


@pytest.mark.parametrize(("name", "dtype"), CASES)
def test_generic_matches_kernels_every_mode_and_policy(name, dtype, rng):
    fmt = qa.get_format(name)
    x = _inputs(fmt, dtype, rng)
    for rnd in MODES:
        policies = list(O) if rnd in (R.NEAREST_EVEN, R.STOCHASTIC, R.UP) else [O.OWN]
        for ovf in policies:
            if ovf is O.ML_DTYPES and not fmt.has_zero:
                # in flux in the CPU kernels (quantize and encode disagree on float32
                # subnormals): reported to the lead, compared again once settled
                continue
            kw = {"rounding": rnd, "overflow": ovf, "seed": 11, "stream": 3, "offset": 5}
            a, b = _both("quantize", x, fmt, **kw)
            if isinstance(a, type) or isinstance(b, type):
                assert a is b, f"{name} {rnd.name} {ovf.name}: {a} vs {b}"
                continue
            assert_same_floats(b, a, f"{name} {np.dtype(dtype)} {rnd.name} {ovf.name}")
            a, b = _both("encode", x, fmt, **kw)
            assert b.dtype == a.dtype
            assert_same_codes(b, a, f"encode {name} {rnd.name} {ovf.name}", inputs=x)


@pytest.mark.parametrize("name", ["tf32", "float32"])
def test_generic_wide_formats(name, rng):
    fmt = qa.get_format(name)
    x = (rng.standard_normal(2000) * 1e3).astype(np.float64)
    for rnd in (R.NEAREST_EVEN, R.TO_ODD, R.STOCHASTIC):
        a, b = _both("quantize", x, fmt, rounding=rnd, seed=2)
        assert_same_floats(b, a, f"{name} {rnd.name}")
        a, b = _both("encode", x, fmt, rounding=rnd, seed=2)
        assert_same_codes(b, a, f"{name} {rnd.name}")


@pytest.mark.parametrize("r", [1, 8, 16, 32, 40, 53, 62])
def test_random_bits_match_the_cores(r):
    n = 64
    for offset in (0, (1 << 32) - 40, 3 << 40):
        u = np.asarray(generic.random_u(cnp, n, 7, 9, offset, r, 64))
        k0, k1, k2 = cores.random_key(7, 9)
        want = [int(cores.random_u(k0, k1, k2, offset + i, r)) for i in range(n)]
        assert u.astype(np.uint64).tolist() == want


@pytest.mark.parametrize("random_bits", [4, 12, 40])
def test_short_and_long_random_bits(random_bits, rng):
    fmt = qa.get_format("float8_e5m2")
    x = (rng.standard_normal(3000) * 10).astype(np.float64)
    kw = {"rounding": R.STOCHASTIC, "seed": 4, "random_bits": random_bits}
    a, b = _both("quantize", x, fmt, **kw)
    assert_same_floats(b, a, f"r={random_bits}")


@pytest.mark.parametrize("name", ["int8", "int4", "uint8", "int8_narrow"])
def test_integer_formats(name, rng):
    x = np.concatenate(
        [(rng.standard_normal(2000) * 40).astype(np.float32), [0.5, -0.5, 1.5, 1e30, -np.inf]]
    ).astype(np.float32)
    for rnd in MODES:
        for scale, zp in ((0.37, None), (0.25, 3)):
            kw = {"rounding": rnd, "seed": 5, "scale": scale, "zero_point": zp}
            a, b = _both("quantize", x, name, **kw)
            assert_same_floats(b, a, f"{name} {rnd.name} {scale}")
            a, b = _both("encode", x, name, **kw)
            assert_same_codes(b, a, f"{name} {rnd.name} {scale}")


def test_nan_without_nan_code_raises():
    x = np.array([1.0, np.nan], dtype=np.float32)
    with pytest.raises(ValueError, match="has no NaN"):
        generic.quantize(x, "float4_e2m1fn", xp=cnp)
    y = generic.quantize(x, "float4_e2m1fn", overflow=O.ML_DTYPES, xp=cnp)
    assert_same_floats(y, qa.quantize(x, "float4_e2m1fn", overflow=O.ML_DTYPES))


def test_decode_generic_matches():
    for name in ("float8_e4m3fn", "float4_e2m1fn", "bfloat16", "float8_e8m0fnu"):
        fmt = qa.get_format(name)
        codes = np.arange(1 << fmt.bits, dtype=np.uint16 if fmt.bits > 8 else np.uint8)
        a = qa.decode(codes, fmt)
        b = generic.decode(codes, fmt, xp=cnp)
        assert_same_floats(b, a, name)


def test_bad_arguments_are_explained():
    x = np.ones(3, np.float32)
    with pytest.raises(TypeError, match="rounding"):
        generic.quantize(x, "float8_e4m3fn", rounding="nearest", xp=cnp)
    with pytest.raises(ValueError, match="seed"):
        generic.quantize(x, "float8_e4m3fn", rounding=R.STOCHASTIC, xp=cnp)
    with pytest.raises(TypeError, match="dtype"):
        generic.quantize(np.ones(3, np.int32), "float8_e4m3fn", xp=cnp)
    with pytest.raises(ValueError, match="scale"):
        generic.quantize(x, "int8", xp=cnp)


# ---- JAX: the generic route under jit and grad, in JAX's default 32-bit mode ------------------


def test_jax_jit_32bit_bit_identical(rng):
    jax = pytest.importorskip("jax", reason="JAX is not installed")
    jnp = jax.numpy
    if jax.config.read("jax_enable_x64"):
        pytest.skip("this test checks JAX's default 32-bit mode; x64 is enabled here")
    for name in ("float8_e4m3fn", "float4_e2m1fn", "float8_e8m0fnu", "bfloat16"):
        fmt = qa.get_format(name)
        x = _inputs(fmt, np.float32, rng)
        for rnd in (R.NEAREST_EVEN, R.STOCHASTIC, R.DOWN):
            kw = {"rounding": rnd, "seed": 3, "offset": 17, "overflow": O.SATURATE}
            f = jax.jit(lambda v, kw=kw, fmt=fmt: qa.quantize(v, fmt, **kw))
            got = np.asarray(f(jnp.asarray(x)))
            assert_same_floats(got, qa.quantize(x, fmt, **kw), f"jit {name} {rnd.name}")
            codes = jax.jit(lambda v, kw=kw, fmt=fmt: qa.encode(v, fmt, **kw))(jnp.asarray(x))
            assert_same_codes(np.asarray(codes), qa.encode(x, fmt, **kw), f"jit enc {name}")


def test_jax_traced_nan_gives_nan_and_grad_traces():
    jax = pytest.importorskip("jax", reason="JAX is not installed")
    jnp = jax.numpy
    x = jnp.asarray([1.0, jnp.nan, 7.0], dtype=jnp.float32)
    y = jax.jit(lambda v: qa.quantize(v, "float4_e2m1fn"))(x)
    assert np.isnan(np.asarray(y)[1])
    assert np.asarray(y)[2] == 6.0
    g = jax.grad(lambda v: jnp.sum(qa.quantize(v, "float8_e4m3fn") * v))(jnp.ones(3))
    assert g.shape == (3,)


def test_jax_int_without_x64_needs_power_of_two_scale(rng):
    jax = pytest.importorskip("jax", reason="JAX is not installed")
    if jax.config.read("jax_enable_x64"):
        pytest.skip("checks JAX's default 32-bit mode")
    x = (rng.standard_normal(500) * 30).astype(np.float32)
    got = qa.quantize(jax.numpy.asarray(x), "int8", scale=0.25, rounding=R.STOCHASTIC, seed=1)
    want = qa.quantize(x, "int8", scale=0.25, rounding=R.STOCHASTIC, seed=1)
    assert_same_floats(np.asarray(got), want)
    with pytest.raises(ValueError, match="power-of-two"):
        qa.quantize(jax.numpy.asarray(x), "int8", scale=0.3)


# ---- issue 19: subnormals under XLA's flush-to-zero, results wider than the input -------------

_SUBNORMAL_CHECK = """
import numpy as np, jax
{x64}
import qemu_arrays as qa
R = qa.Rounding
bad = []
x = np.array([1e-40, -1e-40, 3e-42, -7e-45, 0.0, -0.0, 1.0, -2.5, 1e-38], np.float32)
if jax.config.read("jax_enable_x64"):
    x = np.concatenate([x.astype(np.float64), [1e-310, -4e-320, 5e-324, 2.0**-1022]])
xs = [x] + ([x.astype(np.float32)] if x.dtype == np.float64 else [])
for v in xs:
    for scale in (1.0, 2.0**-140, 2.0**-149, 2.0**-126, 0.25, 2.0**90):
        for zp in (None, 2):
            for rnd in (R.NEAREST_EVEN, R.UP, R.DOWN, R.TO_ODD, R.STOCHASTIC, R.JAM):
                kw = dict(scale=scale, zero_point=zp, rounding=rnd, seed=3)
                with np.errstate(all="ignore"):
                    want = qa.quantize(v, "int8", **kw)
                    got = np.asarray(qa.quantize(jax.numpy.asarray(v), "int8", **kw))
                    if zp is None and scale in (1.0, 2.0**-149) and rnd in (R.UP, R.STOCHASTIC):  # jit too
                        codes = np.asarray(jax.jit(lambda a: qa.encode(a, "int8", **kw))(jax.numpy.asarray(v)))
                    else:
                        codes = np.asarray(qa.encode(jax.numpy.asarray(v), "int8", **kw))
                    dec = np.asarray(qa.decode(jax.numpy.asarray(codes), "int8", scale=scale, zero_point=zp))
                    want_dec = qa.decode(codes, "int8", scale=scale, zero_point=zp)
                if not (np.array_equal(got.view(np.uint8), want.view(np.uint8))
                        and np.array_equal(codes, qa.encode(v, "int8", **kw))
                        and np.array_equal(dec.view(np.uint8), want_dec.view(np.uint8))):
                    bad.append((v.dtype.name, scale, zp, rnd.name, got.tolist(), want.tolist()))
print("BAD", bad[:4])
assert not bad, len(bad)
"""


@pytest.mark.parametrize("x64", [False, True], ids=["32-bit", "x64"])
def test_jax_integer_formats_keep_subnormals(x64):
    """XLA flushes subnormal operands: ``[1e-40, -1e-40]`` under UP used to give [0, 0] (NumPy:
    [1, 0]), a subnormal power-of-two scale a false "x contains NaN", subnormal results zeros.
    The quotient and the values are now formed on the bits. A subprocess: x64 is global."""
    pytest.importorskip("jax", reason="JAX is not installed")
    import subprocess
    import sys

    line = 'jax.config.update("jax_enable_x64", True)' if x64 else ""
    res = subprocess.run(
        [sys.executable, "-c", _SUBNORMAL_CHECK.format(x64=line)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]


def test_generic_wide_formats_round_once(rng):
    """More mantissa bits than the float32 input: the generic route rounds the clamped maximum
    to float32 once, nearest-even, as the kernels and the reference do (issue 19)."""
    fmt = qa.FloatFormat(exponent_bits=5, mantissa_bits=40, specials=qa.Specials.FNUZ)
    x = np.concatenate([[np.inf, -np.inf, 2e5, -3e5], rng.standard_normal(200) * 1e4])
    x = x.astype(np.float32)
    for ovf in (O.SATURATE, O.OWN):
        a, b = _both("quantize", x, fmt, overflow=ovf)
        assert_same_floats(b, a, f"e5m40 {ovf.name}")
    assert qa.quantize(np.float32(np.inf), fmt, overflow=O.SATURATE) == 131072.0
