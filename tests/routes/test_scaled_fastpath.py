"""The per-channel / per-group integer kernels (qemu_arrays.kernels.scaled) against NumPy formulas.

The range pass is compared with ``nanmin``/``nanmax`` over the finite values of each group, the
quantization with ``clip(rint(float64(x) / s), qmin - z, qmax - z) + 0.0`` times ``s``, bit for
bit, over every loop shape the kernels pick (runs of one scale, rows of varying scales, a tiled
period, pieces of long runs, a tail of rows) and every input dtype.
"""

from __future__ import annotations

import warnings
import zlib

import ml_dtypes
import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays import scales as scaled
from qemu_arrays.kernels import scaled as cpu_scaled

# (shape, axis, block_size): every loop shape of both passes
GRANULARITIES = [
    ((50,), None, None),
    ((50,), 0, None),
    ((50,), 0, 7),
    ((37, 41), 0, None),
    ((37, 41), 1, None),
    ((37, 41), 1, 8),
    ((37, 41), 1, 41),
    ((37, 41), 0, 4),
    ((37, 41), 0, 37),
    ((5, 6, 7), 0, None),
    ((5, 6, 7), 1, None),
    ((5, 6, 7), 2, None),
    ((5, 6, 7), 1, 4),
    ((5, 6, 7), 2, 3),
    ((5, 6, 7), 0, 2),
    ((5000, 3), 1, None),  # a tiled period with a tail of rows
    ((300, 7, 2), 1, None),  # short runs: a tiled period of n * inner
    ((2, 20000), 0, None),  # runs longer than a task: pieces
    ((3, 20000), 1, 17000),  # groups along the last axis longer than a task
    ((40000,), None, None),
    ((6, 300, 4), 1, 32),  # groups along a middle axis
    ((4, 70000), 1, None),  # a period longer than the tiling limit
    ((3, 4, 300), 1, None),  # runs of a channel in several outer slices
    ((2, 2, 17000), 1, None),  # the same, each run in pieces
]


def _seed(*args):
    return zlib.crc32(repr(args).encode())


def _specials(x, rng):
    """NaN, infinities, signed zeros and subnormals sprinkled into ``x`` (in place)."""
    f = x.reshape(-1)
    n = f.size
    tiny = np.finfo(x.dtype).smallest_subnormal if x.dtype != ml_dtypes.bfloat16 else None
    for val in (np.nan, np.inf, -np.inf, -0.0, 0.0):
        f[rng.integers(0, n, max(1, n // 50))] = val
    if tiny is not None:
        f[rng.integers(0, n, max(1, n // 50))] = tiny * 3
        f[rng.integers(0, n, max(1, n // 50))] = -tiny
    return x


def _group_index(shape, axis, block_size):
    """Flat group index of every element (C order of the group shape)."""
    if axis is None:
        return np.zeros(int(np.prod(shape)), dtype=np.int64)
    gshape = scaled.group_shape(shape, axis, block_size)
    idx = list(np.indices(shape))
    if block_size is None:
        return idx[axis].reshape(-1)
    idx[axis] = idx[axis] // block_size
    return np.ravel_multi_index(idx, gshape).reshape(-1)


def _reference_range(x, axis, block_size):
    """(lo, hi) per group: nanmin/nanmax over the finite values, with 0 included."""
    v = np.asarray(x, dtype=np.float64).reshape(-1)
    v = np.where(np.isfinite(v), v, np.nan)
    g = _group_index(x.shape, axis, block_size)
    ng = 1 if axis is None else int(np.prod(scaled.group_shape(x.shape, axis, block_size)))
    if ng == 0:
        return np.zeros(0), np.zeros(0)
    counts = np.bincount(g, minlength=ng)
    width = max(1, int(counts.max(initial=0)))
    table = np.full((ng, width), np.nan)
    order = np.argsort(g, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    col = np.arange(v.size) - np.repeat(starts, counts)
    table[g[order], col] = v[order]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # groups without a finite value
        lo = np.nan_to_num(np.nanmin(table, axis=1), nan=0.0)
        hi = np.nan_to_num(np.nanmax(table, axis=1), nan=0.0)
    return np.minimum(lo, 0.0) + 0.0, np.maximum(hi, 0.0) + 0.0


def _same(a, b):
    """Bit-for-bit equality of float arrays (NaN equal to NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert a.dtype == b.dtype
    nan = np.isnan(a)
    assert np.array_equal(nan, np.isnan(b))
    w = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    assert np.array_equal(a.view(w)[~nan], b.view(w)[~nan])


@pytest.mark.parametrize(("shape", "axis", "block_size"), GRANULARITIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, ml_dtypes.bfloat16])
def test_range_matches_nanmin_nanmax(shape, axis, block_size, dtype):
    rng = np.random.default_rng(_seed(shape, axis, block_size))
    x = _specials((rng.standard_normal(shape) * 4).astype(dtype), rng)
    lo_ref, hi_ref = _reference_range(x, axis, block_size)
    lo, hi = cpu_scaled.group_range(x, axis, block_size)
    _same(lo, lo_ref)
    _same(hi, hi_ref)
    _same(cpu_scaled.group_absmax(x, axis, block_size), np.maximum(hi_ref, -lo_ref) + 0.0)


@pytest.mark.parametrize(
    ("shape", "axis", "block_size"),
    [((0,), None, None), ((0, 5), 1, None), ((5, 0), 1, 3), ((0, 4), 0, 2), ((1,), 0, None),
     ((1,), None, None), ((1, 1), 1, 4), ((3, 1), 0, None)],
)  # fmt: skip
def test_range_empty_and_one_element(shape, axis, block_size):
    x = -np.arange(1, int(np.prod(shape)) + 1, dtype=np.float32).reshape(shape)
    lo_ref, hi_ref = _reference_range(x, axis, block_size)
    lo, hi = cpu_scaled.group_range(x, axis, block_size)
    _same(lo, lo_ref)
    _same(hi, hi_ref)
    _same(cpu_scaled.group_absmax(x, axis, block_size), np.maximum(hi_ref, -lo_ref) + 0.0)


def test_range_all_nonfinite_group_and_extremes():
    x = np.array([[np.nan, np.inf, -np.inf], [-0.0, -0.0, -0.0], [3.4e38, -3.4e38, 1.0]],
                 dtype=np.float32)  # fmt: skip
    lo, hi = cpu_scaled.group_range(x, 0, None)
    _same(lo, np.array([0.0, 0.0, float(np.float32(-3.4e38))]))
    _same(hi, np.array([0.0, 0.0, float(np.float32(3.4e38))]))
    _same(cpu_scaled.group_absmax(x, 0, None), hi)


def _expand(a3, outer, n, inner, bs):
    """A ``(1 or outer, groups or 1, 1 or inner)`` array expanded to every element."""
    a = np.repeat(a3, bs, axis=1)[:, :n] if a3.shape[1] > 1 else a3
    return np.broadcast_to(a, (outer, n, inner))


def _reference_quantize(x3, s3, z3, bs, qmin, qmax):
    outer, n, inner = x3.shape
    s = _expand(s3, outer, n, inner, bs)
    z = _expand(z3, outer, n, inner, bs)
    v = x3.astype(np.float64)
    with np.errstate(invalid="ignore"):
        k = np.clip(np.rint(v / s), qmin - z, qmax - z) + 0.0
    return (k * s).astype(x3.dtype), int(np.isnan(v).sum())


@pytest.mark.parametrize(
    ("shape", "axis", "block_size"), [g for g in GRANULARITIES if g[1] is not None]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["group", "full", "asym"])
def test_quantize_groups_bit_exact(shape, axis, block_size, dtype, layout):
    rng = np.random.default_rng(_seed(shape, axis, block_size, layout))
    x = _specials((rng.standard_normal(shape) * 3).astype(dtype), rng)
    outer, n = int(np.prod(shape[:axis])), shape[axis]
    inner = int(np.prod(shape[axis + 1 :]))
    bs = block_size or 1
    groups = -(-n // bs)
    if layout == "group":  # scales as the rules give them: (1, n, 1) or (outer, groups, inner)
        sh = (1, n, 1) if block_size is None else (outer, groups, inner)
        s3 = rng.uniform(0.005, 0.1, sh)
        z3 = np.zeros(sh)
    elif layout == "full":  # every dimension varying, zero points one value
        s3 = rng.uniform(0.005, 0.1, (outer, groups, inner))
        z3 = np.full((1, 1, 1), 2.0)
    else:  # asymmetric: per-group zero points, scales broadcast along some dimensions
        s3 = rng.uniform(0.005, 0.1, (1, groups, inner))
        z3 = rng.integers(-20, 20, (outer, groups, 1)).astype(np.float64)
    x3 = x.reshape(outer, n, inner)
    out = np.empty_like(x3)
    err = cpu_scaled.quantize_groups(x3, out, s3, z3, bs, -128.0, 127.0)
    ref, nan = _reference_quantize(x3, s3, z3, bs, -128.0, 127.0)
    _same(out, ref)
    assert err == nan


@pytest.mark.parametrize("dims", [(1, 0, 4), (3, 0, 2), (2, 5, 0), (0, 3, 1), (1, 1, 1), (4, 1, 1)])
@pytest.mark.parametrize("bs", [1, 2])
def test_quantize_groups_empty_and_one_element(dims, bs):
    x3 = np.full(dims, -0.75, dtype=np.float32)
    groups = -(-dims[1] // bs)
    for s3 in (np.full((1, groups, 1), 0.5), np.full((dims[0], groups, dims[2]), 0.5)):
        out = np.empty_like(x3)
        assert cpu_scaled.quantize_groups(x3, out, s3, np.zeros((1, 1, 1)), bs, -8.0, 7.0) == 0
        _same(out, np.full(dims, -1.0, dtype=np.float32))


@pytest.mark.parametrize(
    ("shape", "axis", "block_size"),
    [((37, 41), 0, None), ((37, 41), 1, None), ((37, 41), 1, 8), ((37, 41), 0, 4),
     ((5, 6, 7), 1, None), ((5, 6, 7), 1, 4), ((5000, 3), 1, None), ((2, 20000), 0, None)],
)  # fmt: skip
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("symmetric", [True, False])
def test_quantize_absmax_end_to_end(shape, axis, block_size, dtype, symmetric):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    x.reshape(-1)[::11] = -0.0
    x.reshape(-1)[::13] = np.inf
    fmt = "int8" if symmetric else "uint8"
    q = qa.quantize(x, fmt, scale="absmax", axis=axis, block_size=block_size, symmetric=symmetric)
    sg, zg = scaled.compute_scale(x, fmt, axis=axis, block_size=block_size, symmetric=symmetric)
    f = qa.get_format(fmt)
    lo, hi = _reference_range(x, axis, block_size)  # the rule of docs/scaled.md, in NumPy
    if symmetric:
        s_ref = np.maximum(hi, -lo) / f.max
        z_ref = np.zeros(s_ref.shape, dtype=np.int64)
    else:
        s_ref = (hi - lo) / (f.max - f.min)
    s_ref = np.where(s_ref > 0, s_ref, 1.0)
    if not symmetric:
        z_ref = np.clip(f.min - np.rint(lo / s_ref), f.min, f.max).astype(np.int64)
    _same(sg.reshape(-1), s_ref)
    assert np.array_equal(zg.reshape(-1), z_ref)
    s = scaled.expand_groups(sg, shape, axis, block_size)
    z = scaled.expand_groups(zg, shape, axis, block_size)
    v = x.astype(np.float64)
    k = np.clip(np.rint(v / s), f.min - z, f.max - z) + 0.0
    work = np.float32 if dtype == np.float16 else dtype
    _same(q, (k * s).astype(work).astype(dtype))
