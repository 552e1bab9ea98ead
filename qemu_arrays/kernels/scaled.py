"""numba CPU kernels for integer quantization with per-channel and per-group scales.

Two passes over the input, each made of long, contiguous inner loops that the compiler
vectorizes (docs/scaled.md has the semantics, docs/performance.md the timings):

* the range pass of the ``"absmax"`` rule: per group the largest finite magnitude
  (:func:`group_absmax`, all the symmetric rule needs), or ``lo = min(min finite x, 0)`` and
  ``hi = max(max finite x, 0)`` (:func:`group_range`), NaN and infinities skipped;
* nearest-even quantization with one scale and zero point per group (:func:`quantize_groups`):
  ``k = min(max(rint(float64(x) / s), qmin - z), qmax - z) + 0.0``, ``out = k * s`` in float64,
  stored to the output dtype, the NaN inputs counted.

The input is viewed as ``(outer, n, inner)`` with the group axis in the middle; a group is an
index along the axis (per channel, reduced over ``outer`` and ``inner``) or ``block_size``
consecutive indices along it (per group, one group per ``(outer, block, inner)``). Each pass
picks one of three loop shapes:

* *runs*: the elements sharing one scale are contiguous (``inner`` long runs for a channel axis
  that is not last, ``block_size`` long runs for groups along the last axis): the scale is
  hoisted out of the inner loop;
* *rows*: the scale changes along the contiguous direction (channel axis last, groups along an
  axis that is not last): the inner loop runs along a row and loads the scales (or updates the
  group extremes) from a contiguous vector;
* for a channel axis near the end, the per-element scale pattern repeats with period
  ``n * inner``: it is materialised once (tiled to a few thousand elements) and the whole array
  is walked as rows of that period.

The range pass works on the IEEE bit patterns: a finite value's magnitude bits order as the
magnitudes do, and ``b ^ 0x7F..F`` for negative ``b`` orders signed values, so extremes are
integer ``max``/``min`` (which vectorize; float ``max`` with NaN skipped does not) and exact.
Loops index with unsigned integers, so numba emits no negative-index wraparound (which turns
vector loads into gathers), and the kernels use numpy's error model, so a division by a scale
loaded from a vector carries no zero check. Each kernel is a serial span over a range of tasks,
run on the calling thread for a small array and task by task on numba's thread pool for a large
one (:func:`qemu_arrays.kernels.runtime.run`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.core.extending import overload

from qemu_arrays.formats.jit_cache import purge_stale_cache
from qemu_arrays.kernels.runtime import init_threading, run

purge_stale_cache(__file__)
init_threading()

_JIT_CALL = {"cache": True, "nogil": True, "error_model": "numpy"}
_JIT = {**_JIT_CALL, "inline": "always"}

CHUNK = 16384  # elements per parallel task
RUN_MIN = 16  # shorter runs of one scale are walked as rows of a materialised period instead
PERIOD_MAX = 1 << 16  # longest period materialised where rows of `inner` would serve too
PERIOD_MIN = 4096  # a materialised period is tiled to at least this many elements
COLS = 4096  # row elements per task in the row-wise range pass
TASKS = 64  # parallel tasks the row-wise range pass aims at


def _like(v, arr):  # pragma: no cover - replaced by the overload inside compiled code
    """``v`` converted to ``arr``'s integer dtype (numba widens integer arithmetic to int64;
    narrowing back lets the loop run on as many lanes as the input has)."""
    raise NotImplementedError


@overload(_like, jit_options={"cache": True})
def _like_impl(v, arr):
    cast = {8: np.int8, 16: np.int16, 32: np.int32, 64: np.int64}[arr.dtype.bitwidth]

    def impl(v, arr):
        return cast(v)

    return impl


# ---- range pass ----------------------------------------------------------------------------


@njit(**_JIT)
def _amax_run(xb, a0, a1, mask, inf):
    """Largest magnitude bits of the finite values among ``xb[a0:a1]`` (0 when none)."""
    m_ = _like(mask, xb)
    inf_ = _like(inf, xb)
    zero = _like(0, xb)
    h = zero
    for i in range(np.uint64(a0), np.uint64(a1)):
        k = _like(xb[i] & m_, xb)
        k = k if k < inf_ else zero
        h = max(h, k)
    return h


@njit(**_JIT)
def _lohi_run(xb, a0, a1, mask, inf):
    """Smallest and largest signed keys of the finite values among ``xb[a0:a1]``, 0 included."""
    m_ = _like(mask, xb)
    inf_ = _like(inf, xb)
    zero = _like(0, xb)
    lo = zero
    hi = zero
    for i in range(np.uint64(a0), np.uint64(a1)):
        b = xb[i]
        k = _like(b ^ m_, xb) if b < zero else b
        k = k if _like(b & m_, xb) < inf_ else zero
        hi = max(hi, k)
        lo = min(lo, k)
    return lo, hi


@njit(**_JIT)
def _amax_rows(xb, base, nrows, stride, w, acc, off, mask, inf):
    """``acc[off + j] = max(acc[off + j], magnitude key of xb[base + r * stride + j])``."""
    m_ = _like(mask, xb)
    inf_ = _like(inf, xb)
    zero = _like(0, xb)
    uoff = np.uint64(off)
    for r in range(nrows):
        row = np.uint64(base + r * stride)
        for j in range(np.uint64(w)):
            k = _like(xb[row + j] & m_, xb)
            k = k if k < inf_ else zero
            acc[uoff + j] = max(acc[uoff + j], k)


@njit(**_JIT)
def _lohi_rows(xb, base, nrows, stride, w, lo, hi, off, mask, inf):
    """The signed-key ``min``/``max`` of :func:`_amax_rows`."""
    m_ = _like(mask, xb)
    inf_ = _like(inf, xb)
    zero = _like(0, xb)
    uoff = np.uint64(off)
    for r in range(nrows):
        row = np.uint64(base + r * stride)
        for j in range(np.uint64(w)):
            b = xb[row + j]
            k = _like(b ^ m_, xb) if b < zero else b
            k = k if _like(b & m_, xb) < inf_ else zero
            hi[uoff + j] = max(hi[uoff + j], k)
            lo[uoff + j] = min(lo[uoff + j], k)


@njit(**_JIT_CALL)
def _range_runs_span(t0, t1, xb, mask, inf, sym, outer, n, inner, bs, per, pieces, lo, hi):
    """Tasks ``t0:t1`` of :func:`range_runs`."""
    nb = (n + bs - 1) // bs
    nruns = outer * nb
    for t in range(t0, t1):
        u0 = (t // pieces) * per
        p = t - (t // pieces) * pieces
        o = u0 // nb
        b = u0 - o * nb
        for u in range(u0, min(nruns, u0 + per)):
            s0 = (o * n + b * bs) * inner
            s1 = (o * n + min(n, b * bs + bs)) * inner
            if pieces > 1:
                c = (s1 - s0 + pieces - 1) // pieces
                s1 = min(s1, s0 + p * c + c)
                s0 = min(s1, s0 + p * c)
            if sym:
                hi[u * pieces + p] = _amax_run(xb, s0, s1, mask, inf)
            else:
                lk, hk = _lohi_run(xb, s0, s1, mask, inf)
                lo[u * pieces + p] = lk
                hi[u * pieces + p] = hk
            b += 1
            if b == nb:
                b = 0
                o += 1
    return 0


def range_runs(xb, mask, inf, sym, outer, n, inner, bs, per, pieces, lo, hi):
    """Extremes of the runs ``(o, b)``: indices ``b * bs ... b * bs + bs - 1`` along the axis
    (the last run may be shorter) times all of ``inner``, contiguous in ``xb`` (C order of
    ``(outer, n, inner)``).

    A task takes ``per`` whole runs, or one of ``pieces`` pieces of a run; the key of run ``u``,
    piece ``p`` goes to ``hi[u * pieces + p]`` (symmetric ``sym``: the magnitude key; else the
    signed keys to ``lo`` and ``hi``). Empty pieces give 0.
    """
    ntasks = -(-(outer * -(-n // bs)) // per) * pieces
    args = (xb, mask, inf, sym, outer, n, inner, bs, per, pieces, lo, hi)
    run(xb.size, "scaled", _range_runs_span, ntasks, 1, *args)


@njit(**_JIT_CALL)
def _range_rows_span(t0, t1, xb, mask, inf, sym, outer, n, inner, bs, cols, lo, hi):
    """Tasks ``t0:t1`` of :func:`range_rows`."""
    nb = (n + bs - 1) // bs
    ncol = (inner + cols - 1) // cols
    for t in range(t0, t1):
        ob = t // ncol
        c0 = (t - ob * ncol) * cols
        w = min(cols, inner - c0)
        o = ob // nb
        b = ob - o * nb
        a0 = b * bs
        nrows = min(n, a0 + bs) - a0
        base = (o * n + a0) * inner + c0
        if sym:
            _amax_rows(xb, base, nrows, inner, w, hi, ob * inner + c0, mask, inf)
        else:
            _lohi_rows(xb, base, nrows, inner, w, lo, hi, ob * inner + c0, mask, inf)
    return 0


def range_rows(xb, mask, inf, sym, outer, n, inner, bs, cols, lo, hi):
    """Extremes of the groups ``(o, b, j)`` (indices ``b * bs ...`` along the axis), each
    reduced elementwise along rows of ``inner``: ``hi``/``lo`` (filled with zeros) hold one key
    per group in the C order of ``(outer, ceil(n / bs), inner)``. A task takes ``cols``
    columns of one ``(o, b)``."""
    ntasks = outer * -(-n // bs) * -(-inner // cols)
    args = (xb, mask, inf, sym, outer, n, inner, bs, cols, lo, hi)
    run(xb.size, "scaled", _range_rows_span, ntasks, 1, *args)


def _key_spec(dtype):
    """``(key dtype, magnitude mask, infinity bits)`` of a float dtype, or None."""
    import ml_dtypes

    if dtype == np.float64:
        return np.int64, 0x7FFF_FFFF_FFFF_FFFF, 0x7FF0_0000_0000_0000
    if dtype == np.float32:
        return np.int32, 0x7FFF_FFFF, 0x7F80_0000
    if dtype == np.float16:
        return np.int16, 0x7FFF, 0x7C00
    if dtype == ml_dtypes.bfloat16:
        return np.int16, 0x7FFF, 0x7F80
    return None


def _decode(keys, dtype, mask, signed):
    """Float64 values of range keys (signed keys: ``-0`` comes back as ``+0``)."""
    if signed:  # negative keys back to the bit patterns of negative values
        keys = keys ^ ((keys >> (8 * keys.dtype.itemsize - 1)) & keys.dtype.type(mask))
    v = keys.view(dtype).astype(np.float64)
    if signed:
        v += 0.0
    return v


def _range_kernel(kernel, xb, mask, inf, sym, shape, *args):
    """Run a range kernel into fresh zero-filled key arrays of ``shape``."""
    hi = np.zeros(shape, dtype=xb.dtype)
    lo = hi[:1] if sym else np.zeros(shape, dtype=xb.dtype)
    kernel(xb, mask, inf, sym, *args, lo, hi)
    return lo, hi


def _group_keys(x, axis, block_size, sym):
    """``(lo keys, hi keys, dtype, mask)`` of every group (``lo`` unused when ``sym``)."""
    x = np.asarray(x)
    spec = _key_spec(x.dtype)
    if spec is None:
        x = x.astype(np.float32)
        spec = _key_spec(x.dtype)
    kt, mask, inf = spec
    xb = np.ascontiguousarray(x).reshape(-1).view(kt)
    if axis is None:
        outer, n, inner = 1, 1, x.size
    else:
        n = x.shape[axis]
        outer = math.prod(x.shape[:axis])
        inner = math.prod(x.shape[axis + 1 :])
    if x.size == 0:  # every group empty: range 0
        keys = np.zeros(n if block_size is None else outer * -(-n // block_size) * inner, kt)
        return keys, keys, x.dtype, mask
    if block_size is not None:
        lo, hi = _range_groups(xb, mask, inf, sym, outer, n, inner, block_size)
    else:
        lo, hi = _range_channels(xb, mask, inf, sym, outer, n, inner)
    return lo, hi, x.dtype, mask


def group_range(x, axis, block_size):
    """``(lo, hi)``: the "absmax" range of every group, float64, flat in C order of the groups.

    Groups as in :func:`qemu_arrays.scaled.group_shape`: the whole array (``axis`` None), one
    index along ``axis`` (``block_size`` None) or ``block_size`` consecutive indices along it.
    ``lo = min(min finite x, 0)``, ``hi = max(max finite x, 0)``; NaN and infinities are
    skipped (``-0`` counts as ``+0``). Float16, bfloat16, float32 and float64 are read as they
    are; other dtypes through float32.
    """
    lo, hi, dtype, mask = _group_keys(x, axis, block_size, False)
    return _decode(lo, dtype, mask, True), _decode(hi, dtype, mask, True)


def group_absmax(x, axis, block_size):
    """The largest finite magnitude of every group (0 when none), float64, flat in C order of
    the groups: ``max(hi, -lo)`` of :func:`group_range` in one reduction instead of two."""
    _, hi, dtype, mask = _group_keys(x, axis, block_size, True)
    return _decode(hi, dtype, mask, False)


def _runs_split(run):
    """``(per, pieces)`` for :func:`range_runs`: whole runs per task, or pieces per run."""
    if run >= CHUNK:
        return 1, -(-run // CHUNK)
    return max(1, CHUNK // max(run, 1)), 1


def _range_groups(xb, mask, inf, sym, outer, n, inner, bs):
    nb = -(-n // bs)
    if inner == 1:  # groups along the last axis: contiguous runs
        per, pieces = _runs_split(bs)
        lo, hi = _range_kernel(range_runs, xb, mask, inf, sym, outer * nb * pieces, outer, n,
                               1, bs, per, pieces)  # fmt: skip
        return _fold_pieces(lo, hi, sym, pieces)
    need = -(-TASKS // (outer * nb))  # column pieces per row for enough tasks
    cols = max(min(inner, COLS), -(-inner // need))  # long rows: the prefetcher streams them
    return _range_kernel(range_rows, xb, mask, inf, sym, outer * nb * inner, outer, n, inner,
                         bs, cols)  # fmt: skip


def _fold_pieces(lo, hi, sym, pieces):
    if pieces == 1:
        return lo, hi
    hi = hi.reshape(-1, pieces).max(axis=1)
    return (lo if sym else lo.reshape(-1, pieces).min(axis=1)), hi


def _range_channels(xb, mask, inf, sym, outer, n, inner):
    period = n * inner
    if outer == 1 or inner >= 256:  # runs of `inner` elements per channel
        per, pieces = _runs_split(inner)
        lo, hi = _range_kernel(range_runs, xb, mask, inf, sym, outer * n * pieces, outer, n,
                               inner, 1, per, pieces)  # fmt: skip
        lo, hi = _fold_pieces(lo, hi, sym, pieces)
        hi = hi.reshape(outer, n).max(axis=0)
        return (lo if sym else lo.reshape(outer, n).min(axis=0)), hi
    # channel axis near the end: rows of a tiled period, reduced elementwise
    m = max(1, min(outer, -(-PERIOD_MIN // period)))
    width = period * m
    rows = outer // m
    ncol = -(-width // COLS)
    chunks = max(1, min(rows, -(-TASKS // ncol)))
    per = -(-rows // chunks)
    nchunks = -(-rows // per)
    lo, hi = _range_kernel(range_rows, xb, mask, inf, sym, nchunks * width, 1, rows, width,
                           per, COLS)  # fmt: skip
    parts = [(lo, hi)]
    tail = outer - rows * m
    if tail:
        rest = xb[rows * width :]
        parts.append(
            _range_kernel(range_rows, rest, mask, inf, sym, period, 1, tail, period, tail, COLS)
        )
    his = [h.reshape(-1, n, inner).max(axis=(0, 2)) for _, h in parts]
    hi = np.maximum.reduce(his)
    if sym:
        return lo, hi
    los = [lk.reshape(-1, n, inner).min(axis=(0, 2)) for lk, _ in parts]
    return np.minimum.reduce(los), hi


# ---- quantization --------------------------------------------------------------------------


@njit(**_JIT)
def _q_run(x, out, e0, e1, s, lo, hi):
    """Elements ``e0:e1`` with one scale ``s`` and bounds ``lo = qmin - z``, ``hi = qmax - z``;
    returns the NaN count."""
    err = 0
    for i in range(np.uint64(e0), np.uint64(e1)):
        v = np.float64(x[i])
        k = min(max(np.rint(v / s), lo), hi) + 0.0
        out[i] = k * s
        err += v != v
    return err


@njit(**_JIT)
def _q_vec(x, out, e0, e1, st, t0, lo, hi):
    """Elements ``e0:e1`` with the scales ``st[t0:]`` and one pair of bounds."""
    err = 0
    d = np.uint64(t0) - np.uint64(e0)  # modular: st index = i + d
    for i in range(np.uint64(e0), np.uint64(e1)):
        v = np.float64(x[i])
        s = st[i + d]
        k = min(max(np.rint(v / s), lo), hi) + 0.0
        out[i] = k * s
        err += v != v
    return err


@njit(**_JIT)
def _q_vecz(x, out, e0, e1, st, lot, hit, t0):
    """Elements ``e0:e1`` with the scales and bounds ``st[t0:]``, ``lot[t0:]``, ``hit[t0:]``."""
    err = 0
    d = np.uint64(t0) - np.uint64(e0)
    for i in range(np.uint64(e0), np.uint64(e1)):
        v = np.float64(x[i])
        s = st[i + d]
        k = min(max(np.rint(v / s), lot[i + d]), hit[i + d]) + 0.0
        out[i] = k * s
        err += v != v
    return err


@njit(**_JIT_CALL)
def _quantize_runs_span(t0, t1, x, out, st, lot, hit, outer, n, inner, bs, per, pieces, so, sg,
                        zo, zg):  # fmt: skip
    """Tasks ``t0:t1`` of :func:`quantize_runs`; returns the NaN count."""
    nb = (n + bs - 1) // bs
    nruns = outer * nb
    err = 0
    for t in range(t0, t1):
        u0 = (t // pieces) * per
        p = t - (t // pieces) * pieces
        o = u0 // nb
        b = u0 - o * nb
        for _ in range(u0, min(nruns, u0 + per)):
            s0 = (o * n + b * bs) * inner
            s1 = (o * n + min(n, b * bs + bs)) * inner
            if pieces > 1:
                c = (s1 - s0 + pieces - 1) // pieces
                s1 = min(s1, s0 + p * c + c)
                s0 = min(s1, s0 + p * c)
            si = (o if so > 1 else 0) * sg + (b if sg > 1 else 0)
            zi = (o if zo > 1 else 0) * zg + (b if zg > 1 else 0)
            err += _q_run(x, out, s0, s1, st[si], lot[zi], hit[zi])
            b += 1
            if b == nb:
                b = 0
                o += 1
    return err


def quantize_runs(x, out, st, lot, hit, outer, n, inner, bs, per, pieces, so, sg, zo, zg):
    """Quantize runs ``(o, b)`` (indices ``b * bs ...`` along the axis times all of
    ``inner``) that share one scale: ``st[(o if so > 1) * sg + (b if sg > 1)]``, bounds from
    ``lot``/``hit`` indexed alike with ``zo``, ``zg``. Tasks as in :func:`range_runs`.
    Returns the NaN count."""
    ntasks = -(-(outer * -(-n // bs)) // per) * pieces
    args = (x, out, st, lot, hit, outer, n, inner, bs, per, pieces, so, sg, zo, zg)
    return run(x.size, "scaled", _quantize_runs_span, ntasks, 1, *args)


@njit(**_JIT_CALL)
def _quantize_rows_span(t0, t1, x, out, st, lot, hit, zvec, width, n, bs, so, sg):
    """Tasks ``t0:t1`` (of ``CHUNK`` elements) of :func:`quantize_rows`; the NaN count."""
    size = x.size
    err = 0
    for t in range(t0, t1):
        e = t * CHUNK
        e1 = min(size, e + CHUNK)
        while e < e1:
            r = e // width
            r1 = min(e1, r * width + width)
            o = r // n
            a = r - o * n
            tr = (o if so > 1 else 0) * sg + (a // bs if sg > 1 else 0)
            t0_ = tr * width + (e - r * width)
            if zvec:
                err += _q_vecz(x, out, e, r1, st, lot, hit, t0_)
            else:
                err += _q_vec(x, out, e, r1, st, t0_, lot[0], hit[0])
            e = r1
    return err


def quantize_rows(x, out, st, lot, hit, zvec, width, n, bs, so, sg):
    """Quantize rows of ``width`` elements whose scales vary along the row: row ``r``
    (``o = r // n``, ``a = r % n``) reads row ``(o if so > 1) * sg + (a // bs if sg > 1)`` of the
    scale table ``st`` (``width`` columns); ``zvec``: the bounds ``lot``/``hit`` are tables of
    the same layout, else one value each. Returns the NaN count."""
    ntasks = -(-x.size // CHUNK)
    args = (x, out, st, lot, hit, zvec, width, n, bs, so, sg)
    return run(x.size, "scaled", _quantize_rows_span, ntasks, 1, *args)


def _period_table(a3, n, inner, bs):
    """One period ``n * inner`` of the per-element values of group array ``a3`` (leading
    dimension 1): element ``(a, j)`` holds ``a3[0, a // bs, j or 0]``."""
    g = np.repeat(a3[0], bs, axis=0)[:n] if a3.shape[1] > 1 else a3[0]
    return np.ascontiguousarray(np.broadcast_to(g, (n, inner)), dtype=np.float64).reshape(-1)


def quantize_groups(x, out, s3, z3, bs, qmin, qmax):
    """Nearest-even integer quantization of ``x`` (``(outer, n, inner)``, C order) into ``out``
    with per-channel or per-group scales; returns the number of NaN inputs.

    ``s3`` and ``z3`` hold the scales and zero points as ``(1 or outer, groups or 1, 1 or
    inner)``, group ``a // bs`` along the axis. Per element ``k = min(max(rint(float64(x) / s),
    qmin - z), qmax - z) + 0.0`` and ``out = k * s`` in float64, stored to ``out``'s dtype: the
    same bits as :func:`qemu_arrays.kernels.elements.quantize_int_rne` with one scale.
    """
    outer, n, inner = x.shape
    if x.size == 0:
        return 0
    xf = x.reshape(-1)
    of = out.reshape(-1)
    s3 = np.asarray(s3, dtype=np.float64)
    z3 = np.asarray(z3)
    if z3.size > 1 and not np.any(z3 != z3.flat[0]):
        z3 = z3.reshape(-1)[:1].reshape(1, 1, 1)  # uniform (symmetric): one pair of bounds
    z3 = z3.astype(np.float64)
    lo3 = float(qmin) - z3
    hi3 = float(qmax) - z3
    zvec = z3.size > 1
    period = n * inner
    vary = s3.shape[2] > 1 or z3.shape[2] > 1  # scales vary along the contiguous rows
    if (
        s3.shape[0] == 1
        and z3.shape[0] == 1
        and (bs * inner < RUN_MIN or (vary and outer > 1 and period <= PERIOD_MAX))
    ):  # the scales repeat with period n * inner: rows of a tiled period
        m = max(1, min(outer, -(-PERIOD_MIN // period)))
        st = np.tile(_period_table(s3, n, inner, bs), m)
        lot, hit = lo3.reshape(-1)[:1], hi3.reshape(-1)[:1]
        if zvec:
            lot = np.tile(_period_table(lo3, n, inner, bs), m)
            hit = np.tile(_period_table(hi3, n, inner, bs), m)
        return quantize_rows(xf, of, st, lot, hit, zvec, period * m, 1, 1, 1, 1)
    if vary:  # rows of `inner` reading their row of the scale table
        shp = np.broadcast_shapes(s3.shape, z3.shape if zvec else (1, 1, 1))
        so, sg = shp[0], shp[1]
        st = np.ascontiguousarray(np.broadcast_to(s3, shp)).reshape(-1)
        lot, hit = lo3.reshape(-1)[:1], hi3.reshape(-1)[:1]
        if zvec:
            lot = np.ascontiguousarray(np.broadcast_to(lo3, shp)).reshape(-1)
            hit = np.ascontiguousarray(np.broadcast_to(hi3, shp)).reshape(-1)
        return quantize_rows(xf, of, st, lot, hit, zvec, inner, n, bs, so, sg)
    per, pieces = _runs_split(bs * inner)
    return quantize_runs(
        xf, of, s3.reshape(-1), lo3.reshape(-1), hi3.reshape(-1), outer, n, inner, bs, per,
        pieces, s3.shape[0], s3.shape[1], z3.shape[0], z3.shape[1],
    )  # fmt: skip
