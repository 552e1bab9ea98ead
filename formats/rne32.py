"""32-bit, select-only nearest-even rounding of float32 bits, for the CPU and CUDA kernels.

:func:`rne32` is the computation of :func:`qemu_arrays.cpu.rne_f32_bits` (same ``plan`` from
:func:`qemu_arrays.cpu.rne_f32_plan`, same bits for every input) written as an ``@intrinsic``
that emits LLVM IR on ``i32`` words only: numba types Python-level integer arithmetic as int64,
and on a GPU every int64 add, shift or compare costs two or more instructions, while on a CPU
an int64 vector lane holds half as many elements as an int32 one. The sequence is
about twenty 32-bit integer operations, one float32 add and subtract, and selects: no branch.

The same IR compiles for the CPU (the float32 nearest-even kernels of :mod:`qemu_arrays.cpu` and
:mod:`qemu_arrays.cpu_blocks` call it; :func:`rne32_cpu` is an ``@njit`` wrapper for the tests and
for kernels running in numba's CUDA simulator, where kernel bodies execute as Python and cannot
call an intrinsic directly) and for CUDA (NVVM accepts the plain integer, float and select
instructions). This module imports no ``numba.cuda``.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic

from qemu_arrays.formats.bits import bits_f64, f64_bits  # noqa: F401  (their old home: re-exported)
from qemu_arrays.formats.jit_cache import purge_stale_cache

purge_stale_cache(__file__)

__all__ = ["rne32", "rne32_cpu"]

_QNAN32 = 0x7FC00000


@intrinsic
def rne32(typingctx, b, plan):
    """Nearest-even rounding of the float32 with bits ``b`` (an integer; its low 32 bits are
    used) into the format of ``plan``, as uint32 float32 bits, on 32-bit words only."""
    if not isinstance(b, types.Integer) or not isinstance(plan, types.BaseTuple):
        return None
    if len(plan) != 11:
        return None

    def codegen(context, builder, signature, args):
        bt, pt = signature.args
        i32 = ir.IntType(32)
        f32 = ir.FloatType()

        def const(v):
            return ir.Constant(i32, v)

        def field(k, ty):
            return context.cast(builder, builder.extract_value(args[1], k), pt[k], ty)

        x = builder.trunc(context.cast(builder, args[0], bt, types.int64), i32)
        sh, half_m1, low, m0, lo_field, max_mag, ovf_mag, ovf_nan, _has_nan, neg_zero = (
            builder.trunc(field(k, types.int64), i32) for k in range(10)
        )
        c = field(10, types.float32)
        # plan-derived constants (loop-invariant: hoisted out of a kernel's loop)
        lo_mag = builder.shl(lo_field, const(23))  # the smallest normal's magnitude bits
        ovf_val = builder.select(  # an overflow's magnitude, or the NaN it becomes
            builder.icmp_unsigned("!=", ovf_nan, const(0)), const(_QNAN32), ovf_mag
        )
        zero_sign = builder.select(  # the sign mask a zero result keeps
            builder.icmp_unsigned("!=", neg_zero, const(0)), const(-1), const(0)
        )
        sign = builder.and_(x, const(0x80000000))
        mag = builder.and_(x, const(0x7FFFFFFF))
        # in range: round the magnitude bits in place (carry into the exponent is right)
        odd = builder.or_(builder.and_(builder.lshr(mag, sh), const(1)), m0)
        rn = builder.and_(builder.add(builder.add(mag, half_m1), odd), builder.not_(low))
        # below the smallest normal: (|x| + C) - C in float32 rounds onto the subnormal grid
        f = builder.bitcast(mag, f32)
        rs = builder.bitcast(builder.fsub(builder.fadd(f, c), c), i32)
        r = builder.select(builder.icmp_unsigned("<", mag, lo_mag), rs, rn)
        # overflow, unsigned: a carry out of the top binade (bit 31) and an infinite input
        # (r = 0x7F800000) are both above the largest finite magnitude
        r = builder.select(builder.icmp_unsigned(">", r, max_mag), ovf_val, r)
        r = builder.select(builder.icmp_unsigned(">", mag, const(0x7F800000)), const(_QNAN32), r)
        # the sign: kept by non-zero results, by zeros where the format has -0, never by NaN;
        # selects on i32 masks only (no i1 logic, which AVX2 code packs and unpacks)
        keep = builder.select(builder.icmp_unsigned("==", r, const(_QNAN32)), const(0), const(-1))
        keep = builder.select(builder.icmp_unsigned("==", r, const(0)), zero_sign, keep)
        return builder.or_(r, builder.and_(sign, keep))

    return types.uint32(b, plan), codegen


@njit(cache=True, nogil=True)
def rne32_cpu(b, plan):
    """:func:`rne32` compiled for the CPU (tests; kernels in the CUDA simulator)."""
    return rne32(b, plan)  # type: ignore[call-arg]  # an @intrinsic: numba supplies the context
