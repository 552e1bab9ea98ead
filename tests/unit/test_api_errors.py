"""Bad input to quantize/encode/decode: clear errors naming the parameter; inputs untouched."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import qemu_arrays as qa

R = qa.Rounding


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.arange(4, dtype=np.int32), "dtype int32"),
        (np.arange(4, dtype=np.uint8), "dtype uint8"),
        (np.ones(3, dtype=np.complex64), "dtype complex64"),
        (np.array([1.0, "a"], dtype=object), "dtype object"),
        (np.array(["1.0", "2.0"]), "dtype <U3"),
        (np.ones(3, dtype=bool), "dtype bool"),
        ([1.0, 2.0], "must be a floating-point array"),
        ("1.0", "not an array qemu_arrays can route"),
        (None, "not an array qemu_arrays can route"),
    ],
    ids=["int32", "uint8", "complex", "object", "strings", "bool", "list", "str", "None"],
)
@pytest.mark.parametrize("op", ["quantize", "encode"])
def test_non_float_input_is_a_type_error(op, x, match):
    with pytest.raises(TypeError, match=match) as info:
        getattr(qa, op)(x, "float8_e4m3fn")
    assert "hint" in str(info.value) or "must be" in str(info.value)


def test_python_float_scalar_is_accepted_and_returns_a_scalar():
    y = qa.quantize(0.1, "float8_e4m3fn")
    assert float(y) == 0.1015625
    assert np.ndim(y) == 0


def test_unknown_format_names_close_matches():
    with pytest.raises(ValueError, match="float8_e4m3fn"):
        qa.quantize(np.ones(2, np.float32), "float8_e4m3f")
    with pytest.raises(TypeError, match="format must be a name"):
        qa.quantize(np.ones(2, np.float32), 8)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"rounding": "nearest"}, TypeError, r"Rounding\.NEAREST"),
        ({"rounding": 0}, TypeError, "rounding must be a Rounding member"),
        ({"overflow": "saturate"}, TypeError, r"Overflow\.SATURATE"),
        ({"rounding": R.STOCHASTIC}, ValueError, "seed=None"),
        ({"rounding": R.STOCHASTIC, "seed": 1.5}, TypeError, "seed must be an int"),
        ({"rounding": R.STOCHASTIC, "seed": 0, "random_bits": 0}, ValueError, "random_bits"),
        ({"rounding": R.STOCHASTIC, "seed": 0, "random_bits": 63}, ValueError, "random_bits"),
        ({"offset": -1}, ValueError, "offset must be a non-negative int"),
        ({"stream": "a"}, ValueError, "stream must be a non-negative int"),
        ({"scale": 0.5, "zero_point": 1}, ValueError, "no zero point"),
        ({"axis": 0}, ValueError, "go with a scale"),
        ({"scale": -1.0}, ValueError, "scale must be finite and > 0"),
    ],
)
def test_bad_keywords_name_the_parameter(kwargs, exc, match):
    x = np.linspace(-1, 1, 7, dtype=np.float32)
    with pytest.raises(exc, match=match):
        qa.quantize(x, "float8_e4m3fn", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "needs scale="),
        ({"scale": 0.0}, "scale must be finite and > 0"),
        ({"scale": -1.0}, "scale must be finite and > 0"),
        ({"scale": float("nan")}, "scale must be finite and > 0"),
        ({"scale": 0.1, "zero_point": 0.5}, "zero_point must hold integers"),
    ],
)
def test_integer_format_scale_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        qa.quantize(np.ones(3, np.float32), "int8", **kwargs)


def test_out_must_match_and_be_writeable():
    x = np.linspace(-3, 3, 11, dtype=np.float32)
    ro = np.empty_like(x)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        qa.quantize(x, "float8_e5m2", out=ro)
    with pytest.raises(ValueError, match="out has shape"):
        qa.quantize(x, "float8_e5m2", out=np.empty(3, np.float32))
    with pytest.raises(ValueError, match="dtype"):
        qa.quantize(x, "float8_e5m2", out=np.empty(11, np.float64))
    with pytest.raises(TypeError, match="out must be a numpy array"):
        qa.quantize(x, "float8_e5m2", out=[0.0] * 11)
    out = np.full_like(x, 7.0)
    res = qa.quantize(x, "float8_e5m2", out=out)
    assert res is out
    np.testing.assert_array_equal(out, qa.quantize(x, "float8_e5m2"))


def test_read_only_input_is_fine_and_never_modified():
    x = np.linspace(-500, 500, 101, dtype=np.float32)
    x.flags.writeable = False
    before = x.copy()
    qa.quantize(x, "float8_e4m3fn", rounding=R.STOCHASTIC, seed=3)
    qa.encode(x, "float4_e2m1fn")
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("name", ["float4_e2m1fn", "float6_e3m2fn", "int8"])
@pytest.mark.parametrize("overflow", [qa.Overflow.OWN, qa.Overflow.SATURATE])
def test_nan_into_a_format_without_nan_raises(name, overflow):
    x = np.array([1.0, np.nan], np.float32)
    kw = {"scale": 0.1} if name == "int8" else {}
    with pytest.raises(ValueError, match="has no NaN"):
        qa.quantize(x, name, overflow=overflow, **kw)


def test_specials_and_signed_zero_and_subnormals():
    x = np.array([np.inf, -np.inf, np.nan, -0.0, 0.0, 2.0**-9, -(2.0**-10)], np.float32)
    y = qa.quantize(x, "float8_e4m3fn")  # FN: no inf, so inf becomes NaN (OCP)
    assert np.isnan(y[:3]).all()
    assert np.signbit(y[3])
    assert not np.signbit(y[4])
    assert y[5] == 2.0**-9  # smallest subnormal of E4M3 is kept
    assert y[6] == 0.0
    assert np.signbit(y[6])
    z = qa.quantize(x[[0, 1, 3]], "float8_e4m3fnuz")
    assert np.isnan(z[:2]).all()
    assert not np.signbit(z[2])
    s = qa.quantize(x[:2], "float8_e4m3fn", overflow=qa.Overflow.SATURATE)
    assert s.tolist() == [448.0, -448.0]


def test_decode_rejects_bad_codes():
    with pytest.raises(TypeError, match="codes must be an integer array"):
        qa.decode(np.ones(3, np.float32), "float8_e4m3fn")
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 2\*\*4\)"):
        qa.decode(np.array([16], np.uint8), "float4_e2m1fn")
    with pytest.raises(TypeError, match="dtype must be"):
        qa.decode(np.array([1], np.uint8), "float8_e4m3fn", dtype=np.int32)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float32, np.float64])
def test_output_type_dtype_shape_follow_the_input(dtype):
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(dtype)
    y = qa.quantize(x.T, "float8_e5m2")
    assert type(y) is np.ndarray
    assert y.dtype == x.dtype
    assert y.shape == (4, 3)
    assert qa.quantize(np.array(1.3, dtype), "float8_e5m2").shape == ()
