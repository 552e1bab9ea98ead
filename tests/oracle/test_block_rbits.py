"""Caller-supplied random bits (``rbits=``) and ``Rounding.STOCHASTIC_EQUAL`` on the block formats
(MX, NVFP4), against the exact block reference: NumPy and PyTorch CPU arrays go through the
generic route on NumPy (:mod:`qemu_arrays.routes.generic_host`), array-API arrays through the
generic route itself; the random integer of an element is that of its C-order index, whatever
the block axis."""

from __future__ import annotations

import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats.reference import quantize_blocks
from tests.backends import Backend, capability, supports, to_backend, to_numpy

R = qa.Rounding
NAMES = ("mxfp8_e4m3", "mxfp4_e2m1", "mxint8", "nvfp4")


def _data(rng, rows=3, cols=48, dtype=np.float32):
    x = rng.standard_normal((rows, cols)) * np.exp2(rng.integers(-6, 6, (rows, 1)))
    x[0, :4] = [0.0, -0.0, 1.0, -3.0]
    return x.astype(dtype)


def _reference(x, name, rounding, **kw):
    fmt = qa.get_format(name)
    ts = qa.encode(x, name).tensor_scale if fmt.tensor_scale else None
    return np.array(quantize_blocks(x, fmt, rounding, tensor_scale=ts, **kw), np.float64)


@pytest.mark.parametrize("name", NAMES)
def test_rbits_match_the_reference(name, rng):
    for dt, rb_dt, r in ((np.float32, np.uint8, 8), (np.float64, np.uint16, 16)):
        x = _data(rng, dtype=dt)
        rb = rng.integers(0, 1 << r, x.shape).astype(rb_dt)
        got = qa.quantize(x, name, rounding=R.STOCHASTIC, rbits=rb)
        want = _reference(x, name, R.STOCHASTIC, r=r, rbits=rb.tolist())
        if name == "nvfp4":  # float64 output holds p * d exactly, the reference its float32
            got, want = got.astype(np.float32), want.astype(np.float32)
        np.testing.assert_array_equal(got.astype(np.float64), want, err_msg=f"{name} {dt}")
        enc = qa.encode(x, name, rounding=R.STOCHASTIC, rbits=rb)
        np.testing.assert_array_equal(qa.decode(enc, name), qa.quantize(
            x.astype(np.float32), name, rounding=R.STOCHASTIC, rbits=rb))  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_stochastic_equal_matches_the_reference(name, rng):
    x = _data(rng)
    got = qa.quantize(x, name, rounding=R.STOCHASTIC_EQUAL, seed=9)
    want = _reference(x, name, R.STOCHASTIC_EQUAL, seed=9)
    np.testing.assert_array_equal(got.astype(np.float64), want)
    # exact block values never move: the element maximum times the scale of its block
    exact = np.zeros((1, 32), np.float32)
    exact[0, :3] = [4.0, -2.0, 0.5]
    if name != "nvfp4":
        assert np.array_equal(qa.quantize(exact, name, rounding=R.STOCHASTIC_EQUAL, seed=1), exact)


def test_rbits_follow_c_order_on_another_axis_and_broadcast(rng):
    x = _data(rng, rows=4, cols=64)
    rb = rng.integers(0, 256, x.shape).astype(np.uint8)
    y = qa.quantize(x, "mxfp4_e2m1", rounding=R.STOCHASTIC, rbits=rb)
    yt = qa.quantize(x.T.copy(), "mxfp4_e2m1", rounding=R.STOCHASTIC, rbits=rb.T.copy(), axis=0)
    assert np.array_equal(yt, y.T)
    row = rng.integers(0, 256, (1, 64)).astype(np.uint8)  # one word per column, every row
    got = qa.quantize(x, "mxfp4_e2m1", rounding=R.STOCHASTIC, rbits=row)
    want = qa.quantize(x, "mxfp4_e2m1", rounding=R.STOCHASTIC, rbits=np.repeat(row, 4, axis=0))
    assert np.array_equal(got, want)
    with pytest.raises(ValueError, match="does not broadcast"):
        qa.quantize(x, "mxfp4_e2m1", rounding=R.STOCHASTIC, rbits=np.zeros(3, np.uint8))
    out = np.empty_like(x)
    assert qa.quantize(x, "mxfp4_e2m1", rounding=R.STOCHASTIC, rbits=rb, out=out) is out
    assert np.array_equal(out, y)


def test_block_caller_bits_on_other_arrays(backend, rng):
    if backend in (Backend.NUMPY, Backend.NUMPY_READONLY, Backend.JAX_CPU):
        pytest.skip("NumPy is the reference here; JAX takes the generic route of array_api_strict")
    x = _data(rng)
    rb = rng.integers(0, 256, x.shape).astype(np.uint8)
    if not capability(backend, block=True).block or not supports(backend, np.float32):
        pytest.skip(f"no block formats on {backend.value}")
    if not capability(backend, block=True).caller_bits:
        with pytest.raises(NotImplementedError, match="rbits="):
            qa.quantize(to_backend(backend, x), "mxfp4_e2m1", rounding=R.STOCHASTIC, rbits=rb)
        return
    for name in ("mxfp4_e2m1", "nvfp4"):
        want = qa.quantize(x, name, rounding=R.STOCHASTIC, rbits=rb)
        got = qa.quantize(to_backend(backend, x), name, rounding=R.STOCHASTIC, rbits=rb)
        np.testing.assert_array_equal(to_numpy(backend, got), want, err_msg=name)
        want = qa.quantize(x, name, rounding=R.STOCHASTIC_EQUAL, seed=2)
        got = qa.quantize(to_backend(backend, x), name, rounding=R.STOCHASTIC_EQUAL, seed=2)
        np.testing.assert_array_equal(to_numpy(backend, got), want, err_msg=name)


@pytest.mark.parametrize("chunks", [(2, 10), (3, 4), (1, 3)])
def test_dask_takes_caller_bits_chunk_by_chunk(chunks, rng):
    """rbits (NumPy or Dask, broadcast) and STOCHASTIC_EQUAL on Dask: the chunks' results are
    those of the whole NumPy array, whatever the chunking."""
    da = pytest.importorskip("dask.array")
    x = rng.standard_normal((6, 10)).astype(np.float32)
    rb = rng.integers(0, 1 << 16, x.shape).astype(np.uint16)
    xd = da.from_array(x, chunks=chunks)
    for fmt, kw in (("float8_e4m3fn", {}), ("int8", {"scale": 0.01})):
        want = qa.quantize(x, fmt, rounding=R.STOCHASTIC, rbits=rb, **kw)
        got = qa.quantize(xd, fmt, rounding=R.STOCHASTIC, rbits=rb, **kw)
        assert np.array_equal(got.compute(), want), fmt
        row = da.from_array(rb[:1], chunks=(1, 5))  # a Dask rbits, broadcast over the rows
        got = qa.quantize(xd, fmt, rounding=R.STOCHASTIC, rbits=row, **kw).compute()
        assert np.array_equal(got, qa.quantize(x, fmt, rounding=R.STOCHASTIC, rbits=rb[:1], **kw))
        want = qa.quantize(x, fmt, rounding=R.STOCHASTIC_EQUAL, seed=4, **kw)
        got = qa.quantize(xd, fmt, rounding=R.STOCHASTIC_EQUAL, seed=4, **kw)
        assert np.array_equal(got.compute(), want), fmt
    with pytest.raises(ValueError, match="rbits of shape .3,. does not broadcast"):
        qa.quantize(xd, "float8_e4m3fn", rounding=R.STOCHASTIC, rbits=rb[0, :3])
