"""Formats with more mantissa bits than the input (issue 19): results that the input's dtype
cannot hold exactly (a clamped maximum of ``2**41 - 1`` significand bits, say) are rounded to
the output dtype once, nearest-even, as ``formats/reference.py`` (exact, then one rounding)
says. ``cores.ieee_bits`` used to truncate them (e5m40 FNUZ: float32 inf under SATURATE gave
131071.99 where ``decode(encode(x))`` gave 131072)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats.reference import quantize_value, random_bits
from qemu_arrays.formats.spec import FloatFormat, Overflow, Rounding, Specials
from tests.conftest import assert_same_floats

SEED = 77
BF16 = np.dtype(ml_dtypes.bfloat16)

WIDE = (
    FloatFormat(exponent_bits=5, mantissa_bits=40, specials=Specials.FNUZ, name="e5m40fnuz"),
    FloatFormat(exponent_bits=8, mantissa_bits=30, name="e8m30"),
    FloatFormat(exponent_bits=4, mantissa_bits=25, specials=Specials.FN, name="e4m25fn"),
    FloatFormat(exponent_bits=6, mantissa_bits=33, specials=Specials.FINITE, name="e6m33fin"),
    FloatFormat(
        exponent_bits=5, mantissa_bits=27, signed=False, specials=Specials.FN, name="e5m27ufn"
    ),
    FloatFormat(exponent_bits=11, mantissa_bits=52, name="float64fmt"),
    FloatFormat(exponent_bits=9, mantissa_bits=24, bias=140, specials=Specials.P3109, name="p"),
    FloatFormat(
        exponent_bits=3, mantissa_bits=24, subnormals=False, specials=Specials.FN, name="e3nosub"
    ),
)
#: more mantissa bits than bfloat16/float16 input (widened to float32 by the kernels)
WIDE_FOR_16 = (qa.get_format("tf32"), qa.get_format("float32"), *WIDE[:3])
DETERMINISTIC = tuple(
    r for r in Rounding if r < Rounding.STOCHASTIC
)  # issue-16 modes: test_rounding_modes


def _inputs(fmt, dtype):
    """Values near every edge of the format, in ``dtype``: around its max and the input's max,
    the smallest normals and subnormals, a spread of normals, ±0 and ±inf."""
    rng = np.random.default_rng(5)
    lim = float(np.finfo(np.float32 if dtype == np.float32 else dtype).max)
    with np.errstate(over="ignore"):
        top = [fmt.max, lim]
        edges = [v * f for v in top for f in (1.0, 1 - 2.0**-30, 1 + 2.0**-30, 0.75, 1.5, 2.0)]
        small = [fmt.smallest_normal, fmt.smallest_subnormal, 2.0**-126, 2.0**-149, 2.0**-140]
        small = [v * f for v in small for f in (1.0, 0.5, 0.75, 1.5, 3.0)]
        spread = rng.standard_normal(64) * np.exp2(rng.integers(-40, 40, 64))
        vals = np.concatenate([edges, small, spread, [0.0, np.inf]])
        vals = np.concatenate([vals, -vals]).astype(dtype)
    return np.unique(vals[~np.isnan(vals.astype(np.float64))])


def _expected(x, fmt, rounding, overflow, dtype, seed=SEED):
    """The reference's exact value rounded once to ``dtype`` (None where the reference refuses:
    a value with no code under ``overflow``, which the kernels report as an error)."""
    name = "float32" if dtype == np.float32 else np.dtype(dtype).name
    out = []
    for i, v in enumerate(x.astype(np.float64)):
        kw = {}
        if rounding is Rounding.STOCHASTIC:
            kw = {"u": random_bits(seed, 0, i, 32), "r": 32}
        try:
            q = quantize_value(float(v), fmt, rounding, overflow, input_dtype=name, **kw)
        except ValueError:
            return None
        out.append(q)
    with np.errstate(over="ignore"):
        return np.array(out, dtype=np.float64).astype(dtype)


def _kw(rounding):
    return {"seed": SEED} if rounding is Rounding.STOCHASTIC else {}


def _check(fmt, rounding, overflow, dtype):
    x = _inputs(fmt, dtype)
    want = _expected(x, fmt, rounding, overflow, dtype)
    if want is None:  # some input has no code under this policy: the call refuses it
        with pytest.raises(ValueError, match="NaN"):
            qa.quantize(x, fmt, rounding=rounding, overflow=overflow, **_kw(rounding))
        return
    got = qa.quantize(x, fmt, rounding=rounding, overflow=overflow, **_kw(rounding))
    ctx = f"{fmt.name} {rounding.name} {overflow.name} {np.dtype(dtype).name}"
    assert_same_floats(got, want, ctx)
    codes = qa.encode(x, fmt, rounding=rounding, overflow=overflow, **_kw(rounding))
    assert_same_floats(qa.decode(codes, fmt, dtype=dtype), want, ctx + " decode(encode)")


@pytest.mark.parametrize("overflow", list(Overflow), ids=lambda o: o.name)
@pytest.mark.parametrize("fmt", WIDE, ids=lambda f: f.name)
def test_wide_formats_float32_input(fmt, overflow):
    for rounding in (r for r in Rounding if r <= Rounding.STOCHASTIC):
        _check(fmt, rounding, overflow, np.float32)


@pytest.mark.parametrize("dtype", [np.float16, BF16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("fmt", WIDE_FOR_16, ids=lambda f: f.name)
def test_wide_formats_16bit_input(fmt, dtype):
    for overflow in Overflow:
        for rounding in (Rounding.NEAREST_EVEN, Rounding.TOWARD_ZERO, Rounding.UP):
            _check(fmt, rounding, overflow, dtype)


def test_issue_example_e5m40_saturated_inf():
    fmt = WIDE[0]
    x = np.array([np.inf, -np.inf], np.float32)
    got = qa.quantize(x, fmt, overflow=Overflow.SATURATE)
    np.testing.assert_array_equal(got, [131072.0, -131072.0])
    codes = qa.encode(x, fmt, overflow=Overflow.SATURATE)
    np.testing.assert_array_equal(qa.decode(codes, fmt), got)


def test_rounding_carry_reaches_infinity():
    """A float64-wide format's max rounds up past float32's max: inf, as one rounding says."""
    fmt = FloatFormat(exponent_bits=11, mantissa_bits=52, specials=Specials.FINITE)
    x = np.array([np.inf], np.float32)
    got = qa.quantize(x, fmt, overflow=Overflow.SATURATE)
    assert np.isposinf(got[0])
