"""Loads and stores of the block-format CUDA kernels: the input's bits in, the output's bits out.

The kernels of :mod:`qemu_arrays.cuda_kernels.block_kernels` read every dtype as bits and
compute on float32 bits (or float64 for float64 input); the block and element rules they apply
are the shared steps of :mod:`qemu_arrays.formats.block_cores` (the CPU kernels call the same
functions). This module holds no rounding rule of its own: only the widening of 16-bit input,
the narrowing of float32 results to 16-bit outputs (the CPU route's cast, on the cores of
:mod:`qemu_arrays.formats.cores`) and the magnitude order of bits. ``@numba.njit`` functions;
this module imports no ``numba.cuda``.

Input bits arrive in a *load kind* and values leave in an *output kind*:

====  ==========================================  ==========================================
kind  load (:func:`load_bits`)                    store (:func:`store_bits`)
====  ==========================================  ==========================================
0     float32 bits                                float32 bits
1     float64 bits (kept as float64)              float64 bits (computed in float64)
2     float16 bits, widened exactly to float32    float32 bits rounded (nearest-even) to float16
3     bfloat16 bits, widened exactly to float32   float32 bits rounded (nearest-even) to bfloat16
4     float64 bits, rounded to float32            float32 bits widened exactly to float64
====  ==========================================  ==========================================
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qemu_arrays.formats.bits import bits_f32, bits_f64, f32_bits, f64_bits
from qemu_arrays.formats.cores import (
    OWN,
    RNE,
    bit_length,
    ieee_bits,
    round_ieee_bits,
)
from qemu_arrays.formats.jit_cache import purge_stale_cache

purge_stale_cache(__file__)  # formats/ sources, rne32 included, are always covered

_JIT = {"cache": True, "nogil": True}
_HOT = {"cache": True, "nogil": True, "inline": "always"}

# float16 / bfloat16 parameters of qemu_arrays.formats.cores (m, emin, emax, sigmax) for the narrowing
F16 = (10, -14, 15, 2047)
BF16 = (7, -126, 127, 255)


# ---- loads and stores ------------------------------------------------------------------------


@njit(**_HOT)
def f16_to_f32_bits(h):
    """float32 bits of the float16 with bits ``h`` (exact)."""
    h = h & 0xFFFF
    s = (h >> 15) << 31
    ef = (h >> 10) & 0x1F
    mf = h & 0x3FF
    if ef == 0x1F:
        return s | 0x7F800000 | (mf << 13)
    if ef == 0:
        if mf == 0:
            return s
        bl = bit_length(mf)  # value mf * 2**-24 = 1.f * 2**(bl - 25)
        return s | ((bl + 102) << 23) | ((mf << (24 - bl)) & 0x7FFFFF)
    return s | ((ef + 112) << 23) | (mf << 13)


@njit(**_HOT)
def load_bits(raw, kind):
    """The bits a kernel computes on (float32 layout, or float64 for kind 1) of a raw load."""
    b = np.int64(raw)
    if kind == 0:
        return b & 0xFFFFFFFF
    if kind == 1:
        return b
    if kind == 2:
        return f16_to_f32_bits(b)
    if kind == 3:
        return (b & 0xFFFF) << 16
    return np.int64(f32_bits(np.float32(bits_f64(b))))  # float64 -> float32, nearest-even


@njit(**_JIT)
def narrow_bits(b32, kind):
    """float32 bits rounded (nearest-even, overflow to inf) to float16 (2) or bfloat16 (3),
    as the cast of the CPU route's float32 result; canonical NaN."""
    if kind == 2:
        m, emin, emax, sig = F16
        oe, om = 5, 10
    else:
        m, emin, emax, sig = BF16
        oe, om = 8, 7
    st, s, kept, q = round_ieee_bits(b32, 8, 23, m, emin, emax, sig, 1, 1, 1, 0, RNE, OWN, 0, 32)
    return ieee_bits(st, s, kept, q, oe, om)


@njit(**_HOT)
def store_bits(vb, kind):
    """What a kernel writes (bits of the output dtype) for value bits ``vb`` (float32 layout,
    or float64 for kind 1)."""
    if kind == 0 or kind == 1:
        return vb
    if kind == 4:
        return f64_bits(np.float64(bits_f32(vb)))
    return narrow_bits(vb, kind)


@njit(**_HOT)
def abs_bits(b, kind):
    """Magnitude bits (ordered as the magnitudes are) of computed bits ``b``."""
    if kind == 1:
        return b & 0x7FFFFFFFFFFFFFFF
    return b & 0x7FFFFFFF


# ---- decode ----------------------------------------------------------------------------------


@njit(**_JIT)
def decoded_bits(v, kind):
    """Bits of the float64 ``v`` in the output dtype, as the CPU route's ``cast_float`` gives
    them: float32 (0) and float64 (1) directly, float16 (2) and bfloat16 (3) rounded once
    (nearest-even, overflow to inf) from float64."""
    if kind == 1:
        return f64_bits(v)
    if kind == 0:
        return np.int64(f32_bits(np.float32(v)))
    if kind == 2:
        m, emin, emax, sig = F16
        oe, om = 5, 10
    else:
        m, emin, emax, sig = BF16
        oe, om = 8, 7
    st, s, kept, q = round_ieee_bits(
        f64_bits(v), 11, 52, m, emin, emax, sig, 1, 1, 1, 0, RNE, OWN, 0, 53
    )
    return ieee_bits(st, s, kept, q, oe, om)
