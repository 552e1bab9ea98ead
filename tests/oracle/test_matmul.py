"""matmul/dot against the exact reference (formats/reference.py ``dot_reference``), bit for bit.

Every order x fma x rounding x accumulator on small shapes; every (accumulator value, product)
pair exhaustively for tiny formats; special values and zero signs; both exact paths (BLAS
partials and the wide integer accumulator) and their property: ``accumulator=None`` is the
exactly rounded sum; MX block formats through their scales.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qemu_arrays as qa
from qemu_arrays.formats.reference import dot_reference, quantize_value, random_bits

R = qa.Rounding
#: the rounding modes of matmul (every mode but STOCHASTIC_EQUAL, which it refuses)
MODES = [r for r in R if r is not R.STOCHASTIC_EQUAL]
F32 = qa.get_format("float32")


def reference(A, B, *, accumulator="float32", rounding=R.NEAREST_EVEN, order="sequential",
              block_k=None, promote_to="float32", fma=True, seed=None, stream=0, r=32,
              out_format="float32", block_scales=None):  # fmt: skip
    """The reference matrix: ``dot_reference`` per output element (element ``i * N + j``)."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    M, N = A.shape[0], B.shape[1]
    out = np.empty((M, N))
    for i in range(M):
        for j in range(N):
            scales = None if block_scales is None else block_scales(i, j)
            out[i, j] = dot_reference(
                A[i].tolist(), B[:, j].tolist(), accumulator=accumulator, rounding=rounding,
                order=order, block_k=block_k, promote_to=promote_to, fma=fma, seed=seed,
                stream=stream, element=i * N + j, r=r, out_format=out_format,
                block_scales=scales,
            )  # fmt: skip
    return out


def assert_same(got, want, context=""):
    got = np.asarray(got, dtype=np.float64)
    bad = ~((got == want) & (np.signbit(got) == np.signbit(want)) | np.isnan(got) & np.isnan(want))
    if bad.any():
        idx = np.argwhere(bad)[:6]
        ex = [(tuple(i), float(got[tuple(i)]), float(want[tuple(i)])) for i in idx]
        pytest.fail(f"{context}: {int(bad.sum())} mismatches (index, got, reference): {ex}")


def _values(name, n, rng, zeros=0.1):
    """``n`` values of a format (random signs, some ±0) as float32."""
    fmt = qa.get_format(name)
    if fmt.bits <= 8:
        v = rng.choice(fmt.values(), n) * rng.choice([-1.0, 1.0], n)
    else:  # wide formats: random values over a wide range, rounded into the format
        x = rng.standard_normal(n) * np.exp2(rng.integers(-20, 20, n))
        v = np.asarray(qa.quantize(x.astype(np.float32), fmt), dtype=np.float64)
    z = rng.random(n)
    v = np.where(z < zeros, 0.0, v)
    v = np.where((z >= zeros) & (z < 1.5 * zeros), -0.0, v)
    return v.astype(np.float32)


def _data(name, shape, rng):
    """Inputs with cancellation: column 1 of a repeats column 0, row 1 of b negates row 0."""
    if name == "float32":
        n = int(np.prod(shape))
        v = (rng.standard_normal(n) * np.exp2(rng.integers(-30, 30, n))).astype(np.float32)
    else:
        v = _values(name, int(np.prod(shape)), rng)
    return v.reshape(shape)


def _pair(name, M, K, N, rng):
    A, B = _data(name, (M, K), rng), _data(name, (K, N), rng)
    if K >= 2:
        A[:, 1] = A[:, 0]
        B[1] = -B[0]
    return A, B


ACCUMULATORS = [
    "float32", "bfloat16", "float16", "float8_e4m3fn", "float8_e5m2", "float64",
    qa.FloatFormat(exponent_bits=6, mantissa_bits=9, name="e6m9"),
]  # fmt: skip
ORDERS = [
    ("sequential", {}),
    ("pairwise", {}),
    ("blocked", {"block_k": 4}),
    ("blocked", {"block_k": 8, "promote_to": "bfloat16"}),
]


def _r(acc, order, extra):
    """The default random bits: min(32, 60 - p) of the widest format rounded into."""
    ps = [qa.get_format(acc).precision if isinstance(acc, str) else acc.precision]
    if order == "blocked":
        ps.append(qa.get_format(extra.get("promote_to", "float32")).precision)
    return min(32, 60 - max(ps))


CASES = [(o, x, f, i) for o, x in ORDERS for f in (True, False)
         for i in ("float8_e4m3fn", "bfloat16", "float32")]  # fmt: skip


@pytest.mark.parametrize("case", range(len(CASES)))
def test_every_mode_matches_the_reference(case):
    """Each case (order x fma x input format) runs a third of the (accumulator, rounding)
    pairs, rotating with the case, so that every pair meets every order and both fma."""
    order, extra, fma, inputs = CASES[case]
    rng = np.random.default_rng(case)
    A, B = _pair(inputs, 2, 19, 3, rng)
    for n, acc in enumerate(ACCUMULATORS):
        for rnd in MODES:
            if (n + int(rnd) + case) % 3 or (rnd is R.JAM and acc == "float64"):
                continue  # JAM into float64 is refused (test_matmul_errors)
            kw = {"accumulator": acc, "rounding": rnd, "order": order, "fma": fma, **extra}
            got = qa.matmul(A, B, **kw, allow_narrow=True, seed=11)
            want = reference(A, B, **kw, seed=11, r=_r(acc, order, extra))
            assert_same(got, want, f"{inputs} {acc} {rnd.name} {order} {extra} fma={fma}")


def test_float64_and_float32_accumulators_are_the_cpus_arithmetic():
    """Independent of the reference: float64 (float32) accumulation with fma=False is Python's
    (NumPy float32's) own ``acc = acc + a * b`` loop."""
    rng = np.random.default_rng(12)
    A = (rng.standard_normal((3, 50)) * np.exp2(rng.integers(-20, 20, (3, 50)))).astype(np.float32)
    B = (rng.standard_normal((50, 2)) * np.exp2(rng.integers(-20, 20, (50, 2)))).astype(np.float32)
    got64 = qa.matmul(A, B, accumulator="float64", fma=False)
    got32 = qa.matmul(A, B, accumulator="float32", fma=False)
    for i in range(3):
        for j in range(2):
            acc64, acc32 = 0.0, np.float32(0)
            for k in range(50):
                acc64 = acc64 + float(A[i, k]) * float(B[k, j])
                acc32 = np.float32(acc32 + np.float32(A[i, k] * B[k, j]))
            assert got64[i, j] == acc64
            assert got32[i, j] == acc32
    # and with exact sums (integers) every accumulator of float64 agrees with numpy's matmul
    Ai = rng.integers(-100, 100, (4, 33)).astype(np.float32)
    Bi = rng.integers(-100, 100, (33, 5)).astype(np.float32)
    want = Ai.astype(np.float64) @ Bi.astype(np.float64)
    np.testing.assert_array_equal(qa.matmul(Ai, Bi, accumulator="float64", order="pairwise"), want)
    np.testing.assert_array_equal(qa.matmul(Ai.astype(np.float64), Bi, accumulator=None), want)


@pytest.mark.parametrize("K", [1, 2, 3, 32, 33, 70])
def test_lengths_and_block_edges(K):
    rng = np.random.default_rng(K)
    A, B = _pair("float8_e5m2", 2, K, 2, rng)
    for order, extra in [("sequential", {}), ("pairwise", {}), ("blocked", {"block_k": 32})]:
        for acc, rnd in [("bfloat16", R.NEAREST_EVEN), ("float16", R.STOCHASTIC),
                         ("float32", R.TOWARD_ZERO)]:  # fmt: skip
            kw = {"accumulator": acc, "rounding": rnd, "order": order, **extra}
            got = qa.matmul(A, B, **kw, allow_narrow=True, seed=3, random_bits=12)
            assert_same(got, reference(A, B, **kw, seed=3, r=12), f"K={K} {acc} {order}")
    got = qa.matmul(A, B, accumulator=None, order="blocked", block_k=32)
    want = reference(A, B, accumulator=None, order="blocked", block_k=32)
    assert_same(got, want, f"K={K} exact blocks")


# ---- every (accumulator value, product) pair of tiny formats ---------------------------------

TINY_ACCUMULATORS = [
    qa.FloatFormat(exponent_bits=3, mantissa_bits=2, name="e3m2_ieee"),  # inf and NaN
    qa.get_format("float6_e3m2fn"),  # finite: overflow saturates
    qa.get_format("float8_e4m3fn"),  # no inf: overflow is NaN
]


def _all_products(name):
    v = qa.get_format(name).values()
    p = np.unique(np.outer(v, v))
    return np.concatenate([p, -p[p > 0]]).astype(np.float32)


# every mode on the IEEE-like 6-bit format; the first seven on the finite one; nearest-even on e4m3
TINY_CASES = (
    [(TINY_ACCUMULATORS[0], r) for r in MODES]
    + [(TINY_ACCUMULATORS[1], r) for r in MODES[:7]]
    + [(TINY_ACCUMULATORS[2], R.NEAREST_EVEN)]
)


@pytest.mark.parametrize(("acc", "rnd"), TINY_CASES, ids=lambda v: getattr(v, "name", str(v)))
def test_exhaustive_single_additions(acc, rnd):
    """``R(acc + p)`` for every value ``acc`` of the accumulator and every product ``p`` of two
    FP4 (e2m1) values: a = [acc, 1], b = [1, p]; the first addition is exact. (The 8-bit
    accumulator runs nearest-even only, for time; the 6-bit ones run every mode.)"""
    accs = acc.values()
    accs = np.concatenate([accs, -accs[accs > 0]]).astype(np.float32)
    prods = _all_products("float4_e2m1fn")
    A = np.stack([accs, np.ones_like(accs)], axis=1)
    B = np.stack([np.ones_like(prods), prods])
    for fma in (True, False) if rnd is R.NEAREST_EVEN and acc.bits < 8 else (True,):
        kw = {"accumulator": acc, "rounding": rnd, "fma": fma}
        got = qa.matmul(A, B, **kw, allow_narrow=True, seed=5, random_bits=8)
        assert_same(got, reference(A, B, **kw, seed=5, r=8), f"{acc.name} {rnd.name} fma={fma}")


# ---- special values, zero signs, overflow ------------------------------------------------------


def test_special_values_follow_ieee():
    inf, nan = np.inf, np.nan
    A = np.array([[1.0, inf], [inf, -inf], [nan, 1.0], [0.0, inf], [2.0, 3.0]], np.float32)
    B = np.array([[1.0, 1.0], [1.0, 1.0]], np.float32)
    B[:, 1] = [1.0, -1.0]
    for acc in ["float32", "bfloat16", "float8_e4m3fn", "float8_e5m2"]:
        for rnd in (R.NEAREST_EVEN, R.TOWARD_ZERO, R.UP):
            for order, extra in [("sequential", {}), ("pairwise", {}),
                                 ("blocked", {"block_k": 1})]:  # fmt: skip
                kw = {"accumulator": acc, "rounding": rnd, "order": order, **extra}
                got = qa.matmul(A, B, **kw, allow_narrow=True)
                assert_same(got, reference(A, B, **kw), f"{acc} {rnd.name} {order}")
    got = qa.matmul(A, B, accumulator=None)
    assert_same(got, reference(A, B, accumulator=None), "exact")
    assert_same(qa.matmul(A, B, accumulator=None, order="blocked", block_k=1),
                reference(A, B, accumulator=None, order="blocked", block_k=1), "exact blocks")  # fmt: skip


def test_nan_into_a_format_without_nan_raises():
    A = np.array([[np.inf, 1.0]], np.float32)
    B = np.array([[0.0], [1.0]], np.float32)  # inf * 0 = NaN
    with pytest.raises(ValueError, match="has no NaN"):
        qa.matmul(A, B, accumulator="float6_e3m2fn", allow_narrow=True)


@pytest.mark.parametrize("rnd", [R.NEAREST_EVEN, R.DOWN, R.UP, R.TOWARD_ZERO])
def test_zero_signs(rnd):
    """An exact zero sum is +0 except under DOWN (IEEE 754); -0 + -0 stays -0."""
    A = np.array([[-0.0, -0.0], [1.0, 1.0], [-1.0, 0.0], [0.0, -0.0]], np.float32)
    B = np.array([[1.0, -1.0], [1.0, 1.0]], np.float32)
    for acc in ["float32", "bfloat16", "float8_e4m3fnuz", "float64"]:
        for order, extra in [("sequential", {}), ("pairwise", {}), ("blocked", {"block_k": 1})]:
            for fma in (True, False):
                kw = {"accumulator": acc, "rounding": rnd, "order": order, "fma": fma, **extra}
                got = qa.matmul(A, B, **kw, allow_narrow=True)
                assert_same(got, reference(A, B, **kw), f"{acc} {order} fma={fma}")


def test_overflow_follows_each_format():
    A = np.full((1, 8), 448.0, np.float32)
    B = np.full((8, 3), 448.0, np.float32)
    B[:, 1] *= -1
    B[4:, 2] *= -1
    for acc in ["float16", "float8_e4m3fn", "float8_e5m2", "float6_e3m2fn"]:
        for rnd in MODES:
            kw = {"accumulator": acc, "rounding": rnd}
            got = qa.matmul(A, B, **kw, allow_narrow=True, seed=1, random_bits=8)
            assert_same(got, reference(A, B, **kw, seed=1, r=8), f"{acc} {rnd.name}")


def test_float32_sum_overflowing_with_finite_operands():
    """bfloat16 has float32's range: a running value near its largest plus a product passes
    float32's largest value; the result follows each mode's overflow rule."""
    v = 1.5 * 2.0**125  # products exact in float32; six of them pass float32's largest value
    A = np.array([[v] * 6 + [-v], [-v] * 6 + [1.0]], np.float32)
    B = np.ones((7, 1), np.float32)
    for rnd in (R.TOWARD_ZERO, R.UP, R.DOWN, R.STOCHASTIC):
        for fma in (True, False):
            kw = {"accumulator": "bfloat16", "rounding": rnd, "fma": fma}
            got = qa.matmul(A, B, **kw, seed=3, random_bits=8, allow_narrow=True)
            assert_same(got, reference(A, B, **kw, seed=3, r=8), f"{rnd.name} fma={fma}")


def test_double_rounding_boundary():
    """A product on a midpoint of a wide-range accumulator's grid next to a tiny running sum:
    the plain float64 sum would lose the tiny term and round the tie to even (2.5)."""
    acc = qa.FloatFormat(exponent_bits=8, mantissa_bits=3)
    A = np.array([[2.0**-100, 1.5]], np.float32)
    B = np.array([[1.0], [1.75]], np.float32)
    got = qa.matmul(A, B, accumulator=acc, allow_narrow=True)
    assert float(got[0, 0]) == 2.75
    assert_same(got, reference(A, B, accumulator=acc), "boundary")


# ---- exact sums ----------------------------------------------------------------------------------

finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=True)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(finite32, finite32), min_size=0, max_size=40),
    st.sampled_from([R.NEAREST_EVEN, R.TOWARD_ZERO, R.UP, R.DOWN, R.TO_ODD, R.STOCHASTIC]),
)
def test_exact_mode_is_the_exactly_rounded_sum(pairs, rnd):
    a = np.array([p[0] for p in pairs], np.float32)
    b = np.array([p[1] for p in pairs], np.float32)
    exact = sum((Fraction(float(x)) * Fraction(float(y)) for x, y in zip(a, b)), Fraction(0))
    u = random_bits(9, 0, 0, 32) if rnd is R.STOCHASTIC else None
    want = quantize_value(exact, "float32", rnd, u=u, r=32 if u is not None else None)
    got = qa.dot(a, b, accumulator=None, rounding=rnd, seed=9)
    assert got.shape == ()
    assert float(got) == want or (math.isnan(want) and math.isnan(float(got)))
    assert math.copysign(1, float(got)) == math.copysign(1, want)
    # float64 arrays of the same values: rounded into float64
    got64 = qa.dot(a.astype(np.float64), b.astype(np.float64), accumulator=None, rounding=rnd,
                   seed=9, random_bits=7)  # fmt: skip
    u64 = random_bits(9, 0, 0, 7) if rnd is R.STOCHASTIC else None
    want64 = quantize_value(exact, "float64", rnd, u=u64, r=7 if u64 is not None else None)
    assert got64.dtype == np.float64
    assert float(got64) == want64


@pytest.mark.parametrize("wide", [False, True], ids=["blas", "wide-integer"])
def test_exact_paths(wide):
    """Narrow data takes BLAS partial sums (exact: the span fits 53 bits); float32 data over a
    wide range takes the wide integer accumulator. Both equal the reference."""
    rng = np.random.default_rng(7)
    A, B = _pair("float32" if wide else "float8_e4m3fn", 3, 45, 4, rng)
    for rnd in (R.NEAREST_EVEN, R.DOWN, R.STOCHASTIC):
        got = qa.matmul(A, B, accumulator=None, rounding=rnd, seed=2)
        assert_same(got, reference(A, B, accumulator=None, rounding=rnd, seed=2), "exact")
        for promote in ("float32", "bfloat16"):
            kw = {"accumulator": None, "rounding": rnd, "order": "blocked", "block_k": 16,
                  "promote_to": promote}  # fmt: skip
            got = qa.matmul(A, B, **kw, seed=2, allow_narrow=True)
            assert_same(got, reference(A, B, **kw, seed=2, r=32), f"blocks into {promote}")


def test_exact_blocks_in_row_panels(monkeypatch):
    """The BLAS exact-blocks path works on row panels: with one-row panels every promotion
    (plain float32 addition, the float32 kernel with MX scales, the general kernel with its
    stochastic events indexed by output element) still equals the reference."""
    from qemu_arrays.routes import matmul_cpu

    monkeypatch.setattr(matmul_cpu, "_PANEL_BYTES", 8)
    rng = np.random.default_rng(11)
    A, B = _pair("float8_e4m3fn", 5, 40, 3, rng)
    for promote, rnd in [("float32", R.NEAREST_EVEN), ("bfloat16", R.STOCHASTIC),
                         ("float32", R.UP)]:  # fmt: skip
        kw = {"accumulator": None, "rounding": rnd, "order": "blocked", "block_k": 16,
              "promote_to": promote}  # fmt: skip
        got = qa.matmul(A, B, **kw, seed=4, random_bits=9, allow_narrow=True)
        assert_same(got, reference(A, B, **kw, seed=4, r=9), f"panels into {promote} {rnd}")
    big = A * np.float32(2.0**100)  # float32 partials would overflow: float64 partials
    kw = {"accumulator": None, "order": "blocked", "block_k": 16}
    assert_same(qa.matmul(big, B, **kw), reference(big, B, **kw), "float64 partials")
    qx = qa.asarray(rng.standard_normal((5, 64)).astype(np.float32), "mxfp8_e4m3", axis=-1)
    qy = qa.asarray(rng.standard_normal((64, 3)).astype(np.float32), "mxfp8_e4m3", axis=0)
    monkeypatch.setattr(matmul_cpu, "_PANEL_BYTES", 1 << 20)
    whole = qa.matmul(qx, qy, accumulator=None)
    monkeypatch.setattr(matmul_cpu, "_PANEL_BYTES", 8)
    assert_same(qa.matmul(qx, qy, accumulator=None), whole, "MX scales in panels")


def test_float32_accumulator_equals_numpy_on_exact_data():
    """Sanity: with products and sums exact in float32, every order gives numpy's result."""
    rng = np.random.default_rng(0)
    A = rng.integers(-8, 8, (5, 40)).astype(np.float32)
    B = rng.integers(-8, 8, (40, 6)).astype(np.float32)
    want = A @ B
    for order, extra in [("sequential", {}), ("pairwise", {}), ("blocked", {"block_k": 7})]:
        np.testing.assert_array_equal(qa.matmul(A, B, order=order, **extra), want)
    np.testing.assert_array_equal(qa.matmul(A, B, accumulator=None), want)


# ---- block formats: the OCP MX block dot product -----------------------------------------------


def _mx_parts(q, axis):
    """(element values, scale values per block along ``axis``) of an MX QArray."""
    fmt, enc = q.__qemu_arrays_operand__()
    scales = np.asarray(qa.decode(enc.scales, fmt.scale, dtype=np.float64))
    n = q.shape[axis]
    per_value = np.repeat(scales, fmt.block_size, axis=axis).take(range(n), axis=axis)
    vals = np.asarray(q.dequantize(), dtype=np.float64) / per_value  # power-of-two scales
    return vals, scales


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp4_e2m1", "mxint8"])
def test_mx_block_dot(name):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((2, 70)) * np.exp2(rng.integers(-6, 6, (2, 70)))).astype(np.float32)
    y = (rng.standard_normal((70, 3)) * 4).astype(np.float32)
    qx = qa.asarray(x, name, axis=-1)
    qy = qa.asarray(y, name, axis=0)
    va, sa = _mx_parts(qx, 1)
    vb, sb = _mx_parts(qy, 0)

    def scales(i, j):
        return [Fraction(float(sa[i, t])) * Fraction(float(sb[t, j])) for t in range(sa.shape[1])]

    for acc, rnd in [("float32", R.NEAREST_EVEN), ("bfloat16", R.TOWARD_ZERO), (None, R.NEAREST_EVEN),
                     (None, R.STOCHASTIC)]:  # fmt: skip
        kw = {"accumulator": acc, "rounding": rnd}
        got = qa.matmul(qx, qy, **kw, allow_narrow=True, seed=8)
        want = reference(va, vb, **kw, order="blocked", block_k=32, seed=8,
                         block_scales=scales)  # fmt: skip
        assert_same(got, want, f"{name} {acc} {rnd.name}")
    # against plain arrays: exact blocks of the dequantized values agree when nothing rounds
    # but the promotions (power-of-two scales are exact)
    plain = qa.matmul(qx.dequantize(), qy.dequantize(), accumulator=None, order="blocked",
                      block_k=32)  # fmt: skip
    assert_same(qa.matmul(qx, qy, accumulator=None), plain, "dequantized")


def test_mx_times_plain_array_and_qarray_of_element_format():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 64)).astype(np.float32)
    y = qa.quantize(rng.standard_normal((64, 2)).astype(np.float32), "float8_e4m3fn")
    qx = qa.asarray(x, "mxfp8_e4m3", axis=-1)
    va, sa = _mx_parts(qx, 1)
    got = qa.matmul(qx, y, accumulator="bfloat16", allow_narrow=True)
    want = reference(va, y, accumulator="bfloat16", order="blocked", block_k=32,
                     block_scales=lambda i, j: [Fraction(float(s)) for s in sa[i]])  # fmt: skip
    assert_same(got, want, "mx x plain")
    qy = qa.asarray(y, "float8_e4m3fn")
    assert_same(qa.matmul(x, qy, accumulator="bfloat16", allow_narrow=True),
                reference(x, y, accumulator="bfloat16"), "element-format QArray")  # fmt: skip


def _block_parts(q):
    """(element values, block scale values, tensor scale) of a block-format QArray."""
    fmt, enc = q.__qemu_arrays_operand__()
    vals = np.asarray(qa.decode(enc.codes, fmt.element, dtype=np.float64))
    scales = np.asarray(qa.decode(enc.scales, fmt.scale, dtype=np.float64))
    return vals, scales, enc.tensor_scale


def test_nvfp4_block_dot_and_tensor_scales():
    """NVFP4 x NVFP4 as cuBLASLt's VEC16_UE4M3 block scaling: each block of 16 products summed
    in the accumulator, times the two E4M3 block scales (exact), promoted into float32; the
    float32 per-tensor scales in the epilogue, ``out = fl32(acc * fl32(t_a * t_b))``."""
    rng = np.random.default_rng(14)
    x = (rng.standard_normal((2, 56)) * np.exp2(rng.integers(-4, 4, (2, 56)))).astype(np.float32)
    y = (rng.standard_normal((56, 3)) * 30).astype(np.float32)
    qx = qa.asarray(x, "nvfp4", axis=-1)
    qy = qa.asarray(y, "nvfp4", axis=0)
    va, sa, ta = _block_parts(qx)
    vb, sb, tb = _block_parts(qy)
    alpha = np.float32(np.float64(ta) * np.float64(tb))
    assert ta != 1.0
    assert tb != 1.0

    def scales(i, j):
        return [Fraction(float(sa[i, t])) * Fraction(float(sb[t, j])) for t in range(sa.shape[1])]

    for acc, rnd in [("float32", R.NEAREST_EVEN), ("bfloat16", R.TOWARD_ZERO),
                     (None, R.NEAREST_EVEN)]:  # fmt: skip
        kw = {"accumulator": acc, "rounding": rnd}
        got = qa.matmul(qx, qy, **kw, allow_narrow=True)
        want = reference(va, vb, **kw, order="blocked", block_k=16, block_scales=scales)
        assert_same(got, want.astype(np.float32) * alpha, f"nvfp4 {acc} {rnd.name}")
    close = np.asarray(qx.dequantize(), np.float64) @ np.asarray(qy.dequantize(), np.float64)
    np.testing.assert_allclose(qa.matmul(qx, qy), close, rtol=1e-5, atol=1e-6)


# ---- stochastic rounding: the events and their random bits --------------------------------------


def test_stochastic_rounding_is_reproducible_and_indexed_by_output_element():
    rng = np.random.default_rng(6)
    A = _data("float8_e4m3fn", (4, 50), rng)
    B = _data("float8_e4m3fn", (50, 5), rng)
    kw = {"accumulator": "bfloat16", "rounding": R.STOCHASTIC, "allow_narrow": True}
    one = qa.matmul(A, B, seed=1, **kw)
    np.testing.assert_array_equal(one, qa.matmul(A, B, seed=1, **kw))
    assert not np.array_equal(one, qa.matmul(A, B, seed=2, **kw))
    assert not np.array_equal(one, qa.matmul(A, B, seed=1, stream=1, **kw))
    # a batch: element e of batch b is output element b * M * N + e
    batch = qa.matmul(np.stack([A, A]), B, seed=1, **kw)
    np.testing.assert_array_equal(batch[0], one)
    want = reference(A, B, accumulator="bfloat16", rounding=R.STOCHASTIC, seed=1, r=32)
    assert_same(one, want, "SR")
    shifted = np.array([[dot_reference(A[i].tolist(), B[:, j].tolist(), accumulator="bfloat16",
                                       rounding=R.STOCHASTIC, seed=1, r=32,
                                       element=20 + i * 5 + j) for j in range(5)]
                        for i in range(4)])  # fmt: skip
    assert_same(batch[1], shifted, "SR, second batch")


def test_sr_event32_is_the_counter_word():
    """The kernels' hoisted draw (``formats/round32.sr_event32``) is ``random_u`` of index
    ``(e << 32) | t``, for every number of random bits."""
    from qemu_arrays.formats.cores import mix32, random_key, random_u
    from qemu_arrays.formats.round32 import sr_event32_cpu

    k0, k1, k2 = random_key(7, 3)
    for t, e in [(0, 0), (5, 1), (2**31 + 9, 12345), (2**32 - 1, 2**31 - 1), (77, 2**20 + 3)]:
        h = mix32(t ^ k2)
        for r in (1, 8, 17, 32):
            assert int(sr_event32_cpu(h, e, k0, k1, r)) == int(
                random_u(k0, k1, k2, (e << 32) | t, r)
            )


def test_threads_do_not_change_results():
    import numba

    rng = np.random.default_rng(8)
    A = _data("float8_e5m2", (40, 30), rng)
    B = _data("float8_e5m2", (30, 40), rng)
    kw = {"accumulator": "float16", "rounding": R.STOCHASTIC, "seed": 4, "allow_narrow": True}
    prev = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = qa.matmul(A, B, **kw)
    finally:
        numba.set_num_threads(prev)
    np.testing.assert_array_equal(one, qa.matmul(A, B, **kw))


# ---- scaled integer formats: raw integers summed, the scales in the epilogue -------------------


def test_scaled_int_operands_apply_their_scales_in_the_epilogue():
    """int8 per-row (asymmetric: zero points) times int8 per-column: the integers ``k - zp``
    are summed in the accumulator, then ``out = fl32(acc * fl32(s_a[i] * s_b[j]))``."""
    rng = np.random.default_rng(13)
    x = (rng.standard_normal((3, 37)) * 3).astype(np.float32)
    y = rng.standard_normal((37, 2)).astype(np.float32)
    qx = qa.asarray(x, "int8", axis=0, symmetric=False)
    qy = qa.asarray(y, "int8", axis=1)
    ints = []
    for q in (qx, qy):
        fmt, enc = q.__qemu_arrays_operand__()
        ints.append(np.asarray(qa.decode(enc.codes, fmt, scale=np.ones_like(enc.scales),
                                         zero_point=enc.zero_points, axis=enc.axis,
                                         dtype=np.float64)))  # fmt: skip
    sx = qx.__qemu_arrays_operand__()[1].scales
    sy = qy.__qemu_arrays_operand__()[1].scales
    s = (np.asarray(sx, np.float64) * np.asarray(sy, np.float64)).astype(np.float32)
    for acc in ("bfloat16", None):
        got = qa.matmul(qx, qy, accumulator=acc, allow_narrow=True)
        want = reference(ints[0], ints[1], accumulator=acc)
        np.testing.assert_array_equal(got, want.astype(np.float32) * s)


def _int_parts(q, K, name):
    """(the integers ``k - zp``, the scale of each (row, group) of ``a`` or (group, column)
    of ``b``) of a scaled integer QArray, built from its encoding independently of the route."""
    fmt, enc = q.__qemu_arrays_operand__()
    ints = np.asarray(qa.decode(enc.codes, fmt, scale=np.ones_like(enc.scales),
                                zero_point=enc.zero_points, axis=enc.axis,
                                block_size=enc.block_size, dtype=np.float64))  # fmt: skip
    per_value = np.asarray(q.dequantize(), np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        sc = np.broadcast_to(np.asarray(enc.scales, np.float64), ints.shape) \
            if enc.block_size is None else np.repeat(np.asarray(enc.scales, np.float64),
                                                     enc.block_size, axis=enc.axis)  # fmt: skip
    sc = sc.take(range(ints.shape[enc.axis]), axis=enc.axis) if enc.block_size else sc
    np.testing.assert_allclose(ints * sc, per_value, rtol=1e-6, atol=1e-30)
    return ints, sc


@pytest.mark.parametrize(("promote", "rnd"), [("float32", R.NEAREST_EVEN),
                                              ("bfloat16", R.STOCHASTIC), ("float32", R.DOWN)])  # fmt: skip
def test_grouped_int_scales_enter_each_group_sum(promote, rnd):
    """Scales along the reduction axis (int8 groups of 16 times asymmetric uint4 groups of
    16; a per-k scale times a per-column one): each group's exact integer sum times
    ``fl32(s_a[i, g] * s_b[g, j])`` is promoted into ``promote_to`` with one rounding."""
    rng = np.random.default_rng(21)
    K = 40  # the last group is short
    x = (rng.standard_normal((3, K)) * np.exp2(rng.integers(-3, 3, (3, K)))).astype(np.float32)
    y = rng.standard_normal((K, 2)).astype(np.float32)
    pairs = [
        (qa.asarray(x, "int8", axis=-1, block_size=16),
         qa.asarray(y, "uint4", axis=0, block_size=16, symmetric=False), 16),
        (qa.asarray(x, "int8", axis=-1), qa.asarray(y, "int8", axis=-1), 1),
    ]  # fmt: skip
    fp8_y = np.asarray(qa.quantize(y, "float8_e4m3fn"))  # a plain array: its scale is 1
    pairs.append((qa.asarray(x, "int8", axis=-1, block_size=8), fp8_y, 8))
    for qx, qy, g in pairs:
        ia, sa = _int_parts(qx, K, "a")
        ib, sb = _int_parts(qy, K, "b") if g != 8 else (fp8_y.astype(np.float64), np.ones((K, 2)))
        sa_g, sb_g = sa[:, ::g], sb[::g, :]

        def scales(i, j, sa_g=sa_g, sb_g=sb_g):
            prod = (sa_g[i] * sb_g[:, j]).astype(np.float32)  # float64 product, then fl32
            return [Fraction(float(v)) for v in prod]

        kw = {"rounding": rnd, "order": "blocked", "promote_to": promote}
        got = qa.matmul(qx, qy, **kw, seed=5, random_bits=9, allow_narrow=True)
        want = reference(ia, ib, accumulator=None, block_k=g, **kw, seed=5,
                         r=9, block_scales=scales)  # fmt: skip
        assert_same(got, want, f"groups of {g} into {promote} {rnd.name}")
        # the default float32 accumulator holds every group sum exactly: the same result
        assert_same(qa.matmul(qx, qy, accumulator=None, **kw, seed=5, random_bits=9,
                              allow_narrow=True), want, "accumulator=None")  # fmt: skip


def test_grouped_int_scales_errors():
    rng = np.random.default_rng(22)
    x = rng.standard_normal((2, 64)).astype(np.float32)
    qx = qa.asarray(x, "int8", axis=-1, block_size=32)
    qy = qa.asarray(x.T.copy(), "int8", axis=0, block_size=32)
    with pytest.raises(ValueError, match="accumulator='float16' cannot hold"):
        qa.matmul(qx, qy, accumulator="float16", allow_narrow=True)
    with pytest.raises(ValueError, match="different sizes"):
        qa.matmul(qx, qa.asarray(x.T.copy(), "int8", axis=0, block_size=16))
    with pytest.raises(ValueError, match="cannot be multiplied with a scaled integer"):
        qa.matmul(qx, qa.asarray(x.T.copy(), "mxfp8_e4m3", axis=0))
    with pytest.raises(ValueError, match="order='blocked'"):
        qa.matmul(qx, qy, order="sequential")
    with pytest.raises(NotImplementedError, match="span"):  # float32 values: inexact sums
        qa.matmul(qx, x.T.copy())
    with pytest.raises(ValueError, match="NaN or inf"):
        qa.matmul(qx, np.full((64, 2), np.inf, np.float32))
