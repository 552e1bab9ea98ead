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


# ---- QArray as an array (issue 20) -----------------------------------------------------------

COMPARISONS = ["__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"]


@pytest.mark.parametrize(("name", "kw"), CASES)
def test_comparisons_are_elementwise(x, name, kw):
    q = qa.asarray(x, name, **kw)
    d = q.dequantize()
    twin = qa.asarray(x, name, **kw)  # an equal QArray, not the same object
    assert (q == twin).shape == x.shape
    assert (q == twin).all()
    assert not (q != twin).any()
    for op in COMPARISONS:
        for other in (0.0, x, twin):
            got = getattr(q, op)(other)
            want = getattr(d, op)(np.asarray(other))
            assert isinstance(got, np.ndarray)
            assert got.dtype == np.bool_
            np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.zeros_like(x) < q, d > 0)  # reflected
    np.testing.assert_array_equal(x >= q, x >= d)
    assert (q == None) is False  # noqa: E711  (not an array: Python's identity fallback)
    with pytest.raises(TypeError):
        hash(q)


def test_truth_value_as_numpy(x):
    q = qa.asarray(x, "mxfp4_e2m1")
    with pytest.raises(ValueError, match=r"ambiguous.*q\.any\(\) or q\.all\(\)"):
        bool(q)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(q[:, :0])
    one = qa.asarray(np.array([0.0, 2.0], np.float32), "int8")
    assert bool(one[1]) is True
    assert bool(one[0:1]) is False
    assert bool(q.any())


def test_zero_d_behaves_as_numpy_0d():
    import torch

    x = np.array([[1.3, -2.7], [0.5, 9.0]], np.float32)
    for name, kw in [("mxfp8_e4m3", {}), ("int8", {"axis": 0}), ("float8_e5m2", {}),
                     ("nvfp4", {})]:  # fmt: skip
        q = qa.asarray(x, name, **kw)
        e = q[1, 0]
        assert e.shape == ()
        assert e.ndim == 0
        v = float(q.dequantize()[1, 0])
        assert float(e) == v
        assert int(q[0, 1]) == int(q.dequantize()[0, 1])
        assert complex(e) == complex(v)
        assert e.item() == v
        assert q[1:2, 0:1].item() == v
        assert torch.as_tensor(e).item() == v
        assert np.asarray(e).shape == ()
        with pytest.raises(TypeError, match="only a 0-d QArray"):
            float(q)
        with pytest.raises(TypeError):
            range(10)[e]  # no __index__: values are not indices, as numpy float arrays
        with pytest.raises(TypeError, match="0-d"):
            len(e)


@pytest.mark.parametrize(("name", "kw"), CASES)
def test_transpose_keeps_storage(x, name, kw, tmp_path):
    q = qa.asarray(x, name, **kw)
    d = q.dequantize()
    t = q.T
    assert isinstance(t, qa.QArray)
    np.testing.assert_array_equal(np.asarray(t), d.T)
    assert t.nbytes == q.nbytes
    np.testing.assert_array_equal(np.asarray(t.T), d)
    x3 = np.stack([x, -x])  # (2, 6, 70)
    q3 = qa.asarray(x3, name, **kw)
    for axes in [(1, 0, 2), (2, 0, 1), (0, 2, 1)]:
        p = q3.transpose(axes)
        np.testing.assert_array_equal(np.asarray(p), q3.dequantize().transpose(axes))
        np.testing.assert_array_equal(
            np.asarray(p[1, 3:40]), q3.dequantize().transpose(axes)[1, 3:40]
        )
        p.save(tmp_path / "p.npz")
        np.testing.assert_array_equal(np.asarray(qa.load(tmp_path / "p.npz")), np.asarray(p))
    np.testing.assert_array_equal(
        np.asarray(q3.transpose(1, 2, 0)), np.transpose(np.asarray(q3), (1, 2, 0))
    )
    with pytest.raises(ValueError, match="permutation"):
        q3.transpose(0, 0, 1)


@pytest.mark.parametrize(("name", "kw"), CASES)
def test_reshape_keeping_the_scale_axis(x, name, kw):
    q = qa.asarray(x, name, **kw)
    d = q.dequantize()
    axis = q.axis
    shapes = {None: [(420,), (2, 3, 70), (6, 7, 10), (-1, 35)], 0: [(6, 7, 10), (6, 70, 1), (6, -1)],
              1: [(2, 3, 70), (6, 1, 70), (3, 2, 1, 70)]}[axis]  # fmt: skip
    for shape in shapes:
        r = q.reshape(shape)
        assert isinstance(r, qa.QArray)
        np.testing.assert_array_equal(np.asarray(r), d.reshape(shape))
        assert r.nbytes == q.nbytes
        np.testing.assert_array_equal(np.asarray(r.reshape(x.shape)), d)
    if axis is not None:
        with pytest.raises(ValueError, match=r"cannot reshape .* would mix elements.*hint"):
            q.reshape(70, 6)


def test_reshape_regroups_whole_blocks(rng):
    x = rng.standard_normal((4, 64)).astype(np.float32)
    for name, kw in [("mxfp4_e2m1", {}), ("nvfp4", {}), ("int4", {"block_size": 16})]:
        q = qa.asarray(x, name, **kw)
        d = q.dequantize()
        for shape in [(256,), (8, 32), (2, 2, 64), (2, 128), (256, 1)]:
            r = q.reshape(shape)
            np.testing.assert_array_equal(np.asarray(r), d.reshape(shape))
            assert r.nbytes == q.nbytes
            np.testing.assert_array_equal(np.asarray(r.reshape(4, 64)), d)
        with pytest.raises(ValueError, match="whole blocks"):
            q.reshape(32, 8)  # rows of 8: blocks of 16 or 32 would span rows
    q = qa.asarray(x, "mxfp4_e2m1")[:, 3:35]  # cut inside a block: no regrouping
    with pytest.raises(ValueError, match="would mix"):
        q.reshape(-1)
    with pytest.raises(ValueError, match="at most one -1"):
        q.reshape(-1, -1)
    with pytest.raises(ValueError, match="cannot reshape"):
        q.reshape(5, 5)


@pytest.mark.parametrize(("name", "kw"), CASES)
def test_reductions_are_numpy_on_the_values(x, name, kw):
    q = qa.asarray(x, name, **kw)
    d = q.dequantize()
    for red in ("sum", "mean", "max", "min", "any", "all"):
        np.testing.assert_array_equal(getattr(q, red)(), getattr(np, red)(d))
        np.testing.assert_array_equal(getattr(q, red)(axis=0), getattr(np, red)(d, axis=0))
        np.testing.assert_array_equal(
            getattr(q, red)(axis=1, keepdims=True), getattr(np, red)(d, axis=1, keepdims=True)
        )
        np.testing.assert_array_equal(getattr(np, red)(q, axis=1), getattr(np, red)(d, axis=1))
    assert q.sum(dtype=np.float64) == d.sum(dtype=np.float64)
    with pytest.raises(TypeError):
        q.sum(bogus=1)


def test_astype_dtype_dequantizes_and_format_requantizes(x):
    import ml_dtypes

    q = qa.asarray(x, "mxfp6_e3m2")
    for dt in (np.float16, np.float64, np.dtype(np.float32), ml_dtypes.bfloat16, float):
        got = q.astype(dt)
        assert isinstance(got, np.ndarray)
        assert got.dtype == np.dtype(dt)
        np.testing.assert_array_equal(got, q.dequantize(dt))
    assert isinstance(q.astype("float16"), qa.QArray)  # a name is a format
    with pytest.raises(TypeError, match=r"float dtype .*int32.*hint"):
        q.astype(np.int32)
    with pytest.raises(TypeError, match="no keywords"):
        q.astype(np.float16, axis=0)


@pytest.mark.parametrize(("name", "kw"), CASES)
def test_encode_and_decode_take_a_qarray(x, name, kw):
    q = qa.asarray(x, name, **kw)
    enc = qa.encode(q, name)
    if q.scales is None:
        np.testing.assert_array_equal(enc, q.codes)
    else:
        assert isinstance(enc, qa.Encoded)
        np.testing.assert_array_equal(enc.codes, q.codes)
        np.testing.assert_array_equal(enc.scales, q.scales)
    np.testing.assert_array_equal(qa.decode(enc, name, dtype=np.float64), q.dequantize(np.float64))
    np.testing.assert_array_equal(qa.decode(q, name), q.dequantize(np.float32))
    # into another format: the codes of the dequantized values
    other = qa.encode(q, "float8_e4m3fn")
    np.testing.assert_array_equal(other, qa.encode(q.dequantize(), "float8_e4m3fn"))
    with pytest.raises(ValueError, match="cannot be decoded as"):
        qa.decode(q, "float8_e4m3fn" if name != "float8_e4m3fn" else "int8")
    with pytest.raises(ValueError, match="QArray keywords only"):
        qa.encode(q, name, overflow=qa.Overflow.SATURATE)


def test_encode_of_a_block_cut_qarray_says_why(x):
    q = qa.asarray(x, "mxfp4_e2m1")[:, 5:40]
    with pytest.raises(ValueError, match=r"cut inside its blocks.*hint: q\.codes"):
        qa.encode(q, "mxfp4_e2m1")
    np.testing.assert_array_equal(
        qa.decode(qa.encode(q, "mxfp8_e4m3"), "mxfp8_e4m3"),
        qa.quantize(q.dequantize(), "mxfp8_e4m3"),
    )


@pytest.mark.parametrize(("name", "kw"), CASES)
def test_scales_are_arrays_and_the_qarray_is_immutable(x, name, kw):
    q = qa.asarray(x, name, **kw)
    if isinstance(q.format, qa.FloatFormat):
        assert q.scales is None
    else:
        assert isinstance(q.scales, np.ndarray)
        assert not q.scales.flags.writeable
    with pytest.raises(TypeError, match="immutable"):
        q[0, 0] = 1.0
    q0 = q
    q += 1.0  # rebinds to a plain array, q0 is unchanged
    assert isinstance(q, np.ndarray)
    np.testing.assert_array_equal(q, q0.dequantize() + 1.0)
    assert qa.asarray(x, "int8", scale=0.05).scales.shape == ()


def test_iteration_yields_rows(x):
    q = qa.asarray(x, "nvfp4")
    rows = list(q)
    assert len(rows) == 6
    assert all(isinstance(r, qa.QArray) for r in rows)
    np.testing.assert_array_equal(np.stack([np.asarray(r) for r in rows]), q.dequantize())


# ---- interop with other array libraries ------------------------------------------------------
# A local stand-in for the shared backend fixture (tests/conftest.py, being written): each
# backend is (module to import or None, x -> backend array). Switch to the shared one when it lands.


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


_BACKENDS = {
    "numpy": (None, lambda a: a),
    "numpy_readonly": (None, _readonly),
    "array_api_strict": ("array_api_strict", lambda a: __import__("array_api_strict").asarray(a)),
    "torch_cpu": ("torch", lambda a: __import__("torch").from_numpy(a.copy())),
    "jax": ("jax", lambda a: __import__("jax.numpy").numpy.asarray(a)),
    "dask": ("dask.array", lambda a: __import__("dask.array").array.from_array(a, chunks=(3, 35))),
}


@pytest.fixture(params=list(_BACKENDS))
def backend(request):
    module, to = _BACKENDS[request.param]
    if module is not None:
        pytest.importorskip(module, reason=f"{module} is not installed")
    return request.param, to


def test_backend_input_and_operators(backend, x, rng):
    name, to = backend
    y_np = rng.standard_normal(x.shape).astype(np.float32)
    y = to(y_np)
    q = qa.asarray(to(x), "mxfp8_e4m3")
    np.testing.assert_array_equal(np.asarray(q), qa.quantize(x, "mxfp8_e4m3"))
    d = q.dequantize()
    for got, want in [(q + y, d + y_np), (q * y, d * y_np), (q > y, d > y_np), (q == y, d == y_np)]:
        assert type(got) is type(y) or (name.startswith("numpy") and isinstance(got, np.ndarray))
        np.testing.assert_array_equal(np.asarray(got), want)
    if name != "array_api_strict":  # strict arrays refuse foreign right operands by design
        np.testing.assert_array_equal(np.asarray(y - q), y_np - d)
        np.testing.assert_array_equal(np.asarray(y < q), y_np < d)


def test_backends_read_a_qarray(backend, x):
    name, _ = backend
    q = qa.asarray(x, "nvfp4")
    d = q.dequantize()
    if name == "torch_cpu":
        import torch

        got = [torch.as_tensor(q), torch.from_dlpack(q)]
    elif name == "jax":
        import jax.numpy as jnp

        got = [jnp.asarray(q), jnp.from_dlpack(q)]
    elif name == "array_api_strict":
        import array_api_strict as xps

        got = [xps.asarray(q), xps.from_dlpack(q)]
    elif name == "dask":
        import dask.array as da

        got = [da.asarray(q)]
    else:
        got = [np.asarray(q), np.from_dlpack(q), q.__array_namespace__().asarray(q)]
    for g in got:
        np.testing.assert_array_equal(np.asarray(g), d)
