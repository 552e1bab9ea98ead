"""matmul/dot on every array library: the same bits as on NumPy, returned in the operands'
library (PyTorch CPU through zero-copy views; JAX and array-API arrays through the host; CUDA
arrays on the CUDA kernels, the host for hardware models: tests/routes/test_cuda_matmul.py);
Dask refuses; JAX tracers refuse."""

from __future__ import annotations

import numpy as np
import pytest

import qemu_arrays as qa
from tests.backends import Backend, to_backend, to_numpy

R = qa.Rounding


def _inputs():
    rng = np.random.default_rng(1)
    A = np.asarray(qa.quantize(rng.standard_normal((3, 40)).astype(np.float32), "float8_e4m3fn"))
    B = np.asarray(qa.quantize(rng.standard_normal((40, 2)).astype(np.float32), "float8_e4m3fn"))
    return A, B


def test_every_library_gives_the_numpy_bits(backend):
    A, B = _inputs()
    xa, xb = to_backend(backend, A), to_backend(backend, B)
    kw = {"accumulator": "bfloat16", "rounding": R.STOCHASTIC, "seed": 3, "allow_narrow": True}
    if backend is Backend.DASK:
        with pytest.raises(NotImplementedError, match="not supported on the DASK route"):
            qa.matmul(xa, xb, **kw)
        return
    got = qa.matmul(xa, xb, **kw)
    assert type(got).__module__.split(".")[0] == type(xa).__module__.split(".")[0]
    np.testing.assert_array_equal(to_numpy(backend, got), qa.matmul(A, B, **kw))
    v = qa.dot(xa[0, :], xb[:, 0], accumulator=None)
    assert to_numpy(backend, v) == qa.dot(A[0], B[:, 0], accumulator=None)


def test_torch_and_qarray_operands():
    torch = pytest.importorskip("torch")
    A, B = _inputs()
    qb = qa.asarray(B, "float8_e4m3fn")
    got = qa.matmul(torch.from_numpy(A), qb, accumulator="float16", allow_narrow=True)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_array_equal(
        got.numpy(), qa.matmul(A, B, accumulator="float16", allow_narrow=True)
    )


def test_jax_tracers_refuse():
    jax = pytest.importorskip("jax")
    A, B = _inputs()
    with pytest.raises(NotImplementedError, match="cannot be traced"):
        jax.jit(lambda a, b: qa.matmul(a, b))(A, B)


def test_mixed_libraries_refuse():
    torch = pytest.importorskip("torch")
    A, B = _inputs()
    with pytest.raises(TypeError, match="take different routes"):
        qa.matmul(torch.from_numpy(A), to_backend(Backend.ARRAY_API_STRICT, B))


def test_nan_results_are_canonical():
    """inf - inf in a float32 promotion (the float32-word path of narrow nearest-even
    accumulators, where x86 gives the negative NaN) and in every other path: the canonical
    quiet NaN, as docs/matmul.md says."""
    A = np.ones((1, 8), np.float32)
    A[0, 1], A[0, 5] = np.inf, -np.inf
    B = np.ones((8, 1), np.float32)
    for kw in ({"order": "blocked", "block_k": 4}, {}, {"order": "pairwise"}):
        for acc in ("bfloat16", "float32"):
            got = qa.matmul(A, B, accumulator=acc, allow_narrow=True, **kw)
            assert got.view(np.uint32)[0, 0] == 0x7FC00000, (acc, kw)
