"""``QArray``: codes and scales in their true storage size, behaving as an array.

A QArray holds the packed element codes (two FP4/INT4 per byte, four FP6 in three bytes, see
:mod:`qemu_arrays.packing`), the scales (block scale codes, or integer scales and zero points
per tensor/channel/group) and the format. Reading it as an array (``np.asarray(q)``,
arithmetic) dequantizes to a compute dtype; arithmetic returns plain arrays. See docs/qarray.md.
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
    return getattr(fmt, "kind", "") == "block"


def _word(bits):
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if bits <= 8 * np.dtype(dt).itemsize:
            return np.dtype(dt)
    msg = f"formats of more than 64 bits are not supported, got {bits}"
    raise ValueError(msg)


class QArray:
    """A quantized array: packed codes + scales + format. Build one with :func:`asarray`.

    Attributes: ``format``, ``shape``, ``dtype`` (of the values), ``ndim``, ``size``, ``nbytes``
    (true storage: packed code bits, scales in their format, zero points, tensor scale),
    ``codes`` (unpacked, shape ``shape``), ``scales``, ``zero_points``, ``tensor_scale``,
    ``axis``, ``block_size``.
    """

    __array_priority__ = 1000  # numpy defers to our reflected operators

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
        return rep[sl]

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
        return np

    def astype(self, format, **kwargs):
        """Re-quantize the values into another format (``asarray(self.dequantize(), format)``).

        Into its own format with the same granularity it is the identity (returns ``self``).
        """
        return asarray(self, format, **kwargs)

    def __qemu_arrays_apply__(self, op, format, kwargs):
        """``qa.quantize(q, fmt, ...)`` is ``q.astype(fmt, ...)`` (a QArray); ``qa.encode(q,
        fmt, ...)`` encodes the values ``q`` holds (the façade's QArray protocol)."""
        from qemu_arrays import api
        from qemu_arrays.formats.spec import Overflow
        from qemu_arrays.request import Op

        if op is Op.ENCODE:
            return api.encode(self.dequantize(), format, **kwargs)
        defaults = (("overflow", Overflow.OWN), ("offset", 0), ("via_float32", False))
        odd = [k for k, d in defaults if kwargs.get(k, d) != d]
        if kwargs.get("out") is not None or odd:
            msg = (
                f"quantize of a QArray takes the QArray keywords only, got {odd or ['out']}; "
                "hint: q.dequantize() gives a plain array to quantize with every option"
            )
            raise ValueError(msg)
        keys = ("axis", "block_size", "scale", "zero_point", "scale_format", "symmetric",
                "percentile", "rounding", "seed", "stream", "random_bits")  # fmt: skip
        return self.astype(format, **{k: kwargs[k] for k in keys if kwargs.get(k) is not None})

    def __qemu_arrays_operand__(self):
        """``(format, Encoded)``: the stored codes and scales, for operations that apply the
        scales as the hardware does (``qemu_arrays.matmul``: the MX block dot product)."""
        from qemu_arrays.encoded import Encoded

        if self._block_offset:
            msg = (
                "this QArray was sliced inside a block (its first block is partial), which "
                "matmul cannot align with the other operand's blocks; hint: q.dequantize(), or "
                "slice at block boundaries"
            )
            raise ValueError(msg)
        enc = Encoded(self.codes, self._scales, self._zero_points, self._tensor_scale,
                      self._axis, self._block_size)  # fmt: skip
        return self._format, enc

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
        xp = array_api_compat.array_namespace(other)
        return other, xp

    def _binop(self, other, op, reflected=False):
        o, xp = self._operand(other)
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

    def __neg__(self):
        return -self.dequantize()

    def __abs__(self):
        return np.abs(self.dequantize())

    # ---- repr and files -------------------------------------------------------------------------
    def __repr__(self):
        fmt = self._format
        if _is_block(fmt):
            gran = f"blocks of {fmt.block_size} along axis {self._axis}"
        elif self._scales is None:
            gran = "no scale"
        elif self._axis is None:
            gran = "per-tensor scale"
        elif self._block_size is None:
            gran = f"per-channel scales along axis {self._axis}"
        else:
            gran = f"groups of {self._block_size} along axis {self._axis}"
        vals = np.array2string(self.dequantize(), threshold=8, edgeitems=2, precision=4)
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
