"""``QArray``: codes and scales in their true storage size, behaving as an array.

A QArray holds the packed element codes (two FP4/INT4 per byte, four FP6 in three bytes, see
:mod:`qemu_arrays.packing`), the scales (block scale codes, or integer scales and zero points
per tensor/channel/group) and the format. It is immutable. Reading it as an array
(``np.asarray(q)``, arithmetic, comparisons, reductions) dequantizes to a compute dtype and
returns plain arrays; shape operations (indexing, ``.T``, ``transpose``, ``reshape``) return
QArrays that keep the stored codes and scales. See docs/qarray.md.
"""

from __future__ import annotations

import json
import numbers
import operator

import numpy as np

from qemu_arrays.formats.spec import FloatFormat, IntFormat, Rounding, Specials

__all__ = ["QArray", "asarray", "load"]


# ---- format (de)serialisation for .npz (no pickle) -------------------------------------------


def _fmt_to_dict(fmt):
    if isinstance(fmt, FloatFormat):
        return {"type": "float", "exponent_bits": fmt.exponent_bits,
                "mantissa_bits": fmt.mantissa_bits, "bias": fmt.bias, "signed": fmt.signed,
                "subnormals": fmt.subnormals, "has_zero": fmt.has_zero,
                "specials": fmt.specials.name, "name": fmt.name}  # fmt: skip
    if isinstance(fmt, IntFormat):
        return {"type": "int", "bits": fmt.bits, "signed": fmt.signed,
                "narrow_range": fmt.narrow_range, "name": fmt.name}  # fmt: skip
    return {"type": "block", "element": _fmt_to_dict(fmt.element),
            "scale": _fmt_to_dict(fmt.scale), "block_size": fmt.block_size,
            "scale_rule": fmt.scale_rule.name, "tensor_scale": fmt.tensor_scale,
            "element_fraction_bits": fmt.element_fraction_bits, "name": fmt.name}  # fmt: skip


def _fmt_from_dict(d):
    d = dict(d)
    kind = d.pop("type")
    if kind == "float":
        d["specials"] = Specials[d["specials"]]
        return FloatFormat(**d)
    if kind == "int":
        return IntFormat(**d)
    from qemu_arrays.formats.block_spec import BlockFormat, ScaleRule

    d["element"] = _fmt_from_dict(d["element"])
    d["scale"] = _fmt_from_dict(d["scale"])
    d["scale_rule"] = ScaleRule[d["scale_rule"]]
    return BlockFormat(**d)


def _is_block(fmt):
    from qemu_arrays.formats.block_spec import BlockFormat

    return isinstance(fmt, BlockFormat)


def _word(bits):
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if bits <= 8 * np.dtype(dt).itemsize:
            return np.dtype(dt)
    msg = f"formats of more than 64 bits are not supported, got {bits}"
    raise ValueError(msg)


_FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")


def _float_dtype(obj):
    """The numpy float dtype ``obj`` names as a dtype object or scalar type, else None.

    Strings are format names (``"float16"`` is also a catalogue format), so only ``np.dtype``
    objects and scalar types (``np.float16``, ``ml_dtypes.bfloat16``, ``float``) count here.
    """
    if not (
        isinstance(obj, np.dtype)
        or obj is float
        or (isinstance(obj, type) and issubclass(obj, np.generic))
    ):
        return None
    dt = np.dtype(obj)
    if dt.name not in _FLOAT_NAMES:
        msg = (
            f"dtype must be a float dtype ({', '.join(_FLOAT_NAMES)}), got {dt}; hint: "
            f"q.dequantize().astype({dt.name!r}) for another dtype"
        )
        raise TypeError(msg)
    return dt


def _resolve_shape(shape, size, old):
    """``shape`` (ints, one of them may be -1) as a tuple of ``size`` elements in total."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < -1:
            msg = f"shape must hold non-negative ints (and at most one -1), got {shape!r}"
            raise TypeError(msg) if not isinstance(d, numbers.Integral) else ValueError(msg)
    shape = tuple(int(d) for d in shape)
    if shape.count(-1) > 1:
        msg = f"shape can have at most one -1, got {shape}"
        raise ValueError(msg)
    known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
    if -1 in shape:
        if known == 0 or size % known:
            msg = f"cannot reshape a QArray of shape {old} (size {size}) into {shape}"
            raise ValueError(msg)
        shape = tuple(size // known if d == -1 else d for d in shape)
    elif known != size:
        msg = f"cannot reshape a QArray of shape {old} (size {size}) into {shape}"
        raise ValueError(msg)
    return shape


class QArray:
    """A quantized array: packed codes + scales + format. Build one with :func:`asarray`.

    Attributes: ``format``, ``shape``, ``dtype`` (of the values), ``ndim``, ``size``, ``nbytes``
    (true storage: packed code bits, scales in their format, zero points, tensor scale),
    ``codes`` (unpacked, shape ``shape``), ``scales`` (an array for integer and block formats:
    0-d per tensor, group-shaped otherwise; None for element formats, which have no scale),
    ``zero_points``, ``tensor_scale``, ``axis``, ``block_size``.

    A QArray is **immutable**: there is no item assignment and no in-place operator
    (``q += 1`` rebinds ``q`` to a plain array, as for a tuple). Build a new one instead:
    ``qa.asarray(new_values, q.format)``.

    It behaves as a read-only numpy array of its values: arithmetic and comparison operators,
    ``bool``, ``float``/``int`` of a 0-d QArray, ``item()``, the reductions ``sum``, ``mean``,
    ``max``, ``min``, ``any``, ``all`` and ``astype(float dtype)`` dequantize and return numpy
    arrays (or arrays of the other operand's library); ``q[key]``, ``.T``, ``transpose`` and
    ``reshape`` return QArrays that keep the stored codes and scales. ``torch.as_tensor(q)``,
    ``jax.numpy.asarray(q)`` and ``np.from_dlpack(q)`` read the dequantized values through
    ``__array__``/``__dlpack__``.
    """

    __array_priority__ = 1000  # numpy defers to our reflected operators
    __hash__ = None  # == is elementwise, as for numpy arrays

    def __init__(self, *, codes, format, dtype=np.float32, scales=None, zero_points=None,
                 tensor_scale=None, axis=None, block_size=None, block_offset=0,
                 scale_format=None):  # fmt: skip
        codes = np.asarray(codes)
        self._format = format
        self._shape = codes.shape
        self._dtype = np.dtype(dtype)
        bits = format.bits
        if bits < 8:
            from qemu_arrays.packing import pack

            self._packed = pack(codes, bits)
        else:
            self._packed = np.ascontiguousarray(codes, dtype=_word(bits)).reshape(-1)
        self._scales = None if scales is None else np.asarray(scales)
        self._zero_points = None if zero_points is None else np.asarray(zero_points)
        self._tensor_scale = None if tensor_scale is None else np.float32(tensor_scale)
        self._axis = axis
        self._block_size = block_size
        self._block_offset = int(block_offset)
        self._scale_format = scale_format
        for a in (self._packed, self._scales, self._zero_points):
            if a is not None:
                a.flags.writeable = False

    # ---- array attributes ---------------------------------------------------------------------
    format = property(lambda self: self._format)
    shape = property(lambda self: self._shape)
    dtype = property(lambda self: self._dtype)
    ndim = property(lambda self: len(self._shape))
    size = property(lambda self: int(np.prod(self._shape, dtype=np.int64)))
    scales = property(lambda self: self._scales)
    zero_points = property(lambda self: self._zero_points)
    tensor_scale = property(lambda self: self._tensor_scale)
    axis = property(lambda self: self._axis)
    block_size = property(lambda self: self._block_size)

    def __len__(self):
        if not self._shape:
            msg = "len() of a 0-d QArray"
            raise TypeError(msg)
        return self._shape[0]

    def __iter__(self):
        if not self._shape:
            msg = "iteration over a 0-d QArray"
            raise TypeError(msg)
        for i in range(self._shape[0]):
            yield self[i]

    def __bool__(self):
        if self.size != 1:
            msg = (
                f"the truth value of a QArray of shape {self._shape} ({self.size} elements) is "
                "ambiguous; hint: q.any() or q.all()"
            )
            raise ValueError(msg)
        return bool(self.dequantize().reshape(()))

    def item(self):
        """The one value of a QArray of size 1 as a Python float (of the value in ``dtype``)."""
        if self.size != 1:
            msg = f"item() needs a QArray of size 1, got shape {self._shape}; hint: q[i, j].item()"
            raise ValueError(msg)
        return float(self.dequantize().reshape(()))

    def _scalar(self, kind):
        if self.ndim != 0:
            msg = (
                f"only a 0-d QArray converts to {kind.__name__}, got shape {self._shape}; hint: "
                f"index down to one element (q[{', '.join('0' * self.ndim)}]) or use q.item()"
            )
            raise TypeError(msg)
        return kind(self.dequantize().reshape(()))

    def __float__(self):
        return self._scalar(float)

    def __int__(self):
        return self._scalar(int)

    def __complex__(self):
        return self._scalar(complex)

    def __setitem__(self, key, value):
        msg = (
            "a QArray is immutable (its codes and scales are stored packed); hint: quantize new "
            "values, qa.asarray(values, q.format), or edit q.dequantize()"
        )
        raise TypeError(msg)

    @property
    def codes(self):
        """The element codes, unpacked, shape ``shape`` (a new array)."""
        bits = self._format.bits
        if bits < 8:
            from qemu_arrays.packing import unpack

            return unpack(self._packed, bits, self.size).reshape(self._shape)
        return self._packed.reshape(self._shape).copy()

    @property
    def nbytes(self) -> int:
        """True storage in bytes: packed codes, scales and zero points in their bit widths."""
        n = self._packed.nbytes
        if self._scales is not None:
            if _is_block(self._format):
                sbits = self._format.scale.bits
            elif self._scale_format is not None:
                sbits = self._scale_format.bits
            else:
                sbits = 8 * self._scales.dtype.itemsize
            n += -(-self._scales.size * sbits // 8)
        if self._zero_points is not None and np.any(self._zero_points != 0):
            n += -(-self._zero_points.size * self._format.bits // 8)
        if self._tensor_scale is not None:
            n += 4
        return int(n)

    # ---- values ---------------------------------------------------------------------------------
    def _per_element(self, a):
        """A group-shaped array (scales, zero points) expanded to one entry per element."""
        a = np.asarray(a)
        if self._axis is None or self._block_size is None:
            return np.broadcast_to(a, self._shape)
        rep = np.repeat(a, self._block_size, axis=self._axis)
        lo = self._block_offset
        sl = tuple(
            slice(lo, lo + self._shape[self._axis]) if d == self._axis else slice(None)
            for d in range(self.ndim)
        )
        return np.broadcast_to(rep[sl], self._shape)

    def dequantize(self, dtype=None):
        """The values as a numpy array of ``dtype`` (default: the dtype quantized from)."""
        dtype = self._dtype if dtype is None else np.dtype(dtype)
        fmt = self._format
        codes = self.codes
        if _is_block(fmt):
            from qemu_arrays.routes.cpu_blocks import block_values

            vals = block_values(codes, self._per_element(self._scales), fmt, self._tensor_scale)
        elif isinstance(fmt, IntFormat):
            k = codes.astype(np.int64)
            if fmt.signed:
                k = np.where(k >> (fmt.bits - 1), k - (1 << fmt.bits), k)
            z = self._per_element(self._zero_points)
            vals = (k - z) * self._per_element(self._scales)
        else:
            from qemu_arrays.api import decode

            return np.asarray(decode(codes, fmt, dtype=dtype))
        with np.errstate(over="ignore", invalid="ignore"):
            return np.asarray(vals, dtype=np.float64).astype(dtype)

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            msg = "a QArray cannot be viewed as an array without copying (it dequantizes)"
            raise ValueError(msg)
        return self.dequantize(dtype)

    def __array_namespace__(self, api_version=None):
        """numpy: its functions read a QArray through ``__array__`` (the dequantized values)."""
        return np

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """The dequantized values through DLPack (``torch.as_tensor``, ``np.from_dlpack``)."""
        if copy is False:
            msg = "a QArray cannot be exported without a copy (it dequantizes)"
            raise BufferError(msg)
        kw = {} if max_version is None else {"max_version": max_version}
        return self.dequantize().__dlpack__(**kw)

    def __dlpack_device__(self):
        return (1, 0)  # kDLCPU

    def astype(self, format, **kwargs):
        """A float dtype dequantizes; a format re-quantizes the values into it.

        ``q.astype(np.float16)`` (a numpy dtype or scalar type) is ``q.dequantize(np.float16)``.
        ``q.astype("mxfp4_e2m1", **kw)`` (a format name or descriptor) is
        ``asarray(q.dequantize(), "mxfp4_e2m1", **kw)``; into its own format with the same
        granularity it is the identity (returns ``self``). Names are formats: ``"float16"`` is
        the float16 *format* (a QArray), ``np.float16`` the dtype (a numpy array).
        """
        if type(format).__module__.split(".")[0] == "torch":
            msg = (
                f"format must be a format or a numpy float dtype, got {format!r}; hint: "
                "torch.as_tensor(q).to(dtype)"
            )
            raise TypeError(msg)
        dt = _float_dtype(format)
        if dt is not None:
            if kwargs:
                msg = f"astype to dtype {dt} takes no keywords, got {sorted(kwargs)}"
                raise TypeError(msg)
            return self.dequantize(dt)
        return asarray(self, format, **kwargs)

    def __qemu_arrays_apply__(self, op, format, kwargs):
        """The façade's QArray protocol: ``qa.quantize(q, fmt, ...)`` is ``q.astype(fmt, ...)``
        (a QArray), ``qa.encode(q, fmt, ...)`` its codes and scales (the QArray's own in its
        own format), ``qa.decode(q, its format, dtype=...)`` its values."""
        from qemu_arrays.request import Op

        if op is Op.DECODE:
            return decode_qarray({**kwargs, "codes": self, "format": format})
        _check_keywords(op.value, kwargs)
        q = self.astype(format, **{k: kwargs[k] for k in _QARRAY_KEYS if kwargs.get(k) is not None})
        return q if op is Op.QUANTIZE else _encoded(q)

    # ---- indexing -------------------------------------------------------------------------------
    def _normalise_key(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is None for k in key):
            msg = "QArray indexing does not take None/np.newaxis; hint: q.dequantize()[key]"
            raise TypeError(msg)
        if sum(k is Ellipsis for k in key) > 1:
            msg = "an index can only have a single ellipsis ('...')"
            raise IndexError(msg)
        if any(k is Ellipsis for k in key):
            i = next(j for j, k in enumerate(key) if k is Ellipsis)
            fill = self.ndim - (len(key) - 1)
            key = key[:i] + (slice(None),) * fill + key[i + 1 :]
        for k in key:
            if not isinstance(k, (slice, numbers.Integral)) or isinstance(k, bool):
                msg = (
                    f"QArray supports basic indexing (ints and slices), got {k!r}; hint: "
                    "index the dequantized values, q.dequantize()[key]"
                )
                raise TypeError(msg)
        if len(key) > self.ndim:
            msg = f"too many indices for a QArray of {self.ndim} dimensions"
            raise IndexError(msg)
        return key + (slice(None),) * (self.ndim - len(key))

    def __getitem__(self, key):
        key = self._normalise_key(key)
        codes = self.codes[key]
        ax, bs, off = self._axis, self._block_size, self._block_offset
        scales, zps = self._scales, self._zero_points
        new_axis, new_bs, new_off = ax, bs, off
        if ax is not None:
            skey = []
            for d, k in enumerate(key):
                n = self._shape[d]
                if d == ax and bs is not None:
                    if isinstance(k, slice):
                        start, stop, step = k.indices(n)
                        if step != 1:
                            msg = (
                                "a strided slice along the block axis would mix blocks; hint: "
                                "q.dequantize()[key], or slice with step 1"
                            )
                            raise TypeError(msg)
                        stop = max(stop, start)
                        first = (off + start) // bs
                        last = (off + stop - 1) // bs + 1 if stop > start else first
                        skey.append(slice(first, last))
                        new_off = (off + start) % bs
                    else:
                        i = operator.index(k) % n
                        skey.append((off + i) // bs)
                elif scales.shape[d] == 1:
                    skey.append(slice(None) if isinstance(k, slice) else 0)
                else:
                    skey.append(k)
            skey = tuple(skey)
            scales = scales[skey]
            zps = None if zps is None else zps[skey]
            removed = sum(1 for k in key[:ax] if not isinstance(k, slice))
            if isinstance(key[ax], slice):
                new_axis = ax - removed
            elif bs is None:  # one channel left: a per-tensor scale
                scales = scales.reshape(())
                zps = None if zps is None else zps.reshape(())
                new_axis, new_bs, new_off = None, None, 0
            else:  # the block axis is gone: each element keeps its block's scale
                new_axis, new_bs, new_off = 0, 1, 0
        if codes.ndim == 0 and scales is not None:
            scales = np.asarray(scales).reshape(())
            zps = None if zps is None else np.asarray(zps).reshape(())
            new_axis, new_bs, new_off = None, None, 0
        return QArray(
            codes=codes, format=self._format, dtype=self._dtype, scales=scales,
            zero_points=zps, tensor_scale=self._tensor_scale, axis=new_axis,
            block_size=new_bs, block_offset=new_off, scale_format=self._scale_format,
        )  # fmt: skip

    # ---- shape operations: QArrays that keep the stored codes and scales -----------------------
    def _with(self, codes, scales, zero_points, axis, block_size, block_offset):
        return QArray(
            codes=codes, format=self._format, dtype=self._dtype, scales=scales,
            zero_points=zero_points, tensor_scale=self._tensor_scale, axis=axis,
            block_size=block_size, block_offset=block_offset, scale_format=self._scale_format,
        )  # fmt: skip

    def _granularity(self):
        if _is_block(self._format):
            if self._axis is None:
                return "one block scale"
            if self._block_size == self._format.block_size:
                return f"blocks of {self._block_size} along axis {self._axis}"
            return f"block scales in runs of {self._block_size} along axis {self._axis}"
        if self._scales is None:
            return "no scale"
        if self._axis is None:
            return "per-tensor scale"
        if self._block_size is None:
            return f"per-channel scales along axis {self._axis}"
        return f"groups of {self._block_size} along axis {self._axis}"

    @property
    def T(self):
        """The transpose (axes reversed), a QArray: the block axis moves with its scales."""
        return self.transpose()

    def transpose(self, *axes):
        """Permute the axes (default: reversed), a QArray; scales are permuted alike."""
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = () if axes[0] is None else tuple(axes[0])
        if not axes:
            axes = tuple(range(self.ndim))[::-1]
        if sorted(int(a) % max(self.ndim, 1) for a in axes) != list(range(self.ndim)) or any(
            not -self.ndim <= a < self.ndim for a in axes
        ):
            msg = f"axes must be a permutation of 0 ... {self.ndim - 1}, got {axes}"
            raise ValueError(msg)
        axes = tuple(int(a) % self.ndim for a in axes)
        codes = self.codes.transpose(axes)
        if self._axis is None:
            return self._with(codes, self._scales, self._zero_points, None, None, 0)
        zps = None if self._zero_points is None else self._zero_points.transpose(axes)
        return self._with(
            codes, self._scales.transpose(axes), zps, axes.index(self._axis), self._block_size,
            self._block_offset,
        )  # fmt: skip

    def reshape(self, *shape):
        """The same values in another shape, a QArray, where the scale layout allows it.

        Always for element formats and per-tensor scales. With an ``axis`` (per-channel scales,
        groups, blocks): when the new shape keeps that axis whole with the same number of
        elements before and after it, or (blocks and groups along the last axis, rows of whole
        blocks) when it regroups rows into rows of whole blocks (``(4, 64) -> (256,)`` for
        blocks of 32). Anything else would mix elements of different scales: ``ValueError``.
        """
        old = self._shape
        new = _resolve_shape(shape, self.size, old)
        codes = self.codes.reshape(new)
        ax, bs, off = self._axis, self._block_size, self._block_offset
        if ax is None:
            return self._with(codes, self._scales, self._zero_points, None, None, 0)
        before = int(np.prod(old[:ax], dtype=np.int64))
        after = int(np.prod(old[ax + 1 :], dtype=np.int64))
        n = old[ax]
        gshape = self._scales.shape
        groups = gshape[ax]
        full = old[:ax] + (groups,) + old[ax + 1 :]
        thin = all(g == 1 for d, g in enumerate(gshape) if d != ax)

        def regroup(a, shape_):  # group-shaped (possibly broadcast) -> shape_
            return None if a is None else np.broadcast_to(a, full).reshape(shape_)

        for j, d in enumerate(new):  # the axis kept whole
            if d == n and int(np.prod(new[:j], dtype=np.int64)) == before:
                if thin:
                    g = (1,) * j + (groups,) + (1,) * (len(new) - j - 1)
                    sc = self._scales.reshape(g)
                    zp = None if self._zero_points is None else self._zero_points.reshape(g)
                else:
                    g = new[:j] + (groups,) + new[j + 1 :]
                    sc, zp = regroup(self._scales, g), regroup(self._zero_points, g)
                return self._with(codes, sc, zp, j, bs, off)
        if bs is not None and after == 1 and off == 0 and n % bs == 0 and new:
            j = max((k for k, d in enumerate(new) if d != 1), default=len(new) - 1)
            if new[j] % bs == 0:
                g = new[:j] + (new[j] // bs,) + new[j + 1 :]
                sc, zp = regroup(self._scales, g), regroup(self._zero_points, g)
                return self._with(codes, sc, zp, j, bs, 0)
        msg = (
            f"cannot reshape a QArray of shape {old} with {self._granularity()} into {new}: it "
            f"would mix elements of different scales; allowed: shapes that keep axis {ax} "
            f"(length {n}) whole with {before} element(s) before it and {after} after it"
        )
        if bs is not None and after == 1:
            msg += f", or rows of whole blocks of {bs} along the last axis"
        msg += "; hint: q.dequantize().reshape(...) for the values, or quantize them again"
        raise ValueError(msg)

    # ---- reductions: numpy's on the dequantized values ------------------------------------------
    def sum(self, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
        """``np.sum`` of the dequantized values (numpy arguments)."""
        return np.sum(self.dequantize(), axis=axis, dtype=dtype, out=out, keepdims=keepdims,
                      **kwargs)  # fmt: skip

    def mean(self, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
        """``np.mean`` of the dequantized values (numpy arguments)."""
        return np.mean(self.dequantize(), axis=axis, dtype=dtype, out=out, keepdims=keepdims,
                       **kwargs)  # fmt: skip

    def max(self, axis=None, out=None, keepdims=False, **kwargs):
        """``np.max`` of the dequantized values (numpy arguments)."""
        return np.max(self.dequantize(), axis=axis, out=out, keepdims=keepdims, **kwargs)

    def min(self, axis=None, out=None, keepdims=False, **kwargs):
        """``np.min`` of the dequantized values (numpy arguments)."""
        return np.min(self.dequantize(), axis=axis, out=out, keepdims=keepdims, **kwargs)

    def any(self, axis=None, out=None, keepdims=False, **kwargs):
        """``np.any`` of the dequantized values (numpy arguments)."""
        return np.any(self.dequantize(), axis=axis, out=out, keepdims=keepdims, **kwargs)

    def all(self, axis=None, out=None, keepdims=False, **kwargs):
        """``np.all`` of the dequantized values (numpy arguments)."""
        return np.all(self.dequantize(), axis=axis, out=out, keepdims=keepdims, **kwargs)

    # ---- arithmetic: dequantize, compute, return plain arrays ----------------------------------
    def _operand(self, other):
        if isinstance(other, QArray):
            return other.dequantize(), np
        if isinstance(other, (np.ndarray, np.generic, numbers.Number, list, tuple)):
            return other, np
        try:
            import array_api_compat
        except ImportError:  # pragma: no cover - a declared dependency
            return other, np
        try:
            xp = array_api_compat.array_namespace(other)
        except TypeError:
            return None, None  # not an array: NotImplemented
        return other, xp

    def _binop(self, other, op, reflected=False):
        o, xp = self._operand(other)
        if xp is None:
            return NotImplemented
        mine = self.dequantize()
        if xp is not np:
            mine = xp.asarray(mine)
        return op(o, mine) if reflected else op(mine, o)

    def __add__(self, o):
        return self._binop(o, operator.add)

    def __radd__(self, o):
        return self._binop(o, operator.add, True)

    def __sub__(self, o):
        return self._binop(o, operator.sub)

    def __rsub__(self, o):
        return self._binop(o, operator.sub, True)

    def __mul__(self, o):
        return self._binop(o, operator.mul)

    def __rmul__(self, o):
        return self._binop(o, operator.mul, True)

    def __truediv__(self, o):
        return self._binop(o, operator.truediv)

    def __rtruediv__(self, o):
        return self._binop(o, operator.truediv, True)

    def __pow__(self, o):
        return self._binop(o, operator.pow)

    def __matmul__(self, o):
        return self._binop(o, operator.matmul)

    def __rmatmul__(self, o):
        return self._binop(o, operator.matmul, True)

    def __rpow__(self, o):
        return self._binop(o, operator.pow, True)

    # comparisons are elementwise on the values, as numpy's (arrays of bool, not identity)
    def __eq__(self, o):
        return self._binop(o, operator.eq)

    def __ne__(self, o):
        return self._binop(o, operator.ne)

    def __lt__(self, o):
        return self._binop(o, operator.lt)

    def __le__(self, o):
        return self._binop(o, operator.le)

    def __gt__(self, o):
        return self._binop(o, operator.gt)

    def __ge__(self, o):
        return self._binop(o, operator.ge)

    def __neg__(self):
        return -self.dequantize()

    def __abs__(self):
        return np.abs(self.dequantize())

    # ---- repr and files -------------------------------------------------------------------------
    def __repr__(self):
        fmt = self._format
        gran = self._granularity()
        vals = np.array2string(
            self.dequantize(), threshold=8, edgeitems=2, precision=4, prefix="       values="
        )
        return (
            f"QArray(format={fmt.name}, shape={self._shape}, dtype={self._dtype}, "
            f"nbytes={self.nbytes}, {gran},\n       values={vals})"
        )

    def save(self, file):
        """Write to a ``.npz`` file (plain arrays and a JSON header; loads without pickle)."""
        meta = {
            "format": _fmt_to_dict(self._format), "shape": list(self._shape),
            "dtype": str(self._dtype), "axis": self._axis, "block_size": self._block_size,
            "block_offset": self._block_offset,
            "tensor_scale": None if self._tensor_scale is None else float(self._tensor_scale),
            "scale_format": None if self._scale_format is None
            else _fmt_to_dict(self._scale_format),
        }  # fmt: skip
        arrays = {"packed": self._packed, "meta": np.array(json.dumps(meta))}
        if self._scales is not None:
            arrays["scales"] = self._scales
        if self._zero_points is not None:
            arrays["zero_points"] = self._zero_points
        np.savez(file, **arrays)

    @classmethod
    def _from_parts(cls, packed, meta, scales, zero_points):
        fmt = _fmt_from_dict(meta["format"])
        shape = tuple(meta["shape"])
        size = int(np.prod(shape, dtype=np.int64))
        if fmt.bits < 8:
            from qemu_arrays.packing import unpack

            codes = unpack(packed, fmt.bits, size).reshape(shape)
        else:
            codes = packed.reshape(shape)
        import ml_dtypes  # noqa: F401  (registers the bfloat16 dtype name)

        dtype = np.dtype(ml_dtypes.bfloat16) if meta["dtype"] == "bfloat16" else meta["dtype"]
        sf = meta["scale_format"]
        return cls(
            codes=codes, format=fmt, dtype=dtype, scales=scales, zero_points=zero_points,
            tensor_scale=meta["tensor_scale"], axis=meta["axis"], block_size=meta["block_size"],
            block_offset=meta["block_offset"], scale_format=None if sf is None else _fmt_from_dict(sf),
        )  # fmt: skip


def _encoded(q):
    """What ``encode`` returns for ``q``'s values in ``q.format``: bare codes for element
    formats, an ``Encoded`` (codes, scales, ...) for integer and block formats."""
    fmt = q.format
    if q._scales is None:
        return q.codes
    from qemu_arrays.encoded import Encoded

    canonical = q._block_offset == 0 and (
        not _is_block(fmt) or (q._axis is not None and q._block_size == fmt.block_size)
    )
    if not canonical:
        msg = (
            f"this QArray was cut inside its blocks ({q._granularity()}, offset "
            f"{q._block_offset} into the first), which an Encoded tuple cannot describe; hint: "
            "q.codes and q.scales hold its storage, or encode the values again: "
            f"qa.encode(q.dequantize(), {fmt.name!r})"
        )
        raise ValueError(msg)
    return Encoded(q.codes, q._scales, q._zero_points, q._tensor_scale, q._axis, q._block_size)


_QARRAY_KEYS = ("axis", "block_size", "scale", "zero_point", "scale_format", "symmetric",
                "percentile", "rounding", "seed", "stream", "random_bits")  # fmt: skip
_DEFAULTS = {"overflow": "OWN", "offset": 0, "via_float32": False, "out": None}


def _check_keywords(op, kw):
    from qemu_arrays.formats.enums import Overflow
    from qemu_arrays.validation import check_enum

    if "overflow" in kw:
        check_enum("overflow", kw["overflow"], Overflow)
    odd = [
        k for k, default in _DEFAULTS.items()
        if k in kw and (kw[k] != default if k != "overflow" else kw[k].name != default)
    ]  # fmt: skip
    if odd:
        msg = (
            f"{op} of a QArray takes the QArray keywords only ({', '.join(_QARRAY_KEYS)}), got "
            f"{odd}; hint: q.dequantize() gives a plain array to {op} with every option"
        )
        raise ValueError(msg)


def decode_qarray(kw):
    """``qa.decode(q, format, dtype=...)`` of a QArray: its values, ``q.dequantize(dtype)``."""
    from qemu_arrays.formats.catalog import get_format

    q = kw["codes"]
    fmt = get_format(kw["format"])
    if fmt != q.format:
        msg = (
            f"codes is a QArray in format {q.format.name!r}, it cannot be decoded as "
            f"{fmt.name!r}; hint: qa.decode(q, {q.format.name!r}) or q.dequantize(), and "
            f"q.astype({fmt.name!r}) to re-quantize"
        )
        raise ValueError(msg)
    extra = sorted(k for k in ("scale", "zero_point", "axis", "block_size", "tensor_scale")
                   if kw.get(k) is not None)  # fmt: skip
    if extra:
        msg = f"decode of a QArray takes dtype= only (it holds its scales), got {extra}"
        raise ValueError(msg)
    dtype = kw.get("dtype", np.float32)
    return q.dequantize(np.float32 if dtype is None else dtype)


def load(file) -> QArray:
    """Read a QArray written by :meth:`QArray.save` (``allow_pickle=False``)."""
    with np.load(file, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        scales = z["scales"] if "scales" in z.files else None
        zps = z["zero_points"] if "zero_points" in z.files else None
        return QArray._from_parts(z["packed"], meta, scales, zps)


def asarray(
    x, format, *, axis=None, block_size=None, scale=None, zero_point=None, scale_format=None,
    symmetric=True, percentile=99.9, rounding=Rounding.NEAREST_EVEN, seed=None, stream=0,
    random_bits=None,
):  # fmt: skip
    """Quantize ``x`` into ``format`` and keep codes and scales: a :class:`QArray`.

    Element formats store codes only; integer formats need ``scale`` (a number, an array or a
    rule, default ``"absmax"``) with ``axis``/``block_size`` granularity; block formats store
    element and block-scale codes (and NVFP4's tensor scale). A QArray already in ``format``
    with the same granularity is returned unchanged (quantizing it again is the identity).
    """
    from qemu_arrays import api, scales
    from qemu_arrays.formats.catalog import get_format

    fmt = get_format(format)
    if isinstance(x, QArray):
        same = (
            x.format == fmt
            and (axis is None or axis == x.axis)
            and (block_size is None or block_size == x.block_size or _is_block(fmt))
            and scale is None
        )
        if same:
            return x
        x = x.dequantize()
    arr = np.asarray(x) if not isinstance(x, np.ndarray) else x
    if arr.dtype.kind in "iub":
        arr = arr.astype(np.float32)
    kw = {"rounding": rounding, "seed": seed, "stream": stream, "random_bits": random_bits}
    if _is_block(fmt):
        enc = api.encode(arr, fmt, axis=axis, scale=scale, **kw)
        return QArray(codes=enc.codes, format=fmt, dtype=arr.dtype, scales=enc.scales,
                      tensor_scale=enc.tensor_scale, axis=enc.axis,
                      block_size=enc.block_size)  # fmt: skip
    if isinstance(fmt, IntFormat):
        scale = "absmax" if scale is None else scale
        work = arr.astype(np.float32) if arr.dtype.itemsize == 2 else arr
        sg, zg, g_axis, g_bs = scales.group_scales(
            work, fmt, scale, zero_point, arr.shape, axis=axis, block_size=block_size,
            scale_format=scale_format, symmetric=symmetric, percentile=percentile,
        )  # fmt: skip
        codes = api.encode(arr, fmt, scale=sg, zero_point=zg, axis=g_axis, block_size=g_bs, **kw)
        if not isinstance(codes, np.ndarray):
            codes = codes.codes
        sfmt = None if scale_format is None else get_format(scale_format)
        return QArray(codes=codes, format=fmt, dtype=arr.dtype, scales=sg, zero_points=zg,
                      axis=g_axis, block_size=g_bs, scale_format=sfmt)  # fmt: skip
    if any(v is not None for v in (axis, block_size, scale, zero_point, scale_format)):
        msg = (
            f"axis/block_size/scale apply to integer and block formats; {fmt.name!r} is an "
            "element float format"
        )
        raise ValueError(msg)
    codes = api.encode(arr, fmt, **kw)
    return QArray(codes=codes, format=fmt, dtype=arr.dtype)
