"""qemu_arrays with ``overflow=Overflow.ML_DTYPES`` reproduces the installed ml_dtypes' casts
exactly: every float16 and every bfloat16 bit pattern into every ml_dtypes float type, and
hypothesis-drawn float32 and float64 arrays.

The rules where ml_dtypes releases differ (float64 rounded through float32 before 0.7; float32
subnormals into float8_e8m0fnu rounded up before 0.7) are found by probing the installed
ml_dtypes (:mod:`qemu_arrays.formats.ml_dtypes_rules`), never by its version string; CI also runs this file
against the oldest supported ml_dtypes (``.ci/run``). The library's own results (every policy but
ML_DTYPES) do not depend on the installed ml_dtypes."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qemu_arrays.formats.catalog import ML_DTYPES_NAMES, get_format
from qemu_arrays.formats.ml_dtypes_rules import installed
from qemu_arrays.formats.reference import encode_value
from qemu_arrays.formats.spec import Overflow, Rounding

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


def test_the_e8m0_subnormal_rule_follows_the_installed_ml_dtypes():
    """The 31 positive bfloat16 subnormals in (2^-127, 1.5 * 2^-127): ML_DTYPES gives what the
    installed ml_dtypes gives (2^-126 before 0.7, the nearest 2^-127 since), the probe says
    which, and OWN and the reference without the policy give the nearest, 2^-127, always."""
    import qemu_arrays as qa

    fmt = get_format("float8_e8m0fnu")
    x = np.arange(1 << 16, dtype=np.uint16).view(BF16)
    with np.errstate(invalid="ignore"):
        a = x.astype(np.float32)
    x = x[(a > 2.0**-127) & (a < 1.5 * 2.0**-127)]
    assert x.size == 31
    ml = set(x.astype(ml_dtypes.float8_e8m0fnu).view(np.uint8).tolist())
    assert ml == ({0x01} if installed().e8m0_subnormal_up else {0x00})
    assert set(qa.encode(x, fmt, overflow=Overflow.ML_DTYPES).tolist()) == ml
    assert set(qa.encode(x, fmt).tolist()) == {0x00}
    assert {encode_value(float(v), fmt) for v in x} == {0x00}
    ref = {encode_value(float(v), fmt, overflow=Overflow.ML_DTYPES, input_dtype=BF16) for v in x}
    assert ref == ml


@pytest.mark.parametrize("name", ML_DTYPES_NAMES)
def test_the_float64_rule_follows_the_installed_ml_dtypes(name):
    """A float64 input that rounds differently in one step and through float32, for every type:
    ``1 + 2^-(m+1) + 2^-30`` (just above a tie that float32 cannot see; for E8M0, whose ties go
    up, ``1.5 - 2^-30``). ml_dtypes' answer must be the one its probed rule predicts, and
    ML_DTYPES must give it; the default policy rounds once, whatever ml_dtypes does."""
    import qemu_arrays as qa

    fmt = get_format(name)
    m = fmt.mantissa_bits
    x = np.array([1.5 - 2.0**-30 if m == 0 else 1 + 2.0 ** -(m + 1) + 2.0**-30])
    one_step = encode_value(float(x[0]), fmt)
    two_steps = encode_value(float(np.float32(x[0])), fmt)
    assert one_step != two_steps
    ml = int(x.astype(getattr(ml_dtypes, name)).view(_uint(getattr(ml_dtypes, name)))[0])
    assert ml == (two_steps if installed().float64_via_float32 else one_step)
    assert int(qa.encode(x, name, overflow=Overflow.ML_DTYPES)[0]) == ml
    assert int(qa.encode(x, name)[0]) == one_step
    assert int(qa.encode(x, name, via_float32=True)[0]) == two_steps


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
def test_hypothesis_float64(name, x, same_codes, same_floats):
    _compare(name, x, same_codes, same_floats)


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float4_e2m1fn", "float8_e8m0fnu", "bfloat16"])
@SETTINGS
@given(
    x=hnp.arrays(
        np.float64,
        st.integers(1, 300),
        elements=st.floats(-1e5, 1e5).map(lambda v: float(np.float32(v)) * (1 + 2.0**-30)),
    )
)
def test_via_float32_is_float32_input_whatever_ml_dtypes_does(name, x, same_codes):
    """``via_float32=True`` is an operation, not a compatibility switch: float64 rounded to
    float32 (nearest-even), then to the format, on every ml_dtypes release."""
    import qemu_arrays as qa

    x = x[(x != 0) | (name != "float8_e8m0fnu")]
    got = qa.encode(x, name, via_float32=True, overflow=Overflow.SATURATE)
    want = qa.encode(x.astype(np.float32), name, overflow=Overflow.SATURATE)
    same_codes(got, want, name, inputs=x)


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "bfloat16"])
def test_nearest_even_under_own_equals_ml_dtypes_where_nan_is_not_involved(name, same_codes):
    """Outside NaN handling for no-NaN formats, OWN and ML_DTYPES are the same policy."""
    import qemu_arrays as qa

    x = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    x = x[~np.isnan(x)]
    own = qa.encode(x, name, rounding=Rounding.NEAREST_EVEN)
    ml = qa.encode(x, name, overflow=Overflow.ML_DTYPES)
    same_codes(own, ml, name, inputs=x)
