"""The block kernels' fast path on the bits gives the same bits as their general path.

``qemu_arrays.routes.cpu_blocks._FAST_PATH = False`` makes the kernels take the general path (the scalar
cores on ``(sign, M, E)``) for every element; the fast path (exponent-field shifts plus
``round_bits_fast``, float32 quotient bits for NVFP4) must agree bit for bit with it on data
built to cross every boundary of the fast path: float32 subnormal inputs and outputs, scales
clamped at 2^-127, elements that overflow the element format, ties, zeros of both signs,
blocks with NaN/Inf, float64 inputs, and NVFP4 tensor scales that make ``d`` subnormal or
infinite. An independent numpy + ml_dtypes oracle checks the MX fast path on a larger matrix.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats.block_spec import ScaleRule
from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.spec import Rounding
from qemu_arrays.routes import cpu_blocks as blocks

MX_NAMES = ("mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4_e2m1", "mxint8")


def _edge_data(rng, rows, n, dtype=np.float32):
    """Rows of blocks whose magnitudes span the float32 range, with the awkward cases mixed in."""
    ex = rng.integers(-150, 128, size=(rows, 1))  # one binade per row ...
    spread = rng.integers(-30, 3, size=(rows, n))  # ... and elements up to 2^-30 below it
    x = rng.standard_normal((rows, n)) * np.exp2((ex + spread).astype(np.float64))
    # exact ties and grid points of the small formats, scaled by a power of two per row
    grid = rng.integers(-64, 65, size=(rows, n)) / 8.0 * np.exp2(rng.integers(-130, 100, (rows, 1)))
    x = np.where(rng.random((rows, n)) < 0.3, grid, x)
    x[rng.random((rows, n)) < 0.03] = 0.0
    x[rng.random((rows, n)) < 0.03] = -0.0
    x[0, 5] = np.nan
    x[1, 40] = np.inf
    x[2, n - 1] = -np.inf
    x[3, :] = float(np.finfo(np.float32).max) * rng.uniform(-1, 1, n)
    x[4, :] = float(np.finfo(np.float32).smallest_subnormal) * rng.integers(-40, 40, n)
    with np.errstate(over="ignore"):
        return x.astype(dtype)


def _both(fn, monkeypatch):
    got = fn()
    monkeypatch.setattr(blocks, "_FAST_PATH", False)
    want = fn()
    monkeypatch.setattr(blocks, "_FAST_PATH", True)
    return got, want


def _bits(a):
    a = np.asarray(a)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def _assert_same_bits(got, want):
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    nan_g, nan_w = np.isnan(got), np.isnan(want)
    assert np.array_equal(nan_g, nan_w)
    bad = ~nan_g & (_bits(got) != _bits(want))
    assert not bad.any(), f"{int(bad.sum())} mismatches, first at {np.argwhere(bad)[:4].tolist()}"


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


@pytest.mark.parametrize("name", [*MX_NAMES, "nvfp4"])
@pytest.mark.parametrize(
    "rounding", [r for r in Rounding if r <= Rounding.STOCHASTIC], ids=lambda r: r.name
)
def test_fast_path_equals_general_path(name, rounding, rng, monkeypatch):
    fmt = get_format(name)
    x = _edge_data(rng, 24, 96)
    kw = {"rounding": rounding, "seed": 3} if rounding is Rounding.STOCHASTIC else {}
    kw["rounding"] = rounding
    got, want = _both(lambda: qa.quantize(x, fmt, **kw), monkeypatch)
    _assert_same_bits(got, want)
    eg, ew = _both(lambda: qa.encode(x, fmt, **kw), monkeypatch)
    assert np.array_equal(eg.codes, ew.codes)
    assert np.array_equal(eg.scales, ew.scales)


@pytest.mark.parametrize("name", MX_NAMES)
@pytest.mark.parametrize("rule", list(ScaleRule), ids=lambda r: r.name)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, ml_dtypes.bfloat16])
def test_fast_path_every_rule_and_dtype(name, rule, dtype, rng, monkeypatch):
    fmt = get_format(name).with_rule(rule)
    x = _edge_data(rng, 16, 64, np.float64)
    if dtype == np.float64:  # below and beyond the float32 range too
        x = x * np.exp2(rng.integers(-200, 200, size=(16, 1)).astype(np.float64))
    with np.errstate(over="ignore"):
        x = x.astype(dtype)
    got, want = _both(lambda: qa.quantize(x, fmt), monkeypatch)
    _assert_same_bits(got, want)
    eg, ew = _both(lambda: qa.encode(x, fmt), monkeypatch)
    assert np.array_equal(eg.codes, ew.codes)


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp4_e2m1", "nvfp4"])
def test_fast_path_other_axis_and_stochastic_indices(name, rng, monkeypatch):
    x = _edge_data(rng, 40, 48).T.copy()  # blocks along axis 0 of a (48, 40) array
    kw = {"axis": 0, "rounding": Rounding.STOCHASTIC, "seed": 11, "random_bits": 9}
    got, want = _both(lambda: qa.quantize(x, name, **kw), monkeypatch)
    _assert_same_bits(got, want)


@pytest.mark.parametrize("ts", [1.0, 2.0**-149, 2.0**-140, 1e-30, 3.0e38, 2.0**100])
def test_nvfp4_tensor_scale_extremes(ts, rng, monkeypatch):
    x = _edge_data(rng, 16, 64)
    got, want = _both(lambda: qa.quantize(x, "nvfp4", scale=np.float32(ts)), monkeypatch)
    _assert_same_bits(got, want)
    x64 = x.astype(np.float64)
    got, want = _both(lambda: qa.quantize(x64, "nvfp4", scale=np.float32(ts)), monkeypatch)
    _assert_same_bits(got, want)


@pytest.mark.parametrize(
    ("name", "elem", "emax"),
    [
        ("mxfp8_e4m3", ml_dtypes.float8_e4m3fn, 8),
        ("mxfp8_e5m2", ml_dtypes.float8_e5m2, 15),
        ("mxfp4_e2m1", ml_dtypes.float4_e2m1fn, 2),
    ],
)
def test_mx_against_numpy_ml_dtypes_oracle(name, elem, emax, rng):
    """OCP MX (FLOOR rule, nearest-even) computed independently with numpy and ml_dtypes."""
    x = (rng.standard_normal((256, 256)) * np.exp2(rng.integers(-135, 120, (256, 1)))).astype(
        np.float32
    )
    blk = x.astype(np.float64).reshape(256, -1, 32)
    amax = np.abs(blk).max(axis=-1, keepdims=True)
    _, ex = np.frexp(amax)
    e = np.where(amax > 0, np.maximum(ex - 1 - emax, -127), -127)
    mx = float(ml_dtypes.finfo(elem).max)
    y = np.clip(np.ldexp(blk, -e), -mx, mx)  # exact; beyond max saturates
    q = y.astype(elem).astype(np.float64)  # nearest-even into the element format
    want = np.ldexp(q, e).reshape(x.shape).astype(np.float32)  # one rounding to float32
    got = qa.quantize(x, name)
    assert np.array_equal(_bits(got), _bits(want))


def test_tensor_scale_of_float32_matches_float64_route(rng):
    fmt = get_format("nvfp4")
    x = _edge_data(rng, 8, 64)
    got = blocks.tensor_scale_of(x, fmt)
    want = blocks.tensor_scale_of(x.astype(np.float64), fmt)  # the numpy route
    assert _bits(np.float32(got)) == _bits(np.float32(want))
    assert blocks.tensor_scale_of(np.full(5, np.nan, np.float32), fmt) == np.float32(1.0)


# ---- the float32 nearest-even block kernels (mx_f32_rne, nv_f32_rne) and their pieces ---------


def _magnitude_bits(rng, k=4000):
    """float32 magnitude bit patterns of every finite class, boundary patterns included."""
    b = rng.integers(1, 0x7F800000, size=k, dtype=np.int64)
    sub = rng.integers(1, 1 << 23, size=k // 8, dtype=np.int64)  # subnormals
    ef = rng.integers(1, 255, size=k // 4, dtype=np.int64) << 23
    ones = [(1 << 23) - (1 << s) for s in range(0, 23)]  # mantissas 1.111..1000 (rule carries)
    tops = (ef[:, None] | np.array(ones, dtype=np.int64)[None, :]).reshape(-1)
    halves = (ef[:, None] | np.array([(1 << 23) - (1 << s) + (1 << (s - 1)) for s in range(1, 23)],
                                     dtype=np.int64)[None, :]).reshape(-1)  # fmt: skip
    return np.concatenate([b, sub, tops, halves, [1, 0x7F7FFFFF, 0x00800000, 0x007FFFFF]])


@pytest.mark.parametrize("name", MX_NAMES)
@pytest.mark.parametrize("rule", list(ScaleRule), ids=lambda r: r.name)
def test_block_exponent_on_bits_equals_shared_exponent(name, rule, rng):
    from qemu_arrays.kernels import blocks as cpu_blocks

    fmt = get_format(name)
    el = fmt.element
    if hasattr(el, "mantissa_bits"):
        mprec, maxsig = el.mantissa_bits, el.params()[3]
    else:
        mprec, maxsig = el.max.bit_length() - 1, el.max
    sh, mref = cpu_blocks.block_exponent_consts(mprec, maxsig)
    for a in _magnitude_bits(rng).tolist():
        _, M, E, _ = cpu_blocks.split_bits(a, 8, 23)
        want = cpu_blocks.shared_exponent(M, E, int(rule), mprec, fmt.element_emax, maxsig)
        got = cpu_blocks.block_exponent_f32(a, int(rule), sh, mref, mprec, fmt.element_emax, maxsig)
        assert got == want, (hex(a), got, want)


def test_rne_scale_f64_equals_the_general_core(rng):
    """The NVFP4 block scale (E4M3, nearest-even, saturating) on float64 bits."""
    from qemu_arrays.formats import cores
    from qemu_arrays.kernels import blocks as cpu_blocks

    sp = get_format("nvfp4").scale.params()
    sm, semin, semax, ssig, ssub, shz, ssg, ssp, seb, sbias = sp
    plan = cpu_blocks.rne_scale_plan(sp)
    grid = np.array(sorted({abs(float(v)) for v in get_format("float8_e4m3fn").values()
                            if np.isfinite(v)}))  # fmt: skip
    mids = (grid[1:] + grid[:-1]) / 2
    vs = np.concatenate([
        grid, mids, np.nextafter(mids, 0), np.nextafter(mids, np.inf),
        rng.uniform(0, 500, 2000), np.exp2(rng.uniform(-30, 20, 2000)),
        [0.0, 5e-324, 2.0**-10, 2.0**-10 + 2.0**-60, 448.0, 464.0, 480.0, 1e300],
    ])  # fmt: skip
    for v in vs.tolist():
        got_v, got_c = cpu_blocks.rne_scale_f64(v, plan)
        if v == 0.0:
            st, s, kept, q = cores.FINITE, 0, 0, 0
        else:
            fr, ex = np.frexp(v)
            st, s, kept, q = cores.round_magnitude(
                0, int(np.ldexp(fr, 53)), int(ex) - 53, sm, semin, semax, ssig, ssub, shz, ssg,
                ssp, 0, cores.SATURATE, 0, 0,
            )  # fmt: skip
        assert got_v == np.ldexp(float(kept), q), v
        assert got_c == cores.format_code(st, s, kept, q, sm, semin, seb, sbias, ssg, ssp), v


def test_max_finite_f32_skips_nonfinite_per_chunk(rng):
    from qemu_arrays.kernels import blocks as cpu_blocks

    x = rng.standard_normal(10_000).astype(np.float32)
    x[[3, 4000, 9999]] = [np.nan, np.inf, -np.inf]
    x[5000] = -7e20  # the largest finite magnitude, in a chunk without specials
    for chunk in (1, 7, 64, 4096, 1 << 16):
        got = cpu_blocks.max_finite_f32(x.view(np.uint32), chunk)
        assert got == np.float64(np.float32(7e20))
    x[5000] = 1.0
    x[4001] = -3e30  # in the chunk with the infinity
    assert cpu_blocks.max_finite_f32(x.view(np.uint32), 4096) == np.float64(np.float32(3e30))
    assert cpu_blocks.max_finite_f32(np.full(9, np.inf, np.float32).view(np.uint32), 4) == 0.0


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp4_e2m1", "nvfp4"])
def test_fast_kernels_zero_tiny_and_special_blocks_across_tasks(name, rng, monkeypatch):
    """Whole zero / -0 / tiny / NaN / inf blocks, spread over several parallel tasks."""
    bs = get_format(name).block_size
    x = rng.standard_normal((6, bs * 150)).astype(np.float32)
    blk = x.reshape(6, 150, bs)
    blk[0, 3] = 0.0
    blk[1, 140] = -0.0
    blk[2, 7] = 1e-30  # d == 0 under the tensor scale (NVFP4): every element +0
    blk[2, 8] = np.float32(2.0**-130)  # a subnormal block maximum
    blk[3, 1, 5] = np.nan
    blk[4, 149, 0] = -np.inf
    blk[5, 60] *= 2.0**100
    for x_ in (x, x * np.float32(2.0**-120)):
        got, want = _both(lambda x_=x_: qa.quantize(x_, name), monkeypatch)
        _assert_same_bits(got, want)


@pytest.mark.parametrize(
    "rounding", [r for r in Rounding if r <= Rounding.STOCHASTIC], ids=lambda r: r.name
)
def test_nvfp4_quotient_overflow_saturates_on_every_path(rounding, monkeypatch):
    """A tiny given tensor scale makes ``x / d`` overflow float32: the element saturates."""
    ts = np.float32(1e-30)
    x = np.array([3e38, -3e38, 1.0] + [0.0] * 13, np.float32)
    d = np.float32(np.float64(448.0) * np.float64(ts))  # the block scale saturates at 448
    got, want = _both(lambda: qa.quantize(x, "nvfp4", scale=ts, rounding=rounding, seed=1),
                      monkeypatch)  # fmt: skip
    _assert_same_bits(got, want)
    assert got[0] == np.float32(6.0) * d
    assert got[1] == -got[0]
    enc = qa.encode(x, "nvfp4", scale=ts, rounding=rounding, seed=1)
    assert enc.codes[0] == 0x7
    assert enc.codes[1] == 0xF


@pytest.mark.parametrize("ts", [1.0, 0.375, 5 * 2.0**-20, 1.2345678, 3 * 2.0**-126, 7e35])
def test_nvfp4_float32_scale_step_at_and_near_scale_midpoints(ts, rng, monkeypatch):
    """The fast kernel rounds the block scale from a float32 quotient and hands blocks near an
    E4M3 midpoint to the exact float64 step: block maxima placed exactly on every midpoint of
    the scale grid (ties, with tensor scales of few significant bits so ``mid * 6 * ts`` is a
    float32), and 1 to 40 float32 ulps either side of it, give the general path's scales and
    values."""
    ts = np.float32(ts)
    e4m3 = np.array(
        sorted({abs(float(v)) for v in get_format("float8_e4m3fn").values() if np.isfinite(v)})
    )
    mids = np.concatenate([(e4m3[1:] + e4m3[:-1]) / 2, [464.0, 2.0**-10, 2.0**-6]])
    with np.errstate(over="ignore"):
        exact = np.float32(mids * 6.0 * np.float64(ts))
    steps = np.array([0, 1, -1, 2, -2, 3, -3, 5, -5, 8, -8, 9, -9, 13, -13, 40, -40])
    bits = exact.view(np.uint32).astype(np.int64)[:, None] + steps[None, :]
    amax = np.clip(bits, 1, 0x7F7FFFFF).astype(np.uint32).view(np.float32).reshape(-1)
    amax = amax[np.isfinite(amax) & (amax > 0)]
    x = rng.uniform(-1, 1, (amax.size, 16)).astype(np.float32) * amax[:, None]
    x[:, 3] = amax * rng.choice([-1, 1], amax.size).astype(np.float32)  # the block maximum

    def run():
        vals, _, scales, _ = blocks._run(
            x, get_format("nvfp4"), 1, Rounding.NEAREST_EVEN, (0, 0, 0), 0, 0, 1, ts,
            np.dtype(np.float32),
        )  # fmt: skip
        return vals, scales

    (got_v, got_s), (want_v, want_s) = _both(run, monkeypatch)
    assert np.array_equal(got_s, want_s)
    _assert_same_bits(got_v, want_v)


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp6_e3m2", "mxfp4_e2m1", "nvfp4"])
@pytest.mark.parametrize("n", [1, 15, 17, 31, 33, 47, 95, 130])
def test_fast_kernels_with_a_short_last_block(name, n, rng, monkeypatch):
    """Rows whose length is not a multiple of the block size: the fast kernels take the whole
    blocks of every row and the general kernel the short last block (and rows shorter than a
    block entirely); values and scale codes equal the general path's, on any axis."""
    fmt = get_format(name)
    x = np.ascontiguousarray(_edge_data(rng, 23, max(n, 41))[:, :n])
    x[5, -1] = np.nan  # a NaN and an infinity in short last blocks
    x[6, -1] = -np.inf
    x[7, :] = 0.0
    for arr, axis in ((x, 1), (np.ascontiguousarray(x.T), 0)):

        def run(arr=arr, axis=axis):
            vals, _, scales, _ = blocks._run(
                arr, fmt, axis, Rounding.NEAREST_EVEN, (0, 0, 0), 0, 0, 1, None,
                np.dtype(np.float32),
            )  # fmt: skip
            return vals, scales

        (got_v, got_s), (want_v, want_s) = _both(run, monkeypatch)
        assert np.array_equal(got_s, want_s)
        _assert_same_bits(got_v, want_v)
        got, want = _both(lambda arr=arr, axis=axis: qa.quantize(arr, fmt, axis=axis), monkeypatch)
        _assert_same_bits(got, want)
