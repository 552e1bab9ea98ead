"""The battery of issue 19: invalid calls of every public function and keyword, generated from
tables (and, for the numeric keywords, drawn by hypothesis), and valid unusual inputs.

Every invalid call must raise ``TypeError`` or ``ValueError`` (never a numba error, never
``KeyError``, ``AttributeError``, ``IndexError`` or ``AssertionError``) whose message names the
parameter, the value, what is allowed and gives a hint; no input or caller buffer may change.
Every valid unusual input (views, strides, Fortran order, 0-d, empty, masked, memmap,
read-only, big-endian, unaligned, ``np.matrix``) must give the bits of a clean contiguous copy.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats import catalog

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies
SETTINGS = hypothesis.settings(max_examples=40, derandomize=True, deadline=None,
                               suppress_health_check=list(hypothesis.HealthCheck))  # fmt: skip

R, O = qa.Rounding, qa.Overflow
BF16 = np.dtype(ml_dtypes.bfloat16)
RNG = np.random.default_rng(1919)
X = (RNG.standard_normal((6, 40)) * 3).astype(np.float32)
CODES8 = qa.encode(X, "float8_e4m3fn")
ENC_MX = qa.encode(X, "mxfp4_e2m1")
ENC_NV = qa.encode(X, "nvfp4")
ENC_INT = qa.encode(X, "int8", scale="absmax", axis=0)
Q_INT = qa.asarray(X, "int4", block_size=8)
Q_MX = qa.asarray(X, "mxfp4_e2m1")

#: words that say what is allowed
ALLOWED = ("must", "allowed", "expected", "one of", "needs", "need ", "only", "does not apply",
           "at most", "applies to", "does not match", "not supported", "cannot", "in [",
           "is not", "not a")  # fmt: skip
BAD_ERRORS = (
    KeyError,
    AttributeError,
    IndexError,
    AssertionError,
    OverflowError,
    ZeroDivisionError,
)

CALLS = {"invalid": 0, "valid": 0}


def _frozen(objs):
    """Byte snapshots of the arrays among ``objs`` (and their flags), to check nothing moved."""
    out = []
    for o in objs:
        if isinstance(o, qa.Encoded):
            out += _frozen(tuple(o))
        elif isinstance(o, np.ndarray):
            data = np.ma.getdata(o)
            mask = np.ma.getmaskarray(o).copy() if isinstance(o, np.ma.MaskedArray) else None
            out.append((o, data.tobytes(), data.flags.writeable, mask))
    return out


def _unchanged(snap):
    for o, raw, writeable, mask in snap:
        data = np.ma.getdata(o)
        assert data.tobytes() == raw, "an input was modified"
        assert data.flags.writeable == writeable, "an input's flags were changed"
        if mask is not None:
            np.testing.assert_array_equal(np.ma.getmaskarray(o), mask)


def _value_shown(value, msg):
    """Whether the message shows the value: its repr, str, a number of it, its type or dtype."""
    if isinstance(value, np.ndarray):
        shown = [str(value.dtype), str(value.shape), *map(str, value.reshape(-1)[:3].tolist())]
    else:
        shown = [repr(value), str(value), type(value).__name__]
        if isinstance(value, float) and math.isfinite(value):
            shown.append(f"{value:g}")
        if isinstance(value, (qa.FloatFormat, qa.IntFormat, qa.BlockFormat)):
            shown.append(value.name)
    return any(s and s in msg for s in shown)


def expect_error(fn, args, kwargs, param, value, errors=(TypeError, ValueError)):
    """``fn(*args, **kwargs)`` raises one of ``errors``, with the message the rules ask for."""
    CALLS["invalid"] += 1
    snap = _frozen(list(args) + list(kwargs.values()))
    raised = None
    try:
        fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001  (checked below: only the allowed errors pass)
        raised = e
    if raised is None:
        pytest.fail(f"no error for {param}={value!r}")
    if not isinstance(raised, errors) or isinstance(raised, BAD_ERRORS):
        e = raised
        pytest.fail(f"{type(e).__module__}.{type(e).__name__} instead of {errors}: {e}")
    msg = str(raised)
    assert "numba" not in type(raised).__module__, msg
    assert "Failed in nopython" not in msg, msg
    assert param in msg, f"the parameter {param!r} is not named: {msg}"
    assert _value_shown(value, msg), f"the value {value!r} is not shown: {msg}"
    assert any(w in msg for w in ALLOWED), f"what is allowed is not said: {msg}"
    assert "hint" in msg, f"no hint: {msg}"
    _unchanged(snap)


# ---- the tables --------------------------------------------------------------------------------

OBJ = object()
#: bad values of the keywords every quantize/encode call takes: (value, error type)
COMMON = {
    "rounding": [("nearest", TypeError), (0, TypeError), (None, TypeError), (O.OWN, TypeError)],
    "overflow": [("saturate", TypeError), (1, TypeError), (R.UP, TypeError)],
    "stream": [(-1, ValueError), (1.5, ValueError), ("0", ValueError), (True, ValueError)],
    "offset": [(-1, ValueError), (2.0, ValueError), ("5", ValueError), (None, ValueError)],
    "random_bits": [(0, ValueError), (63, ValueError), (1.5, ValueError), (True, ValueError)],
    "via_float32": [("yes", TypeError), (1, TypeError), (None, TypeError)],
}
STOCHASTIC_SEED = [("1", TypeError), (1.5, TypeError), (True, TypeError), (None, ValueError)]
INT_KW = {
    "scale": [(0.0, ValueError), (-1.0, ValueError), (math.nan, ValueError),
              (math.inf, ValueError), ("bogus", ValueError), (True, TypeError),
              (1 + 2j, TypeError), (np.array([1.0, -1.0]), ValueError), (OBJ, TypeError)],
    "zero_point": [(1.5, ValueError), (300, ValueError), (-129, ValueError), (True, TypeError),
                   ("3", TypeError), (math.nan, ValueError), (np.array([1e30]), ValueError),
                   (np.array([0.5]), ValueError), (np.array(["a"]), TypeError)],
    "axis": [(5, ValueError), (-3, ValueError), ("0", TypeError), (1.0, TypeError),
             (True, TypeError)],
    "block_size": [(0, ValueError), (-4, ValueError), (2.5, TypeError), ("8", TypeError),
                   (True, TypeError)],
    "scale_format": [("int8", ValueError), (5, TypeError), ("nope", ValueError)],
}  # fmt: skip
RULE_KW = {
    "symmetric": [("yes", TypeError), (1, TypeError)],
    "percentile": [
        (0, ValueError),
        (101, ValueError),
        (-5.0, ValueError),
        ("99", TypeError),
        (True, TypeError),
        (math.nan, ValueError),
    ],
}
# (a float format takes scale= since issue 14; these go only with a scale, or never)
NOT_FOR_FLOAT = {"zero_point": 0, "axis": 0, "block_size": 8,
                 "scale_format": "float16", "symmetric": True, "percentile": 99.0}  # fmt: skip
NOT_FOR_BLOCK = {"zero_point": 0, "scale_format": "float16", "symmetric": True,
                 "percentile": 99.0, "block_size": 8, "overflow": O.ML_DTYPES}  # fmt: skip

BASES = {
    "float": ((X, "float8_e4m3fn"), {}),
    "int": ((X, "int8"), {"scale": 0.1}),
    "rule": ((X, "int8"), {"scale": "percentile"}),
    "mx": ((X, "mxfp4_e2m1"), {}),
    "nv": ((X, "nvfp4"), {}),
}


def _round_cases():
    cases = []
    for op in ("quantize", "encode"):
        for base, (_, kw) in BASES.items():
            for param, bad in COMMON.items():
                for value, err in bad:
                    cases.append((op, base, {**kw, param: value}, param, value, err))
            for value, err in STOCHASTIC_SEED:
                cases.append((op, base, {**kw, "rounding": R.STOCHASTIC, "seed": value}, "seed",
                              value, err))  # fmt: skip
            if base in ("int", "rule"):
                for param, bad in INT_KW.items():
                    for value, err in bad:
                        if param == "scale" and base == "rule":
                            continue
                        if param == "zero_point" and base == "rule":
                            continue
                        cases.append((op, base, {**kw, param: value}, param, value, err))
            if base == "rule":
                for param, bad in RULE_KW.items():
                    for value, err in bad:
                        cases.append((op, base, {**kw, param: value}, param, value, err))
                cases.append((op, base, {**kw, "zero_point": 3}, "zero_point", 3, ValueError))
            if base == "int":
                for param, value in (("symmetric", True), ("percentile", 99.0)):
                    cases.append((op, base, {**kw, param: value}, param, value, ValueError))
            if base == "float":
                for param, value in NOT_FOR_FLOAT.items():
                    cases.append((op, base, {param: value}, param, value, ValueError))
            if base in ("mx", "nv"):
                for param, value in NOT_FOR_BLOCK.items():
                    cases.append((op, base, {param: value}, param, value, ValueError))
                for value, err in ((5, ValueError), ("1", TypeError), (1.5, TypeError)):
                    cases.append((op, base, {"axis": value}, "axis", value, err))
            if base == "mx":
                cases.append((op, base, {"scale": 2.0}, "scale", 2.0, ValueError))
            if base == "nv":
                for value, err in ((-1.0, ValueError), (np.array([1.0, 2.0]), TypeError),
                                   ("1", TypeError), (True, TypeError), (math.nan, ValueError),
                                   (0.1, ValueError)):  # fmt: skip
                    cases.append((op, base, {"scale": value}, "scale", value, err))
        for value, err in (("x", TypeError), (np.ones(3, np.float32), ValueError),
                           (np.ones(X.shape, np.float64), ValueError)):  # fmt: skip
            if op == "quantize":
                cases.append((op, "float", {"out": value}, "out", value, err))
        ro = np.empty_like(X)
        ro.flags.writeable = False
        if op == "quantize":
            cases.append((op, "float", {"out": ro}, "out", "read-only", ValueError))
    return cases


ROUND_CASES = _round_cases()


def _case_id(c):
    op, base, kw, param, value, _ = c
    v = type(value).__name__ if isinstance(value, np.ndarray) else repr(value)[:20]
    return f"{op}-{base}-{param}={v}"


@pytest.mark.parametrize("case", ROUND_CASES, ids=[_case_id(c) for c in ROUND_CASES])
def test_quantize_encode_invalid_keywords(case):
    op, base, kw, param, value, err = case
    args, _ = BASES[base]
    expect_error(getattr(qa, op), args, kw, param, value, err)


BAD_X = [("abc", TypeError, "x"), (None, TypeError, "x"), (OBJ, TypeError, "x"),
         ([1.0, 2.0], TypeError, "x"), (np.array([1, 2]), TypeError, "int64"),
         (np.ones(3, complex), TypeError, "complex128"), (np.ones(3, bool), TypeError, "bool"),
         (np.array(["1"]), TypeError, "<U1"), ({"a": 1}, TypeError, "x")]  # fmt: skip
BAD_FORMAT = [(5, TypeError), (None, TypeError), ("nope", ValueError), (3.5, TypeError),
              (qa.FloatFormat, TypeError), ("", ValueError), ("binary2p1", ValueError)]  # fmt: skip


@pytest.mark.parametrize("op", ["quantize", "encode"])
@pytest.mark.parametrize(("x", "err", "shown"), BAD_X, ids=[repr(b[0])[:12] for b in BAD_X])
def test_bad_x(op, x, err, shown):
    for fmt, kw in (("float8_e4m3fn", {}), ("int8", {"scale": 0.1}), ("mxfp4_e2m1", {})):
        CALLS["invalid"] += 1
        with pytest.raises(err) as info:
            getattr(qa, op)(x, fmt, **kw)
        msg = str(info.value)
        assert "x" in msg
        assert shown in msg or type(x).__name__ in msg, msg
        assert "hint" in msg, msg


@pytest.mark.parametrize("op", ["quantize", "encode", "decode", "asarray", "compute_scale"])
@pytest.mark.parametrize(("fmt", "err"), BAD_FORMAT, ids=[repr(b[0])[:12] for b in BAD_FORMAT])
def test_bad_format(op, fmt, err):
    x = CODES8 if op == "decode" else X
    expect_error(getattr(qa, op), (x, fmt), {}, "format" if fmt != "binary2p1" else "k", fmt, err)


# ---- decode --------------------------------------------------------------------------------------

DECODE_CASES = [
    # (id, args, kwargs, param, value, error)
    ("codes-float", (np.ones(3), "float8_e4m3fn"), {}, "codes", np.ones(3), TypeError),
    ("codes-bool", (np.ones(3, bool), "float8_e4m3fn"), {}, "codes", np.ones(3, bool),
     TypeError),
    ("codes-neg", (np.array([-1, 2]), "float8_e4m3fn"), {}, "codes", -1, ValueError),
    ("codes-256", (np.array([256, 2]), "float8_e4m3fn"), {}, "codes", 256, ValueError),
    ("codes-str", (np.array(["1"]), "float8_e4m3fn"), {}, "codes", "<U1", TypeError),
    ("codes-16", (np.array([16]), "float4_e2m1fn"), {}, "codes", 16, ValueError),
    ("codes-narrow", (np.array([0x80]), "int8_narrow"), {"scale": 1.0}, "codes", 128,
     ValueError),
    ("dtype-str", (CODES8, "float8_e4m3fn"), {"dtype": "abc"}, "dtype", "abc", TypeError),
    ("dtype-int", (CODES8, "float8_e4m3fn"), {"dtype": np.int32}, "dtype", "int32", TypeError),
    ("dtype-5", (CODES8, "float8_e4m3fn"), {"dtype": 5}, "dtype", 5, TypeError),
    ("dtype-complex", (CODES8, "float8_e4m3fn"), {"dtype": complex}, "dtype", "complex",
     TypeError),
    ("axis-float-fmt", (CODES8, "float8_e4m3fn"), {"axis": 0}, "axis", 0, ValueError),
    ("int-no-scale", (CODES8, "int8"), {}, "scale", "int8", ValueError),
    ("int-rule", (CODES8, "int8"), {"scale": "absmax"}, "scale", "absmax", ValueError),
    ("int-scale-0", (CODES8, "int8"), {"scale": 0.0}, "scale", 0.0, ValueError),
    ("int-scale-neg-array", (CODES8, "int8"), {"scale": -np.ones(6), "axis": 0}, "scale",
     -np.ones(6), ValueError),
    ("int-scale-shape", (CODES8, "int8"), {"scale": np.ones(5), "axis": 0}, "scale", "(5,)",
     ValueError),
    ("int-zp-300", (CODES8, "uint8"), {"scale": 1.0, "zero_point": 300}, "zero_point", 300,
     ValueError),
    ("int-zp-float", (CODES8, "int8"), {"scale": 1.0, "zero_point": 0.5}, "zero_point", 0.5,
     ValueError),
    ("int-axis", (CODES8, "int8"), {"scale": np.ones(6), "axis": 4}, "axis", 4, ValueError),
    ("int-block_size", (CODES8, "int8"), {"scale": 1.0, "block_size": 0}, "block_size", 0,
     ValueError),
    ("mx-no-scale", (ENC_MX.codes, "mxfp4_e2m1"), {}, "scale", "mxfp4_e2m1", ValueError),
    ("mx-scale-neg", (ENC_MX.codes, "mxfp4_e2m1"), {"scale": -ENC_MX.scales.astype(int)},
     "scale", "-", ValueError),
    ("mx-scale-float", (ENC_MX.codes, "mxfp4_e2m1"), {"scale": ENC_MX.scales.astype(float)},
     "scale", "float64", TypeError),
    ("mx-scale-shape", (ENC_MX.codes, "mxfp4_e2m1"), {"scale": ENC_MX.scales[:3]}, "scale",
     "(3, 2)", ValueError),
    ("mx-zp", (ENC_MX.codes, "mxfp4_e2m1"), {"scale": ENC_MX.scales, "zero_point": 1},
     "zero_point", 1, ValueError),
    ("mx-tensor_scale", (ENC_MX.codes, "mxfp4_e2m1"), {"scale": ENC_MX.scales,
     "tensor_scale": 1.0}, "tensor_scale", 1.0, ValueError),
    ("mx-block_size", (ENC_MX.codes, "mxfp4_e2m1"), {"scale": ENC_MX.scales, "block_size": 16},
     "block_size", 16, ValueError),
    ("mx-axis", (ENC_MX.codes, "mxfp4_e2m1"), {"scale": ENC_MX.scales, "axis": 2}, "axis", 2,
     ValueError),
    ("nv-tensor-neg", (ENC_NV.codes, "nvfp4"), {"scale": ENC_NV.scales, "tensor_scale": -1.0},
     "tensor_scale", -1.0, ValueError),
    ("nv-tensor-array", (ENC_NV.codes, "nvfp4"), {"scale": ENC_NV.scales,
     "tensor_scale": np.ones(2)}, "tensor_scale", np.ones(2), TypeError),
    ("nv-tensor-str", (ENC_NV.codes, "nvfp4"), {"scale": ENC_NV.scales, "tensor_scale": "1"},
     "tensor_scale", "1", TypeError),
    ("encoded-and-scale", (ENC_INT, "int8"), {"scale": 1.0}, "scale", "Encoded", ValueError),
]  # fmt: skip


@pytest.mark.parametrize("case", DECODE_CASES, ids=[c[0] for c in DECODE_CASES])
def test_decode_invalid(case):
    _, args, kw, param, value, err = case
    expect_error(qa.decode, args, kw, param, value, err)


# ---- the other public functions ------------------------------------------------------------------

FE = {"exponent_bits": 4, "mantissa_bits": 3}
E8M0, E4M3, E2M1 = (
    qa.get_format("e8m0"),
    qa.get_format("float8_e4m3fn"),
    qa.get_format("float4_e2m1fn"),
)
BF = {"element": E2M1, "scale": E8M0, "block_size": 32}


def _ff(**kw):
    return qa.FloatFormat(**{**FE, **kw})


def _bf(**kw):
    return qa.BlockFormat(**{**BF, **kw})


OTHER_CASES = [
    # compute_scale
    ("cs-x-complex", qa.compute_scale, (np.ones(2, complex), "int8"), {}, "x", "complex128",
     TypeError),
    ("cs-x-str", qa.compute_scale, ("abc", "int8"), {}, "x", "str", TypeError),
    ("cs-x-bool", qa.compute_scale, (np.ones(2, bool), "int8"), {}, "x", "bool", TypeError),
    ("cs-rule", qa.compute_scale, (X, "int8"), {"rule": "max"}, "rule", "max", ValueError),
    ("cs-rule-5", qa.compute_scale, (X, "int8"), {"rule": 5}, "rule", 5, ValueError),
    ("cs-symmetric", qa.compute_scale, (X, "int8"), {"symmetric": "yes"}, "symmetric", "yes",
     TypeError),
    ("cs-percentile", qa.compute_scale, (X, "int8"), {"percentile": 0}, "percentile", 0,
     ValueError),
    ("cs-percentile-str", qa.compute_scale, (X, "int8"), {"percentile": "9"}, "percentile", "9",
     TypeError),
    ("cs-axis", qa.compute_scale, (X, "int8"), {"axis": 2}, "axis", 2, ValueError),
    ("cs-block_size", qa.compute_scale, (X, "int8"), {"block_size": 0}, "block_size", 0,
     ValueError),
    ("cs-scale_format", qa.compute_scale, (X, "int8"), {"scale_format": "int4"}, "scale_format",
     "int4", ValueError),
    # asarray
    ("as-x-str", qa.asarray, ("abc", "float8_e4m3fn"), {}, "x", "<U3", TypeError),
    ("as-x-complex", qa.asarray, (np.ones(2, complex), "int8"), {}, "x", "complex128",
     TypeError),
    ("as-axis-float", qa.asarray, (X, "float8_e4m3fn"), {"axis": 0}, "axis", "0", ValueError),
    ("as-scale", qa.asarray, (X, "int8"), {"scale": -1.0}, "scale", -1.0, ValueError),
    ("as-zp", qa.asarray, (X, "uint8"), {"scale": 1.0, "zero_point": 256}, "zero_point", 256,
     ValueError),
    ("as-rounding", qa.asarray, (X, "int8"), {"rounding": "up"}, "rounding", "up", TypeError),
    ("as-seed", qa.asarray, (X, "int8"), {"rounding": R.STOCHASTIC, "seed": "1"}, "seed", "1",
     TypeError),
    ("as-block_size", qa.asarray, (X, "int8"), {"block_size": -1}, "block_size", -1,
     ValueError),
    ("as-percentile", qa.asarray, (X, "int8"), {"scale": "percentile", "percentile": 200},
     "percentile", 200, ValueError),
    ("as-nv-scale", qa.asarray, (X, "nvfp4"), {"scale": np.ones(3)}, "scale", np.ones(3),
     TypeError),
    # pack / unpack
    ("pack-float", qa.pack, (np.ones(3), 4), {}, "codes", "float64", TypeError),
    ("pack-neg", qa.pack, (np.array([-1]), 4), {}, "codes", "-1", ValueError),
    ("pack-16", qa.pack, (np.array([16]), 4), {}, "codes", "16", ValueError),
    ("pack-bits-0", qa.pack, (np.array([1]), 0), {}, "bits", 0, ValueError),
    ("pack-bits-9", qa.pack, (np.array([1]), 9), {}, "bits", 9, ValueError),
    ("pack-bits-str", qa.pack, (np.array([1]), "4"), {}, "bits", "4", ValueError),
    ("pack-bits-bool", qa.pack, (np.array([1]), True), {}, "bits", True, ValueError),
    ("unpack-int16", qa.unpack, (np.ones(3, np.int16), 4, 2), {}, "packed", "int16", TypeError),
    ("unpack-float", qa.unpack, (np.ones(3), 4, 2), {}, "packed", "float64", TypeError),
    ("unpack-count-neg", qa.unpack, (np.ones(3, np.uint8), 4, -1), {}, "count", -1, ValueError),
    ("unpack-count-float", qa.unpack, (np.ones(3, np.uint8), 4, 1.5), {}, "count", 1.5,
     ValueError),
    ("unpack-count-big", qa.unpack, (np.ones(3, np.uint8), 4, 7), {}, "count", 7, ValueError),
    ("unpack-bits", qa.unpack, (np.ones(3, np.uint8), 12, 1), {}, "bits", 12, ValueError),
    # formats
    ("ff-e-0", qa.FloatFormat, (), {**FE, "exponent_bits": 0}, "exponent_bits", 0, ValueError),
    ("ff-e-12", qa.FloatFormat, (), {**FE, "exponent_bits": 12}, "exponent_bits", 12,
     ValueError),
    ("ff-e-str", qa.FloatFormat, (), {**FE, "exponent_bits": "4"}, "exponent_bits", "4",
     TypeError),
    ("ff-e-bool", qa.FloatFormat, (), {**FE, "exponent_bits": True}, "exponent_bits", True,
     TypeError),
    ("ff-m-neg", qa.FloatFormat, (), {**FE, "mantissa_bits": -1}, "mantissa_bits", -1,
     ValueError),
    ("ff-m-53", qa.FloatFormat, (), {**FE, "mantissa_bits": 53}, "mantissa_bits", 53,
     ValueError),
    ("ff-bias-float", qa.FloatFormat, (), {**FE, "bias": 7.0}, "bias", 7.0, TypeError),
    ("ff-bias-huge", qa.FloatFormat, (), {**FE, "bias": 2**40}, "bias", 2**40, ValueError),
    ("ff-specials", qa.FloatFormat, (), {**FE, "specials": "IEEE"}, "specials", "IEEE",
     ValueError),
    ("ff-specials-9", qa.FloatFormat, (), {**FE, "specials": 9}, "specials", 9, ValueError),
    ("ff-signed", qa.FloatFormat, (), {**FE, "signed": "yes"}, "signed", "yes", TypeError),
    ("ff-subnormals", qa.FloatFormat, (), {**FE, "subnormals": 1}, "subnormals", 1, TypeError),
    ("ff-has_zero-sub", qa.FloatFormat, (), {**FE, "has_zero": False}, "subnormals", "True",
     ValueError),
    ("ff-ieee-e1", qa.FloatFormat, (), {"exponent_bits": 1, "mantissa_bits": 3}, "IEEE",
     "exponent_bits", ValueError),
    ("ff-fnuz-unsigned", qa.FloatFormat, (), {**FE, "specials": qa.Specials.FNUZ,
     "signed": False}, "specials", "FNUZ", ValueError),
    ("ff-p3109-e1m0", qa.FloatFormat, (), {"exponent_bits": 1, "mantissa_bits": 0,
     "specials": qa.Specials.P3109}, "specials", "P3109", ValueError),
    ("ff-name", qa.FloatFormat, (), {**FE, "name": 5}, "name", 5, TypeError),
    ("mini-e", qa.minifloat, (0, 3), {}, "exponent_bits", 0, ValueError),
    ("mini-m", qa.minifloat, (3, 60), {}, "mantissa_bits", 60, ValueError),
    ("mini-bias", qa.minifloat, (3, 3), {"bias": "3"}, "bias", "3", TypeError),
    ("int-bits-0", qa.IntFormat, (), {"bits": 0}, "bits", 0, ValueError),
    ("int-bits-33", qa.IntFormat, (), {"bits": 33}, "bits", 33, ValueError),
    ("int-bits-str", qa.IntFormat, (), {"bits": "8"}, "bits", "8", TypeError),
    ("int-signed", qa.IntFormat, (), {"bits": 8, "signed": 1}, "signed", 1, TypeError),
    ("int-narrow-unsigned", qa.IntFormat, (), {"bits": 8, "signed": False,
     "narrow_range": True}, "narrow_range", "True", ValueError),
    ("int-narrow-1bit", qa.IntFormat, (), {"bits": 1, "narrow_range": True}, "narrow_range",
     "1", ValueError),
    ("p3109-k", qa.p3109, (2, 1), {}, "k", 2, ValueError),
    ("p3109-p", qa.p3109, (16, 1), {}, "p", 1, ValueError),
    ("p3109-k-str", qa.p3109, ("8", 3), {}, "k", "8", TypeError),
    ("p3109-extended", qa.p3109, (8, 3), {"extended": "yes"}, "extended", "yes", TypeError),
    ("block-element", qa.BlockFormat, (), {**BF, "element": "fp4"}, "element", "fp4",
     TypeError),
    ("block-scale-int", qa.BlockFormat, (), {**BF, "scale": qa.IntFormat(bits=8)}, "scale",
     "int8", TypeError),
    ("block-size-0", qa.BlockFormat, (), {**BF, "block_size": 0}, "block_size", 0, ValueError),
    ("block-size-huge", qa.BlockFormat, (), {**BF, "block_size": 2**21}, "block_size", 2**21,
     ValueError),
    ("block-size-bool", qa.BlockFormat, (), {**BF, "block_size": True}, "block_size", True,
     ValueError),
    ("block-rule", qa.BlockFormat, (), {**BF, "scale_rule": "floor"}, "scale_rule", "floor",
     ValueError),
    ("block-tensor_scale", qa.BlockFormat, (), {**BF, "tensor_scale": 1}, "tensor_scale", 1,
     TypeError),
    ("block-fraction", qa.BlockFormat, (), {**BF, "element_fraction_bits": 40},
     "element_fraction_bits", 40, ValueError),
    ("block-fraction-float-el", qa.BlockFormat, (), {**BF, "element_fraction_bits": 2},
     "element_fraction_bits", "2", ValueError),
    ("block-pow2-tensor", qa.BlockFormat, (), {**BF, "tensor_scale": True}, "tensor_scale",
     "True", ValueError),
    ("block-e4m3-no-tensor", qa.BlockFormat, (), {**BF, "scale": E4M3}, "tensor_scale",
     "float8_e4m3fn", ValueError),
    ("block-wide-element", qa.BlockFormat, (), {**BF, "element": qa.IntFormat(bits=32)},
     "element", "int32", ValueError),
    ("block-wide-scale", qa.BlockFormat, (), {**BF, "scale": qa.get_format("float16"),
     "tensor_scale": True}, "scale", "float16", ValueError),
    ("block-unsigned-el", qa.BlockFormat, (), {**BF, "element": qa.IntFormat(bits=8,
     signed=False)}, "element", "uint8", ValueError),
    ("get-format-int", qa.get_format, (5,), {}, "format", 5, TypeError),
    ("get-format-unknown", qa.get_format, ("float8_e4m3fm",), {}, "format", "float8_e4m3fm",
     ValueError),
    ("register-str", qa.register, ("float8_e4m3fn",), {}, "fmt", "float8_e4m3fn", TypeError),
    ("register-alias-int", qa.register, (qa.minifloat(3, 3, name="ok"), 5), {}, "alias", 5,
     TypeError),
    ("register-alias-empty", qa.register, (qa.minifloat(3, 3, name="ok"), " "), {}, "alias",
     "' '", ValueError),
    ("register-builtin", qa.register, (qa.minifloat(3, 3, name="bfloat16"),), {}, "name",
     "bfloat16", ValueError),
    ("register-replace", qa.register, (qa.minifloat(3, 3, name="ok"),), {"replace": "yes"},
     "replace", "yes", TypeError),
    ("register-p3109-name", qa.register, (qa.minifloat(3, 3, name="binary8p3"),), {}, "name",
     "binary8p3", ValueError),
    # QArray
    ("qa-codes-300", qa.QArray, (), {"codes": [300], "format": "float8_e4m3fn"}, "codes", 300,
     ValueError),
    ("qa-codes-float", qa.QArray, (), {"codes": [1.5], "format": "float8_e4m3fn"}, "codes",
     "float64", TypeError),
    ("qa-format", qa.QArray, (), {"codes": [1], "format": 5}, "format", 5, TypeError),
    ("qa-dtype", qa.QArray, (), {"codes": [1], "format": "float8_e4m3fn", "dtype": np.int8},
     "dtype", "int8", TypeError),
    ("qa-no-scales", qa.QArray, (), {"codes": [1], "format": "int8"}, "scales", "int8",
     ValueError),
    ("qa-scales-neg", qa.QArray, (), {"codes": [1], "format": "int8", "scales": -1.0},
     "scales", "-1.0", ValueError),
    ("qa-scales-shape", qa.QArray, (), {"codes": [[1, 2]], "format": "int8",
     "scales": np.ones(3), "axis": 1}, "scales", "(3,)", ValueError),
    ("qa-axis", qa.QArray, (), {"codes": [[1, 2]], "format": "int8", "scales": np.ones((1, 2)),
     "axis": 3}, "axis", 3, ValueError),
    ("qa-axis-str", qa.QArray, (), {"codes": [[1, 2]], "format": "int8",
     "scales": np.ones((1, 2)), "axis": "1"}, "axis", "1", TypeError),
    ("qa-block_offset", qa.QArray, (), {"codes": [[1, 2]], "format": "int8",
     "scales": np.ones((1, 1)), "axis": 1, "block_size": 2, "block_offset": 2},
     "block_offset", 2, ValueError),
    ("qa-zp", qa.QArray, (), {"codes": [1], "format": "uint8", "scales": 1.0,
     "zero_points": 999}, "zero_point", 999, ValueError),
    ("qa-tensor_scale", qa.QArray, (), {"codes": [[1] * 16], "format": "nvfp4",
     "scales": np.ones((1, 1), np.uint8), "axis": 1, "block_size": 16,
     "tensor_scale": -2.0}, "tensor_scale", -2.0, ValueError),
    ("qa-scale_format", qa.QArray, (), {"codes": [1], "format": "int8", "scales": 0.3,
     "scale_format": "e8m0"}, "scale_format", "e8m0", ValueError),
    ("load-int", qa.load, (5,), {}, "file", 5, TypeError),
    ("load-none", qa.load, (None,), {}, "file", None, TypeError),
    ("save-int", Q_INT.save, (5,), {}, "file", 5, TypeError),
    ("route-str", qa.route, ("abc",), {}, "x", "str", TypeError),
    ("explain-route-format", qa.explain_route, (X, "nope"), {}, "format", "nope", ValueError),
    ("q-reshape", Q_INT.reshape, ((7, 7),), {}, "shape", "(7, 7)", ValueError),
    ("q-reshape-str", Q_INT.reshape, (("a",),), {}, "shape", "a", TypeError),
    ("q-transpose", Q_INT.transpose, ((0, 0),), {}, "axes", "(0, 0)", ValueError),
    ("q-astype", Q_MX.astype, (np.int8,), {}, "dtype", "int8", TypeError),
    ("q-astype-kw", Q_MX.astype, (np.float16,), {"axis": 0}, "astype", "axis", TypeError),
    ("q-getitem", Q_INT.__getitem__, ([0, 1],), {}, "index", "[0, 1]", TypeError),
    ("q-setitem", Q_INT.__setitem__, (0, 1.0), {}, "QArray", "immutable", TypeError),
    ("q-quantize-kw", qa.quantize, (Q_INT, "int8"), {"offset": 3}, "offset", "offset",
     ValueError),
    ("q-decode-format", qa.decode, (Q_INT, "int8"), {}, "format", "int4", ValueError),
]  # fmt: skip


@pytest.fixture
def clean_catalog():
    saved = dict(catalog._CATALOG)
    yield
    catalog._CATALOG.clear()
    catalog._CATALOG.update(saved)


@pytest.mark.parametrize("case", OTHER_CASES, ids=[c[0] for c in OTHER_CASES])
def test_other_functions_invalid(case, clean_catalog):
    _, fn, args, kw, param, value, err = case
    expect_error(fn, args, kw, param, value, err)


# ---- drawn by hypothesis: the numeric keywords over their whole invalid ranges -------------------

_NOT_INT = st.one_of(st.floats(allow_nan=True), st.booleans(), st.text(max_size=3),
                     st.complex_numbers())  # fmt: skip


def _drawn(param, values, make_call, err=(TypeError, ValueError)):
    @SETTINGS
    @hypothesis.given(values)
    def check(v):
        fn, args, kw = make_call(v)
        expect_error(fn, args, kw, param, v, err)

    check()


DRAWN = {
    "random_bits": st.one_of(st.integers(max_value=0), st.integers(min_value=63), _NOT_INT),
    "stream": st.one_of(st.integers(max_value=-1), _NOT_INT),
    "offset": st.one_of(st.integers(max_value=-1), _NOT_INT),
    "zero_point": st.one_of(
        st.integers(max_value=-129),
        st.integers(min_value=128),
        st.floats().filter(lambda f: not float(f).is_integer()),
        st.booleans(),
        st.text(max_size=2),
    ),  # fmt: skip
    "scale": st.one_of(
        st.floats(max_value=0.0),
        st.just(math.inf),
        st.just(math.nan),
        st.booleans(),
        st.complex_numbers(),
        st.none().map(lambda _: OBJ),
    ),
    "axis": st.one_of(
        st.integers(max_value=-3),
        st.integers(min_value=2),
        st.floats(),
        st.booleans(),
        st.text(max_size=2),
    ),  # fmt: skip
    "block_size": st.one_of(
        st.integers(max_value=0), st.floats(), st.booleans(), st.text(max_size=2)
    ),  # fmt: skip
}


@pytest.mark.parametrize("param", sorted(DRAWN))
def test_drawn_quantize_keywords(param):
    def call(v):
        kw = {"scale": 0.1}
        if param in ("axis", "block_size"):
            kw["scale"] = "absmax"
        kw[param] = v
        return qa.quantize, (X, "int8"), kw

    _drawn(param, DRAWN[param], call)


def test_drawn_percentile():
    vals = st.one_of(st.floats(max_value=0.0), st.floats(min_value=100.0, exclude_min=True),
                     st.just(math.nan), st.booleans(), st.text(max_size=2))  # fmt: skip
    _drawn("percentile", vals,
           lambda v: (qa.quantize, (X, "int8"), {"scale": "percentile", "percentile": v}))  # fmt: skip


def test_drawn_format_fields():
    _drawn("exponent_bits", st.one_of(st.integers(max_value=0), st.integers(min_value=12)),
           lambda v: (qa.FloatFormat, (), {**FE, "exponent_bits": v}))  # fmt: skip
    _drawn("mantissa_bits", st.one_of(st.integers(max_value=-1), st.integers(min_value=53)),
           lambda v: (qa.FloatFormat, (), {**FE, "mantissa_bits": v}))  # fmt: skip
    _drawn("bias", st.one_of(st.integers(max_value=-(2**14) - 1), st.integers(min_value=2**14 + 1)),
           lambda v: (qa.FloatFormat, (), {**FE, "bias": v}))  # fmt: skip
    _drawn("bits", st.one_of(st.integers(max_value=0), st.integers(min_value=33)),
           lambda v: (qa.IntFormat, (), {"bits": v}))  # fmt: skip
    _drawn("p", st.integers(-5, 40).filter(lambda p: not 1 <= p <= 7),
           lambda v: (qa.p3109, (8, v), {}))  # fmt: skip
    _drawn("block_size", st.one_of(st.integers(max_value=0), st.integers(min_value=2**20 + 1)),
           lambda v: (qa.BlockFormat, (), {**BF, "block_size": v}))  # fmt: skip


def test_drawn_codes_out_of_range():
    for fmt, bits in (("float8_e4m3fn", 8), ("float4_e2m1fn", 4), ("bfloat16", 16)):
        vals = st.one_of(st.integers(max_value=-1), st.integers(1 << bits, 2**62))
        _drawn("codes", vals, lambda v, fmt=fmt: (qa.decode, (np.array([0, v]), fmt), {}))
        _drawn("codes", vals, lambda v, fmt=fmt: (qa.QArray, (), {"codes": [v], "format": fmt}))


def test_drawn_tensor_scale():
    vals = st.one_of(st.floats(max_value=0.0), st.just(math.inf), st.just(math.nan),
                     st.floats(1e-3, 1e3).filter(lambda f: float(np.float32(f)) != f),
                     st.booleans(), st.text(max_size=2))  # fmt: skip
    _drawn("scale", vals, lambda v: (qa.quantize, (X, "nvfp4"), {"scale": v}))


# ---- valid unusual inputs: the bits of a clean contiguous copy -----------------------------------


def _layouts(tmp_path):
    """(name, array whose values are those of ``clean``, clean contiguous copy)."""
    big = (RNG.standard_normal((8, 80)) * 3).astype(np.float32)
    out = []

    def add(name, a):
        out.append((name, a, np.ascontiguousarray(np.asarray(a, dtype=np.float32))))

    add("contiguous", big[:6, :40].copy())
    add("strided", big[::2, ::2])
    add("negative-strides", big[::-1, ::-2])
    add("fortran", np.asfortranarray(big[:6, :40]))
    add("transposed", big[:, :40].T)
    add("3-d-view", big.reshape(8, 10, 8)[:, ::3, 1:])
    ro = big[:6, :40].copy()
    ro.flags.writeable = False
    add("read-only", ro)
    add("big-endian", big[:6, :40].astype(">f4"))
    buf = np.zeros(6 * 40 * 4 + 1, np.uint8)
    un = np.ndarray((6, 40), np.float32, buffer=buf, offset=1)
    un[...] = big[:6, :40]
    add("unaligned", un)
    mm = np.memmap(tmp_path / "m.dat", dtype=np.float32, mode="w+", shape=(6, 40))
    mm[...] = big[:6, :40]
    add("memmap", mm)
    add("masked-nothing", np.ma.masked_array(big[:6, :40].copy(), mask=False))
    add("empty", np.zeros((0, 40), np.float32))
    add("empty-2", np.zeros((6, 0), np.float32))
    add("0-d", np.array(1.75, np.float32))
    return out


VALID_FORMATS = [
    ("float8_e4m3fn", {}), ("bfloat16", {}), ("float4_e2m1fn", {"rounding": R.STOCHASTIC,
     "seed": 4}), ("int8", {"scale": 0.1}), ("int8", {"scale": "absmax", "axis": -1}),
    ("int4", {"scale": "mse", "block_size": 8, "symmetric": False}), ("mxfp4_e2m1", {}),
    ("nvfp4", {}), ("mxfp8_e4m3", {"axis": 0}),
]  # fmt: skip


def _bits(a):
    a = np.ascontiguousarray(np.ma.getdata(np.asarray(a) if not isinstance(a, np.ma.MaskedArray)
                                           else a))  # fmt: skip
    if a.dtype.kind == "f" or a.dtype == BF16:
        a = a.astype(a.dtype.newbyteorder("="))
    return a.reshape(-1).view(np.uint8), a.shape


def _same(got, want, ctx):
    if isinstance(want, qa.Encoded):
        assert isinstance(got, qa.Encoded), ctx
        for g, w in zip(got, want, strict=True):
            _same(g, w, ctx)
        return
    if not isinstance(want, np.ndarray):
        assert got == want or (got is None and want is None), ctx
        return
    gb, gs = _bits(got)
    wb, ws = _bits(want)
    assert gs == ws, f"{ctx}: shape {gs} != {ws}"
    np.testing.assert_array_equal(gb, wb, err_msg=ctx)


@pytest.mark.parametrize(("fmt", "kw"), VALID_FORMATS,
                         ids=[f"{f}-{i}" for i, (f, _) in enumerate(VALID_FORMATS)])  # fmt: skip
def test_unusual_layouts_give_the_bits_of_a_clean_copy(fmt, kw, tmp_path):
    block = isinstance(qa.get_format(fmt), qa.BlockFormat)
    for name, a, clean in _layouts(tmp_path):
        ctx = f"{fmt} {kw} {name}"
        if a.ndim == 0 and (block or "axis" in kw or "block_size" in kw):
            CALLS["invalid"] += 1
            with pytest.raises(ValueError, match="at least one dimension.*hint"):
                qa.quantize(a, fmt, **kw)
            continue
        snap = _frozen([a])
        for op in ("quantize", "encode"):
            CALLS["valid"] += 1
            got = getattr(qa, op)(a, fmt, **kw)
            want = getattr(qa, op)(clean, fmt, **kw)
            _same(got, want, f"{op} {ctx}")
            if op == "encode":
                CALLS["valid"] += 1
                scale = {"scale": kw["scale"]} if kw.get("scale") == 0.1 else {}
                _same(qa.decode(got, fmt, **scale), qa.decode(want, fmt, **scale), f"dec {ctx}")
        _unchanged(snap)


def test_unusual_code_layouts_decode_as_a_clean_copy(tmp_path):
    codes = qa.encode(X, "bfloat16")
    variants = {
        "strided": codes[:, ::2], "negative": codes[::-1], "fortran": np.asfortranarray(codes),
        "big-endian": codes.astype(">u2"), "int32": codes.astype(np.int32),
        "empty": codes[:0], "0-d": codes[0, 0],
    }  # fmt: skip
    ro = codes.copy()
    ro.flags.writeable = False
    variants["read-only"] = ro
    mm = np.memmap(tmp_path / "c.dat", dtype=np.uint16, mode="w+", shape=codes.shape)
    mm[...] = codes
    variants["memmap"] = mm
    for name, c in variants.items():
        for dtype in (np.float32, np.float16, BF16, np.float64):
            CALLS["valid"] += 1
            snap = _frozen([c])
            got = qa.decode(c, "bfloat16", dtype=dtype)
            want = qa.decode(np.ascontiguousarray(np.asarray(c, np.uint16)), "bfloat16",
                             dtype=dtype)  # fmt: skip
            _same(got, want, f"{name} {np.dtype(dtype)}")
            _unchanged(snap)


def test_scalars_and_lists_as_arrays():
    for v in (1.3, np.float32(1.3), np.float64(-2.6), np.float16(0.5)):
        CALLS["valid"] += 1
        got = qa.quantize(v, "float8_e4m3fn")
        want = qa.quantize(np.asarray(v), "float8_e4m3fn")
        assert np.ndim(got) == 0
        _same(np.asarray(got), want, repr(v))


def test_out_is_the_only_buffer_written():
    x = X.copy()
    out = np.full_like(X, 7.0)
    snap = _frozen([x])
    r = qa.quantize(x, "int8", scale="absmax", axis=0, out=out)
    assert r is out
    _same(out, qa.quantize(X, "int8", scale="absmax", axis=0), "out")
    _unchanged(snap)
    scales = np.full((6, 1), 0.25)
    zp = np.full((6, 1), 3)
    snap = _frozen([scales, zp])
    qa.quantize(x, "int8", scale=scales, zero_point=zp, axis=0)
    qa.decode(qa.encode(x, "int8", scale=scales, zero_point=zp, axis=0), "int8")
    _unchanged(snap)


def test_battery_size_report(capsys):
    """Not a check: prints how many calls the battery made (run the file alone to see it)."""
    with capsys.disabled():
        print(f"\ninvalid-call battery: {CALLS['invalid']} invalid calls, {CALLS['valid']} valid "
              "unusual-input calls (so far in this process)")  # fmt: skip
