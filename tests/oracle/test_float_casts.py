"""The library's own narrowing casts (qemu_arrays.float_casts) against the exact reference.

Every output cast to bfloat16 and float16 must be one nearest-even rounding of the exact value,
whatever ml_dtypes is installed (ml_dtypes before 0.7 rounded float64 to bfloat16 through
float32, two roundings)."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

from qemu_arrays.float_casts import BF16, cast_float
from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.reference import encode_value

TARGETS = {"bfloat16": BF16, "float16": np.dtype(np.float16)}


def _deciding_inputs(name, rng):
    """float64 values at, around and just off every kind of boundary of the target grid:
    midpoints (ties), midpoints nudged by far less than a float32 ulp (where rounding through
    float32 goes wrong), subnormals, the overflow threshold, specials."""
    fmt = get_format(name)
    codes = np.arange(1 << 16, dtype=np.uint16)
    with np.errstate(invalid="ignore"):
        grid = codes.view(TARGETS[name]).astype(np.float64)
    grid = np.unique(np.abs(grid[np.isfinite(grid)]))
    mids = (grid[:-1] + grid[1:]) / 2  # exact in float64
    top = fmt.max + 2.0 ** (fmt.emax - fmt.mantissa_bits - 1)  # the overflow tie
    pick = rng.choice(mids.size, 3000, replace=False)
    base = np.concatenate([mids[pick], mids[:200], grid[:100], [top, fmt.max]])
    nudged = np.concatenate([base * (1 + 2.0**-40), base * (1 - 2.0**-40)])
    x = np.concatenate([base, nudged, np.nextafter(base, np.inf), np.nextafter(base, 0)])
    x = np.concatenate([x, -x, [0.0, -0.0, np.inf, -np.inf, np.nan, 1e300, -1e300, 5e-324]])
    return x


@pytest.mark.parametrize("name", sorted(TARGETS))
@pytest.mark.parametrize("source", [np.float64, np.float32])
def test_cast_rounds_once_to_nearest_even(name, source, rng):
    x = _deciding_inputs(name, rng)
    with np.errstate(over="ignore"):
        x = x.astype(source)
    got = cast_float(x, TARGETS[name]).view(np.uint16)
    fmt = get_format(name)
    want = np.array([encode_value(float(v), fmt) for v in x], dtype=np.uint16)
    nan = np.isnan(x)
    assert np.array_equal(got[~nan], want[~nan]), name
    assert np.all(np.isnan(cast_float(x[nan], TARGETS[name]).astype(np.float32)))


def test_bfloat16_cast_is_not_ml_dtypes_double_rounding():
    """1 + 2^-8 + 2^-40 lies just above a bfloat16 tie: one rounding gives 1 + 2^-7; rounding to
    float32 first lands on the tie and goes to even, 1.0 (what ml_dtypes 0.5/0.6 returned)."""
    x = np.array([1 + 2.0**-8 + 2.0**-40, -(1 + 2.0**-8 + 2.0**-40)])
    assert cast_float(x, BF16).astype(np.float64).tolist() == [1 + 2.0**-7, -(1 + 2.0**-7)]
    twice = x.astype(np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)
    assert twice.tolist() == [1.0, -1.0]  # the two-step answer differs


def test_cast_keeps_shape_dtype_and_exact_values():
    a = np.arange(-8, 8, dtype=np.float64).reshape(2, 2, 4) / 4
    for dt in (BF16, np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)):
        out = cast_float(a, dt)
        assert out.dtype == dt
        assert out.shape == a.shape
        assert np.array_equal(out.astype(np.float64), a)
    zero_d = cast_float(np.float64(1.5), BF16)
    assert zero_d.shape == ()
    assert float(zero_d) == 1.5
    assert math.copysign(1, float(cast_float(np.array([-0.0]), BF16)[0])) == -1


@pytest.mark.parametrize("name", ["bfloat16", "float16", "float32"])
def test_block_decode_rounds_the_exact_product_once(name):
    """NVFP4 decode forms ``element * float32(scale * tensor_scale)`` exactly and rounds it once
    to the output dtype; ``1.5 * d`` needs 25 bits, and this ``d`` is one where rounding through
    float32 first (ml_dtypes' bfloat16 cast before 0.7) gives another bfloat16."""
    import qemu_arrays as qa
    from qemu_arrays.formats.reference import quantize_value

    d = np.array([1065309525], np.uint32).view(np.float32)[0]
    codes = np.full((2, 16), 3, np.uint8)  # E2M1 1.5
    scales = np.full((2, 1), 0x38, np.uint8)  # E4M3 1.0
    dt = {"bfloat16": BF16, "float16": np.float16, "float32": np.float32}[name]
    got = qa.decode(codes, "nvfp4", scale=scales, tensor_scale=d, dtype=dt)
    assert got.dtype == dt
    assert np.all(got.astype(np.float64) == quantize_value(1.5 * float(d), name))
