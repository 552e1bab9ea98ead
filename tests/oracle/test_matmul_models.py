"""The matrix-multiply profiles of qemu_arrays.hardware against the published test vectors and
against the exact model of formats/reference.py (``fused_dot_reference``).

The vectors are those of the Fasi-Higham-Mikaitis-Pranesh suite (tensor-cores-numerical-behavior)
and of the Hopper FP8 and Blackwell MX cases worked out in the research notes of issue 17, where
two published bit-accurate models (MMA-Sim, Khattak & Mikaitis) agree on every output.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats.reference import fused_dot_reference, quantize_value
from qemu_arrays.hardware import list_profiles, profile

E24 = 2.0**-24

# (id, a, b, c, V100, A100): rest of the group zero; outputs in float.hex (Fasi et al. suite)
FASI = [
    ("C1", [1, 1, 1, 1], [2, 3 * E24], 0.0, "0x1p+1", "0x1p+1"),
    ("C2", [1, 1, 1, 1], [-2, -3 * E24], 0.0, "-0x1p+1", "-0x1p+1"),
    ("D1", [1], [1], -(1 - E24), "0x1p-23", "0x1p-24"),
    ("D2", [1, 1, 1, 1], [E24] * 4, 1 - E24, "0x1.000002p+0", "0x1.000002p+0"),
    ("D3", [1, 1], [1, -E24], -1 + E24, "0x1p-23", "0x0p+0"),
    ("D4carry3", [1, 1, 1, 1], [1, 1.5, 1.75, 1.875], 1.875, "0x1p+3", "0x1p+3"),
    ("D4rz+", [1, 1, 1, 1], [1, 1, 1, 1], 1 + 2**-22 + 2**-23, "0x1.4p+2", "0x1.4p+2"),
    ("D4rz-", [1, 1, 1, 1], [-1] * 4, -(1 + 2**-22 + 2**-23), "-0x1.4p+2", "-0x1.4p+2"),
    ("D5a", [0.5] * 4, [E24] * 3 + [3 * E24], 1 - E24, "0x1p+0", "0x1.000002p+0"),
    ("D5b", [0.5] * 4, [E24] * 3 + [3 * E24], 1.0, "0x1p+0", "0x1p+0"),
    ("B", [0.5, 0.5, 1, 0.5], [E24, E24, 1, E24], E24, "0x1p+0", "0x1p+0"),
]

# Hopper FP8 (n=32, F=13, e8m13 output) and the exact value
H100 = [
    ("H1", [1, 2**-7], [1, 2**-7], 0.0, "0x1p+0"),
    ("H2", [1, 2**-6], [1, 2**-7], 0.0, "0x1.0008p+0"),
    ("H3", [], [], 1 + 2**-20, "0x1p+0"),
    ("H4", [], [], -(1 + 2**-20), "-0x1p+0"),
    ("H5", [1, 2**-7], [1, -(2**-7)], 0.0, "0x1p+0"),
    ("H6", [16], [16], 1 + 2**-5, "0x1.0108p+8"),
    ("H7", [1.5] * 4, [1.5] * 4, 0.0, "0x1.2p+3"),
    ("H9", [448] * 32, [448] * 32, 0.0, "0x1.88p+22"),
]


def _one(p, a, b, c, n, fmt=None):
    A = np.zeros((1, n), np.float32)
    B = np.zeros((n, 1), np.float32)
    A[0, : len(a)] = a
    B[: len(b), 0] = b
    out = p.matmul(A, B, np.float32(c), a_format=fmt, b_format=fmt)
    return float(out[0, 0])


@pytest.mark.parametrize("case", FASI, ids=lambda c: c[0])
def test_fasi_vectors(case):
    _, a, b, c, v100, a100 = case
    assert _one(profile("nvidia-v100-fp16"), a, b, c, 4) == float.fromhex(v100)
    assert _one(profile("nvidia-a100-fp16"), a, b, c, 8) == float.fromhex(a100)


@pytest.mark.parametrize("case", H100, ids=lambda c: c[0])
def test_hopper_fp8_vectors(case):
    _, a, b, c, want = case
    assert _one(profile("nvidia-h100-fp8-fast-accum"), a, b, c, 32) == float.fromhex(want)


def test_hopper_chain_loses_a_small_c_and_promotion_keeps_it():
    """H8: 64 ones plus c = 2**-11 chained in the e8m13 accumulator lose c; promoting every
    128 products into float32 (DeepSeek-V3) keeps the product sum exact."""
    A = np.ones((1, 64), np.float32)
    B = np.ones((64, 1), np.float32)
    fast = profile("nvidia-h100-fp8-fast-accum").matmul(A, B, np.float32(2**-11))
    assert float(fast[0, 0]) == 64.0
    A = np.full((1, 4096), 1.0, np.float32)
    A[0, 1::2] = 2.0**-7  # tiny products dropped once the sum is large
    B = np.ones((4096, 1), np.float32)
    exact = 2048 + 2048 * 2.0**-7
    fast = float(profile("nvidia-h100-fp8-fast-accum").matmul(A, B)[0, 0])
    promoted = float(profile("nvidia-h100-fp8-promote128").matmul(A, B)[0, 0])
    assert fast < exact
    assert promoted == exact


def _random(fmt, shape, rng, spread=6):
    x = rng.standard_normal(shape) * np.exp2(rng.integers(-spread, spread, shape))
    x[rng.random(shape) < 0.1] = 0.0
    return np.asarray(qa.quantize(x.astype(np.float32), fmt), dtype=np.float32)


def _promoted_reference(a, b, interval, **kw):
    total = Fraction(0)
    for lo in range(0, len(a), interval):
        part = fused_dot_reference(a[lo : lo + interval], b[lo : lo + interval], 0.0, **kw)
        total = Fraction(quantize_value(total + Fraction(part), "float32"))
    return float(total)


@pytest.mark.parametrize(
    ("name", "fmt", "K"),
    [
        ("nvidia-h100-fp8-fast-accum", "float8_e4m3fn", 70),
        ("nvidia-h100-fp8-fast-accum", "float8_e5m2", 64),
        ("nvidia-h100-fp8-promote128", "float8_e4m3fn", 200),
        ("nvidia-a100-fp16", "float16", 37),
        ("nvidia-a100-fp16", "bfloat16", 24),
        ("nvidia-v100-fp16", "float16", 13),
    ],
)
def test_models_match_the_reference(name, fmt, K):
    rng = np.random.default_rng(K)
    p = profile(name)
    A, B = _random(fmt, (3, K), rng), _random(fmt, (K, 2), rng)
    C = (rng.standard_normal((3, 2)) * 8).astype(np.float32)
    m = p.model
    e = qa.get_format(fmt).emin
    kw = {"emin_a": e, "emin_b": e, "group": m.group, "frac_bits": m.frac_bits,
          "out_precision": m.out_precision}  # fmt: skip
    if m.promote_interval:
        got = p.matmul(A, B, a_format=fmt, b_format=fmt)
        want = [[_promoted_reference(A[i].tolist(), B[:, j].tolist(), m.promote_interval, **kw)
                 for j in range(2)] for i in range(3)]  # fmt: skip
    else:
        got = p.matmul(A, B, C, a_format=fmt, b_format=fmt)
        want = [[fused_dot_reference(A[i].tolist(), B[:, j].tolist(), float(C[i, j]), **kw)
                 for j in range(2)] for i in range(3)]  # fmt: skip
    np.testing.assert_array_equal(np.asarray(got, np.float64), np.array(want))


def test_specials_give_nan_or_the_infinity():
    p = profile("nvidia-a100-fp16")
    A = np.array([[np.inf, 1.0], [np.inf, 0.0], [np.nan, 1.0]], np.float32)
    B = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)
    got = np.asarray(p.matmul(A, B))
    assert got[0, 0] == np.inf
    assert np.isnan(got[0, 1])  # inf * 0
    assert np.isnan(got[2]).all()


def test_b200_mx_block_dot():
    """M1: cancellation inside an MX block hides a tiny product on B200 (F = 25 below the
    largest scaled term); the exact OCP block dot keeps it; random blocks match the model."""
    a = np.zeros((1, 32), np.float32)
    b = np.zeros((32, 1), np.float32)
    a[0, :3] = [32, 32, 2**-8]
    b[:3, 0] = [32, -32, 2**-8]
    qa_, qb = qa.asarray(a, "mxfp8_e4m3", axis=-1), qa.asarray(b, "mxfp8_e4m3", axis=0)
    assert np.array_equal(qa_.dequantize(), a)
    assert float(profile("nvidia-b200-mxf8f6f4").matmul(qa_, qb)[0, 0]) == 0.0
    assert float(profile("ocp-mx-exact-fp32").matmul(qa_, qb)[0, 0]) == 2.0**-16
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 96)) * np.exp2(rng.integers(-8, 8, (2, 96)))).astype(np.float32)
    y = (rng.standard_normal((96, 2)) * 8).astype(np.float32)
    qx, qy = qa.asarray(x, "mxfp8_e4m3", axis=-1), qa.asarray(y, "mxfp6_e3m2", axis=0)
    got = np.asarray(profile("nvidia-b200-mxf8f6f4").matmul(qx, qy), np.float64)
    fx, ex = qx.__qemu_arrays_operand__()
    fy, ey = qy.__qemu_arrays_operand__()
    sx = np.log2(np.asarray(qa.decode(ex.scales, fx.scale, dtype=np.float64)))
    sy = np.log2(np.asarray(qa.decode(ey.scales, fy.scale, dtype=np.float64)))
    vx = np.asarray(qx.dequantize(), np.float64) / np.exp2(np.repeat(sx, 32, axis=1))
    vy = np.asarray(qy.dequantize(), np.float64) / np.exp2(np.repeat(sy, 32, axis=0))
    for i in range(2):
        for j in range(2):
            want = fused_dot_reference(
                vx[i].tolist(), vy[:, j].tolist(), 0.0, emin_a=-6, emin_b=-2, group=32,
                frac_bits=25, scale_exps=[int(sx[i, g] + sy[g, j]) for g in range(3)],
            )  # fmt: skip
            assert got[i, j] == want or (math.isnan(want) and math.isnan(got[i, j]))


def test_profiles_are_listed_with_sources():
    names = list_profiles()
    for n in ("nvidia-h100-fp8-fast-accum", "nvidia-b200-mxf8f6f4", "ocp-mx-exact-fp32"):
        assert n in names
        p = profile(n)
        assert p.sources
        assert "source:" in p.describe()


def test_model_input_errors():
    p = profile("nvidia-h100-fp8-fast-accum")
    A = np.full((1, 4), 1.1, np.float32)  # not an e4m3 value
    with pytest.raises(ValueError, match="not float8_e4m3fn values"):
        p.matmul(A, np.ones((4, 1), np.float32))
    with pytest.raises(ValueError, match="a_format='float16' is not an input format"):
        p.matmul(np.ones((1, 4), np.float32), np.ones((4, 1), np.float32), a_format="float16")
    with pytest.raises(ValueError, match="c must hold float32 values"):
        p.matmul(np.ones((1, 4), np.float32), np.ones((4, 1), np.float32), np.float64(0.1))


def test_models_refuse_scaled_int_and_nvfp4_operands():
    """Scaled integer QArrays (their scales would be dropped) and NVFP4 (E4M3 block scales
    over 16 products, a tensor scale) are not what the models multiply: a clear error, not a
    silently unscaled result or a broadcasting failure."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 64)).astype(np.float32)
    y = np.asarray(qa.quantize(x.T.copy(), "float8_e4m3fn"))
    h100 = profile("nvidia-h100-fp8-fast-accum")
    for q in (qa.asarray(x, "int4", axis=0), qa.asarray(x, "int4", axis=-1, block_size=32)):
        with pytest.raises(ValueError, match="scaled integer format"):
            h100.matmul(q, y)
    b200 = profile("nvidia-b200-mxf8f6f4")
    with pytest.raises(ValueError, match="no tensor scale"):
        b200.matmul(qa.asarray(x, "nvfp4", axis=-1), qa.asarray(x.T.copy(), "nvfp4", axis=0))
