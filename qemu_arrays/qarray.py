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
import math
import numbers
import operator
import os

import ml_dtypes
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
_DTYPES = {
    "float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float32": np.dtype(np.float32), "float64": np.dtype(np.float64),
}  # fmt: skip


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
            msg = (
                f"shape must hold non-negative ints (and at most one -1), got {shape!r}; hint: "
                "q.reshape(2, -1)"
            )
            raise TypeError(msg) if not isinstance(d, numbers.Integral) else ValueError(msg)
    shape = tuple(int(d) for d in shape)
    if shape.count(-1) > 1:
        msg = f"shape can have at most one -1, got {shape}; hint: q.reshape(2, -1)"
        raise ValueError(msg)
    known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
    if -1 in shape:
        if known == 0 or size % known:
            msg = (
                f"cannot reshape a QArray of shape {old} (size {size}) into {shape}: the new shape "
                f"must hold {size} elements; hint: q.reshape(-1)"
            )
            raise ValueError(msg)
        shape = tuple(size // known if d == -1 else d for d in shape)
    elif known != size:
        msg = (
            f"cannot reshape a QArray of shape {old} (size {size}) into {shape}: the new shape "
            f"must hold {size} elements; hint: q.reshape(-1)"
        )
        raise ValueError(msg)
    return shape


# ---- files: reading without trusting them ---------------------------------------------------

_FILE_VERSION = 1
_MEMBERS = ("packed", "meta", "scales", "zero_points")
_META_KEYS = {"format", "shape", "dtype", "axis", "block_size", "block_offset", "tensor_scale",
              "scale_format"}  # fmt: skip
_FMT_KEYS = {
    "float": {"type", "exponent_bits", "mantissa_bits", "bias", "signed", "subnormals",
              "has_zero", "specials", "name"},
    "int": {"type", "bits", "signed", "narrow_range", "name"},
    "block": {"type", "element", "scale", "block_size", "scale_rule", "tensor_scale",
              "element_fraction_bits", "name"},
}  # fmt: skip


def _check_file(file, op):
    ok = isinstance(file, (str, os.PathLike)) or (
        hasattr(file, "write" if op == "save" else "read") and hasattr(file, "seek")
    )
    if not ok:
        msg = (
            f"file must be a path (str or os.PathLike) or a binary file object, got {file!r} "
            f"({type(file).__name__}); hint: {op}('weights.qa')"
        )
        raise TypeError(msg)


def _damaged(why):
    msg = (
        f"not a valid QArray file: {why}; hint: QArray files are written by QArray.save and "
        "read back unchanged (a damaged or hand-made file is refused, never half read)"
    )
    raise ValueError(msg)


def _read_npz(file) -> dict:
    """The members of a QArray archive as NumPy arrays, each header checked against the
    member's size before any data is read (no allocation from a forged shape, no pickle)."""
    import zipfile

    try:
        zf = zipfile.ZipFile(file)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        kind = _sniff(file)
        _damaged(f"it is {kind}, not the .npz archive QArray.save writes ({e})")
    with zf:
        names = zf.namelist()
        allowed = {f"{m}.npy" for m in _MEMBERS}
        if len(set(names)) != len(names) or not set(names) <= allowed:
            _damaged(f"the archive holds {sorted(names)}, a QArray file holds {sorted(allowed)}")
        for need in ("packed.npy", "meta.npy"):
            if need not in names:
                _damaged(f"the archive has no {need!r} member (a QArray file's {need[:-4]})")
        out = {}
        for name in names:
            try:
                out[name[:-4]] = _read_member(zf, zf.getinfo(name))
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, TypeError) as e:
                _damaged(f"member {name!r}: {e}")
    return out


def _sniff(file) -> str:
    """What a file that is not a zip archive looks like, for the error message."""
    head = b""
    try:
        if isinstance(file, (str, os.PathLike)):
            with open(file, "rb") as f:
                head = f.read(8)
        elif hasattr(file, "seek") and hasattr(file, "read"):
            file.seek(0)
            head = file.read(8)
    except OSError:
        pass
    if head.startswith(b"\x93NUMPY"):
        return "a .npy array (hint: np.load reads it; qa.asarray(x, fmt) makes a QArray)"
    if head.startswith(b"PK"):
        return "a zip archive that is damaged or truncated"
    if head[:1] == b"\x80":
        return "a pickle (which is never loaded)"
    if not head:
        return "empty"
    return "an unknown kind of file"


def _read_member(zf, info):
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            msg = f"unsupported .npy version {version}"
            raise ValueError(msg)
        if dtype.hasobject or dtype.kind not in "iufU" or dtype.fields is not None:
            msg = f"dtype {dtype} is not a plain numeric or text dtype (objects are never loaded)"
            raise ValueError(msg)
        nbytes = math.prod(shape) * dtype.itemsize
        if f.tell() + nbytes != info.file_size:
            msg = (
                f"its header declares shape {shape} of {dtype} ({nbytes} bytes), the member "
                f"holds {info.file_size - f.tell()}"
            )
            raise ValueError(msg)
        data = f.read(nbytes)
        f.read()  # to the end: the zip's CRC check
    if len(data) != nbytes:
        msg = f"truncated: {len(data)} of {nbytes} bytes"
        raise ValueError(msg)
    arr = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return arr.astype(dtype.newbyteorder("="))  # a writeable copy in native byte order


def _meta_json(arr):
    if arr.dtype.kind != "U" or arr.ndim != 0:
        _damaged(f"'meta' is an array of dtype {arr.dtype} and shape {arr.shape}, not a string")

    def refuse(token):
        msg = f"non-finite number {token}"
        raise ValueError(msg)

    def finite(token):
        v = float(token)
        if not math.isfinite(v):
            refuse(token)
        return v

    try:
        return json.loads(str(arr[()]), parse_constant=refuse, parse_float=finite)
    except ValueError as e:
        _damaged(f"'meta' is not valid JSON ({e})")


def _opt_int(meta, key):
    v = meta[key]
    if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
        _damaged(f"metadata {key!r} is {v!r}, must be an int or null")
    return v


def _check_meta(meta):
    """The metadata dict, its version, keys and value types checked."""
    if not isinstance(meta, dict):
        _damaged(f"the metadata is a {type(meta).__name__}, not a JSON object")
    version = meta.get("version", 1)  # files written before the version key are version 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        _damaged(f"metadata version {version!r} is not a positive int")
    if version > _FILE_VERSION:
        msg = (
            f"the file's metadata version is {version}, this qemu_arrays reads version "
            f"{_FILE_VERSION}; hint: upgrade qemu_arrays to read it"
        )
        raise ValueError(msg)
    keys = set(meta) - {"version"}
    if keys != _META_KEYS:
        missing, extra = sorted(_META_KEYS - keys), sorted(keys - _META_KEYS)
        _damaged(f"metadata keys missing {missing}, unknown {extra}")
    shape = meta["shape"]
    if (
        not isinstance(shape, list)
        or len(shape) > 32
        or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape)
    ):
        _damaged(f"metadata shape {shape!r} is not a list of non-negative ints")
    if meta["dtype"] not in _DTYPES:
        _damaged(f"metadata dtype {meta['dtype']!r} is not one of {sorted(_DTYPES)}")
    for key in ("axis", "block_size", "block_offset"):
        _opt_int(meta, key)
    if meta["block_offset"] is None:
        _damaged("metadata block_offset is null, must be an int")
    ts = meta["tensor_scale"]
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, (int, float))):
        _damaged(f"metadata tensor_scale is {ts!r}, must be a number or null")
    for key in ("format", "scale_format"):
        if not (meta[key] is None and key == "scale_format") and not isinstance(meta[key], dict):
            _damaged(f"metadata {key!r} is {meta[key]!r}, must be a JSON object")
    return meta


def _fmt_from_dict(d, where="format"):
    """A format descriptor from its metadata dict, keys and types checked (ValueError)."""
    from qemu_arrays.formats.block_spec import BlockFormat, ScaleRule

    if not isinstance(d, dict) or d.get("type") not in _FMT_KEYS:
        _damaged(f"metadata {where} {d!r} is not a format (type float, int or block)")
    kind = d["type"]
    if set(d) != _FMT_KEYS[kind]:
        _damaged(
            f"metadata {where} has keys {sorted(d)}, a {kind} format {sorted(_FMT_KEYS[kind])}"
        )
    kw = {k: v for k, v in d.items() if k != "type"}
    if not isinstance(kw["name"], str):
        _damaged(f"metadata {where}: name {kw['name']!r} is not a string")
    if kind == "float":
        if kw["specials"] not in Specials.__members__:
            _damaged(f"metadata {where}: specials {kw['specials']!r} is not a Specials name")
        kw["specials"] = Specials[kw["specials"]]
        build = FloatFormat
    elif kind == "int":
        build = IntFormat
    else:
        if kw["scale_rule"] not in ScaleRule.__members__:
            _damaged(f"metadata {where}: scale_rule {kw['scale_rule']!r} is not a ScaleRule name")
        kw["element"] = _fmt_from_dict(kw["element"], where + ".element")
        kw["scale"] = _fmt_from_dict(kw["scale"], where + ".scale")
        kw["scale_rule"] = ScaleRule[kw["scale_rule"]]
        build = BlockFormat
    try:
        return build(**kw)
    except (TypeError, ValueError) as e:
        _damaged(f"metadata {where}: {e}")


def _int_arg(name, v, lo=None):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        msg = f"{name} must be an int, got {v!r} ({type(v).__name__}); hint: as encode gives it"
        raise TypeError(msg)
    if lo is not None and v < lo:
        msg = f"{name} must be >= {lo}, got {v}; hint: as encode gives it"
        raise ValueError(msg)
    return int(v)


def _check_parts(codes, fmt, dtype, scales, zero_points, tensor_scale, axis, block_size,
                 block_offset, scale_format, encoded=False):  # fmt: skip
    """The parts of a QArray checked against each other and normalised (copies of arrays):
    ``(codes, format, dtype, scales, zero points, tensor scale, axis, block size, block offset,
    scale format)``. Whatever builds a QArray (``asarray``, indexing, ``load``) passes here, so
    that no QArray holds codes its format does not have or scales that do not fit its codes.
    ``encoded``: the codes are ``encode``'s own result for this format (``asarray``), in range
    by construction: their range scans are skipped (every other part is checked)."""
    from qemu_arrays.formats.catalog import get_format
    from qemu_arrays.validation import (
        check_axis,
        check_codes,
        check_float_dtype,
        check_tensor_scale,
        check_zero_point,
    )

    fmt = get_format(fmt)
    codes = np.asarray(codes) if encoded else check_codes(codes, fmt.bits, repr(fmt.name))
    element = fmt.element if _is_block(fmt) else fmt
    narrow = isinstance(element, IntFormat) and element.narrow_range and not encoded
    if narrow and codes.size and np.any(codes == 1 << (element.bits - 1)):
        msg = (
            f"codes hold {1 << (element.bits - 1)}, which the narrow-range {element.name} "
            "does not use: they must lie in its range; hint: codes come from qemu_arrays.encode"
        )
        raise ValueError(msg)
    dtype = check_float_dtype(dtype)
    offset = _int_arg("block_offset", block_offset, 0)
    given = {"scales": scales, "zero_points": zero_points, "tensor_scale": tensor_scale,
             "axis": axis, "block_size": block_size, "scale_format": scale_format}  # fmt: skip
    if isinstance(fmt, FloatFormat) and scales is None:
        extra = [k for k, v in given.items() if v is not None] + (
            ["block_offset"] if offset else []
        )
        if extra:
            msg = (
                f"{', '.join(extra)} do not apply to the element format {fmt.name!r} without "
                "scales=: its codes are the values; hint: QArray(codes=..., format=...), "
                "qa.asarray(x, format), or scales= for a scaled float format"
            )
            raise ValueError(msg)
        return codes, fmt, dtype, None, None, None, None, None, 0, None
    if isinstance(fmt, FloatFormat):  # a scaled float format: value(c) * s, no zero point
        extra = [k for k in ("zero_points", "tensor_scale") if given[k] is not None]
        if extra:
            msg = (
                f"{', '.join(extra)} do not apply to the scaled float format {fmt.name!r}: the "
                "value of code c is value(c) * scale; hint: leave them out"
            )
            raise ValueError(msg)
    block = _is_block(fmt)
    if scales is None:
        what = "the block scale codes" if block else "the integer scales"
        msg = f"format {fmt.name!r} needs scales= ({what}); hint: qa.asarray(x, {fmt.name!r})"
        raise ValueError(msg)
    if block:
        for k in ("zero_points", "scale_format"):
            if given[k] is not None:
                msg = f"{k} does not apply to the block format {fmt.name!r}"
                raise ValueError(msg)
        sc = np.array(check_codes(scales, fmt.scale.bits, fmt.scale.name, "scales"))
        if fmt.tensor_scale:
            if tensor_scale is None:
                msg = (
                    f"the two-level format {fmt.name!r} needs tensor_scale= (the float32 "
                    "per-tensor scale); hint: qa.asarray(x, fmt) computes it"
                )
                raise ValueError(msg)
            tensor_scale = check_tensor_scale(tensor_scale, "tensor_scale")
        elif tensor_scale is not None:
            msg = f"tensor_scale does not apply to {fmt.name!r} (it has no per-tensor scale)"
            raise ValueError(msg)
        zp = None
        sfmt = None
    else:
        if tensor_scale is not None:
            msg = f"tensor_scale applies to two-level block formats, not {fmt.name!r}"
            raise ValueError(msg)
        sc = np.array(scales)
        if sc.dtype.kind not in "fiu" or sc.dtype.kind == "b":
            msg = f"scales must be an array of positive numbers, got dtype {sc.dtype}"
            raise TypeError(msg)
        sc = sc.astype(np.float64)
        if sc.size and not (np.all(np.isfinite(sc)) and np.all(sc > 0)):
            bad = sc[~(np.isfinite(sc) & (sc > 0))].flat[0]
            msg = f"scales must be finite and > 0, got {bad!r}; hint: scales come from encode"
            raise ValueError(msg)
        sfmt = None if scale_format is None else get_format(scale_format)
        if sfmt is not None:
            if not isinstance(sfmt, FloatFormat):
                msg = f"scale_format must be a float format, got {sfmt.name!r}"
                raise ValueError(msg)
            from qemu_arrays.scales import round_scale

            if sc.size and not np.array_equal(round_scale(sc, sfmt), sc):
                msg = (
                    f"scales must hold values of the scale_format {sfmt.name!r}, and some are not; "
                    "hint: scales come from encode with that scale_format"
                )
                raise ValueError(msg)
        zp = None if zero_points is None else np.array(check_zero_point(zero_points, fmt))
        if zp is not None and zp.shape != sc.shape and zp.size != 1:
            msg = (
                f"zero_points of shape {zp.shape} do not match scales of shape {sc.shape}; hint: "
                "one zero point per scale"
            )
            raise ValueError(msg)
    ndim = codes.ndim
    if axis is None:
        if block_size is not None or offset:
            msg = "block_size/block_offset need an axis"
            raise ValueError(msg)
        if sc.size != 1:
            msg = (
                f"scales of shape {sc.shape} need an axis (one scale per tensor is a single "
                "value); hint: pass axis= with per-channel or per-group scales"
            )
            raise ValueError(msg)
        sc = sc.reshape(())
        zp = None if zp is None else zp.reshape(())
        return codes, fmt, dtype, sc, zp, tensor_scale, None, None, 0, sfmt
    axis = check_axis(_int_arg("axis", axis), max(ndim, 1)) if ndim else None
    if axis is None:
        msg = "axis applies to QArrays of at least one dimension; hint: axis=None"
        raise ValueError(msg)
    bs = None if block_size is None else _int_arg("block_size", block_size, 1)
    if bs is None and offset:
        msg = "block_offset needs a block_size"
        raise ValueError(msg)
    if bs is not None and offset >= bs:
        msg = (
            f"block_offset must be in [0, block_size) = [0, {bs}), got {offset}; hint: the "
            "offset of the first element into its block"
        )
        raise ValueError(msg)
    if sc.ndim == 0 and not block:  # one scale: per tensor whatever the axis
        return codes, fmt, dtype, sc, zp, tensor_scale, None, None, 0, sfmt
    n = codes.shape[axis]
    groups = (n if bs is None else -(-(offset + n) // bs)) if n else 0
    if bs is None and n == 0:
        groups = sc.shape[axis] if sc.ndim == ndim and sc.shape[axis] in (0, 1) else 0
    want = []
    ok = sc.ndim == ndim
    for d in range(ndim):
        if d == axis:
            allowed = (groups,)  # one scale per channel or group: never broadcast along it
        elif bs is not None:  # groups and blocks: one scale per group of every row
            allowed = (codes.shape[d],)
        else:  # per channel: one scale per index along the axis, 1 (or each) elsewhere
            allowed = (codes.shape[d], 1)
        want.append(allowed[0])
        ok = ok and sc.shape[d] in allowed
    if not ok:
        msg = (
            f"scales of shape {sc.shape} do not fit codes of shape {codes.shape} with axis={axis}"
            f", block_size={bs}, block_offset={offset}: expected {tuple(want)}"
            + ("" if bs is not None else " (dimensions other than the axis may be 1)")
            + "; hint: scales come from encode"
        )
        raise ValueError(msg)
    if zp is not None and zp.size == 1 and zp.shape != sc.shape:
        zp = np.broadcast_to(zp.reshape(()), sc.shape).copy()
    return codes, fmt, dtype, sc, zp, tensor_scale, axis, bs, offset, sfmt


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
        parts = _check_parts(
            codes, format, dtype, scales, zero_points, tensor_scale, axis, block_size,
            block_offset, scale_format,
        )  # fmt: skip
        self._set(parts, encoded=False)

    @classmethod
    def _from_encoded(cls, codes, format, dtype, **parts):
        """``asarray``'s QArray of the codes ``encode`` just returned (a new array no one else
        holds, every code in range by construction): the range scans are skipped, and codes of
        8 bits and more are kept rather than copied when already in their storage dtype."""
        self = cls.__new__(cls)
        keys = ("scales", "zero_points", "tensor_scale", "axis", "block_size")
        args = [parts.get(k) for k in keys] + [0, parts.get("scale_format")]
        self._set(_check_parts(codes, format, dtype, *args, encoded=True), encoded=True)
        return self

    def _set(self, parts, encoded):
        codes, format, dtype, scales, zero_points, tensor_scale = parts[:6]
        self._format = format
        self._shape = codes.shape
        self._dtype = dtype
        bits = format.bits
        if bits < 8:
            from qemu_arrays.packing import pack

            self._packed = pack(codes, bits, check=not encoded)
        else:
            word = _word(bits)
            own = encoded and codes.dtype == word and codes.flags.c_contiguous
            self._packed = (codes if own else np.array(codes, dtype=word, order="C")).reshape(-1)
        self._scales = scales
        self._zero_points = zero_points
        self._tensor_scale = tensor_scale
        self._axis, self._block_size, self._block_offset, self._scale_format = parts[6:]
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
            "a QArray is immutable (its codes and scales are stored packed), it only reads; "
            "hint: quantize new "
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
        elif self._scales is not None:  # a scaled float format: value(c) * s, as quantize
            from qemu_arrays.api import decode

            sc = self._per_element(self._scales)
            return np.asarray(decode(codes, fmt, dtype=dtype, scale=np.ascontiguousarray(sc)))
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
                msg = (
                    f"astype to dtype {dt} takes no keywords, got {sorted(kwargs)}; hint: "
                    "q.astype(dtype) alone, keywords only with a format"
                )
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
                    f"QArray index must use basic indexing (ints and slices only), got {k!r}; hint: "
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
            msg = (
                f"axes must be a permutation of 0 ... {self.ndim - 1}, got {axes}; hint: "
                "q.transpose() reverses them"
            )
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
        """Write to ``file`` (a path, written under exactly that name, or a binary file object):
        a ``.npz`` archive of plain arrays and a JSON header (version 1), read back by
        :func:`load` without pickle."""
        meta = {
            "version": _FILE_VERSION, "format": _fmt_to_dict(self._format),
            "shape": list(self._shape), "dtype": self._dtype.name, "axis": self._axis,
            "block_size": self._block_size, "block_offset": self._block_offset,
            "tensor_scale": None if self._tensor_scale is None else float(self._tensor_scale),
            "scale_format": None if self._scale_format is None
            else _fmt_to_dict(self._scale_format),
        }  # fmt: skip
        arrays = {"packed": self._packed, "meta": np.array(json.dumps(meta))}
        if self._scales is not None:
            arrays["scales"] = self._scales
        if self._zero_points is not None:
            arrays["zero_points"] = self._zero_points
        _check_file(file, "save")
        if isinstance(file, (str, os.PathLike)):
            with open(file, "wb") as f:  # np.savez would append ".npz" to the name
                np.savez(f, **arrays)
        else:
            np.savez(file, **arrays)

    @classmethod
    def _from_parts(cls, packed, meta, scales, zero_points):
        """A QArray from the parts of a file, every one checked (``ValueError`` naming what is
        wrong): the metadata's keys and types, the format, the packed codes' dtype and length,
        the scales' dtype; the QArray's own checks do the rest (code ranges, scale shapes and
        values, zero points)."""
        meta = _check_meta(meta)
        fmt = _fmt_from_dict(meta["format"], "format")
        shape = tuple(meta["shape"])
        size = math.prod(shape)
        word = np.dtype(np.uint8) if fmt.bits < 8 else _word(fmt.bits)
        if packed.dtype.kind != "u" or packed.dtype.itemsize != word.itemsize or packed.ndim != 1:
            _damaged(
                f"'packed' is an array of dtype {packed.dtype} and shape {packed.shape}, the "
                f"codes of {fmt.name!r} are a 1-D {word} array"
            )
        if fmt.bits < 8:
            from qemu_arrays.packing import packed_nbytes, unpack

            need = packed_nbytes(size, fmt.bits)
            if packed.size != need:
                _damaged(f"'packed' holds {packed.size} bytes, shape {shape} needs {need}")
            codes = unpack(packed, fmt.bits, size).reshape(shape)
        else:
            if packed.size != size:
                _damaged(f"'packed' holds {packed.size} codes, shape {shape} needs {size}")
            codes = packed.astype(word).reshape(shape)
        for name, a, kinds in (("scales", scales, "f" if isinstance(fmt, IntFormat) else "u"),
                               ("zero_points", zero_points, "iu")):  # fmt: skip
            if a is not None and a.dtype.kind not in kinds:
                _damaged(f"{name!r} has dtype {a.dtype}")
        sf = meta["scale_format"]
        try:
            return cls(
                codes=codes, format=fmt, dtype=_DTYPES[meta["dtype"]], scales=scales,
                zero_points=zero_points, tensor_scale=meta["tensor_scale"], axis=meta["axis"],
                block_size=meta["block_size"], block_offset=meta["block_offset"],
                scale_format=None if sf is None else _fmt_from_dict(sf, "scale_format"),
            )  # fmt: skip
        except (TypeError, ValueError) as e:
            _damaged(str(e))


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
_DEFAULTS = {"overflow": "OWN", "offset": 0, "via_float32": False, "out": None, "rbits": None}


def _check_keywords(op, kw):
    from qemu_arrays.formats.enums import Overflow
    from qemu_arrays.validation import check_enum

    if "overflow" in kw:
        check_enum("overflow", kw["overflow"], Overflow)
    odd = [
        k for k, default in _DEFAULTS.items()
        if k in kw
        and (
            kw[k] is not None if default is None
            else (kw[k] != default if k != "overflow" else kw[k].name != default)
        )
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
    """Read a QArray written by :meth:`QArray.save` (a path or a binary file object).

    Nothing in the file is executed or unpickled: the archive's members are read as plain
    arrays after their headers are checked against their sizes, and every part is validated
    (the metadata version, keys and types, the format, the codes' dtype, length and range, the
    scales' shape, dtype and values). A file that is not a QArray file, or a damaged one,
    raises ``ValueError`` naming what is wrong; it never gives a wrong array.
    """
    _check_file(file, "load")
    parts = _read_npz(file)
    return QArray._from_parts(
        parts["packed"], _meta_json(parts["meta"]), parts.get("scales"), parts.get("zero_points")
    )


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
    Integer and bool input is read exactly: 8- and 16-bit integers (and bools) as float32,
    wider ones as float64 (exact up to 2**53), which is then the QArray's ``dtype``.
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
    if arr.dtype.kind in "iub":  # exactly: float32 holds 8/16-bit integers, float64 up to 2**53
        arr = arr.astype(np.float32 if arr.dtype.itemsize <= 2 else np.float64)
    kw = {"rounding": rounding, "seed": seed, "stream": stream, "random_bits": random_bits}
    if _is_block(fmt):
        enc = api.encode(arr, fmt, axis=axis, scale=scale, **kw)
        return QArray._from_encoded(enc.codes, fmt, arr.dtype, scales=enc.scales,
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
        return QArray._from_encoded(codes, fmt, arr.dtype, scales=sg, zero_points=zg,
                                    axis=g_axis, block_size=g_bs, scale_format=sfmt)  # fmt: skip
    if scale is None:
        given = {
            k: v
            for k, v in (
                ("axis", axis),
                ("block_size", block_size),
                ("zero_point", zero_point),
                ("scale_format", scale_format),
            )
            if v is not None
        }
        if given:
            msg = (
                f"{', '.join(f'{k}={v!r}' for k, v in given.items())} does not apply to "
                f"{fmt.name!r} without a scale: axis/block_size/scale_format go with scale=; "
                "hint: scale='absmax' for a scaled float format, or leave them out"
            )
            raise ValueError(msg)
        codes = api.encode(arr, fmt, **kw)
        return QArray._from_encoded(codes, fmt, arr.dtype)
    if zero_point is not None or symmetric is not True:
        msg = (
            f"zero_point/symmetric=False do not apply to the float format {fmt.name!r}: a scaled "
            "float format has no zero point; hint: leave zero_point and symmetric out"
        )
        raise ValueError(msg)
    work = arr.astype(np.float32) if arr.dtype.itemsize == 2 else arr
    sg, _, g_axis, g_bs = scales.group_scales(
        work, fmt, scale, None, arr.shape, axis=axis, block_size=block_size,
        scale_format=scale_format, percentile=percentile,
    )  # fmt: skip
    enc = api.encode(arr, fmt, scale=sg, axis=g_axis, block_size=g_bs, **kw)
    codes = enc if isinstance(enc, np.ndarray) else enc.codes
    sfmt = None if scale_format is None else get_format(scale_format)
    return QArray._from_encoded(codes, fmt, arr.dtype, scales=sg, axis=g_axis, block_size=g_bs,
                                scale_format=sfmt)  # fmt: skip
