"""Two CPU ``@intrinsic`` helpers for the block kernels: a vector block maximum and a prefetch.

numba types the reduction ``a = max(a, xb[i] & 0x7FFFFFFF)`` through its generic ``max``, which
LLVM lowers to a chain of compares and branches that the SLP vectorizer leaves scalar: a block of
32 then costs about 45 cycles. :func:`amax_bits32` (and :func:`amax_bits16`) instead loads the
block as one ``<32 x i32>`` vector, clears the sign bits and calls
``llvm.vector.reduce.umax``: a few vector instructions (7x faster on AVX2, measured). Magnitude bit
patterns of float32 are ordered as the magnitudes are, so the result is the bit pattern of the
block's largest magnitude (inf and NaN patterns are larger than every finite one).

:func:`prefetch` emits ``llvm.prefetch`` (a hint, never a fault: the address may lie past the
array's end), so a kernel can ask for the next task's blocks while it rounds the current ones.

CPU only (the CUDA block kernels reduce with warp shuffles); imports no ``numba.cuda``.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

__all__ = ["amax_bits16", "amax_bits32", "nv_scale32", "prefetch"]


def _make_amax(n):
    @intrinsic
    def amax_bits(typingctx, xb, base):
        if not (
            isinstance(xb, types.Array)
            and xb.dtype == types.uint32
            and xb.layout == "C"
            and isinstance(base, types.Integer)
        ):
            return None

        def codegen(context, builder, signature, args):
            i32 = ir.IntType(32)
            vt = ir.VectorType(i32, n)
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), vt.as_pointer())
            v = builder.load(ptr, align=4)  # element alignment, not the vector's
            mag = builder.and_(v, ir.Constant(vt, [0x7FFFFFFF] * n))
            fnty = ir.FunctionType(i32, [vt])
            fn = cgutils.get_or_insert_function(
                builder.module, fnty, f"llvm.vector.reduce.umax.v{n}i32"
            )
            return builder.zext(builder.call(fn, [mag]), ir.IntType(64))

        return types.int64(xb, base), codegen

    amax_bits.__doc__ = (
        f"Largest magnitude bit pattern (sign cleared, as int64) of the {n} float32 bit patterns "
        f"``xb[base:base + {n}]`` (a C-contiguous uint32 array); the caller keeps the range in "
        "bounds."
    )
    return amax_bits


amax_bits16 = _make_amax(16)
amax_bits32 = _make_amax(32)


@intrinsic
def prefetch(typingctx, arr, index):
    """Hint the CPU to bring ``arr[index]``'s cache line into the L2 cache (no effect on
    results; an index past the end is allowed, the hint never faults)."""
    if not (
        isinstance(arr, types.Array) and arr.layout == "C" and isinstance(index, types.Integer)
    ):
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read (0), locality 2 (keep in L2), data cache (1)
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 2), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, index), codegen


@intrinsic
def nv_scale32(typingctx, a, rdiv, tscale, plan32, near):
    """The float32 step of the NVFP4 block scale (see :func:`qemu_arrays.kernels.blocks.nv_f32_rne`)
    on 32-bit words only: from the block maximum's bits ``a``, ``q = float32(amax * rdiv)`` is
    rounded to nearest-even into the scale format (``plan32`` from
    :func:`qemu_arrays.kernels.blocks.rne_scale_plan32`, saturating), and ``d = float32(s *
    tscale)``. Returns ``(code, d)``, with ``d = -1`` where the step does not decide the block
    (``q`` within ``near`` ulps of a midpoint or below the smallest normal scale, a non-finite
    maximum, a subnormal ``d``, or quotients ``x / d`` that could overflow float32): selects
    only, no i1 logic (which AVX2 code would pack and unpack)."""
    if not (
        isinstance(a, types.Integer)
        and rdiv == types.float32
        and tscale == types.float32
        and isinstance(plan32, types.BaseTuple)
        and len(plan32) == 8
        and isinstance(near, types.Integer)
    ):
        return None
    sig = types.Tuple([types.uint32, types.float32])(a, rdiv, tscale, plan32, near)

    def codegen(context, builder, signature, args):
        at, _, _, pt, nt = signature.args
        i32 = ir.IntType(32)
        f32 = ir.FloatType()

        def c32(v):
            return ir.Constant(i32, v)

        def field(k):
            v = context.cast(builder, builder.extract_value(args[3], k), pt[k], types.int64)
            return builder.trunc(v, i32)

        sh, half_m1, low, tie, min_normal, max_mag, sm, sbias = (field(k) for k in range(8))
        x = builder.trunc(context.cast(builder, args[0], at, types.int64), i32)
        nr = builder.trunc(context.cast(builder, args[4], nt, types.int64), i32)
        af = builder.bitcast(x, f32)
        q = builder.bitcast(builder.fmul(af, args[1]), i32)
        odd = builder.and_(builder.lshr(q, sh), c32(1))
        rn = builder.and_(builder.add(builder.add(q, half_m1), odd), builder.not_(low))
        r = builder.select(builder.icmp_unsigned(">", rn, max_mag), max_mag, rn)
        expo = builder.add(builder.sub(builder.lshr(r, c32(23)), c32(127)), sbias)
        frac = builder.and_(builder.lshr(r, sh), builder.sub(builder.shl(c32(1), sm), c32(1)))
        code = builder.or_(builder.shl(expo, sm), frac)
        d = builder.fmul(builder.bitcast(r, f32), args[2])
        bad = ir.Constant(f32, -1.0)
        # |(q & low) - tie| <= near, as one unsigned compare
        dlow = builder.sub(builder.and_(q, low), tie)
        near_mid = builder.icmp_unsigned("<=", builder.add(dlow, nr), builder.add(nr, nr))
        out = builder.select(builder.icmp_unsigned("<", q, min_normal), bad, d)
        out = builder.select(near_mid, bad, out)
        out = builder.select(builder.icmp_unsigned(">=", x, c32(0x7F800000)), bad, out)
        out = builder.select(
            builder.fcmp_ordered("<", d, ir.Constant(f32, 1.1754944e-38)), bad, out
        )
        lim = builder.fmul(af, ir.Constant(f32, 2.0**-125))
        out = builder.select(builder.fcmp_ordered(">", lim, d), bad, out)
        return context.make_tuple(builder, signature.return_type, [code, out])

    return sig, codegen
