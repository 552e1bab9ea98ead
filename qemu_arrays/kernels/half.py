"""CPU ``@intrinsic`` conversions between 16-bit floats and float32 bits, for kernels that read and
write float16/bfloat16 arrays directly (no float32 temporaries, no separate cast pass).

:func:`half_to_f32` and :func:`f32_to_half` are LLVM's ``fpext``/``fptrunc`` between ``half`` and
``float`` (exact widening; nearest-even narrowing, overflow to inf: NumPy's ``astype``), which
x86 CPUs with F16C and ARM CPUs run as vector instructions. :func:`bf16_to_f32` shifts the
bfloat16 bits up; :func:`f32_to_bf16` is the nearest-even narrowing of
``qemu_arrays.float_casts._bf16_bits`` (NaN: the quiet NaN with its sign), on ``i32`` words.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core.extending import intrinsic

__all__ = ["bf16_to_f32", "f32_to_bf16", "f32_to_half", "half_to_f32"]

_I16 = ir.IntType(16)
_I32 = ir.IntType(32)


def _int_arg(context, builder, val, ty, width):
    return builder.trunc(context.cast(builder, val, ty, types.int64), ir.IntType(width))


@intrinsic
def half_to_f32(typingctx, h):
    """float32 bits (uint32) of the float16 with bits ``h``."""
    if not isinstance(h, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        x = builder.bitcast(
            _int_arg(context, builder, args[0], signature.args[0], 16), ir.HalfType()
        )
        return builder.bitcast(builder.fpext(x, ir.FloatType()), _I32)

    return types.uint32(h), codegen


@intrinsic
def f32_to_half(typingctx, b):
    """float16 bits (uint16) of the float32 with bits ``b``, rounded to nearest even."""
    if not isinstance(b, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        x = builder.bitcast(
            _int_arg(context, builder, args[0], signature.args[0], 32), ir.FloatType()
        )
        return builder.bitcast(builder.fptrunc(x, ir.HalfType()), _I16)

    return types.uint16(b), codegen


@intrinsic
def bf16_to_f32(typingctx, h):
    """float32 bits (uint32) of the bfloat16 with bits ``h``."""
    if not isinstance(h, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        x = builder.zext(_int_arg(context, builder, args[0], signature.args[0], 16), _I32)
        return builder.shl(x, ir.Constant(_I32, 16))

    return types.uint32(h), codegen


@intrinsic
def f32_to_bf16(typingctx, b):
    """bfloat16 bits (uint16) of the float32 with bits ``b``: nearest even, overflow to inf,
    NaN to the quiet NaN of its sign."""
    if not isinstance(b, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        def c(v):
            return ir.Constant(_I32, v)

        x = _int_arg(context, builder, args[0], signature.args[0], 32)
        hi = builder.lshr(x, c(16))
        rounded = builder.lshr(
            builder.add(x, builder.add(c(0x7FFF), builder.and_(hi, c(1)))), c(16)
        )
        nan_bits = builder.or_(builder.and_(hi, c(0x8000)), c(0x7FC0))
        nan = builder.icmp_unsigned(">", builder.and_(x, c(0x7FFFFFFF)), c(0x7F800000))
        return builder.trunc(builder.select(nan, nan_bits, rounded), _I16)

    return types.uint16(b), codegen
