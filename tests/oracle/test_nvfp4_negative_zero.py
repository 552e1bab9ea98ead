"""NVFP4 keeps the sign of zero where a block's scale rounds to zero (issue 16: it gave +0 for
negative inputs there, where MX keeps -0), on every route and in the exact reference."""

from __future__ import annotations

import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats.reference import quantize_blocks
from tests.backends import Backend, capability, to_backend, to_numpy

R = qa.Rounding


def _x():
    x = np.zeros(32, np.float32)
    x[0] = 1000.0  # the tensor scale; the second block's scale rounds to zero
    x[16:] = np.array([-1e-4, 2e-4, -3e-5, -0.0] * 4, np.float32)
    return x


@pytest.mark.parametrize("rounding", [R.NEAREST_EVEN, R.TOWARD_ZERO, R.STOCHASTIC])
def test_zero_scale_block_keeps_signs(rounding, backend):
    if not capability(backend, block=True).block:
        pytest.skip(f"{backend.name} takes no block formats (tests/routes/test_backends.py)")
    if backend is Backend.NUMPY_READONLY:  # a second compile of the NVFP4 kernels for nothing new
        pytest.skip(
            "the NumPy route is the numpy row; read-only input: tests/routes/test_backends.py"
        )
    x = _x()
    kw = {"rounding": rounding, "seed": 3} if rounding is R.STOCHASTIC else {"rounding": rounding}
    got = to_numpy(backend, qa.quantize(to_backend(backend, x), "nvfp4", **kw))
    want = np.signbit(x[16:])
    assert np.array_equal(got[16:], np.zeros(16)), got[16:]
    assert np.array_equal(np.signbit(got[16:]), want), (backend.name, got[16:])


def test_zero_scale_block_codes_and_reference():
    x = _x()
    enc = qa.encode(x, "nvfp4")
    assert np.array_equal(enc.codes[16:], np.where(np.signbit(x[16:]), 8, 0))
    assert np.array_equal(np.signbit(qa.decode(enc, "nvfp4")[16:]), np.signbit(x[16:]))
    ref = quantize_blocks(
        [x.tolist()], qa.get_format("nvfp4"), tensor_scale=float(enc.tensor_scale)
    )
    assert np.array_equal(np.signbit(np.array(ref[0][16:])), np.signbit(x[16:]))
    f64 = qa.quantize(x.astype(np.float64), "nvfp4")
    assert np.array_equal(np.signbit(f64[16:]), np.signbit(x[16:]))
