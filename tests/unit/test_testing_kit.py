"""The testing kit: its model agrees with the reference, and it finds planted bugs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qemu_arrays as qa
from qemu_arrays import Overflow, Rounding
from qemu_arrays.formats import reference
from qemu_arrays.testing import arrays as kit_arrays
from qemu_arrays.testing import (
    block_formats,
    check_estimator,
    check_format,
    decode_model,
    float_formats,
    format_values,
    int_formats,
    probe_points,
    representable_values,
    values_near,
)
from qemu_arrays.testing.checks import _model

FAST = {"stochastic_trials": 4000, "stochastic_inputs": 6}


# ---- planted bugs ------------------------------------------------------------------------------


def ties_away(x, fmt, rounding=Rounding.NEAREST_EVEN, **kw):
    """Bug: NEAREST_EVEN rounds ties away from zero."""
    if rounding is Rounding.NEAREST_EVEN:
        rounding = Rounding.NEAREST_AWAY
    return qa.quantize(x, fmt, rounding=rounding, **kw)


def flushes_subnormals(x, fmt, rounding=Rounding.NEAREST_EVEN, **kw):
    """Bug: results below the smallest normal are flushed to zero."""
    y = qa.quantize(x, fmt, rounding=rounding, **kw)
    return np.where(np.abs(y) < fmt.smallest_normal, np.copysign(0.0, y), y)


def biased_stochastic(x, fmt, rounding=Rounding.NEAREST_EVEN, seed=None, **kw):
    """Bug: stochastic rounding rounds away 5 points too often."""
    if rounding is not Rounding.STOCHASTIC:
        return qa.quantize(x, fmt, rounding=rounding, **kw)
    lo = qa.quantize(x, fmt, rounding=Rounding.TOWARD_ZERO, **kw)
    up = qa.quantize(x, fmt, rounding=Rounding.UP, **kw)
    down = qa.quantize(x, fmt, rounding=Rounding.DOWN, **kw)
    away = np.where(x >= 0, up, down)
    gap = away - lo
    with np.errstate(invalid="ignore"):
        p = np.where(gap != 0, (x - lo) / np.where(gap != 0, gap, 1.0), 0.0)
    u = np.random.default_rng(seed).random(x.shape)
    return np.where(u < np.clip(p + 0.05, 0.0, 1.0), away, lo)


def always_saturates(x, fmt, rounding=Rounding.NEAREST_EVEN, overflow=Overflow.OWN, **kw):
    """Bug: ignores the overflow policy and always saturates."""
    return qa.quantize(x, fmt, rounding=rounding, overflow=Overflow.SATURATE, **kw)


def test_finds_ties_away_with_minimal_example():
    report = check_format("float8_e4m3fn", ties_away, **FAST)
    assert not report.ok
    (tie,) = report.failures_of("tie_rule")
    assert "NEAREST_EVEN" in tie.context
    # the simplest tie: half the smallest subnormal, which must go to the even 0
    assert tie.x == 2.0**-10
    assert tie.expected == 0.0
    assert tie.got == 2.0**-9
    assert tie.count > 100
    assert "nearest_neighbour" not in report.failed_properties
    assert {"tie_rule", "matches_qemu_arrays", "ml_dtypes_agreement"} == report.failed_properties
    with pytest.raises(AssertionError, match="tie_rule"):
        report.raise_if_failed()


def test_finds_lost_subnormals_with_minimal_example():
    fmt = qa.get_format("float8_e5m2")
    report = check_format(fmt, flushes_subnormals, **FAST)
    assert {"fixed_points", "nearest_neighbour", "directed_bracket"} <= report.failed_properties
    for failure in report.failures_of("fixed_points"):
        assert 0 < failure.x < fmt.smallest_normal
        assert failure.expected == failure.x
        assert failure.got == 0.0
    assert "overflow_policy" not in report.failed_properties


def test_finds_biased_stochastic_rounding():
    report = check_format("float8_e4m3fn", biased_stochastic, roundings=[Rounding.STOCHASTIC])
    (bias,) = report.failures_of("stochastic_unbiased")
    p_expected = float(bias.expected.split("=")[1])
    p_got = float(bias.got.split("=")[1].split()[0])
    assert p_got - p_expected == pytest.approx(0.05, abs=0.02)
    assert "stochastic_reproducible" not in report.failed_properties


def test_finds_wrong_overflow_with_minimal_example():
    fmt = qa.get_format("float8_e5m2")
    report = check_format(fmt, always_saturates, roundings=[Rounding.NEAREST_EVEN], **FAST)
    (over,) = report.failures_of("overflow_policy")
    # the simplest input that overflows: 2^16, past max = 57344, must become inf
    assert over.x == 2.0**16
    assert over.expected == math.inf
    assert over.got == fmt.max
    assert "OWN" in over.context
    assert "SATURATE" not in over.context.split("=")[1]
    assert report.failed_properties == {
        "overflow_policy",
        "matches_qemu_arrays",
        "ml_dtypes_agreement",
    }


def test_finds_wrong_negative_zero_and_value_set():
    def positive_zero(x, fmt, rounding=Rounding.NEAREST_EVEN, **kw):
        return qa.quantize(x, fmt, rounding=rounding, **kw) + 0.0  # -0 becomes +0

    report = check_format("float8_e4m3fn", positive_zero, roundings=[Rounding.TOWARD_ZERO])
    assert "special_inputs" in report.failed_properties or "directed_bracket" in (
        report.failed_properties
    )
    assert all(f.expected == 0.0 and math.copysign(1, f.expected) < 0 for f in report.failures)


def test_raising_quantizer_is_reported_with_the_input():
    def no_inf(x, fmt, rounding=Rounding.NEAREST_EVEN, **kw):
        if np.isinf(x).any():
            msg = "inf"
            raise ValueError(msg)
        return qa.quantize(x, fmt, rounding=rounding, **kw)

    report = check_format("float4_e2m1fn", no_inf, roundings=[Rounding.NEAREST_EVEN], **FAST)
    (err,) = report.failures_of("no_unexpected_error")
    assert math.isinf(err.x)
    assert "ValueError" in err.got


# ---- correct quantizers pass -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu", "int4", "uint8"]
)
def test_ours_passes(name):
    report = check_format(name, scale=0.25 if name.startswith(("int", "uint")) else None, **FAST)
    report.raise_if_failed()
    assert "encode_decode_roundtrip" in report.passed
    assert "stochastic_unbiased" in report.passed
    assert report.n_inputs > 50


def test_user_function_equal_to_ours_passes_and_skips_what_it_cannot_take():
    def minimal(x, fmt, rounding=Rounding.NEAREST_EVEN):
        return qa.quantize(x, fmt, rounding=rounding)

    report = check_format("float6_e2m3fn", minimal)
    report.raise_if_failed()
    assert "matches_qemu_arrays" in report.passed
    assert any("SATURATE" in k for k in report.skipped)
    assert "stochastic_*" in report.skipped
    assert "encode_decode_roundtrip" in report.skipped


def test_float32_inputs_and_float16_dtype():
    check_format("float8_e4m3fn", dtype=np.float32, **FAST).raise_if_failed()
    check_format("float4_e2m1fn", dtype=np.float16, **FAST).raise_if_failed()


def test_wrong_encoder_fails_roundtrip():
    def bad_encode(x, fmt, **kw):
        codes = qa.encode(x, fmt, **kw)
        return np.where(codes == 1, 2, codes).astype(codes.dtype)

    report = check_format("float8_e4m3fn", encode=bad_encode, decode=qa.decode, **FAST)
    fails = report.failures_of("encode_decode_roundtrip")
    assert fails
    assert any(f.x == 2.0**-9 for f in fails)  # the value of code 1


def test_argument_errors():
    with pytest.raises(TypeError, match="quantize must be callable"):
        check_format("int8", quantize=3)
    with pytest.raises(ValueError, match="scale applies to integer formats"):
        check_format("float8_e4m3fn", scale=2.0)
    with pytest.raises(ValueError, match="scale must be a positive"):
        check_format("int8", scale=-1.0)
    with pytest.raises(TypeError, match="dtype must be"):
        check_format("int8", dtype=np.int32)
    with pytest.raises(ValueError, match="unknown format"):
        check_format("float8_e4m3fm")
    with pytest.raises(ValueError, match="max_bits"):
        float_formats(max_bits=40)
    with pytest.raises(TypeError, match="signed"):
        int_formats(signed="yes")
    with pytest.raises(ValueError, match="outside float64"):
        probe_points(qa.FloatFormat(exponent_bits=11, mantissa_bits=4, bias=100))


# ---- the kit's model is the reference ---------------------------------------------------------


def _reference(x, fmt, rounding, overflow, scale):
    try:
        return reference.quantize_value(x, fmt, rounding, overflow, scale=scale), False
    except ValueError:
        return math.nan, True


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.one_of(float_formats(max_bits=7), int_formats(max_bits=6)), data=st.data())
def test_model_agrees_with_reference(fmt, data):
    scale = 0.5 if isinstance(fmt, qa.IntFormat) else None
    xs = data.draw(st.lists(values_near(fmt, scale=scale), min_size=1, max_size=12))
    xs.append(math.nan)
    x = np.array(xs)
    for rounding in (r for r in Rounding if r < Rounding.STOCHASTIC):
        for overflow in Overflow:
            mdl = _model(fmt, x, rounding, overflow, scale)
            for i, xi in enumerate(xs):
                ref, err = _reference(xi, fmt, rounding, overflow, scale)
                assert bool(mdl.error[i]) == err, (xi, rounding, overflow)
                if not err:
                    got = mdl.expected[i]
                    same = (math.isnan(ref) and math.isnan(got)) or (
                        ref == got and math.copysign(1, ref) == math.copysign(1, got)
                    )
                    assert same or isinstance(fmt, qa.IntFormat) and ref == got, (
                        xi, rounding, overflow, ref, got,
                    )  # fmt: skip


@pytest.mark.parametrize(
    "name", ["float8_e4m3fn", "float8_e5m2fnuz", "float6_e3m2fn", "float8_e8m0fnu", "binary8p3"]
)
def test_decode_model_matches_reference(name):
    fmt = qa.get_format(name)
    codes = np.arange(1 << fmt.bits)
    got = decode_model(fmt, codes)
    ref = np.array([reference.decode_code(int(c), fmt) for c in codes])
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert np.array_equal(got[ok], ref[ok])
    assert np.array_equal(np.signbit(got[ok]), np.signbit(ref[ok]))


# ---- strategies ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(fmt=float_formats(min_bits=4, max_bits=9))
def test_float_formats_are_valid_and_bounded(fmt):
    assert 4 <= fmt.bits <= 9
    vals = format_values(fmt)
    assert np.all(np.diff(vals) > 0)
    assert vals[-1] == fmt.max


@settings(max_examples=30, deadline=None)
@given(fmt=int_formats(min_bits=2, max_bits=12))
def test_int_formats_are_valid_and_bounded(fmt):
    assert 2 <= fmt.bits <= 12
    assert format_values(fmt).size == fmt.max - fmt.min + 1


@settings(max_examples=60, deadline=None)
@given(data=st.data(), fmt=st.sampled_from(["float8_e4m3fn", "float6_e2m3fn", "bfloat16", "tf32"]))
def test_representable_values_are_fixed_points(data, fmt):
    v = data.draw(representable_values(fmt))
    for rounding in (Rounding.NEAREST_EVEN, Rounding.UP, Rounding.TOWARD_ZERO):
        got = reference.quantize_value(v, fmt, rounding)
        assert got == v
        assert math.copysign(1, got) == math.copysign(1, v)


@settings(max_examples=40, deadline=None)
@given(x=values_near("float8_e4m3fn", dtype=np.float32))
def test_values_near_are_exact_in_dtype(x):
    assert math.isinf(x) or float(np.float32(x)) == x


def test_values_near_covers_ties_subnormals_and_overflow_edges():
    fmt = qa.get_format("float8_e4m3fn")
    pts = probe_points(fmt)
    assert fmt.smallest_subnormal / 2 in pts  # a tie below the smallest value
    assert 1.0625 in pts  # a tie between 1 and 1.125
    assert np.nextafter(1.0625, 2) in pts
    assert np.nextafter(1.0625, 0) in pts
    assert fmt.max in pts
    assert -fmt.max in pts
    assert 480.0 in pts  # the midpoint between max = 448 and the first point past it
    assert np.inf in pts
    assert -np.inf in pts


@settings(max_examples=15, deadline=None)
@given(a=kit_arrays(np, "float8_e4m3fn", shape=(3, 4), dtype=np.float32))
def test_arrays_numpy(a):
    assert a.shape == (3, 4)
    assert a.dtype == np.float32
    y = qa.quantize(a, "float8_e4m3fn", overflow=Overflow.SATURATE)
    assert np.array_equal(qa.quantize(y, "float8_e4m3fn", overflow=Overflow.SATURATE), y)


@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_arrays_array_api_strict(data):
    xp = pytest.importorskip("array_api_strict", reason="array_api_strict not installed")
    a = data.draw(kit_arrays(xp, "int8", shape=5, dtype=xp.float32, scale=0.5))
    assert a.shape == (5,)
    assert a.dtype == xp.float32
    from qemu_arrays.testing.strategies import _points_for_dtype

    pool = _points_for_dtype(probe_points("int8", scale=0.5), np.float32)
    assert np.isin(np.asarray(a).astype(np.float64), pool).all()


@settings(max_examples=25, deadline=None)
@given(b=block_formats())
def test_block_formats_are_valid(b):
    from qemu_arrays.formats.block_spec import BlockFormat

    assert isinstance(b, BlockFormat)
    assert b.block_size in (16, 32)
    assert b.element.signed
    assert b.element.bits <= 8
    assert b.bits_per_value == b.element.bits + b.scale.bits / b.block_size


# ---- estimators --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "fmt", "scale"),
    [
        (lambda E: E.STE(), "int4", 0.1),
        (lambda E: E.DSQ(k=3.0), "int4", 0.1),
        (lambda E: E.HTGE(t=4.0), "float4_e2m1fn", None),
        (lambda E: E.PWL(), "int8", 0.05),
        (lambda E: E.EDE(progress=0.5), "int4", 1.0),
    ],
)
def test_check_estimator_builtins_pass(make, fmt, scale):
    from qemu_arrays import estimators as E

    report = check_estimator(make(E), fmt, scale=scale)
    report.raise_if_failed()
    assert {"alpha_exists", "remap_preserves_bins", "one_step_alignment"} <= set(report.passed)
    assert report.alpha > 0


def test_check_estimator_finds_non_cyclical_and_wrong_closed_form():
    import dataclasses

    from qemu_arrays import estimators as E

    wobbly = E.Custom(derivative_fn=lambda x: 1.0 + 0.5 * np.sin(7.3 * x))
    report = check_estimator(wobbly, "int4", scale=0.1)
    assert "alpha_exists" in report.failed_properties

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class WrongDSQ(E.DSQ):
        def _unit_integral(self):
            return 1.1 * super()._unit_integral()

    report = check_estimator(WrongDSQ(k=3.0), "int4", scale=0.1)
    assert "alpha_closed_form" in report.failed_properties
    with pytest.raises(TypeError, match="Estimator"):
        check_estimator(lambda x: x, "int4")


def test_modes_beyond_the_model_are_refused():
    """The battery's model knows the first seven modes; asking for a newer one is an error, not
    a silently wrong verdict."""
    with pytest.raises(ValueError, match="NEAREST_ZERO"):
        check_format("float4_e2m1fn", roundings=[qa.Rounding.NEAREST_ZERO])
