"""Block formats (MX, NVFP4) on the CUDA route: the host side of quantize, encode and decode.

The semantics are those of :mod:`qemu_arrays.blocks` (``docs/blocks.md``) and the results are
the CPU route's bits: the argument checks are the CPU's own helpers, the per-block and
per-element arithmetic is the shared steps of :mod:`qemu_arrays.formats.block_cores` (which
the CPU kernels call too), and this module only prepares the constants, allocates the
outputs in the caller's library (the adapters of :mod:`qemu_arrays.cuda_route`) and launches
:mod:`qemu_arrays.cuda_kernels.block_kernels`. Nothing is
copied to the host except, for NVFP4 without ``scale=``, the tensor's largest finite magnitude
(one scalar: the per-tensor scale is an exact rational division on the host, as on the CPU).

dtypes, as on the CPU route: float32 is computed in float32; float16 and bfloat16 are widened
exactly to float32 bits in the kernel and the float32 values rounded back to their dtype;
float64 is computed in float64 bits for MX and converted to float32 for NVFP4 (whose values are
then formed in float64, as the CPU's); ``via_float32=True`` rounds float64 to float32 first.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from qemu_arrays.encoded import Encoded
from qemu_arrays.formats.block_plans import int_element, mx_scale_plan
from qemu_arrays.formats.spec import Rounding
from qemu_arrays.kernels import elements as cpu
from qemu_arrays.routes import cpu_blocks as cpu_blocks_host
from qemu_arrays.routes.cuda_common import (
    _grid,
    _Lib,
    _nb,
    _np_dtype,
    _rounding_args,
    rbits_arg,
    scratch,
    scratch_owned,
)

_BITS_VIEW = {2: np.uint16, 4: np.uint32, 8: np.int64}
_NO_PLAN = (0,) * 10 + (1.0,)


def _kinds(src_dt, via32, two_level):
    """(load kind, store kind) of ``cuda_kernels.block_io`` for input dtype ``src_dt``."""
    if src_dt.itemsize == 4:
        return 0, 0
    if src_dt.itemsize == 2:
        k = 3 if "bfloat16" in src_dt.name else 2
        return k, k
    if two_level:
        return 4, 1  # float64: rounded to float32, values formed in float64
    return (4, 4) if via32 else (1, 1)


@lru_cache(maxsize=512)
def block_spec(fmt, in_kind, out_kind, want, nearest_even, fast):
    """The :class:`~qemu_arrays.cuda_kernels.block_kernels.BlockSpec` of one call (cached per format)."""
    from qemu_arrays.cuda_kernels.block_kernels import BlockSpec

    el = fmt.element
    if want == 2:
        out_kind = 0  # codes only: the value layout does not matter
    in_e, in_m = (11, 52) if in_kind == 1 else (8, 23)
    ie = int_element(fmt)
    ep = el.params() if ie.is_int == 0 else (0,) * 10
    if fmt.tensor_scale:
        m, _emin, emax, sigmax = ep[:4]
        plan = cpu.rne_f32_plan(ep, 1)
        vec = int(plan is not None and fast and want == 1 and out_kind != 1 and nearest_even)
        return BlockSpec(
            is_nv=1, bs=fmt.block_size, in_kind=in_kind, out_kind=out_kind, want=want, vec=vec,
            fast=int(fast and m <= 23), ep=ep, ie=ie, mx=mx_scale_plan(fmt, 8, 23),
            sp=fmt.scale.params(), emaxv=math.ldexp(float(sigmax), emax - m),
            plan=plan if vec else _NO_PLAN,
        )  # fmt: skip
    plan = cpu.rne_f32_plan(ep, 1) if ie.is_int == 0 and in_m == 23 else None
    vec = int(plan is not None and fast and want == 1 and nearest_even)
    return BlockSpec(
        is_nv=0, bs=fmt.block_size, in_kind=in_kind, out_kind=out_kind, want=want, vec=vec,
        fast=int(fast and ie.is_int == 0 and ep[0] <= in_m), ep=ep, ie=ie,
        mx=mx_scale_plan(fmt, in_e, in_m), sp=fmt.scale.params(), emaxv=1.0,
        plan=plan if vec else _NO_PLAN,
    )  # fmt: skip


def _geometry(shape, axis, bs):
    outer = math.prod(shape[:axis])
    n = shape[axis]
    inner = math.prod(shape[axis + 1 :])
    nb = -(-n // bs)
    return outer, n, inner, nb, (*shape[:axis], nb, *shape[axis + 1 :])


def _lanes_ok(inner, bs):
    return inner == 1 and bs <= 32 and bs & (bs - 1) == 0


def _bits(lib, a):
    """A numba device array of ``a``'s bits (an unsigned/int view of the same memory)."""
    dt = lib.np_dtype(a)
    if dt.kind == "f" or "bfloat16" in dt.name:
        a = lib.view(a, _BITS_VIEW[dt.itemsize])
    return _nb(lib.flat(a))


def quantize_encode(op, lib, src, src_dt, shape, fmt, kw, stream):
    """``quantize`` (the values, dtype of ``x``) or ``encode`` (an ``Encoded``) of device ``src``."""
    if src_dt.kind != "f" and "bfloat16" not in src_dt.name:
        msg = f"x has dtype {src_dt}, must be float16, bfloat16, float32 or float64"
        raise TypeError(msg)
    axis = cpu_blocks_host._check_block_axis(src, kw.get("axis"))
    via32 = bool(kw.get("via_float32", False)) and src_dt == np.float64
    two = bool(fmt.tensor_scale)
    item = 4 if (src_dt.itemsize <= 4 or via32 or two) else 8
    offset = kw.get("offset", 0)
    rounding, r, k0, k1, k2 = _rounding_args(kw, item)
    in_kind, out_kind = _kinds(src_dt, via32, two)
    scale = kw.get("scale")
    want = 1 if op == "quantize" else 2
    bs = fmt.block_size
    outer, n, inner, nb, sshape = _geometry(shape, axis, bs)
    size = outer * n * inner
    xb = _bits(lib, src)
    rb = rbits_arg(kw["request"], shape, stream)  # (array, flag)
    ts = None
    if two:
        if scale is not None:
            ts = cpu_blocks_host._check_tensor_scale(scale)
        else:
            ts = _tensor_scale(lib, xb, size, in_kind if via32 or in_kind != 4 else 1, fmt, stream)
    elif scale is not None:
        msg = (
            f"scale= (a per-tensor scale) applies to two-level formats such as nvfp4, not "
            f"{fmt.name!r}"
        )
        raise ValueError(msg)
    fast = bool(getattr(cpu_blocks_host, "_FAST_PATH", True))
    spec = block_spec(fmt, in_kind, out_kind, want, rounding is Rounding.NEAREST_EVEN, fast)
    scodes = lib.empty(src, sshape, np.uint8)
    if want == 1:
        vals = lib.empty(src, shape, src_dt)
        outb = _bits(lib, vals)
        codes_nb = scratch(np.uint8)
    else:
        cdt = np.uint8 if fmt.bits <= 8 else np.uint16
        codes = lib.empty(src, shape, cdt)
        codes_nb = _nb_flat(lib, codes)
        outb = scratch(np.uint32)
    if size:
        from qemu_arrays.cuda_kernels import block_kernels as bk

        sc_nb = _nb_flat(lib, scodes)
        t32 = np.float32(1.0 if ts is None else ts)
        args = (int(rounding), k0, k1, k2, int(offset), r, *rb, t32)
        if _lanes_ok(inner, bs):
            aligned = 1 if n % bs == 0 else 0
            chunks = -(-size // 32) if aligned else outer * (-(-(nb * bs) // 32))
            blocks, threads = _grid(chunks * 32)
            bk.lanes_kernel(spec)[blocks, threads, stream](
                xb, outb, codes_nb, sc_nb, outer, n, nb, aligned, *args
            )
        else:
            blocks, threads = _grid(outer * nb * inner)
            bk.rows_kernel(spec)[blocks, threads, stream](
                xb, outb, codes_nb, sc_nb, outer, n, nb, inner, *args
            )
    if want == 1:
        return vals
    return Encoded(
        codes=codes, scales=scodes, zero_points=None,
        tensor_scale=None if ts is None else np.float32(ts), axis=axis, block_size=bs,
    )  # fmt: skip


def _nb_flat(lib, a):
    return _nb(lib.flat(a))


def _tensor_scale(lib, xb, size, amax_kind, fmt, stream):
    """NVFP4's per-tensor scale: the largest finite magnitude reduced on the device, then
    :func:`qemu_arrays.blocks.tensor_scale_of` of that one value on the host."""
    from qemu_arrays.cuda_kernels import block_kernels as bk

    amax = 0.0
    if size:
        buf = scratch_owned("amax", np.int64, stream)
        bk.zero_i64[1, 32, stream](buf)
        blocks, threads = _grid(size)
        bk.amax_kernel(amax_kind)[max(1, blocks // 8), threads, stream](xb, buf)
        bits = int(buf.copy_to_host(stream=stream)[0])
        if amax_kind == 1:
            amax = float(np.array(bits, dtype=np.int64).view(np.float64))
        else:
            amax = float(np.array(bits, dtype=np.uint32).view(np.float32))
    return cpu_blocks_host.tensor_scale_of(np.array([amax], dtype=np.float64), fmt)


# ---- decode -----------------------------------------------------------------------------------

_OUT_KIND = {"float32": 0, "float64": 1, "float16": 2, "bfloat16": 3}


@lru_cache(maxsize=256)
def decode_spec(fmt, out_kind):
    ie = int_element(fmt)
    ep = fmt.element.params() if ie.is_int == 0 else (0,) * 10
    return (
        fmt.block_size, ep, ie, fmt.element.bits, fmt.scale.params(),
        int(bool(fmt.tensor_scale)), out_kind,
    )  # fmt: skip


def decode(lib, codes, cdt, shape, fmt, kw, dtype, stream):
    """Values of block-format element codes with their scale codes (``decode_block``)."""
    if cdt.kind not in "iu":
        msg = f"codes must be an integer array, got dtype {cdt}"
        raise TypeError(msg)
    scale = kw.get("scale")
    if scale is None:
        msg = (
            f"decoding the block format {fmt.name!r} needs the scale codes: pass the Encoded "
            "tuple from encode, or scale=<scale codes>"
        )
        raise ValueError(msg)
    dtype = np.dtype(np.float32) if dtype is None else _np_dtype(dtype)
    out_kind = _OUT_KIND.get(dtype.name)
    if out_kind is None:
        msg = f"dtype must be float16, bfloat16, float32 or float64, got {dtype}"
        raise TypeError(msg)
    axis = cpu_blocks_host._check_block_axis(codes, kw.get("axis"))
    outer, n, inner, nb, sshape = _geometry(shape, axis, fmt.block_size)
    if tuple(scale.shape) != sshape:
        msg = (
            f"scale codes have shape {tuple(scale.shape)}, expected {sshape} for codes of shape "
            f"{shape} with blocks of {fmt.block_size} along axis {axis}"
        )
        raise ValueError(msg)
    ts = np.float32(1.0)
    if fmt.tensor_scale:
        tsv = kw.get("tensor_scale")
        ts = cpu_blocks_host._check_tensor_scale(1.0 if tsv is None else tsv)
    res = lib.empty(codes, shape, dtype)
    size = outer * n * inner
    if size:
        from numba import cuda

        from qemu_arrays.cuda_kernels import block_kernels as bk

        if hasattr(scale, "__cuda_array_interface__"):
            slib = _Lib(scale)
            sc_nb = _nb(slib.flat(slib.contiguous(scale)))
        else:
            sc_nb = cuda.to_device(np.ascontiguousarray(scale).reshape(-1), stream=stream)
        blocks, threads = _grid(size)
        bk.decode_kernel(decode_spec(fmt, out_kind))[blocks, threads, stream](
            _nb(lib.flat(codes)), sc_nb, _bits(lib, res), n, nb, inner, ts
        )
    return res
