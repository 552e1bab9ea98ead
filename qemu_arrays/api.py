"""The public operations ``quantize``, ``encode`` and ``decode``: the façade.

Each function normalises its keywords once into a :class:`~qemu_arrays.request.Request` (every
check that does not depend on the array) and hands it to :func:`qemu_arrays.dispatch.run`, which
picks the route (NumPy, PyTorch CPU, CUDA, Dask, array API) and runs it. The façade holds no
arithmetic and no route. The semantics are those of ``docs/formats.md``, ``docs/scaled.md`` and
``docs/blocks.md``.
"""

from __future__ import annotations

import numpy as np

from qemu_arrays import dispatch
from qemu_arrays.encoded import Encoded
from qemu_arrays.formats.spec import Overflow, Rounding
from qemu_arrays.request import Op, decode_request, round_request

__all__ = ["decode", "encode", "quantize"]


def _qarray_op(x, op: Op, format, kwargs: dict):
    """A QArray (or any object with the ``__qemu_arrays_apply__`` protocol) handles the call
    itself: ``quantize`` re-quantizes it into a QArray, ``encode`` gives its codes and scales,
    ``decode`` its values."""
    apply = getattr(type(x), "__qemu_arrays_apply__", None)
    if apply is None:
        return None
    return apply(x, op, format, kwargs)


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
    symmetric=None,
    percentile=None,
    rbits=None,
):
    """Round ``x`` to the nearest values of ``format`` (fake quantization).

    Returns an array of the same type, dtype and shape as ``x`` holding values the format can
    represent. ``x`` is never modified; ``out=`` receives the result when given.

    Parameters
    ----------
    x : float16, bfloat16, float32 or float64 array (any supported library, docs/backends.md)
    format : str or FloatFormat or IntFormat or BlockFormat
    rounding : Rounding
    overflow : Overflow
        What overflow, infinities and NaN become (``docs/formats.md``).
    seed, stream, offset, random_bits
        Stochastic rounding: the counter-based random bits of element ``offset + i`` under
        ``(seed, stream)``, truncated to ``random_bits`` bits (default exact for the input).
    rbits
        Stochastic rounding with the caller's random bits instead: an unsigned-integer array
        broadcast to ``x``, of which the low ``random_bits`` bits ``b`` are used (default: the
        width of its dtype); an element rounds away from zero exactly when ``floor(f 2^r) + b
        >= 2^r`` (the carry rule of PTX ``cvt.rs``, gfloat's ``StochasticFastest``;
        docs/formats.md). No ``seed``.
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
        Integer scales: the format the scale is stored in; with a scale rule, a zero point or
        not (default symmetric, no zero point) and the percentile of the ``"percentile"`` rule
        (default 99.9) (docs/scaled.md).
    """
    kwargs = {
        "rounding": rounding, "overflow": overflow, "seed": seed, "stream": stream,
        "offset": offset, "random_bits": random_bits, "scale": scale, "zero_point": zero_point,
        "via_float32": via_float32, "axis": axis, "block_size": block_size,
        "scale_format": scale_format, "symmetric": symmetric, "percentile": percentile,
        "rbits": rbits,
    }  # fmt: skip
    done = _qarray_op(x, Op.QUANTIZE, format, {**kwargs, "out": out})
    if done is not None:
        return done
    return dispatch.run(x, round_request(Op.QUANTIZE, format, **kwargs, out=out))


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
    symmetric=None,
    percentile=None,
    rbits=None,
):
    """The format's bit patterns of the rounded ``x``, as unsigned integers.

    uint8 for formats of at most 8 bits, uint16 up to 16, uint32 up to 32, else uint64. Integer
    formats give the two's-complement pattern of ``k`` in ``bits`` bits. Same keywords as
    :func:`quantize`.

    Scaled and block formats return an :class:`~qemu_arrays.encoded.Encoded` named tuple
    ``(codes, scales, zero_points, tensor_scale, axis, block_size)`` instead of bare codes: block
    formats always, integer formats when ``scale`` is a rule or ``axis``, ``block_size`` or
    ``scale_format`` is given (docs/scaled.md, docs/blocks.md).
    """
    kwargs = {
        "rounding": rounding, "overflow": overflow, "seed": seed, "stream": stream,
        "offset": offset, "random_bits": random_bits, "scale": scale, "zero_point": zero_point,
        "via_float32": via_float32, "axis": axis, "block_size": block_size,
        "scale_format": scale_format, "symmetric": symmetric, "percentile": percentile,
        "rbits": rbits,
    }  # fmt: skip
    done = _qarray_op(x, Op.ENCODE, format, kwargs)
    if done is not None:
        return done
    return dispatch.run(x, round_request(Op.ENCODE, format, **kwargs))


def decode(
    codes, format, *, dtype=np.float32, scale=None, zero_point=None, axis=None, block_size=None,
    tensor_scale=None,
):  # fmt: skip
    """The values of bit patterns ``codes`` (the inverse of :func:`encode`), as ``dtype``.

    ``codes`` may be the :class:`~qemu_arrays.encoded.Encoded` tuple that ``encode`` returned
    for scaled and block formats; otherwise ``scale``/``zero_point`` (per ``axis``/``block_size``
    group) give the integer scales, or the block scale codes of a block format.
    """
    done = _qarray_op(
        codes, Op.DECODE, format,
        {"dtype": dtype, "scale": scale, "zero_point": zero_point, "axis": axis,
         "block_size": block_size, "tensor_scale": tensor_scale},
    )  # fmt: skip
    if done is not None:
        return done
    encoded = codes if isinstance(codes, Encoded) else None
    req = decode_request(
        format, dtype=dtype, scale=scale, zero_point=zero_point, axis=axis,
        block_size=block_size, tensor_scale=tensor_scale, encoded=encoded,
    )  # fmt: skip
    return dispatch.run(codes if encoded is None else encoded.codes, req)
