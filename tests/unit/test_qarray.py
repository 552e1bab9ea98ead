"""QArray: storage size, slicing, .npz round trips, arithmetic, identity re-quantization."""

from __future__ import annotations

import numpy as np
import pytest

import qemu_arrays as qa

CASES = [
    pytest.param("mxfp4_e2m1", {}, id="mxfp4"),
    pytest.param("mxfp6_e3m2", {}, id="mxfp6"),
    pytest.param("mxfp8_e4m3", {}, id="mxfp8"),
    pytest.param("mxint8", {}, id="mxint8"),
    pytest.param("nvfp4", {}, id="nvfp4"),
    pytest.param("int8", {"axis": 0}, id="int8_per_channel"),
    pytest.param("int4", {"block_size": 16, "symmetric": False}, id="int4_groups_asym"),
    pytest.param("uint8", {"symmetric": False, "scale_format": "bfloat16"}, id="uint8_tensor"),
    pytest.param("float4_e2m1fn", {}, id="fp4_plain"),
    pytest.param("float8_e5m2", {}, id="fp8_plain"),
]


@pytest.fixture
def x(rng):
    return rng.standard_normal((6, 70)).astype(np.float32)


def _quantized(x, name, kw):
    fmt = qa.get_format(name)
    if isinstance(fmt, qa.IntFormat):
        return qa.quantize(x, fmt, scale="absmax", **kw)
    return qa.quantize(x, fmt, **kw)


@pytest.mark.parametrize(("name", "kw"), CASES)
def test_values_equal_quantize(x, name, kw):
    q = qa.asarray(x, name, **kw)
    assert q.shape == x.shape
    assert q.dtype == x.dtype
    np.testing.assert_array_equal(np.asarray(q), _quantized(x, name, kw))
    # float64 values are exact; rounded to the input dtype they are the default values
    np.testing.assert_array_equal(q.dequantize(np.float64).astype(x.dtype), np.asarray(q))


def test_storage_size(x):
    n = x.size  # 420 elements, rows of 70 -> 3 blocks of 32 per row (MX), 5 of 16 (NVFP4)
    assert qa.asarray(x, "mxfp4_e2m1").nbytes == n // 2 + 6 * 3
    assert qa.asarray(x, "mxfp6_e2m3").nbytes == n * 6 // 8 + 6 * 3
    assert qa.asarray(x, "mxfp8_e5m2").nbytes == n + 6 * 3
    assert qa.asarray(x, "nvfp4").nbytes == n // 2 + 6 * 5 + 4
    assert qa.asarray(x, "float4_e2m1fn").nbytes == n // 2
    q = qa.asarray(x, "int8", axis=0, scale_format="float16")
    assert q.nbytes == n + 6 * 2
    q = qa.asarray(x, "int4", block_size=35, symmetric=False, scale_format="float8_e8m0fnu")
    assert q.nbytes == n // 2 + 12 + 12 // 2  # codes, E8M0 scales, int4 zero points


@pytest.mark.parametrize(("name", "kw"), CASES)
@pytest.mark.parametrize(
    "key",
    [
        (slice(1, 4), slice(5, 40)),  # cuts blocks at both ends
        (2, slice(33, 70)),
        (slice(None), 37),
        (3, 50),
        (Ellipsis, slice(31, 33)),
        (slice(None, None, 2),),
        (-1,),
    ],
    ids=["cut_blocks", "row_tail", "column", "element", "ellipsis_straddle", "row_step", "neg"],
)
def test_slicing_keeps_block_scales(x, name, kw, key):
    q = qa.asarray(x, name, **kw)
    s = q[key]
    want = np.asarray(q)[key]
    assert isinstance(s, qa.QArray)
    assert s.shape == want.shape
    np.testing.assert_array_equal(np.asarray(s), want)
    np.testing.assert_array_equal(np.asarray(s[...]), want)


def test_slice_storage_counts_kept_blocks(x):
    q = qa.asarray(x, "mxfp4_e2m1")
    s = q[:, 30:34]  # straddles blocks 0 and 1 of each row
    assert s.scales.shape == (6, 2)
    assert s.nbytes == (6 * 4) // 2 + 12


def test_unsupported_index_raises(x):
    q = qa.asarray(x, "mxfp4_e2m1")
    with pytest.raises(TypeError, match="strided"):
        q[:, ::2]
    with pytest.raises(TypeError, match="basic indexing"):
        q[np.array([0, 1])]
    with pytest.raises(IndexError):
        q[0, 0, 0]


@pytest.mark.parametrize(("name", "kw"), CASES)
def test_npz_round_trip(x, name, kw, tmp_path):
    q = qa.asarray(x, name, **kw)[1:5, 3:66]
    f = tmp_path / "q.npz"
    q.save(f)
    with np.load(f, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    r = qa.load(f)
    assert r.format == q.format
    assert r.shape == q.shape
    assert r.nbytes == q.nbytes
    np.testing.assert_array_equal(np.asarray(r), np.asarray(q))
    np.testing.assert_array_equal(r.codes, q.codes)


def test_npz_custom_format(tmp_path, rng):
    fmt = qa.BlockFormat(
        element=qa.minifloat(3, 1), scale=qa.get_format("e8m0"), block_size=8,
        scale_rule=qa.ScaleRule.RCEIL,
    )  # fmt: skip
    q = qa.asarray(rng.standard_normal(20).astype(np.float32), fmt)
    q.save(tmp_path / "c.npz")
    r = qa.load(tmp_path / "c.npz")
    assert r.format == fmt
    np.testing.assert_array_equal(np.asarray(r), np.asarray(q))


@pytest.mark.parametrize(("name", "kw"), CASES)
def test_arithmetic_equals_dequantized(x, name, kw, rng):
    q = qa.asarray(x, name, **kw)
    d = q.dequantize()
    y = rng.standard_normal(x.shape).astype(np.float32)
    for got, want in [
        (q + y, d + y), (y + q, y + d), (q - 1.5, d - 1.5), (2.0 - q, 2.0 - d),
        (q * y, d * y), (y * q, y * d), (q / 3.0, d / 3.0), (-q, -d), (abs(q), np.abs(d)),
        (q @ y.T, d @ y.T), (q + q, d + d),
    ]:  # fmt: skip
        assert isinstance(got, np.ndarray)
        np.testing.assert_array_equal(got, want)
    assert q.__array_namespace__() is np


def test_identity_requantization(x):
    for name, kw in [("mxfp4_e2m1", {}), ("nvfp4", {}), ("int8", {"axis": 0})]:
        q = qa.asarray(x, name, **kw)
        assert qa.asarray(q, name) is q
        assert q.astype(name) is q
    # MX: quantizing the dequantized values again reproduces the codes and scales
    for name in ("mxfp4_e2m1", "mxfp8_e4m3", "mxfp6_e2m3", "mxint8"):
        q = qa.asarray(x, name)
        again = qa.asarray(q.dequantize(), name)
        np.testing.assert_array_equal(again.codes, q.codes)
        np.testing.assert_array_equal(again.scales, q.scales)


def test_astype_requantizes(x):
    q = qa.asarray(x, "mxfp8_e4m3")
    r = q.astype("mxfp4_e2m1")
    assert r.format.name == "mxfp4_e2m1"
    np.testing.assert_array_equal(np.asarray(r), qa.quantize(q.dequantize(), "mxfp4_e2m1"))


def test_repr_is_readable(x):
    text = repr(qa.asarray(x, "mxfp4_e2m1"))
    assert "format=mxfp4_e2m1" in text
    assert "shape=(6, 70)" in text
    assert "blocks of 32 along axis 1" in text


def test_input_not_modified(x):
    y = x.copy()
    qa.asarray(x, "nvfp4")
    qa.asarray(x, "int8", axis=1)
    np.testing.assert_array_equal(x, y)


def test_quantize_of_a_qarray_gives_a_qarray_and_is_the_identity_in_its_own_format():
    x = np.random.default_rng(3).standard_normal((4, 64)).astype(np.float32)
    q = qa.asarray(x, "mxfp8_e4m3")
    assert qa.quantize(q, "mxfp8_e4m3") is q
    r = qa.quantize(q, "float8_e5m2")
    assert isinstance(r, qa.QArray)
    np.testing.assert_array_equal(r.dequantize(), qa.quantize(q.dequantize(), "float8_e5m2"))
    with pytest.raises(ValueError, match="QArray keywords only"):
        qa.quantize(q, "float8_e5m2", overflow=qa.Overflow.SATURATE)
