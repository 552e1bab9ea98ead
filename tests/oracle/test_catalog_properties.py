"""The property battery of qemu_arrays.testing on every catalogue format and on random ones."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qemu_arrays as qa
from qemu_arrays.formats.catalog import list_formats
from qemu_arrays.formats.spec import FloatFormat, IntFormat
from qemu_arrays.testing import check_format, float_formats, int_formats


def _element_names():
    seen, names = set(), []
    for name in list_formats():
        fmt = qa.get_format(name)
        if isinstance(fmt, (FloatFormat, IntFormat)) and fmt not in seen:
            seen.add(fmt)
            names.append(name)
    return names


def _options(fmt):
    opts = {"stochastic_trials": 2000, "stochastic_inputs": 6}
    if fmt.bits > 8:
        opts["max_values"] = 2048  # 16-bit and wider formats are sampled
    if isinstance(fmt, IntFormat):
        opts["scale"] = 0.125
    return opts


@pytest.mark.parametrize("name", _element_names())
def test_catalogue_format_passes_the_battery(name):
    fmt = qa.get_format(name)
    report = check_format(fmt, **_options(fmt))
    report.raise_if_failed()
    for prop in ("value_set", "fixed_points", "monotonicity", "overflow_policy"):
        assert prop in report.passed
    if isinstance(fmt, IntFormat) or fmt.mantissa_bits < 52:  # float64 input has no ties of float64
        assert "tie_rule" in report.passed
    assert "encode_decode_roundtrip" in report.passed
    assert "stochastic_unbiased" in report.passed


@pytest.mark.parametrize("name", ["bfloat16", "float8_e4m3fn", "float6_e3m2fn"])
def test_ml_dtypes_agreement_is_checked(name):
    report = check_format(name, roundings=[qa.Rounding.NEAREST_EVEN], max_values=2048)
    report.raise_if_failed()
    assert "ml_dtypes_agreement" in report.passed


# The three regression tests below pin what this battery once found in the kernels: -0.0 into
# a format without zero (signed, under SATURATE; unsigned without NaN), and the decode of the
# flushed codes (E = 0, F != 0, sign set) of formats without subnormals and without -0.
_custom_floats = float_formats(min_bits=3, max_bits=8)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(fmt=st.one_of(_custom_floats, int_formats(min_bits=2, max_bits=8)))
def test_random_custom_formats_pass_the_battery(fmt):
    check_format(fmt, stochastic_trials=2000, stochastic_inputs=4, **(
        {"scale": 0.5} if isinstance(fmt, IntFormat) else {}
    )).raise_if_failed()  # fmt: skip


def test_signed_no_zero_negative_zero_saturates_to_negative():
    fmt = qa.FloatFormat(
        exponent_bits=2, mantissa_bits=0, bias=0, signed=True, subnormals=False, has_zero=False
    )
    report = check_format(
        fmt, roundings=[qa.Rounding.NEAREST_EVEN], overflows=[qa.Overflow.SATURATE]
    )
    report.raise_if_failed()


def test_flushed_negative_codes_decode_to_positive_zero():
    fmt = qa.FloatFormat(
        exponent_bits=1, mantissa_bits=1, bias=0, subnormals=False, specials=qa.Specials.FNUZ
    )
    report = check_format(fmt, roundings=[qa.Rounding.NEAREST_EVEN], overflows=[qa.Overflow.OWN])
    report.raise_if_failed()


def test_negative_zero_into_unsigned_no_zero_format_gives_smallest():
    fmt = qa.FloatFormat(
        exponent_bits=1,
        mantissa_bits=2,
        signed=False,
        subnormals=False,
        has_zero=False,
        specials=qa.Specials.FINITE,
    )
    report = check_format(fmt, roundings=[qa.Rounding.NEAREST_EVEN], overflows=[qa.Overflow.OWN])
    report.raise_if_failed()
