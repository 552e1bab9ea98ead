"""Argument checks shared by the façade and every route: a leaf module (NumPy and formats only).

Every check raises ``TypeError``/``ValueError`` naming the parameter, the value, what is allowed
and a hint. Nothing here knows about array libraries other than NumPy; the routes check what is
specific to theirs.
"""

from __future__ import annotations

import difflib
import numbers

import ml_dtypes
import numpy as np

from qemu_arrays.formats.block_spec import BlockFormat
from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.spec import FloatFormat, IntFormat

__all__ = [
    "BF16",
    "DEFAULT_RANDOM_BITS",
    "FLOAT_DTYPES",
    "as_float_array",
    "check_axis",
    "check_block_size",
    "check_bool",
    "check_codes",
    "check_enum",
    "check_float_dtype",
    "check_format",
    "check_granularity",
    "check_nonnegative_int",
    "check_out",
    "check_random_bits",
    "check_seed",
    "check_tensor_scale",
    "check_zero_point",
    "code_dtype",
    "nan_error",
]

BF16 = np.dtype(ml_dtypes.bfloat16)
FLOAT_DTYPES = (np.dtype(np.float16), BF16, np.dtype(np.float32), np.dtype(np.float64))
#: random bits of stochastic rounding by the item size the kernels read (16-bit types widen to 4)
DEFAULT_RANDOM_BITS = {4: 32, 8: 53}


def check_enum(name, value, enum_cls):
    """``value`` if it is a member of ``enum_cls``; ``TypeError`` with the members otherwise."""
    if isinstance(value, enum_cls):
        return value
    allowed = ", ".join(f"{enum_cls.__name__}.{m.name}" for m in enum_cls)
    msg = f"{name} must be a {enum_cls.__name__} member ({allowed}), got {value!r}"
    close = []
    if isinstance(value, str):
        names = [m.name for m in enum_cls]
        # names containing the value first, in the enum's order (its common members come first:
        # "nearest" -> NEAREST_EVEN), then difflib's closest
        close = [n for n in names if value.upper() in n]
        close += [n for n in difflib.get_close_matches(value.upper(), names, n=2, cutoff=0.4)
                  if n not in close]  # fmt: skip
    if close:
        msg += "; hint: " + " or ".join(f"{enum_cls.__name__}.{n}" for n in close)
    else:
        first = next(iter(enum_cls))
        msg += f"; hint: {name}=qemu_arrays.{enum_cls.__name__}.{first.name}"
    raise TypeError(msg)


def check_bool(name, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        msg = f"{name} must be a bool, got {value!r} ({type(value).__name__}); hint: True or False"
        raise TypeError(msg)
    return bool(value)


def check_nonnegative_int(name, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 0:
        msg = f"{name} must be a non-negative int, got {value!r}; hint: {name}=0"
        raise ValueError(msg)
    return int(value)


def check_seed(seed, needed: bool) -> int | None:
    """The seed (an int, reduced modulo 2**64 by the generator), or None when not ``needed``."""
    if seed is None:
        if needed:
            msg = (
                "seed=None: stochastic rounding needs an explicit integer seed so that results "
                "are reproducible; hint: pass seed=0"
            )
            raise ValueError(msg)
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        msg = (
            f"seed must be an int (reduced modulo 2**64), got {seed!r} ({type(seed).__name__}); "
            "hint: seed=0"
        )
        raise TypeError(msg)
    return int(seed)


def check_random_bits(random_bits) -> int | None:
    """``random_bits`` as an int in [1, 62], or None (exact for the input: 32 or 53 bits)."""
    if random_bits is None:
        return None
    r = random_bits
    if (
        isinstance(r, (bool, np.bool_))
        or not isinstance(r, numbers.Integral)
        or not 1 <= int(r) <= 62
    ):
        msg = f"random_bits must be an int in [1, 62], got {random_bits!r}; hint: None = exact"
        raise ValueError(msg)
    return int(r)


def check_format(fmt, name="format"):
    """A catalogue name or descriptor as a FloatFormat, IntFormat or BlockFormat; errors name
    the parameter ``name`` (``scale_format``, ...)."""
    if name != "format":
        try:
            return check_format(fmt)
        except (TypeError, ValueError) as e:
            msg = f"{name}: {e}"
            raise type(e)(msg) from None
    fmt = get_format(fmt)
    if not isinstance(fmt, (FloatFormat, IntFormat, BlockFormat)):
        msg = (
            f"format must be a float, integer or block format, got {fmt!r}; hint: "
            "qemu_arrays.list_formats() lists the names"
        )
        raise TypeError(msg)
    return fmt


def as_float_array(x, name="x"):
    """A NumPy float16/bfloat16/float32/float64 array (Python and NumPy scalars: 0-d; other
    byte orders: a native copy)."""
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
    if not arr.dtype.isnative and arr.dtype.newbyteorder("=") in FLOAT_DTYPES:
        arr = arr.astype(arr.dtype.newbyteorder("="))  # big-endian: the same values, native
    if arr.dtype not in FLOAT_DTYPES:
        msg = (
            f"{name} has dtype {arr.dtype}, must be float16, bfloat16, float32 or float64; "
            f"hint: cast with {name}.astype(np.float32)"
        )
        raise TypeError(msg)
    return arr


def check_out(out, shape, dtype):
    """``out`` if it is a writeable NumPy array of ``shape`` and ``dtype`` (or None)."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        msg = f"out must be a numpy array, got {type(out).__name__}; hint: out=np.empty_like(x)"
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


def check_axis(axis, ndim, name="axis"):
    """``axis`` normalised to ``[0, ndim)`` (None stays None)."""
    if axis is None:
        return None
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
        msg = (
            f"{name} must be an int or None, got {axis!r} ({type(axis).__name__}); hint: "
            f"{name}=-1 for the last axis"
        )
        raise TypeError(msg)
    if not -ndim <= axis < ndim:
        msg = (
            f"{name}={axis} is out of range for an array of {ndim} dimensions; "
            f"allowed: {-ndim} ... {ndim - 1}; hint: {name}=-1 for the last axis"
        )
        raise ValueError(msg)
    return int(axis) % ndim


def check_block_size(block_size):
    """``block_size`` as a positive int, or None."""
    if block_size is None:
        return None
    if isinstance(block_size, (bool, np.bool_)) or not isinstance(block_size, numbers.Integral):
        msg = (
            f"block_size must be a positive int or None, got {block_size!r} "
            f"({type(block_size).__name__}); hint: 32 or 128 are common"
        )
        raise TypeError(msg)
    if block_size < 1:
        msg = f"block_size must be >= 1, got {block_size}; hint: 32 or 128 are common"
        raise ValueError(msg)
    return int(block_size)


def check_granularity(shape, axis, block_size):
    """Normalised ``(axis, block_size)``; with ``block_size`` the axis defaults to the last. A
    block size beyond the axis length is that length (one group: the same groups)."""
    ndim = len(shape)
    block_size = check_block_size(block_size)
    if block_size is not None:
        if ndim == 0:
            msg = (
                f"block_size={block_size} needs an array of at least one dimension, got a "
                "scalar; hint: x[None]"
            )
            raise ValueError(msg)
        axis = -1 if axis is None else axis
    if axis is not None and ndim == 0:
        msg = f"axis={axis} needs an array of at least one dimension, got a scalar; hint: axis=None"
        raise ValueError(msg)
    axis = check_axis(axis, ndim)
    if block_size is not None:
        block_size = min(block_size, max(int(shape[axis]), 1))
    return axis, block_size


def code_dtype(bits: int) -> np.dtype:
    """The unsigned type of the codes of a ``bits``-bit format (uint8 ... uint64)."""
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if bits <= 8 * np.dtype(dt).itemsize:
            return np.dtype(dt)
    msg = f"formats of more than 64 bits are not supported, got {bits}"
    raise ValueError(msg)


def nan_error(fmt, overflow) -> ValueError:
    """The error of a NaN (or a zero) that the format cannot hold under ``overflow``."""
    msg = (
        f"x contains NaN (or a value the format cannot hold, such as zero for {fmt.name}), and "
        f"format {fmt.name!r} has no NaN; overflow={overflow!r} does not map it to a value; "
        "hint: clean NaNs first (np.nan_to_num) or use overflow=Overflow.ML_DTYPES"
    )
    return ValueError(msg)


def _is_array(v) -> bool:
    return hasattr(v, "shape") and hasattr(v, "dtype") and not isinstance(v, np.generic)


def check_zero_point(zero_point, fmt, name="zero_point"):
    """``zero_point`` (a number or an array) as int64 (0-d for one value), each value an integer
    in ``[fmt.min, fmt.max]``: a zero point outside the format's codes holds no real zero, and
    would make every value ``(fmt.max - zp) * scale``. None is 0."""
    if zero_point is None:
        return np.zeros((), dtype=np.int64)
    allowed = f"integers in [{fmt.min}, {fmt.max}] (the codes of {fmt.name})"
    if isinstance(zero_point, (bool, np.bool_, str, bytes)) or not isinstance(
        zero_point, (numbers.Real, np.ndarray, np.generic, list, tuple)
    ):
        msg = (
            f"{name} must be an int or an array of {allowed}, got {zero_point!r} "
            f"({type(zero_point).__name__}); hint: zero_point=0 (symmetric)"
        )
        raise TypeError(msg)
    try:
        z = np.asarray(zero_point)
    except ValueError:  # ragged lists
        z = np.asarray(zero_point, dtype=object)
    if z.dtype.kind not in "iuf":
        msg = (
            f"{name} must hold {allowed}, got an array of dtype {z.dtype}; hint: "
            "np.asarray(zero_point, dtype=np.int64)"
        )
        raise TypeError(msg)
    if z.size == 0:
        return z.astype(np.int64)
    if z.dtype.kind == "f" and not (np.all(np.isfinite(z)) and np.all(z == np.round(z))):
        bad = z[~(np.isfinite(z) & (z == np.round(z)))].flat[0]
        msg = f"{name} must hold {allowed}, got {bad!r}; hint: np.rint(zero_point)"
        raise ValueError(msg)
    lo, hi = z.min(), z.max()
    if lo < fmt.min or hi > fmt.max:
        bad = lo if lo < fmt.min else hi
        msg = (
            f"{name} must hold {allowed}, got {bad.item()!r}: a zero point outside the codes "
            "holds no real zero, every value would be (max - zero_point) * scale; hint: "
            "scale='absmax', symmetric=False computes a zero point from the data"
        )
        raise ValueError(msg)
    return z.astype(np.int64)


def check_tensor_scale(ts, name="scale"):
    """The per-tensor scale of a two-level block format (NVFP4) as a float32: one positive
    finite number that float32 holds exactly (numbers and 0-d arrays of any library)."""
    if isinstance(ts, (bool, np.bool_, str, bytes)) or not (
        isinstance(ts, (numbers.Real, np.generic)) or (_is_array(ts) and len(ts.shape) == 0)
    ):
        shape = f" of shape {tuple(getattr(ts, 'shape', ()))}" if _is_array(ts) else ""
        msg = (
            f"{name} (the per-tensor float32 scale of a two-level block format) must be one "
            f"positive number, got {type(ts).__name__}{shape}; hint: scale=float(s), or leave it "
            "out for amax / (element max * scale max)"
        )
        raise TypeError(msg)
    try:
        with np.errstate(over="ignore"):  # beyond float32: inf, refused below
            v = np.float32(ts)
        exact = float(v) == float(ts)
    except (TypeError, ValueError):
        msg = f"{name} (the per-tensor float32 scale) must be a positive number, got {ts!r}"
        raise TypeError(msg) from None
    if not (np.isfinite(v) and v > 0) or not exact:
        msg = (
            f"{name} (the per-tensor scale) must be a positive finite float32 value, got {ts!r}; "
            "hint: np.float32(value)"
        )
        raise ValueError(msg)
    return v


def check_codes(codes, bits, fmt_name, name="codes"):
    """``codes`` as a NumPy integer array (no bools, no floats) whose values lie in
    ``[0, 2**bits)``: the bit patterns of a ``bits``-bit format."""
    c = np.asarray(codes)
    if c.dtype.kind not in "iu":
        msg = (
            f"{name} must be an integer array (the bit patterns of {fmt_name}), got dtype "
            f"{c.dtype}; hint: codes come from qemu_arrays.encode"
        )
        raise TypeError(msg)
    if c.size:
        lo, hi = c.min(), c.max()
        if lo < 0 or int(hi) >> bits:
            bad = lo if lo < 0 else hi
            msg = (
                f"{name} must lie in [0, 2**{bits}) for {fmt_name} ({bits}-bit codes), got "
                f"{bad.item()}; hint: codes come from qemu_arrays.encode of the same format"
            )
            raise ValueError(msg)
    return c


def check_float_dtype(dtype, name="dtype"):
    """``dtype`` (None: float32) as one of the NumPy float dtypes results may take."""
    try:
        dt = np.dtype(np.float32 if dtype is None else dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in FLOAT_DTYPES:  # (np.dtype == None compares float64 equal)
        msg = (
            f"{name} must be float16, bfloat16, float32 or float64, got {dtype!r}; hint: "
            f"{name}=np.float32"
        )
        raise TypeError(msg)
    return dt
