"""The CUDA route of qemu_arrays, host side: element formats, and the entry point :func:`run`.

:mod:`qemu_arrays.dispatch` calls :func:`run` when it sees device memory
(``__cuda_array_interface__``: CuPy arrays, PyTorch CUDA tensors, numba device arrays); it
checks the arguments with the CPU route's own helpers, prepares the constants, allocates the
outputs in the caller's library and launches the kernels of :mod:`cuda_kernels` (loaded, with
``numba.cuda``, by :func:`cuda_kernels.load` at the first call). Block formats (MX, NVFP4) go to
:mod:`qemu_arrays.cuda_blocks`. ``import qemu_arrays`` never imports this module.

Per call, this module does little host work: constants are cached per format, streams per
handle, and the error flag (per device, stream and host thread) is only read back, which
synchronises, when the format can raise (NaN into a format without NaN, integer formats).
"""

from __future__ import annotations

import math
import numbers
from functools import lru_cache

import numpy as np

from qemu_arrays.cuda_kernels import load, simulated
from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.codes import overflow_code
from qemu_arrays.formats.ml_dtypes_rules import rounds_float64_via_float32
from qemu_arrays.formats.spec import IntFormat, Rounding
from qemu_arrays.request import Request
from qemu_arrays.routes.cpu_elements import decode_table, rne_plan
from qemu_arrays.routes.cuda_common import (
    _INT_OF,
    _SCRATCH,
    _device_key,
    _grid,
    _keywords,
    _Lib,
    _nb,
    _np_dtype,
    _rounding_args,
    rbits_arg,
    scratch,
    scratch_owned,
)
from qemu_arrays.validation import code_dtype, nan_error

__all__ = ["run"]


@lru_cache(maxsize=512)
def _float_consts(fmt, src_dt, overflow, nearest_even):
    """Per (format, input dtype, policy, nearest-even) constants of the element kernels."""

    p = fmt.params()
    in_e, in_m = {2: (5, 10), 4: (8, 23), 8: (11, 52)}[src_dt.itemsize]
    if "bfloat16" in src_dt.name:
        in_e, in_m = 8, 7
    bmask = -1 if src_dt.itemsize == 8 else (1 << (8 * src_dt.itemsize)) - 1
    nf = get_format("bfloat16" if in_m == 7 else "float16")
    plan = rne_plan(fmt, overflow) if nearest_even and in_m == 23 else None
    return p, in_e, in_m, bmask, nf.params()[:4], plan


# ---- entry point -----------------------------------------------------------------------------


def run(x, req: Request):
    """``quantize``/``encode``/``decode`` of a device array ``x``: same type, device, shape.

    Block formats (MX, NVFP4) go to :mod:`qemu_arrays.routes.cuda_blocks`; ``decode`` of a block
    format takes the element codes with the scale codes in ``req.scale`` (and ``req.axis``,
    ``req.tensor_scale``).
    """
    k = load()
    fmt, op, out, dtype = req.fmt, req.op.value, req.out, req.dtype
    block = req.is_block
    kw = _keywords(req)
    lib = _Lib(x)
    shape = tuple(x.shape)
    src = lib.contiguous(x)
    src_dt = lib.np_dtype(src)
    with lib.device_ctx(x):
        stream = lib.stream(x)
        if block:
            from qemu_arrays.routes import cuda_blocks as blocks

            if op == "decode":
                res = blocks.decode(lib, src, src_dt, shape, fmt, kw, dtype, stream)
            else:
                res = blocks.quantize_encode(op, lib, src, src_dt, shape, fmt, kw, stream)
        elif op == "decode":
            res = _decode(k, lib, src, src_dt, shape, fmt, dtype, kw, stream)
        else:
            res = _round(k, lib, op, src, src_dt, shape, fmt, kw, stream)
    if out is not None:
        if tuple(out.shape) != shape or type(out) is not type(res):
            msg = f"out must be a device array of x's type and shape {shape}"
            raise ValueError(msg)
        if lib.kind == "torch":
            out.copy_(res)
        else:
            out[...] = res
        return out
    return res


def _round(k, lib, op, src, src_dt, shape, fmt, kw, stream):
    if src_dt.kind != "f" and "bfloat16" not in src_dt.name:
        msg = f"x has dtype {src_dt}, must be float16, bfloat16, float32 or float64"
        raise TypeError(msg)
    overflow = kw["overflow"]
    via32 = kw["via_float32"] or rounds_float64_via_float32(overflow)
    if via32 and src_dt == np.float64:
        src, src_dt = lib.cast(src, np.float32), np.dtype(np.float32)
        back = np.dtype(np.float64)
    else:
        back = None
    ovf = overflow_code(overflow)
    item = 8 if src_dt.itemsize == 8 else 4
    offset = kw["offset"]
    rounding, r, k0, k1, k2 = _rounding_args(kw, item)
    rb = rbits_arg(kw["request"], shape, stream)  # (array, flag)
    n = math.prod(shape)
    # NaN (or zero) into a format that cannot hold it is the only error: only formats without
    # NaN can raise, and only then is the error flag read back (a synchronisation)
    may_fail = isinstance(fmt, IntFormat) or not fmt.has_nan
    err = scratch_owned("err", np.int32, stream) if may_fail else scratch(np.int32)
    blocks, threads = _grid(n)
    if isinstance(fmt, IntFormat):
        res = _int_round(k, lib, op, src, src_dt, shape, fmt, kw, stream, rounding, r,
                         (k0, k1, k2, *rb), int(offset), err, blocks, threads)  # fmt: skip
    else:
        if kw.get("scale") is not None or kw.get("zero_point") is not None:
            msg = f"scale/zero_point apply to integer formats; {fmt.name!r} is a float format"
            raise ValueError(msg)
        nearest = rounding is Rounding.NEAREST_EVEN and op == "quantize"
        p, in_e, in_m, bmask, nparams, plan = _float_consts(fmt, src_dt, overflow, nearest)
        m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
        ib = _INT_OF[src_dt.itemsize]
        xb = _nb(lib.flat(lib.view(src, ib)))
        if op == "quantize":
            res = lib.empty(src, shape, src_dt)
            ob = _nb(lib.flat(lib.view(res, ib)))
            nm, nemin, nemax, nsig = nparams
            if n and plan is not None:  # float32 nearest-even: 32-bit words, selects only
                k.rne32_quantize(plan, p, ovf)[blocks, threads, stream](xb, ob, err)
            elif n:
                narrow = 1 if src_dt.itemsize == 2 else 0
                if simulated():  # the simulator runs Python: one generic kernel is faster there
                    k.quantize_float[blocks, threads, stream](
                        xb, ob, bmask, in_e, in_m, m, emin, emax, sigmax, sub, hz, sg, sp,
                        int(rounding), ovf, k0, k1, k2, int(offset), r, *rb,
                        narrow, nm, nemin, nemax, nsig, err,
                    )  # fmt: skip
                else:
                    kern = k.specialised_quantize(
                        in_e, in_m, p, int(rounding), ovf, narrow, nparams
                    )
                    kern[blocks, threads, stream](
                        xb, ob, bmask, k0, k1, k2, int(offset), r, *rb, err
                    )
        else:
            cdt = code_dtype(fmt.bits)
            res = lib.empty(
                src, shape, _INT_OF.get(cdt.itemsize, np.int8) if cdt.itemsize > 1 else cdt
            )
            if n:
                k.encode_float[blocks, threads, stream](
                    xb, _nb(lib.flat(res)), bmask, in_e, in_m, m, emin, emax, sigmax, sub, hz,
                    sg, sp, eb, bias, int(rounding), ovf, k0, k1, k2, int(offset), r, *rb, err,
                )  # fmt: skip
            res = _as_unsigned(lib, res, cdt)
        if n and may_fail:
            _check_err(err, stream, fmt, overflow)
    if back is not None:
        res = lib.cast(res, back)
    return res


def _as_unsigned(lib, res, cdt):
    if cdt.itemsize == 1:
        return res
    return lib.view(res, cdt)


def _check_err(err, stream, fmt, overflow):
    """Raise the NaN error if a kernel flagged one (reads the flag back: a synchronisation);
    the flag is cleared again before raising, so the buffer can be reused."""
    if int(err.copy_to_host(stream=stream)[0]):
        err.copy_to_device(np.zeros(1, dtype=err.dtype), stream=stream)
        raise nan_error(fmt, overflow)


def _int_round(k, lib, op, src, src_dt, shape, fmt, kw, stream, rounding, r, key, offset, err,
               blocks, threads):  # fmt: skip
    scale, zp = kw.get("scale"), kw.get("zero_point")
    if not isinstance(scale, numbers.Real) or isinstance(scale, bool):
        msg = (
            f"scale must be a positive number on the CUDA route, got {type(scale).__name__}; "
            "hint: per-element scales and scale rules work on NumPy and PyTorch CPU input"
        )
        raise TypeError(msg)
    if not (math.isfinite(scale) and scale > 0):
        msg = f"scale must be finite and > 0, got {scale!r}"
        raise ValueError(msg)
    zp = 0 if zp is None else int(zp)
    work_dt = src_dt if src_dt.itemsize >= 4 else np.dtype(np.float32)
    work = src if work_dt == src_dt else lib.cast(src, work_dt)
    n = math.prod(shape)
    xin = _nb(lib.flat(work))
    k0, k1, k2, rb, has_rb = key
    if op == "quantize":
        res = lib.empty(src, shape, work_dt)
        codes = scratch(np.int64)
        outv = _nb(lib.flat(res))
        want = 1
    else:
        cdt = code_dtype(fmt.bits)
        res = lib.empty(src, shape, _INT_OF.get(cdt.itemsize, np.int8) if cdt.itemsize > 1 else cdt)
        codes = _nb(lib.flat(res))
        outv = scratch(np.float64)
        want = 2
    if n:
        k.quantize_int[blocks, threads, stream](
            xin, outv, codes, float(scale), zp, fmt.min, fmt.max, int(rounding), k0, k1, k2,
            offset, r, rb, has_rb, want, (1 << fmt.bits) - 1, err,
        )  # fmt: skip
        _check_err(err, stream, fmt, kw.get("overflow"))
    if op == "quantize":
        return res if work_dt == src_dt else lib.cast(res, src_dt)
    return _as_unsigned(lib, res, code_dtype(fmt.bits))


def _decode(k, lib, codes, cdt, shape, fmt, dtype, kw, stream):
    if cdt.kind not in "iu":
        msg = f"codes must be an integer array, got dtype {cdt}"
        raise TypeError(msg)
    dtype = np.dtype(np.float32) if dtype is None else _np_dtype(dtype)
    if isinstance(fmt, IntFormat):
        msg = "decode of integer formats on device arrays: use (codes - zero_point) * scale"
        raise NotImplementedError(msg)
    n = math.prod(shape)
    blocks, threads = _grid(n)
    ci = _nb(lib.flat(lib.view(codes, _INT_OF[cdt.itemsize]) if cdt.itemsize > 1 else codes))
    bmask = (1 << fmt.bits) - 1 if fmt.bits < 64 else -1
    wide = np.dtype(np.float64) if dtype == np.float64 or fmt.bits > 16 else np.dtype(np.float32)
    res = lib.empty(codes, shape, wide)
    if n:
        from numba import cuda

        if fmt.bits <= 16:
            key = ("table", _device_key(), fmt, wide.str)
            table = _SCRATCH.get(key)
            if table is None:
                table = _SCRATCH[key] = cuda.to_device(decode_table(fmt).astype(wide))
            k.decode_table[blocks, threads, stream](ci, _nb(lib.flat(res)), table, bmask)
        else:
            m, emin, _emax, _sig, sub, hz, sg, sp, eb, bias = fmt.params()
            k.decode_bits[blocks, threads, stream](
                ci, _nb(lib.flat(res)), m, emin, eb, bias, sub, hz, sg, sp, bmask
            )
    return res if wide == dtype else lib.cast(res, dtype)
