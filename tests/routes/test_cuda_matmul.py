"""matmul/dot on CUDA device arrays (issue 17): the CUDA kernels (every order, the exact sums)
against the CPU route and the exact reference, bit for bit; the hardware models through the
host.

As ``tests/routes/test_cuda.py``: without a GPU the outer test re-runs this file in a subprocess
with ``NUMBA_ENABLE_CUDASIM=1`` (small shapes: the simulator runs a Python thread per CUDA
thread); with ``QEMU_ARRAYS_REAL_GPU=1`` (``scripts/gpu_check.sh``) the same tests run on the
device with PyTorch CUDA tensors.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats.reference import dot_reference
from tests.routes.simulator import assert_passed_in_simulator, to_device, to_host

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
REAL = os.environ.get("QEMU_ARRAYS_REAL_GPU") == "1"
INNER = SIM or REAL
R = qa.Rounding
MODES = [r for r in R if r is not R.STOCHASTIC_EQUAL]  # matmul refuses STOCHASTIC_EQUAL
E8M13 = qa.FloatFormat(exponent_bits=8, mantissa_bits=13, name="e8m13")
pytestmark = pytest.mark.filterwarnings(
    "ignore:The 'generic' unit for NumPy timedelta:DeprecationWarning"
)


@pytest.mark.skipif(INNER, reason="this is the outer launcher; the inner run is in progress")
def test_cuda_matmul_in_simulator_subprocess(tmp_path_factory):
    # one subprocess runs every tests/routes/test_cuda*.py file (tests/routes/simulator.py)
    assert_passed_in_simulator(__file__, tmp_path_factory)


inner = pytest.mark.skipif(not INNER, reason="runs inside the simulator subprocess or on a GPU")


def _dev(x):
    return to_device(x, REAL)


def _host(y):
    return to_host(y, REAL)


def _inputs(M=3, K=37, N=2, seed=1, fmt="float8_e4m3fn"):
    rng = np.random.default_rng(seed)
    A = np.asarray(qa.quantize(rng.standard_normal((M, K)).astype(np.float32) * 4, fmt))
    B = np.asarray(qa.quantize(rng.standard_normal((K, N)).astype(np.float32), fmt))
    return A, B


def _same_bits(got, want, ctx):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, ctx
    assert got.shape == want.shape, ctx
    ut = {4: np.uint32, 8: np.uint64}[got.dtype.itemsize]
    bad = got.view(ut) != want.view(ut)
    assert not bad.any(), f"{ctx}: {got[bad][:4]} != {want[bad][:4]}"


def _outcome(fn):
    try:
        return fn()
    except ValueError as e:
        return e


def _check(A, B, ctx, **kw):
    """The device result (or ValueError) equals the CPU route's."""
    want = _outcome(lambda: qa.matmul(A, B, allow_narrow=True, **kw))
    got = _outcome(lambda: qa.matmul(_dev(A), _dev(B), allow_narrow=True, **kw))
    if isinstance(want, Exception):
        assert isinstance(got, ValueError), ctx
        assert str(got) == str(want), ctx
    else:
        assert not isinstance(got, Exception), f"{ctx}: {got}"
        _same_bits(_host(got), want, ctx)


@pytest.fixture
def device_only(monkeypatch):
    """Fail if the call takes the host round trip."""
    from qemu_arrays.routes import matmul_host

    def refuse(*args, **kwargs):
        msg = "the device array took the host round trip"
        raise AssertionError(msg)

    monkeypatch.setattr(matmul_host, "run", refuse)


# 6-bit finite: overflow saturates, no NaN; bfloat16; Hopper's e8m13; float32
ACCS = ["float6_e3m2fn", "bfloat16", E8M13, "float32"]


@inner
@pytest.mark.parametrize("acc", ACCS, ids=lambda f: getattr(f, "name", f))
def test_rounded_orders_match_cpu(acc, device_only):
    """Every rounding mode, fma on and off, sequential, blocked (K = 37 not a multiple of
    block_k = 8; promotion into bfloat16 or float32) and pairwise."""
    A, B = _inputs()
    narrow = acc in ("float6_e3m2fn", "bfloat16")
    modes = MODES if narrow else [R.NEAREST_EVEN, R.TOWARD_ZERO, R.STOCHASTIC, R.DOWN]
    for rnd in modes:
        for fma in (True, False):
            kw = {"accumulator": acc, "rounding": rnd, "fma": fma, "seed": 5, "stream": 2}
            if rnd is R.STOCHASTIC:
                kw["random_bits"] = 7
            _check(A, B, f"seq {rnd.name} fma={fma}", **kw)
            promote = "bfloat16" if acc == "float6_e3m2fn" else "float32"
            _check(A, B, f"blocked {rnd.name} fma={fma}", order="blocked", block_k=8,
                   promote_to=promote, **kw)  # fmt: skip
            _check(A, B, f"pairwise {rnd.name} fma={fma}", order="pairwise", **kw)


@inner
def test_exact_sums_match_cpu(device_only):
    """accumulator=None: the exact sum rounded once (float32, or float64 for float64 inputs),
    exact blocks promoted into float32, bfloat16, e8m13 or float64 (K = 37, block_k = 8),
    several modes; specials; wide-range data (the whole float32 exponent range)."""
    A, B = _inputs()
    for rnd in (R.NEAREST_EVEN, R.STOCHASTIC, R.DOWN, R.TOWARD_ZERO):
        kw = {"accumulator": None, "rounding": rnd, "seed": 5, "random_bits": 7}
        _check(A, B, f"exact {rnd.name}", **kw)
        for pp in ("float32", "bfloat16", E8M13, "float64"):
            _check(A, B, f"exact blocks {pp} {rnd.name}", order="blocked", block_k=8,
                   promote_to=pp, **kw)  # fmt: skip
    W = np.array([[2.0**-149, 3.0 * 2**100, -(2.0**127), 1.5, 2.0**127, 2.0**-126]], np.float32)
    V = np.array([[2.0**-149], [2.0**27], [1.0], [-(2.0**-20)], [1.0], [1.0]], np.float32)
    _check(W, V, "wide exact", accumulator=None)
    _check(W.astype(np.float64), V.astype(np.float64), "wide exact float64", accumulator=None)
    A[0, 3], A[1, 5], B[2, 1] = np.inf, -np.inf, np.nan
    _check(A, B, "exact specials", accumulator=None)
    _check(A, B, "exact blocks specials", accumulator=None, order="blocked", block_k=8)


@inner
def test_against_the_exact_reference(device_only):
    """The device's bits are docs/matmul.md's definition (formats/reference.py), stochastic
    rounding's event numbering included."""
    A, B = _inputs(M=2, K=19, N=2, seed=4)
    cases = (("sequential", False), ("blocked", True), ("blocked", False), ("pairwise", True))
    for order, fma in cases:
        kw = {"accumulator": "bfloat16", "rounding": R.STOCHASTIC, "fma": fma, "seed": 11}
        extra = {"block_k": 5, "promote_to": E8M13} if order == "blocked" else {}
        got = _host(qa.matmul(_dev(A), _dev(B), order=order, random_bits=7, allow_narrow=True,
                              **kw, **extra))  # fmt: skip
        for i in range(2):
            for j in range(2):
                want = dot_reference(A[i], B[:, j], order=order, r=7, element=i * 2 + j, **kw,
                                     **extra)  # fmt: skip
                assert got[i, j] == want, (order, fma, i, j)


@inner
def test_specials(device_only):
    """NaN and infinities in: IEEE results in bfloat16; a NaN result in a format without NaN
    raises the CPU route's error; infinities into a finite format follow its policy."""
    A, B = _inputs(M=2, K=9, N=3, seed=2)
    A[0, 3] = np.inf
    A[1, 5] = -np.inf
    B[2, 1] = np.nan
    B[5, 2] = np.inf
    for acc in ("bfloat16", "float6_e3m2fn", "float32"):
        for rnd in (R.NEAREST_EVEN, R.STOCHASTIC, R.DOWN):
            _check(A, B, f"{acc} {rnd.name}", accumulator=acc, rounding=rnd, seed=1)
            _check(A, B, f"{acc} {rnd.name} blocked", accumulator=acc, rounding=rnd, seed=1,
                   order="blocked", block_k=4)  # fmt: skip
            _check(A, B, f"{acc} {rnd.name} pairwise", accumulator=acc, rounding=rnd, seed=1,
                   order="pairwise")  # fmt: skip
    B2 = B.copy()
    B2[2, 1] = 1.0
    B2[5, 2] = 1.0  # only infinities (of one sign per output) into the saturating format
    _check(A[:1], B2, "inf into float6", accumulator="float6_e3m2fn")
    with pytest.raises(ValueError, match="has no NaN"):
        qa.matmul(_dev(A), _dev(B), accumulator="float6_e3m2fn", allow_narrow=True)


@inner
def test_shapes_dtypes_and_batches(device_only):
    """Batches broadcast as numpy's matmul, dot of vectors, 16-bit and float64 inputs (the
    result float64), empty products; float64 inputs that are not float32 values refused."""
    rng = np.random.default_rng(7)
    A = np.asarray(qa.quantize(rng.standard_normal((2, 1, 3, 6)).astype(np.float32), "bfloat16"))
    B = np.asarray(qa.quantize(rng.standard_normal((3, 6, 2)).astype(np.float32), "bfloat16"))
    kw = {"accumulator": "bfloat16", "rounding": R.STOCHASTIC, "seed": 3, "allow_narrow": True}
    _same_bits(_host(qa.matmul(_dev(A), _dev(B), **kw)), qa.matmul(A, B, **kw), "batches")
    a16, b16 = A[0, 0].astype(np.float16), B[1].astype(np.float16)
    _same_bits(_host(qa.matmul(_dev(a16), _dev(b16), **kw)), qa.matmul(a16, b16, **kw), "f16")
    a64, b64 = A[1, 0].astype(np.float64), B[0].astype(np.float64)
    got = _host(qa.matmul(_dev(a64), _dev(b64), **kw))
    _same_bits(got, qa.matmul(a64, b64, **kw), "float64 in, float64 out")
    v = qa.dot(_dev(A[0, 0, 0]), _dev(B[0, :, 0]), **kw)
    assert np.asarray(_host(v)).shape == ()
    _same_bits(_host(v), qa.dot(A[0, 0, 0], B[0, :, 0], **kw), "dot")
    e = qa.matmul(_dev(np.zeros((0, 4), np.float32)), _dev(np.zeros((4, 2), np.float32)), **kw)
    assert tuple(e.shape) == (0, 2)
    for order in ("sequential", "pairwise"):
        z = _host(qa.matmul(_dev(np.zeros((2, 0), np.float32)),
                            _dev(np.zeros((0, 3), np.float32)), order=order, **kw))  # fmt: skip
        _same_bits(z, np.zeros((2, 3), np.float32), f"K = 0 {order}")
    a1, b1 = A[0, 0, :, :1], B[0, :1]  # K = 1: pairwise rounds the single product
    for order in ("sequential", "pairwise"):
        got = _host(qa.matmul(_dev(a1), _dev(b1), order=order, **kw))
        _same_bits(got, qa.matmul(a1, b1, order=order, **kw), f"K = 1 {order}")
    bad = a64.copy()
    bad[0, 1] = 0.1
    with pytest.raises(ValueError, match="not float32 values"):
        qa.matmul(_dev(bad), _dev(b64), **kw)


@inner
def test_the_hardware_models_take_the_host_route(monkeypatch):
    """The hardware models: the host round trip, the CPU's bits."""
    from qemu_arrays.routes import matmul_host

    calls = []
    real = matmul_host.run

    def counted(a, b, req):
        calls.append(req)
        return real(a, b, req)

    monkeypatch.setattr(matmul_host, "run", counted)
    A, B = _inputs(M=2, K=12, N=2)
    from qemu_arrays.hardware import profile

    h100 = profile("nvidia-h100-fp8-fast-accum")
    _same_bits(_host(h100.matmul(_dev(A), _dev(B))), h100.matmul(A, B), "h100 model")
    assert len(calls) == 1
    _check(A, B, "sequential", accumulator="bfloat16")
    _check(A, B, "exact", accumulator=None)
    assert len(calls) == 1
