"""numba-CUDA kernels for block formats (MX, NVFP4): per-block max, scale and elements, fused.

Every kernel is built by a factory for one :class:`BlockSpec` (format, scale rule, input and
output dtype, mode family, values/codes), whose fields are closure constants: on a GPU numba
folds them into the shared scalar steps, and each specification
compiles once, on first use. The rounding mode, the random key and the geometry are run-time
arguments, and so are the caller's random bits (``rbits=``: an array and a flag, read by
:func:`qemu_arrays.cuda_kernels.kernels.element_u`). Every block and element rule is a shared
step of :mod:`qemu_arrays.formats.block_cores` (the CPU kernels call the same functions); the
loads and stores are :mod:`qemu_arrays.cuda_kernels.block_io`.

Two layouts, no transposition: blocks run along ``axis`` of the caller's C-contiguous array,
viewed as ``(outer, n, inner)`` (``n`` the axis length, ``inner`` the product of the trailing
axes); the element ``(o, j, t)`` is at ``(o * n + j) * inner + t``, which is also its C-order
index in the original array (the counter of stochastic rounding), and the scale of block
``(o, j // bs, t)`` goes to ``(o * nb + j // bs) * inner + t``, the C order of the scales array.

- :func:`lanes_kernel` (``inner == 1``, block size a power of two up to 32: the blocks along the
  last axis, MX's 32 and NVFP4's 16): one thread per element, a warp holds ``32 / bs`` whole
  blocks; the block maximum is a butterfly of ``log2(bs)`` ``shfl_xor_sync`` steps, so loads and
  stores are fully coalesced and every element is read once. Rows whose length is not a multiple
  of the block size are padded, per row, to whole blocks with idle lanes.
- :func:`rows_kernel` (any other case: blocks along a non-last axis, other block sizes): one
  thread per block, looping over the block's ``bs`` elements ``inner`` apart. Consecutive
  threads hold consecutive ``t``, so for ``inner >= 32`` every load is coalesced across the
  warp; with ``inner == 1`` (odd block sizes only) each thread walks its own block (cached).

Under ``NUMBA_ENABLE_CUDASIM=1`` the same kernels run as Python in numba's simulator, with
blocks of one warp; the segment maximum is computed there through a shared array and one barrier
(:func:`_segment_max`), everything else is the code that runs on the device.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import cuda, njit

from qemu_arrays.cuda_kernels import block_io, simulated
from qemu_arrays.cuda_kernels.block_io import abs_bits, decoded_bits, load_bits, store_bits
from qemu_arrays.cuda_kernels.kernels import element_u
from qemu_arrays.formats.block_cores import (
    IntElement,
    MxScalePlan,
    block_value,
    mx_element,
    mx_rne32_bits,
    mx_scale,
    mx_subnormal_quantum,
    nv_element,
    nv_rne32_bits,
    nv_scale,
    nv_vec_ok,
)
from qemu_arrays.formats.jit_cache import purge_stale_cache

# the @njit glue below is cached: recompiled when a core of formats/ (or the loads) changes
purge_stale_cache(__file__, block_io.__file__)

SIM = simulated()
FULL_MASK = 0xFFFFFFFF


class BlockSpec(NamedTuple):
    """Everything a block kernel folds in as constants (plain ints, floats and tuples)."""

    is_nv: int  # 0: MX (power-of-two scale), 1: two-level (NVFP4)
    bs: int  # block size
    in_kind: int  # load kind (block_io.load_bits)
    out_kind: int  # store kind (block_io.store_bits)
    want: int  # bit 1: values, bit 2: codes
    vec: int  # 1: nearest-even, values only, through the 32-bit select-only step
    fast: int  # 1: the fast paths on the bits (float elements of at most the input's precision)
    ep: tuple  # element parameters (qemu_arrays.formats.cores), zeros for integer elements
    ie: IntElement  # integer elements (zeros for float elements)
    mx: MxScalePlan  # the MX scale step (input layout included)
    sp: tuple  # scale-format parameters (NVFP4)
    emaxv: float  # element maximum (NVFP4)
    plan: tuple  # rne_f32_plan under saturation (vec == 1)


# ---- the block maximum across lanes ----------------------------------------------------------

if SIM:

    def _shared_buf():
        return cuda.shared.array((2, 32), np.int64)

    def _segment_max(a, lane, it, bs):
        """Max of ``a`` over the ``bs`` lanes of the aligned segment holding ``lane``.

        Simulator version (blocks of one warp): the values meet in a shared array, double
        buffered on the loop iteration ``it`` so that one barrier per call suffices. The device
        version shuffles.

        The simulator creates a block's shared array on the first call from any of its threads,
        with an unlocked check-then-create: threads that arrive together can each get an array
        of their own (uninitialised), and the one kept is the last stored. So on the first
        iteration every thread asks once, meets the others at a barrier, and asks again: from
        then on all get the one array that was kept.
        """
        buf = _shared_buf()
        if it == 0:
            cuda.syncthreads()
            buf = _shared_buf()
        p = it & 1
        buf[p, lane] = a
        cuda.syncthreads()
        s0 = lane & ~(bs - 1)
        m = buf[p, s0]
        for k in range(1, bs):
            m = max(m, buf[p, s0 + k])
        return m

else:

    @cuda.jit(device=True)
    def _segment_max(a, lane, it, bs):
        """Max of ``a`` over the ``bs`` lanes (a power of two <= 32) of the aligned segment
        holding ``lane``: a butterfly of ``log2(bs)`` xor shuffles, every lane gets the max."""
        off = bs >> 1
        while off > 0:
            a = max(a, cuda.shfl_xor_sync(FULL_MASK, a, off))
            off >>= 1
        return a


_CACHE: dict = {}


def _cached(kind, spec, build):
    key = (kind, spec)
    kern = _CACHE.get(key)
    if kern is None:
        kern = _CACHE[key] = build(spec)
    return kern


# ---- quantize / encode -----------------------------------------------------------------------


def lanes_kernel(spec: BlockSpec):
    return _cached("lanes", spec, _build_lanes)


def rows_kernel(spec: BlockSpec):
    return _cached("rows", spec, _build_rows)


@njit(cache=True, nogil=True)
def _scale_step(spec, a, t64):
    """``(special, e, scale code, d)`` of a block with largest magnitude bits ``a``: the shared
    MX step (``e``) or NVFP4 step (``d``) of :mod:`qemu_arrays.formats.block_cores`."""
    if spec.is_nv == 1:
        special, sc, d = nv_scale(a, spec.emaxv, t64, spec.sp)
        return special, 0, sc, d
    special, e, sc = mx_scale(a, spec.mx)
    return special, e, sc, np.float32(0.0)


@njit(cache=True, nogil=True)
def _element_step(spec, b, e, d, special, vec_nv, rnd, u, r):
    """``(value bits, code)`` of one element with bits ``b`` of a block with scale ``e`` (MX)
    or ``d`` (NVFP4): NaN for a special block, else the shared element step (the select-only
    nearest-even one where ``spec.vec``)."""
    f64 = 1 if (spec.in_kind == 1 or spec.out_kind == 1) else 0
    if special == 1:
        return np.int64(0x7FF8000000000000 if f64 == 1 else 0x7FC00000), 0
    if spec.vec == 1 and spec.is_nv == 0:
        return mx_rne32_bits(b, e, spec.plan), 0
    if vec_nv:
        return nv_rne32_bits(b, d, spec.plan), 0
    if spec.is_nv == 1:
        f64out = 1 if spec.out_kind == 1 else 0
        return nv_element(b, d, spec.ep, rnd, u, r, spec.fast, spec.want, f64out)
    subq = mx_subnormal_quantum(e, spec.ep)
    return mx_element(b, e, subq, spec.mx, spec.ep, spec.ie, rnd, u, r, spec.fast, spec.want)


def _build_lanes(spec):
    SPEC = spec
    BS, IN_KIND, OUT_KIND, WANT = spec.bs, spec.in_kind, spec.out_kind, spec.want
    VEC_NV = spec.vec == 1 and spec.is_nv == 1
    CK = 1 if IN_KIND == 1 else 0  # computed bits are float64 (1) or float32 (0)
    LOW = BS - 1

    @cuda.jit
    def kern(
        xb, outb, codes, scodes, R, n, nb, aligned, rnd, k0, k1, k2, offset, r, rb, has_rb, tscale
    ):
        lane = cuda.threadIdx.x & 31
        w = cuda.grid(1) >> 5
        nw = cuda.gridsize(1) >> 5
        size = R * n
        cpr = (nb * BS + 31) >> 5  # chunks of 32 lanes per row (unaligned rows)
        nchunks = (size + 31) >> 5 if aligned == 1 else R * cpr
        t64 = np.float64(tscale)
        it = 0
        while w < nchunks:  # uniform over the warp: every lane reaches the shuffles
            if aligned == 1:
                i = w * 32 + lane
                valid = i < size
                t = i // BS
                blk_ok = valid
                first = (lane & LOW) == 0
            else:
                row = w // cpr
                j = (w - row * cpr) * 32 + lane
                valid = j < n
                i = row * n + j
                t = row * nb + j // BS
                blk_ok = j // BS < nb
                first = (j & LOW) == 0
            b = load_bits(xb[i], IN_KIND) if valid else np.int64(0)
            a = abs_bits(b, CK)
            if CK == 1:
                a = _segment_max(a, lane, it, BS)
            else:  # float32 magnitude bits fit in 31 bits: one 32-bit shuffle per step
                a = np.int64(_segment_max(np.int32(a), lane, it, BS))
            it += 1
            special, e, sc, d = _scale_step(SPEC, a, t64)
            if first and blk_ok:
                scodes[t] = sc
            if valid:
                u = element_u(rnd, k0, k1, k2, offset + i, r, rb, i, has_rb)
                vec_nv = VEC_NV and special == 0 and nv_vec_ok(a, d)
                vb, code = _element_step(SPEC, b, e, d, special, vec_nv, rnd, u, r)
                if WANT & 1:
                    outb[i] = store_bits(vb, OUT_KIND)
                if WANT & 2:
                    codes[i] = code
            w += nw

    return kern


def _build_rows(spec):
    SPEC = spec
    BS, IN_KIND, OUT_KIND, WANT = spec.bs, spec.in_kind, spec.out_kind, spec.want
    VEC_NV = spec.vec == 1 and spec.is_nv == 1
    CK = 1 if IN_KIND == 1 else 0

    @cuda.jit
    def kern(
        xb, outb, codes, scodes, R, n, nb, inner, rnd, k0, k1, k2, offset, r, rb, has_rb, tscale
    ):
        total = R * nb * inner
        t = cuda.grid(1)
        stride = cuda.gridsize(1)
        t64 = np.float64(tscale)
        while t < total:
            ti = t % inner
            q = t // inner
            blk = q % nb
            o = q // nb
            j0 = blk * BS
            cnt = min(BS, n - j0)
            base = (o * n + j0) * inner + ti
            a = np.int64(0)
            for jj in range(cnt):
                a = max(a, abs_bits(load_bits(xb[base + jj * inner], IN_KIND), CK))
            special, e, sc, d = _scale_step(SPEC, a, t64)
            scodes[t] = sc
            vec_nv = VEC_NV and special == 0 and nv_vec_ok(a, d)
            for jj in range(cnt):
                i = base + jj * inner
                b = load_bits(xb[i], IN_KIND)
                u = element_u(rnd, k0, k1, k2, offset + i, r, rb, i, has_rb)
                vb, code = _element_step(SPEC, b, e, d, special, vec_nv, rnd, u, r)
                if WANT & 1:
                    outb[i] = store_bits(vb, OUT_KIND)
                if WANT & 2:
                    codes[i] = code
            t += stride

    return kern


# ---- NVFP4 per-tensor amax, decode -----------------------------------------------------------


def amax_kernel(in_kind: int):
    """Largest finite magnitude (as bits) of the whole array, max-combined into ``out[0]``."""
    return _cached("amax", in_kind, _build_amax)


def _build_amax(in_kind):
    IN_KIND = in_kind
    CK = 1 if IN_KIND == 1 else 0
    INFB = 0x7FF0000000000000 if CK == 1 else 0x7F800000

    @cuda.jit
    def kern(xb, out):
        i = cuda.grid(1)
        stride = cuda.gridsize(1)
        a = np.int64(0)
        while i < xb.size:
            v = abs_bits(load_bits(xb[i], IN_KIND), CK)
            if v < INFB:
                a = max(a, v)
            i += stride
        lane = cuda.threadIdx.x & 31
        a = _segment_max(a, lane, 0, 32)
        if lane == 0:
            cuda.atomic.max(out, 0, a)

    return kern


@cuda.jit
def zero_i64(buf):
    if cuda.grid(1) == 0:
        buf[0] = 0


def decode_kernel(spec):
    """``spec = (bs, ep, ie, ebits, sp, is_nv, out_kind)``."""
    return _cached("decode", spec, _build_decode)


def _build_decode(spec):
    BS, EP, IE, EBITS, SP, IS_NV, OUT_KIND = spec

    @cuda.jit
    def kern(codes, scodes, outb, n, nb, inner, tscale):
        i = cuda.grid(1)
        stride = cuda.gridsize(1)
        t64 = np.float64(tscale)
        while i < codes.size:
            ti = i % inner
            q = i // inner
            j = q % n
            o = q // n
            t = (o * nb + j // BS) * inner + ti
            v = block_value(codes[i], scodes[t], EP, IE, EBITS, SP, IS_NV, t64)
            outb[i] = decoded_bits(v, OUT_KIND)
            i += stride

    return kern
