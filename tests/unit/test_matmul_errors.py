"""Bad calls of matmul/dot: each error names the parameter, the value and what is allowed."""

from __future__ import annotations

import numpy as np
import pytest

import qemu_arrays as qa

A = np.ones((2, 3), np.float32)
B = np.ones((3, 4), np.float32)


@pytest.mark.parametrize(
    ("call", "exc", "needle"),
    [
        (lambda: qa.matmul(A, np.ones((4, 2), np.float32)), ValueError, "do not match"),
        (lambda: qa.matmul(A.astype(np.int32), B), TypeError, "a has dtype int32"),
        (lambda: qa.matmul(A, B, accumulator="float8_e4m3fn"), ValueError, "allow_narrow=True"),
        (lambda: qa.matmul(A, B, order="zigzag"), ValueError, "order must be one of"),
        (lambda: qa.matmul(A, B, block_k=4), ValueError, "applies to order='blocked' only"),
        (lambda: qa.matmul(A, B, order="blocked"), ValueError, "needs block_k"),
        (lambda: qa.matmul(A, B, accumulator="int8"), TypeError, "accumulator must be a float"),
        (lambda: qa.matmul(A, B, accumulator="nope"), ValueError, "accumulator='nope'"),
        (lambda: qa.matmul(A, B, rounding=qa.Rounding.STOCHASTIC), ValueError, "seed"),
        (lambda: qa.matmul(A, B, accumulator=None, fma=False), ValueError, "fma=False"),
        (lambda: qa.matmul(A.astype(np.float64) / 3, B), ValueError, "not float32 values"),
        (lambda: qa.matmul(A, 2.0), TypeError, "b must be an array"),
        (lambda: qa.dot(np.ones((2, 2, 3), np.float32), B), ValueError, "dot takes vectors"),
        (
            lambda: qa.matmul(A, B, accumulator="float64", rounding=qa.Rounding.JAM),
            ValueError,
            "JAM into 'float64'",
        ),
        (
            lambda: qa.matmul(A, B, rounding=qa.Rounding.STOCHASTIC_EQUAL, seed=1),
            ValueError,
            "STOCHASTIC_EQUAL is not modelled",
        ),
    ],
)
def test_bad_calls(call, exc, needle):
    with pytest.raises(exc, match=needle):
        call()


def test_nothing_is_modified_and_narrow_is_allowed_when_asked():
    a, b = A.copy(), B.copy()
    out = qa.matmul(a, b, accumulator="float8_e4m3fn", allow_narrow=True)
    np.testing.assert_array_equal(out, np.full((2, 4), 3.0, np.float32))
    np.testing.assert_array_equal(a, A)
    np.testing.assert_array_equal(b, B)
