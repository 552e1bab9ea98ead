"""The matmul's float32-word path (``sel32``: ``formats/add32.py``, ``kernels/matmul_sel32.py``)
against the exact reference, bit for bit, on single additions built at its edges: ties and
sticky bits just below the rounding point (the round-to-odd correction), the precision limits
of each mode (the path is taken just inside them and refused just outside, where the float64
path answers), stochastic rounding with few random bits, subnormal results and overflows (left
to the general core), exact zero sums, and data whose products are not exact in float32."""

from __future__ import annotations

import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.kernels import matmul_sel32
from tests.oracle.test_matmul import assert_same, reference

R = qa.Rounding


def _fmt(m: int) -> qa.FloatFormat:
    return qa.FloatFormat(exponent_bits=8, mantissa_bits=m)


def _pairs(p: int) -> tuple[np.ndarray, np.ndarray]:
    """``(a0, x)`` float32 pairs for a format of ``p`` significand bits: running values with an
    even and an odd last bit, and addends on the midpoint, a bit (or a sticky bit far) above
    or below it, a last-kept-bit carry, pure sticky bits, and exact cancellations."""
    ulp = 2.0 ** (1 - p)
    a0s, xs = [], []
    for base in (1.0, 1.0 + ulp, 2.0 - ulp, -1.5, 2.0**-100 * (1 + ulp), 3.0 * 2.0**20):
        u = 2.0 ** np.floor(np.log2(abs(base))) * ulp  # the last kept bit of base
        for d in (1, 2, p - 1, 23 - p, 22 - p):
            for x in (u / 2, u / 2 + u * 2.0**-d, u / 2 - u * 2.0**-(d + 1), u * 2.0**-d,
                      u + u * 2.0**-d, 3 * u / 4):  # fmt: skip
                for sx in (1.0, -1.0):
                    a0s.append(base)
                    xs.append(sx * x)
        a0s += [base, base]
        xs += [-base, u - base]
    return np.array(a0s, np.float32), np.array(xs, np.float32)


def _check(acc, rnd, r=None, fma=True, expect_sel32=True, monkeypatch=None):
    a0, x = _pairs(acc.precision)
    # a = [a0, x], b = [1, 1]: the first addition is exact (a0 is a value of the format) ...
    a0 = np.asarray(qa.quantize(a0, acc), np.float32)
    A = np.stack([a0, x], axis=1)
    B = np.ones((2, 3), np.float32)
    B[:, 2] = [1.0, -1.0]  # ... and the third column subtracts
    calls = []
    real = matmul_sel32.sequential_sel32
    monkeypatch.setattr(matmul_sel32, "sequential_sel32",
                        lambda *a: calls.append(1) or real(*a))  # fmt: skip
    kw = {"accumulator": acc, "rounding": rnd, "fma": fma}
    extra = {"seed": 7, "random_bits": r} if rnd is R.STOCHASTIC else {}
    got = qa.matmul(A, B, allow_narrow=True, **kw, **extra)
    want = reference(A, B, **kw, seed=extra.get("seed"), r=r or 32)
    assert_same(got, want, f"{acc.name} {rnd.name} r={r} fma={fma}")
    assert bool(calls) == expect_sel32


# (mantissa bits, mode, random bits, the float32 path taken): each mode at its limit and one
# past it (nearest-even p <= 22, directed p <= 23, stochastic p + r <= 23)
EDGES = [
    (21, R.NEAREST_EVEN, None, True),
    (22, R.NEAREST_EVEN, None, False),
    (13, R.NEAREST_EVEN, None, True),
    (22, R.TOWARD_ZERO, None, True),
    (22, R.UP, None, True),
    (22, R.DOWN, None, True),
    (7, R.STOCHASTIC, 7, True),
    (7, R.STOCHASTIC, 9, True),
    (13, R.STOCHASTIC, 9, True),
    (13, R.STOCHASTIC, 10, False),
    (20, R.STOCHASTIC, 2, True),
    (21, R.STOCHASTIC, 1, True),
    (21, R.STOCHASTIC, 2, False),
]


@pytest.mark.parametrize(("m", "rnd", "r", "taken"), EDGES, ids=str)
def test_edges_match_the_reference(m, rnd, r, taken, monkeypatch):
    _check(_fmt(m), rnd, r, expect_sel32=taken, monkeypatch=monkeypatch)


@pytest.mark.parametrize("rnd", [R.TOWARD_ZERO, R.DOWN, R.STOCHASTIC])
def test_products_rounded_first(rnd, monkeypatch):
    _check(_fmt(10), rnd, 5 if rnd is R.STOCHASTIC else None, fma=False, monkeypatch=monkeypatch)


def test_subnormal_results_overflow_and_zero_signs_go_to_the_general_core(monkeypatch):
    """float16: results below its normal range, above its largest value (each mode's rule) and
    exact zeros of both signs, next to lanes the float32 loop decides."""
    A = np.array([[6.1e-5, -6.0e-5], [60000.0, 8000.0], [-60000.0, -8000.0], [1.0, -1.0],
                  [-0.0, -0.0], [0.0, -0.0], [3.0, 2.0**-11]], np.float32)  # fmt: skip
    A = np.asarray(qa.quantize(A, "float16"), np.float32)
    B = np.ones((2, 2), np.float32)
    B[1, 1] = 0.5
    real = matmul_sel32.sequential_sel32
    for rnd in (R.NEAREST_EVEN, R.TOWARD_ZERO, R.UP, R.DOWN, R.STOCHASTIC):
        for fma in (True, False):
            kw = {"accumulator": "float16", "rounding": rnd, "fma": fma}
            calls = []
            monkeypatch.setattr(matmul_sel32, "sequential_sel32",
                                lambda *a, c=calls: c.append(1) or real(*a))  # fmt: skip
            got = qa.matmul(A, B, allow_narrow=True, seed=2, random_bits=8, **kw)
            assert calls or (rnd is R.NEAREST_EVEN and not fma)  # rne32 takes those
            assert_same(got, reference(A, B, **kw, seed=2, r=8), f"{rnd.name} fma={fma}")


def test_products_not_exact_in_float32_take_the_float64_path(monkeypatch):
    """22-bit times 4-bit values: products of up to 26 bits; the float64 path."""
    rng = np.random.default_rng(3)
    A = (rng.integers(1 << 21, 1 << 22, (4, 6)) * 2.0**-21).astype(np.float32)
    B = np.asarray(qa.quantize(rng.standard_normal((6, 3)).astype(np.float32), "float8_e4m3fn"))
    monkeypatch.setattr(matmul_sel32, "sequential_sel32", None)  # calling it fails
    for rnd in (R.TOWARD_ZERO, R.STOCHASTIC):
        kw = {"accumulator": "bfloat16", "rounding": rnd}
        got = qa.matmul(A, B, allow_narrow=True, seed=4, random_bits=8, **kw)
        assert_same(got, reference(A, B, **kw, seed=4, r=8), rnd.name)


def test_blocked_promotions_into_float32():
    rng = np.random.default_rng(5)
    A = np.asarray(qa.quantize(rng.standard_normal((3, 40)).astype(np.float32), "float8_e4m3fn"))
    B = np.asarray(qa.quantize(rng.standard_normal((40, 5)).astype(np.float32), "float8_e4m3fn"))
    kw = {"accumulator": _fmt(13), "order": "blocked", "block_k": 16}
    assert_same(qa.matmul(A, B, allow_narrow=True, **kw), reference(A, B, **kw), "blocked")
