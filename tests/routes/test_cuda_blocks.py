"""Block formats (MX, NVFP4) and the 32-bit nearest-even kernel on the CUDA route, bit for bit
against the CPU route.

As ``tests/routes/test_cuda.py``: without a GPU the outer test re-runs this file in a subprocess with
``NUMBA_ENABLE_CUDASIM=1`` (small inputs: the simulator runs a Python thread per CUDA thread);
with ``QEMU_ARRAYS_REAL_GPU=1`` (``scripts/gpu_check.sh``) the same tests run on the device with
PyTorch CUDA tensors. The test of the 32-bit rounding step itself (an LLVM intrinsic) compiles
it for the CPU and runs in the ordinary process.
"""

from __future__ import annotations

import os
import sys

import ml_dtypes
import numpy as np
import pytest

import qemu_arrays as qa
from tests.conftest import assert_same_codes, assert_same_floats
from tests.routes.simulator import assert_passed_in_simulator

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
REAL = os.environ.get("QEMU_ARRAYS_REAL_GPU") == "1"
INNER = SIM or REAL
R = qa.Rounding
# numba-cuda (<= 0.30) warns from its own internals on NumPy 2.4 when it compiles for a GPU
pytestmark = pytest.mark.filterwarnings(
    "ignore:The 'generic' unit for NumPy timedelta:DeprecationWarning"
)
BLOCK_FORMATS = ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4_e2m1", "mxint8",
                 "nvfp4"]  # fmt: skip
ROWS = (
    24 if REAL else 4
)  # (at least 4) rows of 40: a block of 32 and a short one of 8 (MX), 16+16+8 (NVFP4)


@pytest.mark.skipif(INNER, reason="this is the outer launcher; the inner run is in progress")
def test_cuda_block_kernels_in_simulator_subprocess(tmp_path_factory):
    # one subprocess runs every tests/routes/test_cuda*.py file (tests/routes/simulator.py)
    assert_passed_in_simulator(__file__, tmp_path_factory)


inner = pytest.mark.skipif(not INNER, reason="runs inside the simulator subprocess or on a GPU")


@pytest.fixture(autouse=True, scope="module")
def _fast_simulator_barriers():
    """The simulator's barrier is a polling loop under the GIL: switch threads more often."""
    old = sys.getswitchinterval()
    if SIM:
        sys.setswitchinterval(5e-5)
    yield
    sys.setswitchinterval(old)


def _dev(x):
    if REAL:
        import torch

        x = np.array(x, order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
        if x.dtype == np.dtype(ml_dtypes.bfloat16):
            return torch.from_numpy(x.view(np.int16)).view(torch.bfloat16).cuda()
        return torch.from_numpy(x).cuda()
    from numba import cuda

    return cuda.to_device(np.array(x, order="C"))


def _host(y):
    if REAL:
        import torch

        y = y.cpu()
        if y.dtype == torch.bfloat16:
            return y.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        return y.numpy()
    return y.copy_to_host()


def _edge(rng, rows=ROWS, n=40, dtype=np.float32):
    """Rows of blocks across the float32 range with every awkward case: a NaN block, an Inf
    block (the short last one), an all-zero block, float32 subnormals, exact ties of the small
    formats, values near float32's maximum, negative zeros."""
    ex = rng.integers(-140, 120, size=(rows, 1))
    x = rng.standard_normal((rows, n)) * np.exp2((ex + rng.integers(-12, 3, (rows, n))) * 1.0)
    grid = rng.integers(-64, 65, size=(rows, n)) / 8.0 * np.exp2(rng.integers(-20, 20, (rows, 1)))
    x = np.where(rng.random((rows, n)) < 0.3, grid, x)
    x[rng.random((rows, n)) < 0.05] = -0.0
    x[0, 3] = np.nan
    x[1, 35] = np.inf
    x[2, :32] = 0.0
    x[2, 34:] = float(np.finfo(np.float32).smallest_subnormal) * rng.integers(-40, 40, n - 34)
    x[3, :] = float(np.finfo(np.float32).max) * rng.uniform(-1, 1, n)
    with np.errstate(over="ignore"):
        return x.astype(dtype)


def _same_encoded(got, want, ctx):
    assert_same_codes(_host(got.codes), want.codes, f"{ctx} codes")
    assert_same_codes(_host(got.scales), want.scales, f"{ctx} scales")
    assert tuple(got.scales.shape) == want.scales.shape
    assert got.axis == want.axis
    assert got.block_size == want.block_size
    if want.tensor_scale is None:
        assert got.tensor_scale is None
    else:
        assert np.float32(got.tensor_scale).view(np.uint32) == want.tensor_scale.view(np.uint32)


@pytest.fixture
def rng():
    return np.random.default_rng(20260511)


# ---- block formats ----------------------------------------------------------------------------
# The warp kernel (blocks along the last axis) is the costly one in the simulator (a barrier per
# 32 elements); the one-thread-per-block kernel (blocks along another axis) runs the same
# per-element code. Broad sweeps take both on the same data (the transpose, axis=0), the warp
# kernel for a few modes, the other for every mode.

LANE_MODES = (R.NEAREST_EVEN, R.STOCHASTIC, R.DOWN)


def _compare(x, fmt, ops="qe", **kw):
    """quantize ("q") and encode ("e") of the device copy of x against the CPU route."""
    xd = _dev(x)
    ctx = f"{getattr(fmt, 'name', fmt)} {x.dtype} {kw}"
    if "q" in ops:
        with np.errstate(over="ignore"):
            want = qa.quantize(x, fmt, **kw)
        got = _host(qa.quantize(xd, fmt, **kw))
        assert got.dtype == want.dtype
        assert_same_floats(got, want, ctx)
    if "e" in ops:
        with np.errstate(over="ignore"):
            wenc = qa.encode(x, fmt, **kw)
        _same_encoded(qa.encode(xd, fmt, **kw), wenc, ctx)


def _t(x):
    return np.ascontiguousarray(x.T)


@inner
@pytest.mark.parametrize("name", BLOCK_FORMATS)
def test_block_quantize_and_encode_every_mode(name, rng):
    x = _edge(rng)
    # the first seven modes and two of issue 16 (STOCHASTIC_EQUAL: test_block_stochastic_equal)
    for rnd in (*(r for r in R if r <= R.STOCHASTIC), R.NEAREST_ODD, R.JAM):
        kw = {"rounding": rnd, "seed": 5, "stream": 2, "offset": 7}
        _compare(_t(x), name, axis=0, **kw)
        if REAL or rnd in LANE_MODES:
            _compare(x, name, **kw)


@inner
@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp4_e2m1", "mxint8", "nvfp4"])
def test_block_middle_axis(name, rng):
    """Blocks along a middle axis (one thread per block, elements ``inner`` apart); stochastic
    rounding draws each element's bits by its index in the original C order."""
    x = _edge(rng)
    x = np.stack([x, x[::-1] * -0.75], axis=-1)  # (rows, 40, 2): blocks along axis 1
    for rnd in (R.NEAREST_EVEN, R.STOCHASTIC):
        _compare(x, name, rounding=rnd, seed=3, axis=1, random_bits=9)


@inner
@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        (n, d)
        for n in ("mxfp8_e4m3", "nvfp4")
        for d in (np.float16, ml_dtypes.bfloat16, np.float64, "via32")
    ]
    + [("mxint8", np.float64), ("mxint8", np.float16)],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_block_input_dtypes(name, dtype, rng):
    via32 = dtype == "via32"
    dt = np.dtype(np.float64 if via32 else dtype)
    x = _edge(rng, dtype=np.float64)
    if dt == np.float64:  # beyond float32's range, and more precise than float32
        x = x * np.exp2(rng.integers(-200, 200, size=(x.shape[0], 1)).astype(np.float64))
        x = x * (1 + 2**-40)
    with np.errstate(over="ignore"):
        x = x.astype(dt)
    kw = {"seed": 4, "via_float32": via32}
    _compare(x, name, "q", rounding=R.NEAREST_EVEN, **kw)
    _compare(x, name, "qe", rounding=R.STOCHASTIC, **kw)
    _compare(_t(x), name, "qe", rounding=R.TO_ODD, axis=0, **kw)


@inner
@pytest.mark.parametrize("rule", list(qa.ScaleRule), ids=lambda r: r.name)
def test_block_scale_rules(rule, rng):
    x = _edge(rng)
    for name in ("mxfp8_e4m3", "mxfp4_e2m1", "mxint8"):
        fmt = qa.get_format(name).with_rule(rule)
        _compare(x, fmt, "q")
        _compare(_t(x), fmt, rounding=R.TOWARD_ZERO, axis=0)


@inner
def test_block_scale_beyond_e8m0_is_nan():
    """CEIL pushes a block maximum near float32's max past E8M0's 2**127: a NaN scale."""
    fmt = qa.get_format("mxint8").with_rule(qa.ScaleRule.CEIL)
    x = np.full((1, 32), np.finfo(np.float32).max, np.float32)
    enc = qa.encode(_dev(x), fmt)
    assert _host(enc.scales).tolist() == [[255]]
    assert np.isnan(_host(qa.quantize(_dev(x), fmt))).all()


@inner
def test_block_general_paths_without_fast_path(rng, monkeypatch):
    """With the kernels' fast paths off (``blocks._FAST_PATH``) both routes take the general
    cores for every element, and still agree."""
    from qemu_arrays.routes import cpu_blocks as blocks

    monkeypatch.setattr(blocks, "_FAST_PATH", False)
    x = _edge(rng)
    for name in ("mxfp8_e5m2", "nvfp4"):
        _compare(x, name, "q")
        _compare(_t(x), name, rounding=R.STOCHASTIC, seed=8, axis=0)


@inner
@pytest.mark.parametrize("ts", [1.0, 2.0**-149, 2.0**-140, 2.0**100, 3.0e38])
def test_nvfp4_given_tensor_scale(ts, rng):
    x = _edge(rng)
    _compare(x, "nvfp4", "q", scale=np.float32(ts))
    _compare(_t(x), "nvfp4", rounding=R.STOCHASTIC, seed=1, scale=np.float32(ts), axis=0)


@inner
@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxint8", "nvfp4"])
def test_block_stochastic_equal(name, rng):
    """Rounding.STOCHASTIC_EQUAL: the kernels draw the counter bits as for STOCHASTIC and the
    shared element step takes one of them; the CPU runs the generic route."""
    x = _edge(rng)
    kw = {"rounding": R.STOCHASTIC_EQUAL, "seed": 6, "offset": 3}
    _compare(x, name, **kw)
    _compare(_t(x), name, axis=0, **kw)


@inner
def test_block_rbits(rng):
    """rbits= on the block kernels (issue 16): each element reads the word of its C-order
    index, whatever the block axis. The warp kernel (blocks along the last axis) with device
    bits of x's shape, the one-thread-per-block kernel (axis 0) with host bits broadcast; the
    CPU route's bits with the same words."""
    x = np.ascontiguousarray(_edge(rng)[[1, 3], :32])  # a mixed row, one near float32 max
    b = rng.integers(0, 1 << 16, x.shape, dtype=np.uint16)
    kw = {"rounding": R.STOCHASTIC, "rbits": b}
    want = qa.quantize(x, "mxfp8_e4m3", **kw)
    got = _host(qa.quantize(_dev(x), "mxfp8_e4m3", **{**kw, "rbits": _dev(b)}))
    assert_same_floats(got, want, "mxfp8_e4m3 rbits")
    b1 = rng.integers(0, 256, (1, 2), dtype=np.uint8)
    kw = {"rounding": R.STOCHASTIC_EQUAL, "rbits": b1, "axis": 0}
    _compare(_t(x), "nvfp4", **kw)
    kw = {"rounding": R.STOCHASTIC, "rbits": b1[0], "random_bits": 5, "axis": 0}
    _compare(_t(x), "mxint8", ops="e", **kw)


@inner
def test_nvfp4_quotient_overflow_saturates():
    """With a tiny given tensor scale ``x / d`` overflows float32: E2M1(inf) saturates to
    ``±6`` (documented semantics), on the device and on the CPU."""
    ts = np.float32(1e-30)
    x = np.array([3e38, -3e38, 1.0] + [0.0] * 13, np.float32)
    d = np.float32(np.float64(448.0) * np.float64(ts))  # the block scale saturates at 448
    # the one shared element step: every block-format mode saturates, codes included
    for rnd in (r for r in R if r is not R.STOCHASTIC_EQUAL):
        y = _host(qa.quantize(_dev(x), "nvfp4", scale=ts, rounding=rnd, seed=1))
        assert y[0] == np.float32(6.0) * d
        assert y[1] == -y[0]
        assert np.array_equal(y, qa.quantize(x, "nvfp4", scale=ts, rounding=rnd, seed=1))
        for xs in (x, x[::-1].copy(), x.astype(np.float64)):
            _compare(xs, "nvfp4", scale=ts, rounding=rnd, seed=1)


@inner
@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxint8", "nvfp4"])
def test_block_decode(name, rng):
    x = _edge(rng)
    want = qa.encode(x, name)
    enc = qa.encode(_dev(x), name)
    for dt in (np.float32, np.float64, np.float16, ml_dtypes.bfloat16):
        with np.errstate(over="ignore", invalid="ignore"):
            ref = qa.decode(want, name, dtype=dt)
        assert_same_floats(_host(qa.decode(enc, name, dtype=dt)), ref, f"{name} {dt}")
    # from the parts, blocks along axis 0
    xt = np.ascontiguousarray(x.T)
    wt = qa.encode(xt, name, axis=0)
    et = qa.encode(_dev(xt), name, axis=0)
    got = qa.decode(et.codes, name, scale=et.scales, axis=0, tensor_scale=et.tensor_scale)
    assert_same_floats(_host(got), qa.decode(wt, name))


@inner
def test_nvfp4_decode_rounds_once_to_every_dtype():
    """``1.5 * d`` needs 25 bits: every output dtype gets the exact product rounded once
    (nearest-even), on the CPU and on the device, whatever ml_dtypes is installed (ml_dtypes
    before 0.7 rounded float64 to bfloat16 through float32: this ``d`` is one where the two
    differ)."""
    from qemu_arrays.formats.reference import quantize_value

    d = np.array([1065309525], np.uint32).view(np.float32)[0]
    codes = np.full((2, 16), 3, np.uint8)  # E2M1 1.5
    scales = np.full((2, 1), 0x38, np.uint8)  # E4M3 1.0
    exact = 1.5 * float(d)  # exact in float64
    for dt, name in (
        (np.float16, "float16"),
        (ml_dtypes.bfloat16, "bfloat16"),
        (np.float32, "float32"),
    ):
        want = qa.decode(codes, "nvfp4", scale=scales, tensor_scale=d, dtype=dt)
        assert float(want.flat[0]) == quantize_value(exact, name), name
        got = qa.decode(_dev(codes), "nvfp4", scale=_dev(scales), tensor_scale=d, dtype=dt)
        assert_same_floats(_host(got), want, str(dt))


@inner
def test_block_shapes_out_and_errors(rng):
    x = _edge(rng)
    xd = _dev(x)
    out = _dev(np.zeros_like(x))
    assert qa.quantize(xd, "mxfp4_e2m1", out=out) is out
    assert_same_floats(_host(out), qa.quantize(x, "mxfp4_e2m1"))
    e = qa.quantize(_dev(np.empty((0, 40), np.float32)), "mxfp8_e4m3")
    assert tuple(e.shape) == (0, 40)
    enc = qa.encode(_dev(np.empty((2, 0), np.float32)), "nvfp4")
    assert tuple(enc.scales.shape) == (2, 0)
    assert enc.tensor_scale == np.float32(1.0)
    one = np.linspace(-3, 3, 7, dtype=np.float32)  # a single short block
    assert_same_floats(_host(qa.quantize(_dev(one), "nvfp4")), qa.quantize(one, "nvfp4"))
    with pytest.raises(ValueError, match="two-level"):
        qa.quantize(xd, "mxfp8_e4m3", scale=2.0)
    with pytest.raises(ValueError, match="overflow"):
        qa.quantize(xd, "mxfp8_e4m3", overflow=qa.Overflow.ML_DTYPES)
    with pytest.raises(ValueError, match="scalar"):
        qa.quantize(_dev(np.ones((), np.float32)), "mxfp8_e4m3")
    with pytest.raises(ValueError, match="scale codes"):
        qa.decode(_dev(np.zeros((2, 40), np.uint8)), "mxfp8_e4m3")


@inner
@pytest.mark.parametrize("bs", [3, 64])
def test_custom_block_sizes(bs, rng):
    """Block sizes that are not a power of two up to 32 take the one-thread-per-block kernel."""
    el = qa.get_format("float8_e4m3fn")
    fmt = qa.BlockFormat(element=el, scale=qa.get_format("float8_e8m0fnu"), block_size=bs)
    x = _edge(rng, n=70)
    for rnd in (R.NEAREST_EVEN, R.STOCHASTIC):
        kw = {"rounding": rnd, "seed": 2}
        assert_same_floats(_host(qa.quantize(_dev(x), fmt, **kw)), qa.quantize(x, fmt, **kw))
        _same_encoded(qa.encode(_dev(x), fmt, **kw), qa.encode(x, fmt, **kw), f"bs={bs}")


@inner
def test_block_route_is_cuda():
    from qemu_arrays.dispatch import Route, explain_route, route

    xd = _dev(np.ones((2, 32), np.float32))
    assert route(xd, "nvfp4") is Route.CUDA
    assert "fused" in explain_route(xd, "mxfp8_e4m3")


# ---- the 32-bit nearest-even element kernel ---------------------------------------------------


def _rne_plans():
    from qemu_arrays.kernels.elements import rne_f32_plan

    out = []
    for name in qa.list_formats():
        fmt = qa.get_format(name)
        if not isinstance(fmt, qa.FloatFormat):
            continue
        for ovf in qa.Overflow:
            if rne_f32_plan(fmt.params(), int(ovf)) is not None:
                out.append((name, ovf))
    return out


def _bit_classes(rng, k):
    """float32 bit patterns of every class: normals, subnormals, zeros, inf, NaN, values around
    the overflow threshold, and the exact ties of narrow formats."""
    b = rng.integers(0, 1 << 32, size=k, dtype=np.uint64).astype(np.uint32)
    sub = rng.integers(0, 1 << 23, size=k // 4, dtype=np.uint32) | (
        rng.integers(0, 2, k // 4, dtype=np.uint32) << 31
    )
    ef = rng.integers(100, 160, size=k // 2, dtype=np.uint32) << 23  # around the narrow ranges
    mid = ef | (rng.integers(0, 8, k // 2, dtype=np.uint32) << 20) | np.uint32(1 << 19)
    near = ef | rng.integers(0, 1 << 23, k // 2, dtype=np.uint32)
    special = np.array([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001, 0x7F800001,
                        0x7F7FFFFF, 0x00800000, 0x007FFFFF, 0x00000001], np.uint32)  # fmt: skip
    return np.concatenate([b, sub, mid, near, special])


def test_rne32_intrinsic_equals_the_cpu_step(rng):
    """The 32-bit select-only step (LLVM IR on i32 words) against ``cpu.rne_f32_bits``, on
    every eligible catalog format and overflow policy (the intrinsic compiled for the CPU)."""
    from numba import njit

    from qemu_arrays.cuda_kernels.rne32 import rne32
    from qemu_arrays.kernels.elements import rne_f32_bits, rne_f32_plan

    @njit(cache=False)
    def bad_count(xb, plan):
        bad = 0
        for i in range(xb.size):
            bad += np.uint32(rne32(xb[i], plan)) != np.uint32(rne_f32_bits(np.int64(xb[i]), plan))
        return bad

    xb = _bit_classes(rng, 1 << 16)
    plans = _rne_plans()
    assert len(plans) > 20
    for name, ovf in plans:
        plan = rne_f32_plan(qa.get_format(name).params(), int(ovf))
        assert bad_count(xb, plan) == 0, (name, ovf)


@inner
@pytest.mark.parametrize(("name", "ovf"), _rne_plans(), ids=lambda v: getattr(v, "name", v))
def test_rne32_kernel_matches_cpu(name, ovf, rng, monkeypatch):
    from qemu_arrays.cuda_kernels import kernels

    used = []
    real = kernels.rne32_quantize
    monkeypatch.setattr(kernels, "rne32_quantize", lambda *a: used.append(a) or real(*a))
    fmt = qa.get_format(name)
    xb = _bit_classes(rng, 2000 if REAL else 96)
    if not fmt.has_nan and ovf is not qa.Overflow.ML_DTYPES:
        nan = ((xb & 0x7F800000) == 0x7F800000) & ((xb & 0x7FFFFF) != 0)
        xb = xb[~nan]
    x = xb.view(np.float32)
    got = _host(qa.quantize(_dev(x), fmt, overflow=ovf))
    assert_same_floats(got, qa.quantize(x, fmt, overflow=ovf), f"{name} {ovf.name}")
    assert len(used) == 1  # the 32-bit kernel took it


@inner
def test_element_error_flag_is_read_only_when_an_error_is_possible(monkeypatch):
    from qemu_arrays.routes import cuda as cuda_route

    calls = []
    real = cuda_route._check_err
    monkeypatch.setattr(cuda_route, "_check_err", lambda *a: calls.append(1) or real(*a))
    x = np.array([1.0, np.nan, -2.5], np.float32)
    qa.quantize(_dev(x), "float8_e4m3fn")  # has NaN: nothing to read back
    qa.quantize(_dev(x), "float8_e4m3fn", rounding=R.STOCHASTIC, seed=1)
    assert calls == []
    for _ in range(2):  # the cached flag is cleared after an error
        with pytest.raises(ValueError, match="has no NaN"):
            qa.quantize(_dev(x), "float4_e2m1fn")
    ok = qa.quantize(_dev(x[[0, 2]]), "float4_e2m1fn")
    assert_same_floats(_host(ok), qa.quantize(x[[0, 2]], "float4_e2m1fn"))
    assert len(calls) == 3
    got = _host(qa.quantize(_dev(x), "float4_e2m1fn", overflow=qa.Overflow.ML_DTYPES))
    assert_same_floats(got, qa.quantize(x, "float4_e2m1fn", overflow=qa.Overflow.ML_DTYPES))


@pytest.mark.skipif(not SIM, reason="numba's CUDA simulator only")
def test_simulator_shared_array_first_call_race(monkeypatch):
    """numba's simulator creates a shared array with an unlocked check-then-create, so threads
    arriving together on a block's first call can each get an array of their own (the flaky
    NaN of an earlier CI run). Widen that window: every thread that finds no array waits, then
    creates one filled with NaN-like bits. The block maxima, hence the results, must not change."""
    import time

    from numba.cuda.simulator import kernelapi

    class SlowNumpy:
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def empty(shape, dtype):
            time.sleep(0.002)
            return np.full(shape, 0x7FC00000, dtype)  # a float32 NaN, as bits

    x = np.array([3e38, -3e38, 1.0] + [0.25] * 45, np.float32)
    want = qa.quantize(x, "nvfp4")
    monkeypatch.setattr(kernelapi, "np", SlowNumpy())
    assert_same_floats(_host(qa.quantize(_dev(x), "nvfp4")), want, "nvfp4 lanes")
    assert_same_floats(
        _host(qa.quantize(_dev(x), "mxfp8_e4m3")), qa.quantize(x, "mxfp8_e4m3"), "mx"
    )
