"""Bit casts between IEEE floats and integers, and the fused multiply-add, as numba
``@intrinsic`` functions.

The CPU kernels (:mod:`qemu_arrays.cpu`, :mod:`qemu_arrays.cpu_blocks`) and the CUDA kernels
(:mod:`cuda_kernels`) call the same four: each emits a single LLVM ``bitcast`` (plus a truncation
or an integer cast where the widths differ), which compiles for the CPU and, through NVVM, for
CUDA. This module imports no ``numba.cuda``.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core.extending import intrinsic

__all__ = ["bits_f32", "bits_f64", "f32_bits", "f64_bits", "fma"]


@intrinsic
def f32_bits(typingctx, x):
    """The IEEE bit pattern of a float32 scalar, as uint32 (a bit cast, no arithmetic)."""
    if isinstance(x, types.Float) and x.bitwidth == 32:

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.IntType(32))

        return types.uint32(x), codegen
    return None


@intrinsic
def bits_f32(typingctx, b):
    """The float32 whose IEEE bit pattern is the low 32 bits of the integer ``b``."""
    if isinstance(b, types.Integer):

        def codegen(context, builder, signature, args):
            v = context.cast(builder, args[0], signature.args[0], types.int64)
            return builder.bitcast(builder.trunc(v, ir.IntType(32)), ir.FloatType())

        return types.float32(b), codegen
    return None


@intrinsic
def f64_bits(typingctx, x):
    """The IEEE bit pattern of a float64 scalar, as int64 (a bit cast)."""
    if isinstance(x, types.Float) and x.bitwidth == 64:

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.IntType(64))

        return types.int64(x), codegen
    return None


@intrinsic
def bits_f64(typingctx, b):
    """The float64 whose IEEE bit pattern is the integer ``b`` (64 bits)."""
    if isinstance(b, types.Integer):

        def codegen(context, builder, signature, args):
            v = context.cast(builder, args[0], signature.args[0], types.int64)
            return builder.bitcast(v, ir.DoubleType())

        return types.float64(b), codegen
    return None


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` with one rounding (IEEE 754 fusedMultiplyAdd, LLVM ``llvm.fma``), for
    three float32 or three float64 scalars."""
    if isinstance(a, types.Float) and a == b and a == c:

        def codegen(context, builder, signature, args):
            return builder.fma(args[0], args[1], args[2])

        return a(a, b, c), codegen
    return None
