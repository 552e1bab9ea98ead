"""The library's own narrowing casts of float arrays: one nearest-even rounding, overflow to inf.

Results that leave the library in a 16-bit dtype go through :func:`cast_float` instead of
``ndarray.astype``, because ``astype`` to bfloat16 is ml_dtypes' conversion, and ml_dtypes
changed it (0.5/0.6 rounded float64 to float32 first, then to bfloat16: two roundings; 0.7 rounds
once). Here float64 and float32 values are rounded once, directly, to the nearest bfloat16 or
float16 (ties to even; beyond the largest finite value, inf as IEEE 754 says; NaN becomes the quiet
NaN of its sign), whatever ml_dtypes is installed. NumPy's own casts to float16, float32 and float64 are
IEEE conversions (tested against the exact reference in ``tests/test_float_casts.py``).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

__all__ = ["BF16", "cast_float"]

BF16 = np.dtype(ml_dtypes.bfloat16)


def _float32_round_to_odd(v: np.ndarray) -> np.ndarray:
    """float64 ``v`` rounded to float32 toward zero, with the last bit set when inexact.

    Rounding to odd with 29 spare bits first and then to nearest-even at bfloat16's 8 bits gives
    the single nearest-even rounding of ``v`` (Boldo and Melquiond's rule: two or more spare
    bits suffice), also for subnormals, where float32 keeps 16 more bits than bfloat16.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        t = v.astype(np.float32)
        back = t.astype(np.float64)
        bits = t.view(np.uint32).copy()
        away = np.abs(back) > np.abs(v)  # rounded away from zero (incl. to inf): step back
        bits -= away.astype(np.uint32)
        inexact = (back != v) & ~np.isnan(v)
    bits |= inexact.astype(np.uint32)
    return bits.view(np.float32)


def _bf16_bits(f32: np.ndarray) -> np.ndarray:
    """float32 values rounded (nearest-even, overflow to inf) to bfloat16, as uint16 bits."""
    b = f32.view(np.uint32)
    nan = (b & 0x7FFFFFFF) > 0x7F800000
    rounded = (b + (0x7FFF + ((b >> 16) & 1))) >> 16  # carries into the exponent, up to inf
    out = np.where(nan, (b >> 16) & 0x8000 | 0x7FC0, rounded)  # NaN: the quiet NaN, its sign
    return out.astype(np.uint16)


def cast_float(values, dtype) -> np.ndarray:
    """``values`` (a float16/bfloat16/float32/float64 array) rounded once to ``dtype``.

    Nearest-even; values beyond the largest finite value of ``dtype`` become inf of their sign;
    NaN stays NaN. The shape is kept (0-d included). Exact values are returned unchanged.
    """
    a = np.asarray(values)
    dtype = np.dtype(dtype)
    if a.dtype == dtype:
        return a
    if dtype == BF16:
        if a.dtype.itemsize == 2:
            a = a.astype(np.float32)  # exact: float16 and bfloat16 widen to float32 exactly
        f32 = (
            _float32_round_to_odd(a.astype(np.float64, copy=False))
            if a.dtype == np.float64
            else np.ascontiguousarray(a, dtype=np.float32)
        )
        return _bf16_bits(f32.reshape(-1)).view(BF16).reshape(a.shape)
    if a.dtype == BF16:
        a = a.astype(np.float32)  # exact
    with np.errstate(over="ignore", invalid="ignore"):
        return a.astype(dtype)
