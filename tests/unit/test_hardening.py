"""Issue 19's findings, one test each: what was silently wrong, crashed, hung or failed unclearly
on valid input. (The wide-format rounding is tests/oracle/test_wide_formats.py, the JAX route's
subnormals tests/routes/test_generic.py, load() of hostile files tests/unit/test_qarray_files.py,
decode's memory tests/unit/test_memory.py, the table of invalid calls
tests/unit/test_invalid_calls.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats import catalog
from qemu_arrays.formats.reference import quantize_value, random_bits
from tests.conftest import assert_same_floats

R, O = qa.Rounding, qa.Overflow
X = np.array([1.0, 2.0, 3.0], np.float32)


@pytest.fixture
def clean_catalog():
    """The catalogue as it was: tests that register formats leave no trace."""
    saved = dict(catalog._CATALOG)
    yield
    catalog._CATALOG.clear()
    catalog._CATALOG.update(saved)


# ---- silent wrong results ------------------------------------------------------------------


def test_block_format_with_a_float16_scale_is_refused():
    """A float16 scale was quantized by one rule and encoded as a power of two."""
    with pytest.raises(ValueError, match="scale must have at most 8 bits"):
        qa.BlockFormat(element=qa.get_format("float8_e4m3fn"), scale=qa.get_format("float16"),
                       block_size=3)  # fmt: skip
    e4m3 = qa.get_format("float8_e4m3fn")
    with pytest.raises(ValueError, match="tensor_scale=True"):
        qa.BlockFormat(element=qa.get_format("float4_e2m1fn"), scale=e4m3, block_size=16)
    fmt = qa.BlockFormat(element=qa.get_format("float4_e2m1fn"), scale=e4m3, block_size=16,
                         tensor_scale=True)  # fmt: skip
    x = np.linspace(-5, 5, 48, dtype=np.float32)
    assert_same_floats(qa.decode(qa.encode(x, fmt), fmt), qa.quantize(x, fmt))


@pytest.mark.parametrize("element", [qa.IntFormat(bits=32), qa.get_format("float32")])
def test_block_elements_wider_than_16_bits_are_refused(element):
    """IntFormat(32) elements were truncated to uint16 (every code 0); a float32 element made
    decode allocate a 32 GiB table."""
    with pytest.raises(ValueError, match="element must have at most 16 bits"):
        qa.BlockFormat(element=element, scale=qa.get_format("e8m0"), block_size=4)


def test_block_formats_the_testing_kit_draws_round_trip():
    hypothesis = pytest.importorskip("hypothesis")
    from qemu_arrays.testing.strategies import block_formats

    e4m3 = qa.get_format("float8_e4m3fn")
    scales = hypothesis.strategies.sampled_from([qa.get_format("e8m0"), e4m3])

    @hypothesis.settings(max_examples=25, derandomize=True, deadline=None)
    @hypothesis.given(block_formats(scale_formats=scales))
    def check(fmt):
        x = np.linspace(-3, 3, 2 * fmt.block_size, dtype=np.float32)
        assert_same_floats(qa.decode(qa.encode(x, fmt), fmt), qa.quantize(x, fmt), fmt.name)

    check()


def test_register_refuses_to_shadow_a_built_in(clean_catalog):
    nv_before = qa.quantize(np.linspace(-9, 9, 32, dtype=np.float32), "nvfp4")
    with pytest.raises(ValueError, match="'float32' is a built-in name.*replace=True"):
        qa.register(qa.minifloat(5, 2, name="float32"))
    with pytest.raises(ValueError, match="built-in"):
        qa.register(qa.minifloat(5, 2, name="e4m3"), "NVFP4")
    assert_same_floats(qa.quantize(np.linspace(-9, 9, 32, dtype=np.float32), "nvfp4"), nv_before)
    qa.register(qa.get_format("float16"), "half")  # the same format again: allowed
    mine = qa.minifloat(5, 2, name="float32")
    qa.register(mine, replace=True)
    assert qa.get_format("float32") is mine


def test_registered_names_are_found_again(clean_catalog):
    """A registered "MyFmt" could not be found ("did you mean 'MyFmt'?")."""
    fmt = qa.minifloat(3, 3, name="MyFmt")
    qa.register(fmt, " Other ")
    assert qa.get_format("MyFmt") is fmt
    assert qa.get_format("myfmt") is fmt
    assert qa.get_format("OTHER") is fmt
    with pytest.raises(ValueError, match="did you mean 'myfmt'"):
        qa.get_format("MyFm")
    assert "myfmt" in qa.list_formats()
    with pytest.raises(ValueError, match="already registered"):
        qa.register(qa.minifloat(3, 2, name="MYFMT"))


def test_aliases_must_be_strings(clean_catalog):
    """An alias 5 broke list_formats()."""
    with pytest.raises(TypeError, match="alias must be a str, got 5"):
        qa.register(qa.minifloat(3, 3, name="fine"), 5)
    assert "fine" not in qa.list_formats()  # nothing half-registered
    assert all(isinstance(n, str) for n in qa.list_formats())
    with pytest.raises(ValueError, match="empty"):
        qa.register(qa.minifloat(3, 3, name="x"), "  ")
    with pytest.raises(TypeError, match="FloatFormat, IntFormat or BlockFormat"):
        qa.register("float8_e4m3fn")


def test_qarray_codes_out_of_range_are_refused():
    """QArray(codes=[300, 5]) stored [44, 5]."""
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 2\*\*8\).*got 300"):
        qa.QArray(codes=[300, 5], format=qa.get_format("float8_e4m3fn"))
    with pytest.raises(ValueError, match="got -1"):
        qa.QArray(codes=np.array([-1, 5]), format="int8", scales=1.0)
    with pytest.raises(TypeError, match="integer array"):
        qa.QArray(codes=np.array([1.5]), format="float8_e4m3fn")
    with pytest.raises(ValueError, match="narrow-range"):
        qa.QArray(codes=np.array([0x80]), format="int8_narrow", scales=1.0)


def test_qarray_scales_must_fit_the_codes():
    codes = np.zeros((3, 4), np.uint8)
    with pytest.raises(ValueError, match="do not fit codes of shape"):
        qa.QArray(codes=codes, format="int8", scales=np.ones((1, 4)), axis=0)
    with pytest.raises(ValueError, match="finite and > 0"):
        qa.QArray(codes=codes, format="int8", scales=np.array([1.0, -1.0, 1.0]).reshape(3, 1),
                  axis=0)  # fmt: skip
    with pytest.raises(ValueError, match="zero_point"):
        qa.QArray(codes=codes, format="uint8", scales=1.0, zero_points=300)
    scales = np.ones((3, 1))
    q = qa.QArray(codes=codes, format="int8", scales=scales, axis=0)
    assert scales.flags.writeable  # the caller's array is copied, not frozen
    assert q.scales.shape == (3, 1)


@pytest.mark.parametrize(
    ("scale_codes", "error", "match"),
    [
        (np.array([[-1], [127]]), ValueError, r"scale must lie in \[0, 2\*\*8\).*got -1"),
        (np.array([[127.5], [127.0]]), TypeError, "scale must be an integer array"),
        (np.array([[True], [True]]), TypeError, "scale must be an integer array"),
        (np.array([[300], [127]]), ValueError, "got 300"),
    ],
    ids=["negative", "float", "bool", "300"],
)
def test_block_decode_checks_the_scale_codes(scale_codes, error, match):
    """Scale codes -1 made a whole block NaN; floats and bools were decoded."""
    enc = qa.encode(np.ones((2, 32), np.float32), "mxfp8_e4m3")
    with pytest.raises(error, match=match):
        qa.decode(enc.codes, "mxfp8_e4m3", scale=scale_codes)


@pytest.mark.parametrize(
    ("fmt", "zp", "match"),
    [("int8", 1e30, "got 1e[+]?30"), ("uint8", 300, "got 300"), ("uint8", -1, "got -1"),
     ("int8", 128, "got 128"), ("int8", np.array([0, 200]), "got 200")],
    ids=["1e30", "300-uint8", "neg-uint8", "128-int8", "array"],
)  # fmt: skip
@pytest.mark.parametrize("op", ["quantize", "encode", "decode"])
def test_zero_point_is_range_checked(op, fmt, zp, match):
    """1e30 overflowed int64; 300 for uint8 gave -2.25 everywhere."""
    x = np.ones(2, np.float32) if op != "decode" else np.ones(2, np.uint8)
    with pytest.raises(ValueError, match=r"zero_point must hold integers in \[.*" + match):
        getattr(qa, op)(x, fmt, scale=0.05, zero_point=zp)


def test_zero_point_range_on_the_generic_route():
    import array_api_compat.numpy as cnp

    from qemu_arrays.routes import generic

    with pytest.raises(ValueError, match="zero_point"):
        generic.quantize(X, "uint8", scale=1.0, zero_point=300, xp=cnp)


@pytest.mark.parametrize(
    ("fmt", "kw"),
    [("float8_e4m3fn", {}), ("int8", {"scale": 0.5}), ("int8", {"scale": "absmax"}),
     ("int8", {"scale": "percentile", "axis": 0}), ("mxfp4_e2m1", {}), ("nvfp4", {})],
    ids=["float", "int", "absmax", "percentile-axis", "mx", "nvfp4"],
)  # fmt: skip
def test_masked_arrays_keep_their_mask(fmt, kw):
    """The mask was lost, and a masked-out NaN still raised."""
    data = np.linspace(-4, 4, 64, dtype=np.float32).reshape(2, 32)
    mask = np.zeros(data.shape, bool)
    mask[0, 3] = mask[1, 30] = True
    bad = data.copy()
    bad[mask] = np.nan
    m = np.ma.masked_array(bad, mask=mask)
    y = qa.quantize(m, fmt, **kw)
    assert isinstance(y, np.ma.MaskedArray)
    np.testing.assert_array_equal(np.ma.getmaskarray(y), mask)
    filled = data.copy()
    filled[mask] = 0
    want = qa.quantize(filled, fmt, **({**kw, "scale": 0.5} if "scale" in kw else kw))
    if kw.get("scale") not in ("absmax", "percentile"):
        assert_same_floats(np.ma.getdata(y)[~mask], want[~mask])
    codes = qa.encode(m, fmt, **kw)
    c = codes if isinstance(codes, np.ndarray) else codes.codes
    assert isinstance(c, np.ma.MaskedArray)
    back = qa.decode(codes, fmt, **({"scale": kw["scale"]} if kw.get("scale") == 0.5 else {}))
    assert_same_floats(np.ma.getdata(back)[~mask], np.ma.getdata(y)[~mask])
    assert np.isnan(bad).sum() == 2  # the input is untouched


def test_masked_elements_do_not_move_a_scale_rule():
    x = np.array([1.0, -2.0, 50.0, 0.5], np.float32)
    m = np.ma.masked_array(x, mask=[False, False, True, False])
    s, _ = qa.compute_scale(m, "int8")
    assert s == qa.compute_scale(x[[0, 1, 3]], "int8")[0]
    q = qa.quantize(m, "int8", scale="absmax")
    want = qa.quantize(x[[0, 1, 3]], "int8", scale="absmax")
    assert_same_floats(np.ma.compressed(q), want)


def test_keywords_that_do_not_apply_are_errors():
    """Fixed on main by the Request (verified here): nothing is silently ignored."""
    with pytest.raises(ValueError, match="block_size=16 does not match"):
        qa.quantize(np.ones(32, np.float32), "mxfp8_e4m3", block_size=16)
    for kw in ({"axis": 0}, {"block_size": 4}, {"scale_format": "float16"}):
        with pytest.raises(ValueError, match="does not apply to 'float8_e4m3fn'"):
            qa.quantize(X, "float8_e4m3fn", **kw)
    with pytest.raises(TypeError, match="via_float32 must be a bool, got 'yes'"):
        qa.quantize(X, "float8_e4m3fn", via_float32="yes")


def test_p3109_limits_name_k_and_p():
    with pytest.raises(ValueError, match=r"k \(total bits\) must be in \[3, 16\], got 2"):
        qa.p3109(2, 1)
    with pytest.raises(ValueError, match=r"p \(precision\) must be in \[5, 15\] for k=16, got 1"):
        qa.p3109(16, 1)
    with pytest.raises(ValueError, match="p "):
        qa.get_format("binary16p1")
    with pytest.raises(ValueError, match="no finite non-zero value"):
        qa.FloatFormat(exponent_bits=1, mantissa_bits=0, bias=1, specials=qa.Specials.P3109)
    assert qa.p3109(16, 5).exponent_bits == 11
    assert qa.p3109(3, 1).max == 1.0


@pytest.mark.parametrize(
    ("x", "error"),
    [(np.array([1 + 5j]), TypeError), ("abc", TypeError), (np.array([True]), TypeError),
     (np.array(["1.0"]), TypeError), (None, TypeError)],
    ids=["complex", "str", "bool", "str-array", "None"],
)  # fmt: skip
def test_compute_scale_refuses_non_real_data(x, error):
    """Complex data lost its imaginary part; strings and bools were accepted."""
    with pytest.raises(error, match="x must"):
        qa.compute_scale(x, "int8")


def test_asarray_keeps_wide_integers():
    """int64 went through float32, losing values above 2**24."""
    x = np.array([2**24 + 1, -(2**40) - 3], np.int64)
    q = qa.asarray(x, "float64")
    assert q.dtype == np.float64
    np.testing.assert_array_equal(q.dequantize(), x.astype(np.float64))
    assert qa.asarray(np.array([3], np.int16), "float32").dtype == np.float32


# ---- crash or hang ---------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [2**40, 2**63, -(2**20)])
def test_huge_bias_is_refused_at_once(bias):
    """bias=2**40 made .max grow memory without bound; 2**63 gave a numba TypingError."""
    with pytest.raises(ValueError, match=rf"bias must be in \[-16384, 16384\], got {bias}"):
        qa.FloatFormat(exponent_bits=4, mantissa_bits=3, bias=bias)


def test_extreme_allowed_biases_work():
    for bias in (-(2**14), 2**14):
        fmt = qa.FloatFormat(exponent_bits=11, mantissa_bits=3, bias=bias)
        assert fmt.max in (np.inf, 0.0)
        y = qa.quantize(np.float32([1.0, -3.0, 0.0]), fmt, overflow=O.SATURATE)
        assert y.dtype == np.float32


# ---- unclear errors on valid input ----------------------------------------------------------


_OFFSET_SCRIPT = """
import numpy as np, qemu_arrays as qa
from qemu_arrays.formats.reference import quantize_value, random_bits
x = np.float32(np.linspace(-1, 1, 9))
def ref(name, off, **kw):
    return np.float32([quantize_value(float(v), name, qa.Rounding.STOCHASTIC,
                       u=random_bits(3, 0, off + i, 32), r=32, **kw) for i, v in enumerate(x)])
for off in (1, 2**63 + 5, 2**64 - 4, 2**64 + 7, 1):
    for name, kw in (("float8_e4m3fn", {}), ("int8", {"scale": 0.05})):
        y = qa.quantize(x, name, rounding=qa.Rounding.STOCHASTIC, seed=3, offset=off, **kw)
        assert np.array_equal(y, ref(name, off, **kw)), (off, name)
    qa.quantize(np.ones(64, np.float32), "mxfp4_e2m1", rounding=qa.Rounding.STOCHASTIC,
                seed=3, offset=off)
print("ok")
"""


def test_offset_is_reduced_modulo_2_64():
    """offset in [2**63, 2**64) raised OverflowError after any call with a small offset (numba
    had typed the argument). A fresh process, so that the first call takes a small offset."""
    res = subprocess.run([sys.executable, "-c", _OFFSET_SCRIPT], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]


def test_offset_modulo_in_process():
    x = np.float32(np.linspace(-1, 1, 9))
    kw = {"rounding": R.STOCHASTIC, "seed": 3}
    big = 2**64 + 5
    assert_same_floats(qa.quantize(x, "float8_e4m3fn", offset=big, **kw),
                       qa.quantize(x, "float8_e4m3fn", offset=5, **kw))  # fmt: skip
    u = [random_bits(3, 0, 2**63 + i, 32) for i in range(x.size)]
    want = np.float32([quantize_value(float(v), "float8_e4m3fn", R.STOCHASTIC, u=w, r=32)
                       for v, w in zip(x, u, strict=True)])  # fmt: skip
    assert_same_floats(qa.quantize(x, "float8_e4m3fn", offset=2**63, **kw), want)


@pytest.mark.parametrize("rule", ["absmax", "percentile", "mse"])
@pytest.mark.parametrize("shape", [(0,), (0, 3), (3, 0)])
def test_empty_arrays_with_every_scale_rule(rule, shape):
    """'zero-size array to reduction operation' before."""
    x = np.zeros(shape, np.float32)
    assert qa.quantize(x, "int8", scale=rule).shape == shape
    enc = qa.encode(x, "int8", scale=rule, axis=0)
    assert enc.codes.shape == shape
    assert enc.scales.shape == tuple(n if d == 0 else 1 for d, n in enumerate(shape))
    s, z = qa.compute_scale(x, "int8", rule=rule, block_size=2)
    assert s.shape == z.shape
    assert qa.decode(enc, "int8").shape == shape


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_np_matrix_input():
    """A page of numba TypingError before."""
    m = np.matrix([[1.3, -2.6], [0.1, 9.0]], dtype=np.float32)
    y = qa.quantize(m, "float8_e4m3fn")
    assert isinstance(y, np.matrix)
    assert_same_floats(np.asarray(y), qa.quantize(np.asarray(m), "float8_e4m3fn"))
    codes = qa.encode(m, "int8", scale=0.1)
    np.testing.assert_array_equal(np.asarray(codes), qa.encode(np.asarray(m), "int8", scale=0.1))


def test_nvfp4_with_an_array_scale_is_a_type_error():
    """'The truth value of an array ... is ambiguous' before."""
    with pytest.raises(TypeError, match=r"scale .*must be one positive number.*shape \(2,\)"):
        qa.quantize(np.ones(16, np.float32), "nvfp4", scale=np.array([1.0, 2.0]))
    y = qa.quantize(np.ones(16, np.float32), "nvfp4", scale=np.array(0.5, np.float32))
    assert y.shape == (16,)


def test_huge_block_size_is_one_group():
    """'Maximum allowed dimension exceeded' before."""
    x = np.float32([[1, 2, 3], [40, 5, 6]])
    for rule in ("absmax", "mse"):
        a = qa.encode(x, "int8", scale=rule, block_size=10**30)
        b = qa.encode(x, "int8", scale=rule, block_size=3)
        np.testing.assert_array_equal(a.codes, b.codes)
        np.testing.assert_array_equal(a.scales, b.scales)
        assert_same_floats(qa.decode(a, "int8"), qa.decode(b, "int8"))


def test_load_of_other_files_is_a_clear_error(tmp_path):
    """TypeError / KeyError before."""
    np.save(tmp_path / "a.npy", X)
    with pytest.raises(ValueError, match=r"a \.npy array"):
        qa.load(tmp_path / "a.npy")
    np.savez(tmp_path / "b.npz", packed=X)
    with pytest.raises(ValueError, match="no 'meta.npy' member"):
        qa.load(tmp_path / "b.npz")


def test_save_writes_the_name_given(tmp_path):
    """save('w.qa') wrote w.qa.npz, and load('w.qa') failed."""
    q = qa.asarray(X, "float8_e4m3fn")
    q.save(tmp_path / "w.qa")
    q.save(str(tmp_path / "v"))
    assert sorted(os.listdir(tmp_path)) == ["v", "w.qa"]
    for name in ("w.qa", "v"):
        assert_same_floats(np.asarray(qa.load(tmp_path / name)), np.asarray(q))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("fp8", ["float8_e4m3fn", "float8_e5m2"]),
        ("FP4", ["float4_e2m1fn", "mxfp4_e2m1", "nvfp4"]),
        ("e4m3", ["float8_e4m3fn", "mxfp8_e4m3"]),
        ("bf16", ["bfloat16"]),
        ("fp16", ["float16"]),
    ],
)
def test_library_shorthands_get_their_formats_suggested(name, expected):
    """Names other libraries use (fp8, e4m3, bf16) suggest every format they can mean."""
    with pytest.raises(ValueError, match="did you mean") as info:
        qa.get_format(name)
    for want in expected:
        assert repr(want) in str(info.value)
