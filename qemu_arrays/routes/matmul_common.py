"""What every matmul route shares: the operands' formats, the shape rules, the plan of a call
(order, block size, formats, output dtype, random bits), and the data statistics that decide
which exact fast path applies. The semantics are those of ``docs/matmul.md``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from qemu_arrays.formats.block_spec import BlockFormat
from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.enums import Rounding
from qemu_arrays.formats.spec import FloatFormat, IntFormat
from qemu_arrays.matmul_request import MAX_P_PLUS_R, MatmulRequest
from qemu_arrays.validation import BF16

__all__ = [
    "Operand",
    "Plan",
    "Stats",
    "block_size",
    "element_format",
    "nan_in_accumulator",
    "plan",
    "stats",
]

FLOAT32 = get_format("float32")
FLOAT64 = FloatFormat(exponent_bits=11, mantissa_bits=52, name="float64")
_BY_DTYPE = {
    np.dtype(np.float16): get_format("float16"),
    BF16: get_format("bfloat16"),
    np.dtype(np.float32): FLOAT32,
    np.dtype(np.float64): FLOAT32,  # float64 arrays must hold float32 values (docs/matmul.md)
}


def element_format(dtype, name: str):
    """The input format of a plain array of ``dtype`` (float64: float32, whose values it must
    hold); ``TypeError`` for a dtype that is not float16, bfloat16, float32 or float64."""
    dt = np.dtype(dtype)
    fmt = _BY_DTYPE.get(dt)
    if fmt is None:
        msg = (
            f"{name} has dtype {dt}, and matmul takes float16, bfloat16, float32 or float64 "
            f"arrays (holding float32 values) or QArrays; hint: {name}.astype(numpy.float32), "
            "or quantize it first"
        )
        raise TypeError(msg)
    return fmt


@dataclass
class Operand:
    """One operand, its values as the kernels read them (element values for block formats)."""

    values: Any
    """float64 NumPy array (or a device array on the CUDA route)."""
    fmt: FloatFormat | IntFormat
    """The input (element) format, for the narrowness check."""
    wide: bool
    """Whether it came as float64 (the result is then float64)."""
    block: BlockFormat | None = None
    scales: Any = None
    """Block formats: the block scale values (float64, NaN for a NaN scale), the block axis
    holding one entry per block."""
    axis: int | None = None
    scale: Any = None
    """Scaled integer formats: the per-tensor (0-d) or per-row of ``a`` / per-column of ``b``
    scale (float64, the reduction axis removed), applied in the epilogue."""
    group: int | None = None
    """Scaled integer formats with scales along the reduction axis: the group size (1 for a
    scale per k). ``scales`` then holds one scale per group, laid out as block scales are, and
    ``axis`` is the reduction axis."""


def block_size(o: Operand) -> int | None:
    """The size of ``o``'s blocks along the reduction axis (block formats, grouped integer
    scales), or None."""
    return o.block.block_size if o.block is not None else o.group


def _width(fmt) -> tuple[int, int]:
    """(significand bits, largest binade exponent) of an input or accumulator format."""
    if isinstance(fmt, FloatFormat):
        return fmt.precision, fmt.emax
    bound = max(abs(fmt.min), fmt.max)
    return max(fmt.max.bit_length(), 1), bound.bit_length() - 1


def _check_width(name, fmt, tp, te, than_what):
    p, e = _width(fmt)
    if p < tp or e < te:
        msg = (
            f"{name}={fmt.name!r} ({p} significand bits, largest exponent {e}) is narrower "
            f"than {than_what} ({tp} bits, exponent {te}): the sum would lose the inputs' own "
            f"precision or range; hint: pass allow_narrow=True if that is the experiment, or "
            f"a wider {name} such as 'float32'"
        )
        raise ValueError(msg)


@dataclass(frozen=True)
class Plan:
    """Everything a route needs beyond the arrays."""

    order: str
    """"sequential", "pairwise", "blocked" or "exact" (accumulator None, not blocked)."""
    acc: FloatFormat | None
    promote: FloatFormat | None
    result: FloatFormat
    block_k: int
    out_dtype: np.dtype
    r: int
    batch: tuple[int, ...]
    M: int
    K: int
    N: int
    a_vector: bool
    b_vector: bool

    @property
    def out_shape(self) -> tuple[int, ...]:
        shape = self.batch
        if not self.a_vector:
            shape += (self.M,)
        if not self.b_vector:
            shape += (self.N,)
        return shape


def _shapes(req: MatmulRequest, sa, sb):
    for name, s in (("a", sa), ("b", sb)):
        if len(s) == 0:
            msg = (
                f"{name} is a 0-d array (a scalar); {req.op} needs at least one dimension; "
                f"hint: multiply scalars directly"
            )
            raise ValueError(msg)
        if req.op == "dot" and len(s) > 2:
            msg = (
                f"{name} has {len(s)} dimensions; dot takes vectors and matrices (1-D, 2-D); "
                "hint: qemu_arrays.matmul for batches"
            )
            raise ValueError(msg)
    a_vec, b_vec = len(sa) == 1, len(sb) == 1
    sa2 = (1, *sa) if a_vec else tuple(sa)
    sb2 = (*sb, 1) if b_vec else tuple(sb)
    if sa2[-1] != sb2[-2]:
        msg = (
            f"shapes {tuple(sa)} (a) and {tuple(sb)} (b) do not match: a's last dimension "
            f"({sa2[-1]}) must equal b's {'only' if b_vec else 'second-to-last'} dimension "
            f"({sb2[-2]}); hint: b.T, or check which operand comes first"
        )
        raise ValueError(msg)
    try:
        batch = np.broadcast_shapes(sa2[:-2], sb2[:-2])
    except ValueError:
        msg = (
            f"the batch dimensions of a {tuple(sa2[:-2])} and b {tuple(sb2[:-2])} do not "
            "broadcast (numpy.matmul's rule)"
        )
        raise ValueError(msg) from None
    return tuple(batch), sa2[-2], sa2[-1], sb2[-1], a_vec, b_vec


def _fits_float32(f: FloatFormat) -> bool:
    return f.mantissa_bits <= 23 and f.emax <= 127 and f.emin - f.mantissa_bits >= -149


def plan(req: MatmulRequest, a: Operand, b: Operand, shape_a, shape_b) -> Plan:
    """The plan of ``req`` on two operands: shapes, the order and block size (block formats
    included), the formats checked against the inputs, the output dtype, the random bits."""
    batch, M, K, N, a_vec, b_vec = _shapes(req, shape_a, shape_b)
    blocks = [(n, o) for n, o in (("a", a), ("b", b)) if block_size(o) is not None]
    order = req.order
    block_k = req.block_k
    promote = req.promote_to
    if blocks:
        sizes = {block_size(o) for _, o in blocks}
        if len(sizes) > 1:
            msg = (
                f"a and b have blocks (or scale groups) of different sizes {sorted(sizes)} "
                "along the reduction axis; their block dot product needs one size"
            )
            raise ValueError(msg)
        kinds = {o.block is None for _, o in blocks} | {
            o.block is None for o in (a, b) if o.scale is not None and o.group is None
        }
        if len(kinds) > 1:
            msg = (
                "a block format (MX, NVFP4) cannot be multiplied with a scaled integer QArray "
                "here: their scales enter differently (exact block scales against float32 "
                "group scale products); hint: dequantize one of them"
            )
            raise ValueError(msg)
        bs = sizes.pop()
        for n, o in blocks:
            red = len(o.values.shape) - (1 if n == "a" or len(o.values.shape) == 1 else 2)
            if o.axis != red:
                what = f"a block format ({o.block.name})" if o.block else f"{o.fmt.name!r}"
                msg = (
                    f"{n} is {what} with blocks along axis {o.axis}, "
                    f"but the reduction runs along axis {red}; hint: quantize {n} with "
                    f"axis={red - len(o.values.shape)}"
                )
                raise ValueError(msg)
        if order is None:
            order = "blocked"
        if order != "blocked":
            msg = (
                f"order={order!r}: block-format operands are summed block by block (the OCP MX "
                "block dot product), order='blocked'; hint: leave order out, or pass "
                "q.dequantize() to sum the values in one chain"
            )
            raise ValueError(msg)
        if block_k is None:
            block_k = bs
        if block_k != bs:
            msg = (
                f"block_k={block_k} does not match the operands' block size {bs}; hint: leave "
                "block_k out"
            )
            raise ValueError(msg)
        if promote is None:
            promote = FLOAT32
    if order is None:
        order = "sequential"
    if order == "blocked" and block_k is None:
        msg = (
            "order='blocked' needs block_k (the products summed before each promotion); hint: "
            "block_k=128, DeepSeek-V3's interval"
        )
        raise ValueError(msg)
    acc = req.accumulator
    if acc is None and order == "pairwise":
        msg = "order='pairwise' needs an accumulator; hint: accumulator='float32'"
        raise ValueError(msg)
    if acc is None and order == "sequential" and req.order == "sequential":
        msg = (
            "order='sequential' with accumulator=None: the exact sum has no order; hint: leave "
            "order out (or order='blocked' for exact partial sums)"
        )
        raise ValueError(msg)
    if acc is None and order == "sequential":
        order = "exact"
    wide = a.wide or b.wide
    (pa, ea), (pb, eb) = _width(a.fmt), _width(b.fmt)
    p_in, e_in = max(pa, pb), max(ea, eb)
    what = (
        f"the inputs ({a.fmt.name}, {b.fmt.name})"
        if a.fmt != b.fmt
        else f"the inputs ({a.fmt.name})"
    )
    if not req.allow_narrow:
        if acc is not None:
            _check_width("accumulator", acc, p_in, e_in, what)
        if promote is not None:
            if acc is not None:
                _check_width("promote_to", promote, *_width(acc), f"the accumulator ({acc.name})")
            else:
                _check_width("promote_to", promote, p_in, e_in, what)
    if order == "exact":
        result = FLOAT64 if wide else FLOAT32
    else:
        result = promote if order == "blocked" else acc
    if req.rounding is Rounding.JAM:
        for f in (acc, promote if order == "blocked" else None, result):
            if f is not None and f.mantissa_bits >= 52:
                msg = (
                    f"rounding=Rounding.JAM into {f.name!r} (52 mantissa bits) is not modelled: "
                    "the kernels' float64 fast path and the reference disagree on values that "
                    "need no rounding; hint: an accumulator of at most 51 mantissa bits"
                )
                raise ValueError(msg)
    out_dtype = np.dtype(np.float64 if wide or not _fits_float32(result) else np.float32)
    r = req.random_bits
    if req.rounding is Rounding.STOCHASTIC:
        ps = [f.precision for f in (acc, promote if order == "blocked" else None, result) if f]
        p = max(ps)
        if r is None:
            r = min(32, MAX_P_PLUS_R - p)
        elif p + r > MAX_P_PLUS_R:
            msg = (
                f"random_bits={r} is too many for a format of {p} significand bits: stochastic "
                f"additions need p + random_bits <= {MAX_P_PLUS_R}; hint: "
                f"random_bits={MAX_P_PLUS_R - p}"
            )
            raise ValueError(msg)
    else:
        r = 32 if r is None else r
    return Plan(
        order=order, acc=acc, promote=promote if order == "blocked" else None, result=result,
        block_k=block_k or max(K, 1), out_dtype=out_dtype, r=r, batch=batch, M=M, K=K, N=N,
        a_vector=a_vec, b_vector=b_vec,
    )  # fmt: skip


@dataclass(frozen=True)
class Stats:
    """What the exact fast paths need to know about an operand's values."""

    emax: int
    """Largest exponent ``floor(log2 |x|)`` of a non-zero finite value (-10**6 if none)."""
    lsb: int
    """Smallest exponent of a set significand bit (10**6 if none)."""
    bits: int
    """Most significant bits of a value (leading to last set bit)."""
    finite: bool
    """No infinities or NaN."""


def stats(v: np.ndarray) -> Stats:
    """The :class:`Stats` of a float32/float64 NumPy array (read from the bits)."""
    from qemu_arrays.kernels.matmul import value_stats

    emax, lsb, bits, finite = value_stats(np.ascontiguousarray(v).reshape(-1))
    return Stats(int(emax), int(lsb), int(bits), bool(finite))


def sum_span(sa: Stats, sb: Stats, n: int, scale_lo: int = 0, scale_hi: int = 0) -> int:
    """Bits spanned by any sum of ``n`` products (times scales of exponents in
    ``[scale_lo, scale_hi]``): every such sum is exact in a binary format of this many
    significand bits (unbounded exponent)."""
    if sa.bits == 0 or sb.bits == 0:
        return 0
    return (math.ceil(math.log2(max(n, 1))) + sa.emax + sb.emax + 2 + scale_hi
            - (sa.lsb + sb.lsb + scale_lo))  # fmt: skip


def nan_in_accumulator(fmt: FloatFormat) -> ValueError:
    """The error of a NaN result in a format that has no NaN."""
    msg = (
        f"the sum produced NaN (a NaN or infinite input, or inf - inf), and the format "
        f"{fmt.name!r} has no NaN to hold it; hint: filter the inputs, or accumulate in a "
        "format with NaN (float32, bfloat16, float16, float8_e4m3fn)"
    )
    return ValueError(msg)
