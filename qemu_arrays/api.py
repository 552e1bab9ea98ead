"""The public operations: ``quantize``, ``encode``, ``decode`` on NumPy arrays.

Argument checking lives here; the arithmetic lives in the numba kernels of
:mod:`qemu_arrays.cpu`, which call the scalar cores of :mod:`qemu_arrays.formats.cores`. The semantics are
those of ``docs/formats.md``.
"""

from __future__ import annotations

import difflib
import numbers
from functools import lru_cache

import ml_dtypes
import numpy as np

from qemu_arrays.float_casts import cast_float
from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.cores import random_key
from qemu_arrays.formats.ml_dtypes_rules import overflow_code, rounds_float64_via_float32
from qemu_arrays.formats.spec import FloatFormat, IntFormat, Overflow, Rounding

__all__ = ["decode", "encode", "quantize"]

_BF16 = np.dtype(ml_dtypes.bfloat16)
_FLOAT_DTYPES = (np.dtype(np.float16), _BF16, np.dtype(np.float32), np.dtype(np.float64))
_DEFAULT_BITS = {4: 32, 8: 53}  # random bits by input item size (after widening 16-bit types)
_random_key = lru_cache(maxsize=64)(random_key)


# ---- argument checking ---------------------------------------------------------------------


def _check_enum(name, value, enum_cls):
    if isinstance(value, enum_cls):
        return value
    allowed = ", ".join(f"{enum_cls.__name__}.{m.name}" for m in enum_cls)
    msg = f"{name} must be a {enum_cls.__name__} member ({allowed}), got {value!r}"
    if isinstance(value, str):  # the closest real member names (issue 20)
        close = difflib.get_close_matches(value.upper(), list(enum_cls.__members__), 3, 0.4)
        msg += "; hint: " + (" or ".join(f"{enum_cls.__name__}.{m}" for m in close) or "see above")
    raise TypeError(msg)


def _check_format(fmt):
    fmt = get_format(fmt)
    if not isinstance(fmt, (FloatFormat, IntFormat)) and getattr(fmt, "kind", "") != "block":
        msg = f"format must be a float, integer or block format, got {fmt!r}"
        raise TypeError(msg)
    return fmt


def _as_float_array(x, name="x"):
    if isinstance(x, np.ndarray):
        arr = x
    elif isinstance(x, (numbers.Real, np.generic)) and not isinstance(x, (bool, np.bool_)):
        arr = np.asarray(x)
        if arr.dtype.kind in "iu":
            arr = arr.astype(np.float64)
    else:
        msg = (
            f"{name} must be a floating-point array (numpy float16, bfloat16, float32 or "
            f"float64), got {type(x).__name__}; hint: np.asarray(x, dtype=np.float32)"
        )
        raise TypeError(msg)
    if arr.dtype not in _FLOAT_DTYPES:
        msg = (
            f"{name} has dtype {arr.dtype}, must be float16, bfloat16, float32 or float64; "
            f"hint: cast with {name}.astype(np.float32)"
        )
        raise TypeError(msg)
    return arr


def _check_rounding_args(rounding, seed, stream, offset, random_bits, itemsize):
    rounding = _check_enum("rounding", rounding, Rounding)
    for name, val in (("stream", stream), ("offset", offset)):
        if isinstance(val, bool) or not isinstance(val, numbers.Integral) or val < 0:
            msg = f"{name} must be a non-negative int, got {val!r}"
            raise ValueError(msg)
    if rounding is Rounding.STOCHASTIC:
        if seed is None:
            msg = (
                "seed=None: stochastic rounding needs an explicit integer seed so that results "
                "are reproducible; hint: pass seed=0"
            )
            raise ValueError(msg)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            msg = f"seed must be an int, got {seed!r} ({type(seed).__name__})"
            raise TypeError(msg)
    r = _DEFAULT_BITS[itemsize] if random_bits is None else random_bits
    if isinstance(r, bool) or not isinstance(r, numbers.Integral) or not 1 <= r <= 62:
        msg = f"random_bits must be an int in [1, 62], got {random_bits!r}; hint: None = exact"
        raise ValueError(msg)
    k0, k1, k2 = _random_key(seed or 0, stream)
    return rounding, int(r), k0, k1, k2


def _widen(arr, via_float32):
    """(array the kernels read, dtype to return): 16-bit floats are widened exactly."""
    if arr.dtype.itemsize == 2:
        return arr.astype(np.float32), arr.dtype
    if via_float32 and arr.dtype == np.float64:
        with np.errstate(over="ignore"):  # float64 beyond float32's range: inf, as ml_dtypes
            return arr.astype(np.float32), arr.dtype
    return (arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)), arr.dtype


def _check_out(out, shape, dtype):
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        msg = f"out must be a numpy array, got {type(out).__name__}"
        raise TypeError(msg)
    if out.shape != shape or out.dtype != dtype:
        msg = (
            f"out has shape {out.shape} and dtype {out.dtype}, must be {shape} and {dtype}; "
            "hint: out=np.empty_like(x)"
        )
        raise ValueError(msg)
    if not out.flags.writeable:
        msg = "out is read-only; hint: pass a writeable array, or leave out=None for a new one"
        raise ValueError(msg)
    return out


def _nan_error(fmt, overflow):
    msg = (
        f"x contains NaN (or a value the format cannot hold, such as zero for {fmt.name}), and "
        f"format {fmt.name!r} has no NaN; overflow={overflow!r} does not map it to a value; "
        "hint: clean NaNs first (np.nan_to_num) or use overflow=Overflow.ML_DTYPES"
    )
    return ValueError(msg)


def _int_scale(fmt, scale, zero_point, shape, x=None, *, full=False, **granularity):
    """Per-element (flat) scale and zero point for ``cpu.quantize_int`` (or one value each).

    ``scale`` is a number, an array, or a rule (``"absmax"``, ``"percentile"``, ``"mse"``,
    computed from ``x``); ``granularity`` holds ``axis``, ``block_size``, ``scale_format``,
    ``symmetric``, ``percentile`` (see ``qemu_arrays.scaled`` and docs/scaled.md). With
    ``full=True`` also returns the group-shaped scales, zero points, axis and block size.
    """
    if scale is None:
        msg = (
            f"integer format {fmt.name!r} needs scale= (the step between integer codes), e.g. "
            "scale=0.05, or a rule: scale='absmax' (per channel: axis=0); see docs/scaled.md"
        )
        raise ValueError(msg)
    from qemu_arrays.scaled import element_arrays

    kw = {"axis": None, "block_size": None, "symmetric": True, "percentile": 99.9}
    kw.update(scale_format=None)
    kw.update(granularity)
    res = element_arrays(x, fmt, scale, zero_point, shape, **kw)
    return res if full else res[:2]


def _group_geometry(shape, sg, zg, axis, block_size):
    """``((outer, n, inner), scales, zero points, block)`` for ``cpu_scaled.quantize_groups``,
    or None when the group arrays do not have the per-channel / per-group layout."""
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    n = shape[axis]
    inner = int(np.prod(shape[axis + 1 :], dtype=np.int64))
    blk = 1 if block_size is None else block_size
    groups = -(-n // blk)

    def to3(a):
        a = np.asarray(a)
        if a.size == 1:
            return a.reshape(1, 1, 1)
        if a.ndim != len(shape) or a.shape[axis] != groups:
            return None
        lead, trail = a.shape[:axis], a.shape[axis + 1 :]
        if lead not in (shape[:axis], (1,) * axis):
            return None
        if trail not in (shape[axis + 1 :], (1,) * len(trail)):
            return None
        return np.ascontiguousarray(a).reshape(int(np.prod(lead)), groups, int(np.prod(trail)))

    s3, z3 = to3(sg), to3(zg)
    if s3 is None or z3 is None:
        return None
    return (outer, n, inner), s3, z3, blk


def _quantize_qarray(kw):
    """``quantize`` of a QArray: ``x.astype(format, ...)``, a QArray (the identity when the
    format and granularity are its own)."""
    from qemu_arrays.qarray import QArray

    x = kw["x"]
    if not isinstance(x, QArray):  # a class of the same name from elsewhere
        msg = f"x of type {type(x).__module__}.{type(x).__name__} is not a qemu_arrays QArray"
        raise TypeError(msg)
    odd = [
        k
        for k, default in (("overflow", Overflow.OWN), ("offset", 0), ("via_float32", False))
        if kw[k] != default
    ]
    if kw["out"] is not None or odd:
        msg = (
            f"quantize of a QArray takes the QArray keywords only, got {odd or ['out']}; "
            "hint: q.dequantize() gives a plain array to quantize with every option"
        )
        raise ValueError(msg)
    keys = ("axis", "block_size", "scale", "zero_point", "scale_format", "symmetric",
            "percentile", "rounding", "seed", "stream", "random_bits")  # fmt: skip
    return x.astype(kw["format"], **{k: kw[k] for k in keys})


def _is_scaled(scale, axis, block_size, scale_format):
    """Whether encode returns an ``Encoded`` (codes and scales) rather than bare codes."""
    return isinstance(scale, str) or not (
        axis is None and block_size is None and scale_format is None
    )


@lru_cache(maxsize=256)
def _rne_plan(fmt, overflow):
    from qemu_arrays import cpu

    return cpu.rne_f32_plan(fmt.params(), overflow_code(overflow))


def _float_kernel_args(arr):
    if arr.dtype == np.float32:
        return arr.reshape(-1).view(np.uint32), 8, 23
    return arr.reshape(-1).view(np.int64), 11, 52


# ---- public operations -----------------------------------------------------------------------


def quantize(
    x,
    format,
    *,
    rounding=Rounding.NEAREST_EVEN,
    overflow=Overflow.OWN,
    seed=None,
    stream=0,
    offset=0,
    random_bits=None,
    scale=None,
    zero_point=None,
    via_float32=False,
    out=None,
    axis=None,
    block_size=None,
    scale_format=None,
    symmetric=True,
    percentile=99.9,
):
    """Round ``x`` to the nearest values of ``format`` (fake quantization).

    Returns an array of the same type, dtype and shape as ``x`` holding values the format can
    represent. ``x`` is never modified; ``out=`` receives the result when given.

    Parameters
    ----------
    x : float16, bfloat16, float32 or float64 array
    format : str or FloatFormat or IntFormat
    rounding : Rounding
    overflow : Overflow
        What overflow, infinities and NaN become (``docs/formats.md``).
    seed, stream, offset, random_bits
        Stochastic rounding: the counter-based random bits of element ``offset + i`` under
        ``(seed, stream)``, truncated to ``random_bits`` bits (default exact for the input).
    scale, zero_point
        Integer formats: ``k = clamp(round(x / scale) + zero_point)``, value ``(k - zp) * scale``.
        ``scale`` may also be a rule: ``"absmax"``, ``"percentile"``, ``"mse"`` (docs/scaled.md).
        Two-level block formats (nvfp4): ``scale`` is the float32 per-tensor scale.
    via_float32
        Round float64 input to float32 first, then to the format (two roundings, as ml_dtypes
        before 0.7 did; ``Overflow.ML_DTYPES`` follows the installed ml_dtypes by itself).
    axis, block_size
        Scale granularity: per tensor (both None), per channel (``axis=k``), per group of
        ``block_size`` along ``axis`` (default last). Block formats: the axis the blocks run along.
    scale_format, symmetric, percentile
        Integer scales: the format the scale is stored in, zero point or not, the percentile
        of the ``"percentile"`` rule (docs/scaled.md).
    """
    if type(x).__name__ == "QArray":  # a QArray is re-quantized into a QArray
        return _quantize_qarray(dict(locals()))
    if not isinstance(x, (np.ndarray, np.generic, numbers.Number, list, tuple)):
        kw = dict(locals())  # other array libraries: the route ladder (docs/backends.md)
        from qemu_arrays import dispatch

        return dispatch.call("quantize", kw)
    fmt = _check_format(format)
    if getattr(fmt, "kind", "") == "block":
        from qemu_arrays.blocks import quantize_block

        return quantize_block(
            x, fmt, axis=axis, rounding=rounding, overflow=overflow, seed=seed, stream=stream,
            offset=offset, random_bits=random_bits, scale=scale, via_float32=via_float32, out=out,
        )  # fmt: skip
    arr = _as_float_array(x)
    scalar_in = not isinstance(x, np.ndarray)
    overflow = _check_enum("overflow", overflow, Overflow)
    work, out_dtype = _widen(arr, via_float32 or rounds_float64_via_float32(overflow))
    rounding, r, k0, k1, k2 = _check_rounding_args(
        rounding, seed, stream, offset, random_bits, work.dtype.itemsize
    )
    out = _check_out(out, arr.shape, arr.dtype)
    from qemu_arrays import cpu

    if isinstance(fmt, IntFormat):
        _, _, sg, zg, g_axis, g_bs = _int_scale(
            fmt, scale, zero_point, arr.shape, work, axis=axis, block_size=block_size,
            scale_format=scale_format, symmetric=symmetric, percentile=percentile,
            full=True, flat=False,
        )  # fmt: skip
        res = np.empty(work.shape, dtype=work.dtype)
        geo = None
        if rounding is Rounding.NEAREST_EVEN and g_axis is not None:
            geo = _group_geometry(work.shape, sg, zg, g_axis, g_bs)
        if geo is not None:  # per channel / per group without one scale per element
            from qemu_arrays import cpu_scaled

            dims, s3, z3, blk = geo
            err = cpu_scaled.quantize_groups(
                work.reshape(dims), res.reshape(dims), s3, z3, blk, float(fmt.min), float(fmt.max)
            )
        else:
            from qemu_arrays.scaled import flatten_groups

            s, z = flatten_groups(sg, zg, arr.shape, g_axis, g_bs)
            if rounding is Rounding.NEAREST_EVEN and s.size == 1 and z.size == 1:
                lo, hi = float(fmt.min - z[0]), float(fmt.max - z[0])  # vectorized, same bits
                with cpu.threads_for(work.size):
                    err = cpu.quantize_int_rne(work.reshape(-1), res.reshape(-1), s[0], lo, hi)
            else:
                with cpu.threads_for(work.size):
                    err = cpu.quantize_int(
                        work.reshape(-1), res.reshape(-1), np.empty(1, np.int64), s, z,
                        fmt.min, fmt.max, int(rounding), k0, k1, k2, int(offset), r, 1,
                    )  # fmt: skip
    else:
        if scale is not None or zero_point is not None:
            msg = (
                f"scale/zero_point apply to integer formats; {fmt.name!r} is a float format "
                "(for scaled float formats see docs/scaled.md)"
            )
            raise ValueError(msg)
        xb, in_e, in_m = _float_kernel_args(work)
        res = np.empty(work.shape, dtype=work.dtype)
        rb = _float_kernel_args(res)[0]
        plan = (
            _rne_plan(fmt, overflow) if rounding is Rounding.NEAREST_EVEN and in_m == 23 else None
        )
        if plan is not None:  # the vectorized kernel: same bits, selects only
            with cpu.threads_for(work.size):
                err = cpu.quantize_f32_rne(xb, rb, plan, fmt.params(), overflow_code(overflow))
        else:
            with cpu.threads_for(work.size):
                err = cpu.quantize_float_bits(
                    xb, rb, res.reshape(-1), in_e, in_m, fmt.params(), int(rounding),
                    overflow_code(overflow),
                    k0, k1, k2, int(offset), r,
                )  # fmt: skip
    if err:
        raise _nan_error(fmt, overflow)
    if res.dtype != out_dtype:  # one rounding of our own; beyond the dtype's range: inf (docs)
        res = cast_float(res, out_dtype)
    if out is not None:
        out[...] = res
        return out
    if scalar_in:
        return res[()]
    return res


def _code_dtype(bits):
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if bits <= 8 * np.dtype(dt).itemsize:
            return np.dtype(dt)
    msg = f"formats of more than 64 bits are not supported, got {bits}"
    raise ValueError(msg)


def encode(
    x,
    format,
    *,
    rounding=Rounding.NEAREST_EVEN,
    overflow=Overflow.OWN,
    seed=None,
    stream=0,
    offset=0,
    random_bits=None,
    scale=None,
    zero_point=None,
    via_float32=False,
    axis=None,
    block_size=None,
    scale_format=None,
    symmetric=True,
    percentile=99.9,
):
    """The format's bit patterns of the rounded ``x``, as unsigned integers.

    uint8 for formats of at most 8 bits, uint16 up to 16, uint32 up to 32, else uint64. Integer
    formats give the two's-complement pattern of ``k`` in ``bits`` bits. Same keywords as
    :func:`quantize`.

    Scaled and block formats return an :class:`~qemu_arrays.scaled.Encoded` named tuple
    ``(codes, scales, zero_points, tensor_scale, axis, block_size)`` instead of bare codes: block
    formats always, integer formats when ``scale`` is a rule or ``axis``, ``block_size`` or
    ``scale_format`` is given (docs/scaled.md, docs/blocks.md).
    """
    if type(x).__name__ == "QArray":  # issue 20 hook (to move): a QArray is re-encoded
        from qemu_arrays.qarray import encode_qarray

        return encode_qarray(dict(locals()))
    if not isinstance(x, (np.ndarray, np.generic, numbers.Number, list, tuple)):
        kw = dict(locals())  # other array libraries: the route ladder (docs/backends.md)
        from qemu_arrays import dispatch

        return dispatch.call("encode", kw)
    fmt = _check_format(format)
    if getattr(fmt, "kind", "") == "block":
        from qemu_arrays.blocks import encode_block

        return encode_block(
            x, fmt, axis=axis, rounding=rounding, overflow=overflow, seed=seed, stream=stream,
            offset=offset, random_bits=random_bits, scale=scale, via_float32=via_float32,
        )  # fmt: skip
    arr = _as_float_array(x)
    overflow = _check_enum("overflow", overflow, Overflow)
    work, _ = _widen(arr, via_float32 or rounds_float64_via_float32(overflow))
    rounding, r, k0, k1, k2 = _check_rounding_args(
        rounding, seed, stream, offset, random_bits, work.dtype.itemsize
    )
    from qemu_arrays import cpu

    cdt = _code_dtype(fmt.bits)
    if isinstance(fmt, IntFormat):
        s, z, sg, zg, g_axis, g_bs = _int_scale(
            fmt, scale, zero_point, arr.shape, work, full=True, axis=axis,
            block_size=block_size, scale_format=scale_format, symmetric=symmetric,
            percentile=percentile,
        )  # fmt: skip
        k = np.empty(arr.size, dtype=np.int64)
        with cpu.threads_for(work.size):
            err = cpu.quantize_int(
                work.reshape(-1), np.empty(1, np.float64), k, s, z,
                fmt.min, fmt.max, int(rounding), k0, k1, k2, int(offset), r, 2,
            )  # fmt: skip
        codes = (k & ((1 << fmt.bits) - 1)).astype(cdt)
        if not err and _is_scaled(scale, axis, block_size, scale_format):
            from qemu_arrays.scaled import Encoded

            return Encoded(codes.reshape(arr.shape), sg, zg, None, g_axis, g_bs)
    else:
        if scale is not None or zero_point is not None:
            msg = f"scale/zero_point apply to integer formats; {fmt.name!r} is a float format"
            raise ValueError(msg)
        xb, in_e, in_m = _float_kernel_args(work)
        codes = np.empty(arr.size, dtype=cdt)
        with cpu.threads_for(work.size):
            err = cpu.encode_float_bits(
                xb, codes, in_e, in_m, fmt.params(), int(rounding), overflow_code(overflow),
                k0, k1, k2, int(offset), r,
            )  # fmt: skip
    if err:
        raise _nan_error(fmt, overflow)
    return codes.reshape(arr.shape)


def _device_encoded(codes):
    """An ``Encoded`` whose codes live in device memory (decoded on the CUDA route)."""
    from qemu_arrays.scaled import Encoded

    if not isinstance(codes, Encoded) or isinstance(codes.codes, np.ndarray):
        return False
    from qemu_arrays import dispatch

    return dispatch.on_device(codes.codes)


@lru_cache(maxsize=256)
def _decode_table(fmt):
    from qemu_arrays import cpu

    codes = np.arange(1 << fmt.bits, dtype=np.int64)
    out = np.empty(codes.size, dtype=np.float64)
    cpu.decode_codes(codes, out, fmt.params())
    out.flags.writeable = False
    return out


def decode(
    codes, format, *, dtype=np.float32, scale=None, zero_point=None, axis=None, block_size=None,
    tensor_scale=None,
):  # fmt: skip
    """The values of bit patterns ``codes`` (the inverse of :func:`encode`), as ``dtype``.

    ``codes`` may be the :class:`~qemu_arrays.scaled.Encoded` tuple that ``encode`` returns for
    scaled and block formats; otherwise ``scale``/``zero_point`` (per ``axis``/``block_size``
    group) give the integer scales, or the block scale codes of a block format.
    """
    if type(codes).__name__ == "QArray":  # issue 20 hook (to move): a QArray's own values
        from qemu_arrays.qarray import decode_qarray

        return decode_qarray(dict(locals()))
    if not isinstance(codes, (np.ndarray, np.generic, numbers.Number, list, tuple)) or (
        _device_encoded(codes)
    ):
        kw = dict(locals())  # other array libraries: the route ladder (docs/backends.md)
        from qemu_arrays import dispatch

        return dispatch.call("decode", kw)
    fmt = _check_format(format)
    if getattr(fmt, "kind", "") == "block":
        from qemu_arrays.blocks import decode_block

        return decode_block(
            codes, fmt, dtype=dtype, scale=scale, axis=axis, tensor_scale=tensor_scale
        )
    from qemu_arrays.scaled import Encoded

    if isinstance(codes, Encoded):
        codes, scale, zero_point, axis, block_size = (
            codes.codes, codes.scales, codes.zero_points, codes.axis, codes.block_size
        )  # fmt: skip
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu":
        msg = (
            f"codes must be an integer array, got dtype {codes.dtype}; hint: codes come from "
            "qemu_arrays.encode"
        )
        raise TypeError(msg)
    dtype = np.dtype(dtype)
    if dtype not in _FLOAT_DTYPES:
        msg = f"dtype must be float16, bfloat16, float32 or float64, got {dtype}"
        raise TypeError(msg)
    if codes.size and (codes.min() < 0 or int(codes.max()) >> fmt.bits):
        msg = f"codes must lie in [0, 2**{fmt.bits}) for {fmt.name!r}, got values outside"
        raise ValueError(msg)
    if isinstance(fmt, IntFormat):
        s, z = _int_scale(fmt, scale, zero_point, codes.shape, axis=axis, block_size=block_size)
        k = codes.astype(np.int64)
        if fmt.signed:
            k = np.where(k >> (fmt.bits - 1), k - (1 << fmt.bits), k)
        if (k < fmt.min).any():
            msg = f"code {1 << (fmt.bits - 1)} is not used by the narrow-range {fmt.name!r}"
            raise ValueError(msg)
        vals = (k.reshape(-1) - z) * s
        return cast_float(vals.reshape(codes.shape), dtype)
    if fmt.bits <= 16:
        return cast_float(_decode_table(fmt)[codes.astype(np.intp)], dtype)
    from qemu_arrays import cpu

    out = np.empty(codes.size, dtype=np.float64)
    flat = np.ascontiguousarray(codes).reshape(-1).astype(np.int64)
    cpu.decode_codes(flat, out, fmt.params())
    return cast_float(out.reshape(codes.shape), dtype)
