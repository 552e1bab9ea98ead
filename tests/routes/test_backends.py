"""Every backend gives the bits of the NumPy CPU kernels: the conformance suite over the backend
fixture (tests/backends.py: NumPy, read-only NumPy, array-api-strict, PyTorch CPU, JAX CPU, Dask,
the CUDA simulator when enabled, CuPy and PyTorch CUDA when a GPU is present), for element,
scaled integer and block formats. Every skip states why; a route that cannot compute something
must say so (NotImplementedError from the capability table), never return other bits.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.dispatch import explain_route, route
from tests.backends import ROUTE, Backend, block_route, capability, supports, to_backend, to_numpy
from tests.conftest import assert_same_codes, assert_same_floats, probe_values

R = qa.Rounding
#: the first seven modes and three of issue 16 (the scalar cores are shared; every mode runs on
#: every deciding input in tests/oracle/test_cpu_exact.py); STOCHASTIC_EQUAL: tests/oracle/
#: test_block_rbits.py, tests/routes/test_cuda*.py
MODES = (*(r for r in R if r <= R.STOCHASTIC), R.NEAREST_ODD, R.AWAY_FROM_ZERO, R.JAM)
# numba-cuda (<= 0.30) warns from its own internals on NumPy 2.4 when it compiles for a GPU
pytestmark = pytest.mark.filterwarnings(
    "ignore:The 'generic' unit for NumPy timedelta:DeprecationWarning"
)
FORMATS = [
    n
    for n in qa.list_formats()
    if isinstance(qa.get_format(n), qa.FloatFormat) and qa.get_format(n).bits <= 8
] + ["bfloat16", "float16"]


def _inputs(name):
    fmt = qa.get_format(name)
    if fmt.bits <= 8:
        return probe_values(fmt, np.float32)
    rng = np.random.default_rng(99)
    x = rng.integers(0, 1 << 32, 3000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    return np.concatenate([x[np.isfinite(x)], np.array([0.0, -0.0, np.inf, -np.inf], np.float32)])


def test_route(backend):
    x = to_backend(backend, np.ones((2, 3), np.float32))
    assert route(x) is ROUTE[backend]
    assert ROUTE[backend].name in explain_route(x)


# JAX runs the generic route's code, which array-api-strict checks on every format; each JAX
# format costs seconds of tracing and compiling, so JAX takes one format of each kind
JAX_FORMATS = (
    "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float4_e2m1fn", "float8_e8m0fnu", "bfloat16",
)  # fmt: skip
# numba types a read-only array apart from a writable one: every kernel that read-only input
# reaches compiles a second copy (seconds each on a cold cache; a user's read-only arrays pay it
# too). The read-only row runs the 8-bit element formats (over every mode they reach the select,
# nearest-even, general and code kernels on float32 bits) and the MX float formats (the MX
# kernels; also tests/unit/test_qarray.py); the formats and input dtypes of other kernels run
# the same code, typed writable, on the NumPy row.
READONLY_ELSEWHERE = ("bfloat16", "float16", "mxint8", "nvfp4")


def _skip_readonly(backend, what):
    if backend is Backend.NUMPY_READONLY and (what in READONLY_ELSEWHERE or "input" in what):
        pytest.skip(f"read-only NumPy: not on {what}, whose kernels the NumPy row checks")


@pytest.mark.parametrize("name", FORMATS)
def test_bit_identical_every_rounding(backend, name):
    if backend is Backend.JAX_CPU and name not in JAX_FORMATS:
        pytest.skip(f"JAX runs the generic route checked on {name} by array-api-strict")
    _skip_readonly(backend, name)
    fmt = qa.get_format(name)
    x = _inputs(name)
    xb = to_backend(backend, x)
    for rnd in MODES:
        kw = {"rounding": rnd, "seed": 1234, "stream": 2, "offset": 10}
        with np.errstate(over="ignore"):
            want = qa.quantize(x, fmt, **kw)
            got = to_numpy(backend, qa.quantize(xb, fmt, **kw))
        assert_same_floats(got, want, f"{backend.value} {name} {rnd.name}")
        if rnd in (R.NEAREST_EVEN, R.STOCHASTIC):
            codes = to_numpy(backend, qa.encode(xb, fmt, **kw))
            assert_same_codes(codes, qa.encode(x, fmt, **kw), f"{backend.value} {name}", x)


def test_int8_with_scale(backend):
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.standard_normal(2000) * 40, [0.125, -0.375, 1e9, -np.inf]])
    x = x.astype(np.float32)
    xb = to_backend(backend, x)
    for rnd in MODES:
        kw = {"rounding": rnd, "seed": 3, "scale": 0.25}
        want = qa.quantize(x, "int8", **kw)
        assert_same_floats(to_numpy(backend, qa.quantize(xb, "int8", **kw)), want, rnd.name)
        got = to_numpy(backend, qa.encode(xb, "int8", **kw))
        assert_same_codes(got, qa.encode(x, "int8", **kw), rnd.name)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float64])
def test_input_dtypes(backend, dtype):
    if not supports(backend, dtype):
        pytest.skip(f"{backend.value} has no {np.dtype(dtype).name} (in this configuration)")
    _skip_readonly(backend, f"{np.dtype(dtype).name} input")
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(500) * 30).astype(dtype)
    for rnd in (R.NEAREST_EVEN, R.STOCHASTIC, R.TO_ODD):
        kw = {"rounding": rnd, "seed": 8}
        y = qa.quantize(to_backend(backend, x), "float8_e4m3fn", **kw)
        got = to_numpy(backend, y)
        assert got.dtype == np.dtype(dtype)
        assert_same_floats(got, qa.quantize(x, "float8_e4m3fn", **kw), f"{dtype} {rnd.name}")


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: np.full((), rng.standard_normal(), np.float32),  # 0-d
        lambda rng: np.empty((0, 3), np.float32),  # empty
        lambda rng: rng.standard_normal((6, 7)).astype(np.float32).T,  # non-contiguous
        lambda rng: rng.standard_normal(20000).astype(np.float32)[::1999],  # large stride
        lambda rng: rng.standard_normal((3, 4, 5)).astype(np.float32),  # n-d
    ],
    ids=["0d", "empty", "transposed", "strided", "3d"],
)
def test_output_kind_and_shapes(backend, make):
    rng = np.random.default_rng(11)
    x = make(rng)
    if backend is Backend.DASK and x.ndim == 0:
        pytest.skip("0-d Dask arrays are not chunked: nothing Dask-specific to test")
    xb = to_backend(backend, x, chunks=2)
    kw = {"rounding": R.STOCHASTIC, "seed": 5}
    y = qa.quantize(xb, "float8_e5m2", **kw)
    assert type(y) is type(xb)
    assert tuple(y.shape) == tuple(x.shape)
    if hasattr(xb, "device") and backend is not Backend.DASK:
        assert str(y.device) == str(xb.device)
    got = to_numpy(backend, y)
    assert got.dtype == x.dtype
    assert_same_floats(
        got, qa.quantize(np.ascontiguousarray(x), "float8_e5m2", **kw).reshape(x.shape)
    )


def test_input_not_modified(backend):
    x = np.linspace(-3, 3, 101, dtype=np.float32)
    xb = to_backend(backend, x)
    qa.quantize(xb, "float4_e2m1fn", rounding=R.STOCHASTIC, seed=1)
    assert_same_floats(to_numpy(backend, xb), x)


def test_decode_roundtrip(backend):
    codes = np.arange(256, dtype=np.uint8)
    got = to_numpy(backend, qa.decode(to_backend(backend, codes), "float8_e4m3fn"))
    assert_same_floats(got, qa.decode(codes, "float8_e4m3fn"))


def test_dask_chunking_does_not_change_stochastic_bits():
    pytest.importorskip("dask", reason="dask is not installed")
    import dask.array as da

    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 41)).astype(np.float32)
    want = qa.quantize(x, "float4_e2m1fn", rounding=R.STOCHASTIC, seed=77, offset=5)
    for chunks in ((7, 9), (30, 5), (4, 41), (30, 41)):
        y = qa.quantize(
            da.from_array(x, chunks=chunks), "float4_e2m1fn", rounding=R.STOCHASTIC, seed=77,
            offset=5,
        )  # fmt: skip
        assert_same_floats(np.asarray(y.compute()), want, f"chunks={chunks}")


def test_unsupported_keyword_is_not_silently_dropped():
    pytest.importorskip("array_api_strict", reason="array-api-strict is not installed")
    import array_api_strict as xs

    x = xs.asarray(np.ones(4, np.float32))
    with pytest.raises(NotImplementedError, match="scale='mse'"):
        qa.quantize(x, "int8", scale="mse")
    with pytest.raises(NotImplementedError, match="zero points"):
        qa.quantize(x, "int8", scale="absmax", symmetric=False)


def test_unroutable_type_is_explained():
    with pytest.raises(TypeError, match="not an array qemu_arrays can route"):
        route(object())


# ---- scaled integer and block formats over the same rows -----------------------------------


def test_int8_per_channel_scales(backend):
    """Per-channel scales (an array, and the absmax rule) where the route computes them; a clear
    NotImplementedError where its capability row says it cannot."""
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((6, 40)) * rng.uniform(0.1, 9, (6, 1))).astype(np.float32)
    xb = to_backend(backend, x, chunks=(3, 20))
    # power-of-two scales: exact on every route, JAX's 32-bit mode included
    kw = {"scale": "absmax", "axis": 0, "scale_format": "float8_e8m0fnu"}
    if not capability(backend).granularity:
        with pytest.raises(NotImplementedError, match="axis|scale rule"):
            qa.quantize(xb, "int8", **kw)
        return
    assert_same_floats(
        to_numpy(backend, qa.quantize(xb, "int8", **kw)), qa.quantize(x, "int8", **kw)
    )
    enc = qa.encode(xb, "int8", **kw)
    want = qa.encode(x, "int8", **kw)
    assert_same_codes(to_numpy(backend, enc.codes), want.codes, "int8 per channel")
    np.testing.assert_array_equal(to_numpy(backend, enc.scales), want.scales)


@pytest.mark.parametrize(
    "kw",
    [{"scale": "absmax", "axis": 0}, {"scale": "absmax", "block_size": 16,
     "scale_format": "float8_e4m3fn"}, {"scale": 0.05}],
    ids=["per-channel", "groups-e4m3", "number"],
)  # fmt: skip
def test_scaled_float_formats(backend, kw):
    """Float formats with a scale (docs/scaled.md): the NumPy bits wherever the route has them,
    NotImplementedError naming the keyword elsewhere."""
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((6, 40)) * rng.uniform(1e-3, 9, (6, 1))).astype(np.float32)
    xb = to_backend(backend, x, chunks=(3, 20))
    if not capability(backend).scaled_float:
        with pytest.raises(NotImplementedError, match="scale"):
            qa.quantize(xb, "float4_e2m1fn", **kw)
        return
    for rnd in (R.NEAREST_EVEN, R.STOCHASTIC):
        k2 = {**kw, "rounding": rnd, "seed": 9}
        got = to_numpy(backend, qa.quantize(xb, "float4_e2m1fn", **k2))
        assert_same_floats(got, qa.quantize(x, "float4_e2m1fn", **k2), f"{backend.value} {rnd}")
    enc = qa.encode(xb, "float8_e4m3fn", **kw)
    want = qa.encode(x, "float8_e4m3fn", **kw)
    if isinstance(want, np.ndarray):
        assert_same_codes(to_numpy(backend, enc), want, "e4m3 scaled")
        return
    assert_same_codes(to_numpy(backend, enc.codes), want.codes, "e4m3 scaled")
    np.testing.assert_array_equal(to_numpy(backend, enc.scales), want.scales)


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp4_e2m1", "mxint8", "nvfp4"])
def test_block_formats(backend, name):
    """Block formats: the CPU bits wherever the route takes them (NumPy, PyTorch, CUDA, and JAX /
    array-API on the traceable generic route; their decode through the host), NotImplementedError
    on Dask (blocks would straddle chunks)."""
    rng = np.random.default_rng(12)
    x = (rng.standard_normal((4, 70)) * 3).astype(np.float32)
    x[1, 5] = 0.0
    _skip_readonly(backend, name)
    xb = to_backend(backend, x, chunks=(2, 35))
    assert route(xb, name) is block_route(backend)
    if not capability(backend, block=True).block:
        with pytest.raises(NotImplementedError, match="block format"):
            qa.quantize(xb, name)
        return
    for rnd in (R.NEAREST_EVEN, R.STOCHASTIC):
        kw = {"rounding": rnd, "seed": 3}
        got = to_numpy(backend, qa.quantize(xb, name, **kw))
        assert_same_floats(got, qa.quantize(x, name, **kw), f"{backend.value} {name} {rnd.name}")
    enc = qa.encode(xb, name)
    want = qa.encode(x, name)
    assert_same_codes(to_numpy(backend, enc.codes), want.codes, name)
    assert_same_codes(to_numpy(backend, enc.scales), want.scales, name)
    back = qa.decode(enc, name)
    assert_same_floats(to_numpy(backend, back), qa.decode(want, name), name)
