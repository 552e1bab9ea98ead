"""Caller-supplied random bits (``rbits=``, issue 16): an element rounds away from zero exactly
when ``floor(f 2^r) + b >= 2^r``, ``b`` the low ``r`` bits of its word (PTX ``cvt.rs``'s carry
rule, gfloat's ``StochasticFastest``). Tested bit for bit against gfloat (a test dependency),
against the exact reference, and against the counter-based rule it mirrors."""

from __future__ import annotations

import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.reference import encode_value, quantize_value, random_bits
from qemu_arrays.formats.spec import Overflow, Rounding
from tests.conftest import assert_same_floats

SR = Rounding.STOCHASTIC


def _inputs(rng, fmt, n=400):
    mags = np.ldexp(
        rng.uniform(1, 2, n), rng.integers(fmt.emin - fmt.mantissa_bits - 2, fmt.emax, n)
    )
    return (mags * rng.choice([-1.0, 1.0], n)).astype(np.float32)


@pytest.mark.parametrize(
    ("name", "gf_name"),
    [
        ("float8_e4m3fn", "format_info_ocp_e4m3"),
        ("float8_e5m2", "format_info_ocp_e5m2"),
        ("float16", "format_info_binary16"),
    ],
)
@pytest.mark.parametrize("r", [3, 8, 13])
def test_gfloat_stochastic_fastest_bit_for_bit(name, gf_name, r):
    gfloat = pytest.importorskip("gfloat")
    formats = pytest.importorskip("gfloat.formats")

    fi = getattr(formats, gf_name)
    fmt = get_format(name)
    rng = np.random.default_rng(r)
    x = _inputs(rng, fmt)
    bits = rng.integers(0, 1 << 16, x.size).astype(np.uint16)
    want = gfloat.round_ndarray(
        fi, x.astype(np.float64), gfloat.RoundMode.StochasticFastest, True,
        (bits & ((1 << r) - 1)).astype(np.int64), r,
    )  # fmt: skip
    got = qa.quantize(x, fmt, rounding=SR, rbits=bits, random_bits=r, overflow=Overflow.SATURATE)
    assert_same_floats(got, want.astype(np.float32), f"{name} r={r}")


def test_reference_carry_rule_and_routes():
    rng = np.random.default_rng(1)
    for name, r, scale in (("float8_e4m3fn", 16, None), ("float4_e2m1fn", 8, None),
                           ("int8", 5, 0.125)):  # fmt: skip
        fmt = get_format(name)
        x = _inputs(rng, get_format("float8_e5m2"), 200)
        bits = rng.integers(0, 1 << 32, x.size, dtype=np.uint64).astype(np.uint32)
        kw = {} if scale is None else {"scale": scale}
        want_q = [quantize_value(v, fmt, SR, rbits=int(b), r=r, input_dtype="float32", **kw)
                  for v, b in zip(x.tolist(), bits.tolist())]  # fmt: skip
        want_c = [encode_value(v, fmt, SR, rbits=int(b), r=r, **kw)
                  for v, b in zip(x.tolist(), bits.tolist())]  # fmt: skip
        got = qa.quantize(x, fmt, rounding=SR, rbits=bits, random_bits=r, **kw)
        assert_same_floats(got, np.array(want_q, np.float32), name)
        codes = qa.encode(x, fmt, rounding=SR, rbits=bits, random_bits=r, **kw)
        assert codes.tolist() == want_c, name


def test_caller_bits_mirror_the_counter_bits():
    """Bits ``2^r - 1 - u`` through the carry rule give the counter-based results bit for bit
    (the counter rule is ``u < floor(f 2^r)``): the two rules are the same rounding."""
    fmt = get_format("float8_e4m3fn")
    x = _inputs(np.random.default_rng(2), fmt, 300)
    for r in (4, 32):
        u = np.array([random_bits(11, 0, i, r) for i in range(x.size)], dtype=np.uint64)
        bits = ((1 << r) - 1 - u).astype(np.uint32)
        want = qa.quantize(x, fmt, rounding=SR, seed=11, random_bits=r)
        assert_same_floats(qa.quantize(x, fmt, rounding=SR, rbits=bits, random_bits=r), want)


def test_ptx_cvt_rs_vectors():
    """Transcribed from the PTX ISA ``cvt.rs`` rule (top ``r`` discarded bits plus the lane's
    random bits, carry rounds up); vectors of docs/hardware.md."""
    cases = [  # (float32 bits, format, r, lane bits, expected value)
        (0x3F808000, "bfloat16", 16, 0x7FFF, 1.0),
        (0x3F808000, "bfloat16", 16, 0x8000, 1.0078125),
        (0x3F800FFF, "float16", 13, 0x1000, 1.0),
        (0x3F800FFF, "float16", 13, 0x1001, 1.0009765625),
        (0x3F812345, "float8_e4m3fn", 16, 0xEDCB, 1.0),
        (0x3F812345, "float8_e4m3fn", 16, 0xEDCC, 1.125),
        (0x3FA00000, "float4_e2m1fn", 8, 0x7F, 1.0),
        (0x3FA00000, "float4_e2m1fn", 8, 0x80, 1.5),
        (0x3F800000, "float8_e4m3fn", 16, 0xFFFF, 1.0),
    ]
    for word, name, r, lane, want in cases:
        x = np.array([word], np.uint32).view(np.float32)
        got = qa.quantize(x, name, rounding=SR, rbits=np.array([lane], np.uint32), random_bits=r)
        assert got[0] == want, (hex(word), name, hex(lane))


def test_rbits_broadcast_torch_and_equal_mode():
    torch = pytest.importorskip("torch")
    x = np.full((3, 4), 1.0 + 2.0**-6, np.float32)  # 1/8 of an E4M3 step above 1.0
    row = np.array([0, 0xDFFF, 0xE000, 0xFFFF], np.uint16)  # up iff b >= 0xE000 (r = 16)
    got = qa.quantize(x, "float8_e4m3fn", rounding=SR, rbits=row)
    assert got.tolist() == [[1.0, 1.0, 1.125, 1.125]] * 3
    t = qa.quantize(torch.from_numpy(x), "float8_e4m3fn", rounding=SR, rbits=torch.from_numpy(row))
    assert isinstance(t, torch.Tensor)
    assert t.tolist() == got.tolist()
    half = np.array([0, 0x7FFF, 0x8000, 0xFFFF], np.uint16)  # equal mode: up iff the top bit
    eq = qa.quantize(x, "float8_e4m3fn", rounding=Rounding.STOCHASTIC_EQUAL, rbits=half)
    assert eq.tolist() == [[1.0, 1.0, 1.125, 1.125]] * 3


def test_rbits_on_jax_and_under_jit():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x = np.full((2, 4), 1.0 + 2.0**-6, np.float32)
    row = np.array([0, 0xDFFF, 0xE000, 0xFFFF], np.uint16)
    want = qa.quantize(x, "float8_e4m3fn", rounding=SR, rbits=row)

    def f(a, b):
        return qa.quantize(a, "float8_e4m3fn", rounding=SR, rbits=b)

    np.testing.assert_array_equal(np.asarray(f(jnp.asarray(x), jnp.asarray(row))), want)
    np.testing.assert_array_equal(np.asarray(jax.jit(f)(jnp.asarray(x), jnp.asarray(row))), want)
