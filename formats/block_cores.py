"""Scalar steps shared by the block-format (MX, NVFP4) kernels of the CPU and of CUDA.

``@numba.njit`` functions of primitive integers over the cores of :mod:`qemu_arrays.formats.cores`: the CPU
kernels of :mod:`qemu_arrays.cpu_blocks` and the CUDA steps of :mod:`qemu_arrays.cuda_kernels.block_cores`
call the very same functions, so both compute the same bits. The semantics are those of
``docs/blocks.md``. This module imports no ``numba.cuda``.
"""

from __future__ import annotations

import math

from numba import njit

from qemu_arrays.formats.cores import (
    FINITE,
    SATURATE,
    bit_length,
    format_code,
    has_negative_zero,
    round_magnitude,
)
from qemu_arrays.formats.jit_cache import purge_stale_cache

purge_stale_cache(__file__)

__all__ = [
    "CEIL",
    "EVEN",
    "FLOOR",
    "RCEIL",
    "mx_float_general",
    "shared_exponent",
    "split_bits",
]

_JIT = njit(cache=True, nogil=True)

from qemu_arrays.formats.codes import CEIL, EVEN, FLOOR, RCEIL  # noqa: E402  (ScaleRule codes)


@_JIT
def split_bits(b, in_e, in_m):
    """(sign, M, E, special) of an IEEE bit pattern: value ``(-1)^sign * M * 2^E``.

    ``special`` is 1 for inf and NaN (M and E are then meaningless); M is 0 for zero.
    """
    in_bias = (1 << (in_e - 1)) - 1
    sign = (b >> (in_e + in_m)) & 1
    ef = (b >> in_m) & ((1 << in_e) - 1)
    mf = b & ((1 << in_m) - 1)
    if ef == (1 << in_e) - 1:
        return sign, 0, 0, 1
    if ef == 0:
        return sign, mf, 1 - in_bias - in_m, 0
    return sign, mf | (1 << in_m), ef - in_bias - in_m, 0


@_JIT
def shared_exponent(M, E, rule, mprec, emax_elem, maxsig):
    """The power-of-two block scale exponent for ``amax = M * 2^E > 0`` under ``rule``.

    ``mprec`` is the element's mantissa bits (significant bits - 1) in its top binade, and
    ``maxsig`` the significand integer of the element maximum (``max = maxsig * 2^k`` with
    ``maxsig`` odd or of ``mprec + 1`` bits); ``emax_elem`` the exponent of its top binade.
    """
    bl = bit_length(M)
    e = E + bl - 1 - emax_elem  # FLOOR: floor(log2 amax) - emax
    if rule == CEIL or rule == EVEN:  # noqa: SIM109  (kept simple for numba)
        p = mprec + 1
        if bl > p:
            shift = bl - p
            kept = M >> shift
            rem = M & ((1 << shift) - 1)
            if rule == CEIL:
                up = rem != 0
            else:
                half = 1 << (shift - 1)
                up = rem > half or (rem == half and (kept & 1) == 1)
            if up and kept + 1 == (1 << p):
                e += 1
    elif rule == RCEIL:
        # amax and max * 2^e share a binade: compare their significands, aligned
        blm = bit_length(maxsig)
        if (M << (blm - 1)) > (maxsig << (bl - 1)):
            e += 1
    return e


@_JIT
def mx_float_general(sign, M, E, e, ep, rnd, u, r):
    """General path of one MX float element ``(-1)^sign M 2^E`` under the scale ``2^e``.

    Returns ``(value as float64, element code)``. Kept out of line (not inlined by numba) so
    that the fast loop of :func:`qemu_arrays.cpu_blocks.mx_kernel` stays small.
    """
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = ep
    if M == 0:
        st = FINITE
        s = sign if has_negative_zero(sg, hz, sp) else 0
        kept = 0
        q = 0
    else:
        st, s, kept, q = round_magnitude(
            sign, M, E - e, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, SATURATE, u, r
        )
    v = math.ldexp(float(kept), q + e)
    return (-v if s == 1 else v), format_code(st, s, kept, q, m, emin, eb, bias, sg, sp)
