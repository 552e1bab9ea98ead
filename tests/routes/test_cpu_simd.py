"""The CPU intrinsics of ``qemu_arrays.kernels.simd`` against plain numpy."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from qemu_arrays.kernels.simd import amax_bits16, amax_bits32, prefetch


@njit
def _amax_all(xb, n, out):
    for i in range(out.size):
        if n == 32:
            out[i] = amax_bits32(xb, np.uint64(i))
        else:
            out[i] = amax_bits16(xb, np.uint64(i))


@njit
def _touch_with_prefetch(xb, far):
    s = np.uint64(0)
    for i in range(xb.size):
        prefetch(xb, np.uint64(i) + np.uint64(far))  # past the end too: a hint, never a fault
        s += xb[i]
    return s


def _patterns(rng, size):
    """uint32 float bit patterns of every class: normals, subnormals, zeros of both signs,
    infinities, quiet and signalling NaNs with either sign, and the largest finite."""
    b = rng.integers(0, 2**32, size=size, dtype=np.uint64).astype(np.uint32)
    special = np.array(
        [0, 0x80000000, 1, 0x807FFFFF, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000,
         0x7FC00000, 0xFFC00001, 0x7F800001, 0x3F800000],
        dtype=np.uint32,
    )  # fmt: skip
    idx = rng.integers(0, size, size=size // 8)
    b[idx] = special[rng.integers(0, special.size, size=idx.size)]
    return b


@pytest.mark.parametrize("n", [16, 32])
def test_amax_bits_is_the_largest_magnitude_pattern_at_any_offset(rng, n):
    """Every start offset (the vector load assumes only element alignment)."""
    xb = _patterns(rng, 4096 + n)
    got = np.empty(4096, dtype=np.int64)
    _amax_all(xb, n, got)
    windows = np.lib.stride_tricks.sliding_window_view(xb & np.uint32(0x7FFFFFFF), n)[:4096]
    np.testing.assert_array_equal(got, windows.max(axis=1).astype(np.int64))


def test_amax_bits_orders_magnitudes_as_floats(rng):
    """The pattern maximum is the float maximum for finite blocks (sign cleared)."""
    x = (rng.standard_normal(32 * 500) * np.exp2(rng.integers(-140, 120, 32 * 500))).astype(
        np.float32
    )
    got = np.empty(500, dtype=np.int64)

    @njit
    def blocks(xb, out):
        for t in range(out.size):
            out[t] = amax_bits32(xb, np.uint64(32 * t))

    blocks(x.view(np.uint32), got)
    want = np.abs(x).reshape(500, 32).max(axis=1)
    np.testing.assert_array_equal(got.astype(np.uint32).view(np.float32), want)


def test_prefetch_changes_nothing_and_never_faults(rng):
    xb = rng.integers(0, 1000, size=10_000, dtype=np.uint64).astype(np.uint32)
    before = xb.copy()
    for far in (0, 7, 10_000, 1 << 20):
        assert _touch_with_prefetch(xb, far) == int(xb.astype(np.uint64).sum())
    np.testing.assert_array_equal(xb, before)


def test_intrinsics_reject_wrong_types():
    from numba.core.errors import TypingError

    @njit
    def f32_input(x):
        return amax_bits32(x, 0)

    with pytest.raises(TypingError):
        f32_input(np.zeros(32, dtype=np.float32))
