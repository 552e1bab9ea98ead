"""qemu_arrays with ``overflow=Overflow.ML_DTYPES`` reproduces ml_dtypes' casts exactly: every
float16 and every bfloat16 bit pattern into every ml_dtypes float type, and hypothesis-drawn
float32 and float64 arrays (float64 through ``via_float32=True``, ml_dtypes' double rounding).

This includes ml_dtypes' rounding of float32 subnormals into float8_e8m0fnu (always up), which
the ML_DTYPES policy copies (docs/formats.md)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from formats.catalog import ML_DTYPES_NAMES, get_format
from formats.reference import encode_value
from formats.spec import Overflow, Rounding

BF16 = np.dtype(ml_dtypes.bfloat16)
SETTINGS = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure reports its whole array
)


def _uint(dt):
    return np.uint8 if np.dtype(dt).itemsize == 1 else np.uint16


def _compare(name, x, same_codes, same_floats, **kw):
    import qemu_arrays as qa

    ml_t = getattr(ml_dtypes, name)
    with np.errstate(invalid="ignore", over="ignore"):
        ml = x.astype(ml_t)
        ml_back = ml.astype(x.dtype)
    context = f"{name} <- {x.dtype}"
    codes = qa.encode(x, name, overflow=Overflow.ML_DTYPES, **kw)
    # NaN results: ml_dtypes keeps payloads where it can, qemu_arrays writes the canonical NaN
    # code; both must be NaN. Every other code must be identical.
    with np.errstate(invalid="ignore"):
        ml_nan = np.isnan(ml.astype(np.float32))
        our_nan = np.isnan(codes.view(ml_t).astype(np.float32))
    assert np.array_equal(our_nan, ml_nan), (
        f"{context}: NaN at {np.flatnonzero(our_nan != ml_nan)[:8]}"
    )
    ml_codes = ml.view(_uint(ml_t))
    same_codes(codes[~ml_nan], ml_codes[~ml_nan], context, inputs=x[~ml_nan])
    got = qa.quantize(x, name, overflow=Overflow.ML_DTYPES, **kw)
    same_floats(got, ml_back, context)


@pytest.mark.parametrize("name", ML_DTYPES_NAMES)
def test_every_float16_pattern(name, same_codes, same_floats):
    x = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    _compare(name, x, same_codes, same_floats)


@pytest.mark.parametrize("name", ML_DTYPES_NAMES)
def test_every_bfloat16_pattern(name, same_codes, same_floats):
    x = np.arange(1 << 16, dtype=np.uint16).view(BF16)
    _compare(name, x, same_codes, same_floats)


def test_the_e8m0_subnormal_quirk_is_copied_only_under_ml_dtypes():
    """The 31 positive bfloat16 subnormals in (2^-127, 1.5 * 2^-127): ml_dtypes and ML_DTYPES
    give 2^-126 (code 1); OWN and the reference without the policy give the nearest, 2^-127."""
    import qemu_arrays as qa

    fmt = get_format("float8_e8m0fnu")
    x = np.arange(1 << 16, dtype=np.uint16).view(BF16)
    with np.errstate(invalid="ignore"):
        a = x.astype(np.float32)
    x = x[(a > 2.0**-127) & (a < 1.5 * 2.0**-127)]
    assert x.size == 31
    assert set(qa.encode(x, fmt, overflow=Overflow.ML_DTYPES).tolist()) == {0x01}
    assert set(qa.encode(x, fmt).tolist()) == {0x00}
    assert {encode_value(float(v), fmt) for v in x} == {0x00}
    quirk = {encode_value(float(v), fmt, overflow=Overflow.ML_DTYPES, input_dtype=BF16) for v in x}
    assert quirk == {0x01}


@pytest.mark.parametrize("name", ML_DTYPES_NAMES)
@SETTINGS
@given(
    x=hnp.arrays(
        np.float32,
        st.integers(1, 300),
        elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
    )
)
def test_hypothesis_float32(name, x, same_codes, same_floats):
    _compare(name, x, same_codes, same_floats)


@pytest.mark.parametrize("name", ML_DTYPES_NAMES)
@SETTINGS
@given(
    x=hnp.arrays(
        np.float64,
        st.integers(1, 300),
        elements=st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            # near float32 and target midpoints, where double rounding shows
            st.floats(-1e5, 1e5).map(lambda v: float(np.float32(v)) * (1 + 2.0**-30)),
        ),
    )
)
def test_hypothesis_float64_via_float32(name, x, same_codes, same_floats):
    _compare(name, x, same_codes, same_floats, via_float32=True)


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "bfloat16"])
def test_nearest_even_under_own_equals_ml_dtypes_where_nan_is_not_involved(name, same_codes):
    """Outside NaN handling for no-NaN formats, OWN and ML_DTYPES are the same policy."""
    import qemu_arrays as qa

    x = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    x = x[~np.isnan(x)]
    own = qa.encode(x, name, rounding=Rounding.NEAREST_EVEN)
    ml = qa.encode(x, name, overflow=Overflow.ML_DTYPES)
    same_codes(own, ml, name, inputs=x)
