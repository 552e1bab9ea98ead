"""numba-CUDA kernels against the numba CPU kernels, bit for bit.

Without a GPU the kernels run in numba's CUDA simulator, which must be switched on before
``numba.cuda`` is imported: the outer test re-runs this file in a subprocess with
``NUMBA_ENABLE_CUDASIM=1`` (small inputs: the simulator is slow). With ``QEMU_ARRAYS_REAL_GPU=1``
(``scripts/gpu_check.sh``) the same tests run in-process on the real device with PyTorch CUDA
tensors and larger inputs.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import qemu_arrays as qa
from tests.conftest import assert_same_codes, assert_same_floats, probe_values
from tests.routes.simulator import assert_passed_in_simulator, to_device, to_host

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
REAL = os.environ.get("QEMU_ARRAYS_REAL_GPU") == "1"
INNER = SIM or REAL
R = qa.Rounding
# numba-cuda (<= 0.30) warns from its own internals on NumPy 2.4 when it compiles for a GPU
pytestmark = pytest.mark.filterwarnings(
    "ignore:The 'generic' unit for NumPy timedelta:DeprecationWarning"
)
N = 4000 if REAL else 40  # elements per call (the simulator runs Python per thread)

FORMATS = [
    n
    for n in qa.list_formats()
    if isinstance(qa.get_format(n), qa.FloatFormat) and qa.get_format(n).bits <= 8
] + ["bfloat16", "float16"]


@pytest.mark.skipif(INNER, reason="this is the outer launcher; the inner run is in progress")
def test_cuda_kernels_in_simulator_subprocess(tmp_path_factory):
    # one subprocess runs every tests/routes/test_cuda*.py file (tests/routes/simulator.py)
    assert_passed_in_simulator(__file__, tmp_path_factory)


inner = pytest.mark.skipif(not INNER, reason="runs inside the simulator subprocess or on a GPU")


def _dev(x):
    return to_device(x, REAL)


def _host(y):
    return to_host(y, REAL)


def _sample(name, dtype=np.float32):
    fmt = qa.get_format(name)
    if fmt.bits <= 8:
        x = probe_values(fmt, dtype)
    else:
        rng = np.random.default_rng(3)
        x = rng.integers(0, 1 << 32, 4 * N, dtype=np.uint64).astype(np.uint32).view(np.float32)
        x = x[np.isfinite(x)].astype(dtype)
    rng = np.random.default_rng(1)
    idx = np.sort(rng.choice(x.size, size=min(N, x.size), replace=False))
    return np.concatenate([x[idx], np.array([0.0, -0.0, np.inf, -np.inf], dtype)])


@inner
@pytest.mark.parametrize("name", FORMATS)
def test_quantize_matches_cpu(name):
    x = _sample(name)
    modes = [r for r in R if r is not R.STOCHASTIC_EQUAL] if (REAL or name in ("float8_e4m3fn", "float4_e2m1fn")) else [
        R.NEAREST_EVEN, R.STOCHASTIC,
    ]  # fmt: skip
    for rnd in modes:
        kw = {"rounding": rnd, "seed": 21, "stream": 1, "offset": 3}
        got = _host(qa.quantize(_dev(x), name, **kw))
        assert_same_floats(got, qa.quantize(x, name, **kw), f"cuda {name} {rnd.name}")


@inner
@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e5m2fnuz", "float6_e3m2fn", "bfloat16"])
def test_encode_matches_cpu(name):
    x = _sample(name)
    for rnd in (R.NEAREST_EVEN, R.STOCHASTIC):
        kw = {"rounding": rnd, "seed": 4, "overflow": qa.Overflow.SATURATE}
        got = _host(qa.encode(_dev(x), name, **kw))
        assert_same_codes(got, qa.encode(x, name, **kw), f"cuda enc {name}", x)


@inner
@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_other_input_dtypes(dtype):
    x = _sample("float8_e4m3fn", dtype)
    for rnd in (R.NEAREST_EVEN, R.STOCHASTIC):
        kw = {"rounding": rnd, "seed": 9}
        got = _host(qa.quantize(_dev(x), "float8_e4m3fn", **kw))
        assert got.dtype == np.dtype(dtype)
        assert_same_floats(got, qa.quantize(x, "float8_e4m3fn", **kw), f"{dtype} {rnd.name}")


@inner
def test_int8_with_scale():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(N) * 40).astype(np.float32)
    for rnd in (r for r in R if r is not R.STOCHASTIC_EQUAL):  # not on the CUDA kernels
        kw = {"rounding": rnd, "seed": 2, "scale": 0.37}
        assert_same_floats(_host(qa.quantize(_dev(x), "int8", **kw)), qa.quantize(x, "int8", **kw))
        assert_same_codes(_host(qa.encode(_dev(x), "int8", **kw)), qa.encode(x, "int8", **kw))


@inner
def test_stochastic_equal_matches_cpu():
    """Rounding.STOCHASTIC_EQUAL on the element kernels (float and integer formats) against the
    CPU route, which runs it on the generic implementation."""
    kw = {"rounding": R.STOCHASTIC_EQUAL, "seed": 8, "offset": 5}
    for name in ("float8_e4m3fn", "bfloat16"):
        x = _sample(name)
        assert_same_floats(_host(qa.quantize(_dev(x), name, **kw)), qa.quantize(x, name, **kw))
        assert_same_codes(_host(qa.encode(_dev(x), name, **kw)), qa.encode(x, name, **kw),
                          f"cuda enc {name}", x)  # fmt: skip
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(N) * 40).astype(np.float32)
    kw["scale"] = 0.37
    assert_same_floats(_host(qa.quantize(_dev(x), "int8", **kw)), qa.quantize(x, "int8", **kw))
    assert_same_codes(_host(qa.encode(_dev(x), "int8", **kw)), qa.encode(x, "int8", **kw))


@inner
def test_rbits_matches_cpu():
    """rbits= on the element kernels (issue 16): the CPU route's bits (the generic
    implementation) with the same words, given on the device or on the host, of x's shape or
    broadcast; float, 16-bit and integer formats, quantize and encode, both stochastic modes."""
    rng = np.random.default_rng(16)
    x = _sample("float8_e4m3fn")[:44].reshape(4, 11)
    b8 = rng.integers(0, 256, x.shape, dtype=np.uint8)
    kw = {"rounding": R.STOCHASTIC, "rbits": b8}
    want = qa.quantize(x, "float8_e4m3fn", **kw)
    dkw = {**kw, "rbits": _dev(b8)}
    assert_same_floats(_host(qa.quantize(_dev(x), "float8_e4m3fn", **dkw)), want, "e4m3 rbits")
    assert_same_codes(_host(qa.encode(_dev(x), "float8_e4m3fn", **dkw)),
                      qa.encode(x, "float8_e4m3fn", **kw), "e4m3 rbits codes", x)  # fmt: skip
    y = _sample("bfloat16")[:44].reshape(4, 11)
    kw = {"rounding": R.STOCHASTIC_EQUAL, "rbits": rng.integers(0, 1 << 16, (1, 11), np.uint16)}
    got = _host(qa.quantize(_dev(y), "bfloat16", **kw))  # host bits, broadcast
    assert_same_floats(got, qa.quantize(y, "bfloat16", **kw), "bf16 rbits broadcast")
    b64 = rng.integers(0, 1 << 63, (4, 1), dtype=np.uint64) * np.uint64(2)
    kw = {"rounding": R.STOCHASTIC, "rbits": b64, "random_bits": 40, "scale": 0.37}
    z = (rng.standard_normal((4, 11)) * 40).astype(np.float32)
    dkw = {**kw, "rbits": _dev(b64)}
    assert_same_floats(_host(qa.quantize(_dev(z), "int8", **dkw)), qa.quantize(z, "int8", **kw))
    assert_same_codes(_host(qa.encode(_dev(z), "int8", **dkw)), qa.encode(z, "int8", **kw))


@inner
def test_rbits_errors_on_the_device():
    xd = _dev(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="rbits must be an array of unsigned integers"):
        qa.quantize(xd, "float8_e4m3fn", rounding=R.STOCHASTIC, rbits=_dev(np.ones(3, np.int32)))
    for bad in (np.ones(2, np.uint8), _dev(np.ones((3, 3), np.uint8))):
        with pytest.raises(ValueError, match=r"rbits of shape \(\d.*does not broadcast to x"):
            qa.quantize(xd, "float8_e4m3fn", rounding=R.STOCHASTIC, rbits=bad)


@inner
def test_wide_formats_and_big_offsets():
    """Issue 19 on the device: results wider than float32 round once, nearest-even (the cores'
    ieee_bits), and offsets in [2**63, 2**64) reach the kernels as the same 64 bits."""
    fmt = qa.FloatFormat(exponent_bits=5, mantissa_bits=40, specials=qa.Specials.FNUZ)
    x = np.array([np.inf, -np.inf, 3e5, 1.5, -2.75e4], np.float32)
    for ovf in (qa.Overflow.SATURATE, qa.Overflow.OWN):
        got = _host(qa.quantize(_dev(x), fmt, overflow=ovf))
        assert_same_floats(got, qa.quantize(x, fmt, overflow=ovf), f"e5m40 {ovf.name}")
    y = _sample("float8_e4m3fn")
    for offset in (5, 2**63 + 5, 2**64 + 5):
        kw = {"rounding": R.STOCHASTIC, "seed": 8, "offset": offset}
        got = _host(qa.quantize(_dev(y), "float8_e4m3fn", **kw))
        assert_same_floats(got, qa.quantize(y, "float8_e4m3fn", **kw), f"offset {offset}")


@inner
def test_decode_and_errors():
    codes = np.arange(256, dtype=np.uint8)
    got = _host(qa.decode(_dev(codes), "float8_e4m3fn"))
    assert_same_floats(got, qa.decode(codes, "float8_e4m3fn"))
    with pytest.raises(ValueError, match="has no NaN"):
        qa.quantize(_dev(np.array([1.0, np.nan], np.float32)), "float4_e2m1fn")


@inner
def test_shapes_and_empty():
    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    y = qa.quantize(_dev(x), "float8_e4m3fn")
    assert tuple(y.shape) == (3, 4)
    assert_same_floats(_host(y), qa.quantize(x, "float8_e4m3fn"))
    e = qa.quantize(_dev(np.empty((0, 2), np.float32)), "float8_e4m3fn")
    assert tuple(e.shape) == (0, 2)


@inner
def test_missing_driver_message():
    from qemu_arrays import cuda_kernels

    assert cuda_kernels.available()
