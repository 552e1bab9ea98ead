"""The fast float32 block kernels outside nearest-even values: the directed modes, stochastic
rounding (the random bits generated in the element loop) and codes (``encode``, ``asarray``).

Each case checks that the fast kernel ran (the general kernel was not called for whole blocks)
and gives the general path's bits (``cpu_blocks._FAST_PATH = False``), and a small array the
exact reference's (``formats/reference.py``), stochastic rounding with the same seed included.
"""

from __future__ import annotations

import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats import reference
from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.spec import Rounding
from qemu_arrays.kernels import blocks as kernels
from qemu_arrays.routes import cpu_blocks as blocks

MODES = [Rounding.TOWARD_ZERO, Rounding.UP, Rounding.DOWN, Rounding.STOCHASTIC]
NAMES = ["mxfp8_e4m3", "mxfp6_e2m3", "mxfp4_e2m1", "nvfp4"]


@pytest.fixture
def rng():
    return np.random.default_rng(15)


@pytest.fixture
def general_calls(monkeypatch):
    """The general kernels' calls, as ``(name, rows, cols)``."""
    calls = []
    for name in ("mx_kernel", "nv_kernel"):
        orig = getattr(kernels, name)

        def wrap(*a, _orig=orig, _name=name):
            calls.append((_name, a[1], a[2]))
            return _orig(*a)

        monkeypatch.setattr(kernels, name, wrap)
    return calls


def _data(rng, rows, n, bs):
    """Normal data: ties and grid points of the small formats, zeros of both signs, a NaN, an
    infinity, blocks of zeros and blocks scaled far up and down (no subnormal block maximum)."""
    x = rng.standard_normal((rows, n)) * np.exp2(rng.integers(-60, 60, (rows, 1)))
    grid = rng.integers(-64, 65, (rows, n)) / 8.0 * np.exp2(rng.integers(-20, 20, (rows, 1)))
    x = np.where(rng.random((rows, n)) < 0.3, grid, x)
    x[rng.random((rows, n)) < 0.03] = 0.0
    x[rng.random((rows, n)) < 0.03] = -0.0
    blk = x.reshape(rows, -1, bs)
    blk[0, 1] = 0.0
    blk[1, 0, 3] = np.nan
    blk[2, -1, 0] = -np.inf
    blk[3, -1] *= 2.0**-100
    blk[3, -1, 0] = 1.5  # elements far below their block's maximum (rounded to 0 or the minimum)
    return x.astype(np.float32)


def _bits(a):
    a = np.asarray(a)
    return a.view(np.uint64 if a.dtype == np.float64 else np.uint32)


def _same(got, want):
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = np.isnan(got) | (_bits(got) == _bits(want))
    assert ok.all(), f"{int((~ok).sum())} mismatches, first at {np.argwhere(~ok)[:4].tolist()}"


def _general(fn, monkeypatch):
    monkeypatch.setattr(blocks, "_FAST_PATH", False)
    try:
        return fn()
    finally:
        monkeypatch.setattr(blocks, "_FAST_PATH", True)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("rounding", [Rounding.NEAREST_EVEN, *MODES], ids=lambda r: r.name)
def test_fast_kernels_every_mode_values_and_codes(name, rounding, rng, general_calls, monkeypatch):
    bs = get_format(name).block_size
    x = _data(rng, 6, bs * 150, bs)  # several tasks of 128 blocks
    kw = {"rounding": rounding, "seed": 9, "offset": 5, "random_bits": 9}
    kw = kw if rounding is Rounding.STOCHASTIC else {"rounding": rounding}
    got = qa.quantize(x, name, **kw)
    enc = qa.encode(x, name, **kw)
    q = qa.asarray(x, name, **{k: v for k, v in kw.items() if k != "offset"})
    assert general_calls == []  # the fast kernel took every block
    _same(got, _general(lambda: qa.quantize(x, name, **kw), monkeypatch))
    want = _general(lambda: qa.encode(x, name, **kw), monkeypatch)
    assert np.array_equal(enc.codes, want.codes)
    assert np.array_equal(enc.scales, want.scales)
    if "offset" not in kw:
        assert np.array_equal(q.codes, want.codes)
        assert np.array_equal(q.scales, want.scales)


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "nvfp4"])
def test_fast_kernels_equal_the_exact_reference(name, rng):
    """Values against ``reference.quantize_blocks``, stochastic rounding with the same seed."""
    fmt = get_format(name)
    x = _data(rng, 4, 64, fmt.block_size)
    x[1] = np.nan_to_num(x[1], nan=0.5, posinf=2.0, neginf=-2.0)  # finite: the reference's rows
    x[2] = np.nan_to_num(x[2], nan=0.5, posinf=2.0, neginf=-2.0)
    ts = qa.encode(x, name).tensor_scale
    kw = {} if ts is None else {"scale": ts}
    for rounding in MODES:
        got = qa.quantize(x, name, rounding=rounding, seed=21, **kw)
        want = reference.quantize_blocks(x, fmt, rounding, seed=21, tensor_scale=ts)
        _same(got, np.array(want, dtype=np.float64).astype(np.float32))


@pytest.mark.parametrize("rounding", [Rounding.UP, Rounding.DOWN], ids=lambda r: r.name)
def test_directed_modes_with_tiny_elements_under_a_large_scale(rounding):
    """Directed rounding block by block (``_sel_block``): elements whose ``x * 2**-e``
    underflows in float32 (float32 subnormals and the smallest normals under a block maximum of
    ``2**20``, either sign) must leave the array to the general kernel, or UP/DOWN lose the
    smallest subnormal of the block: values and codes against the exact reference."""
    fmt = get_format("mxfp8_e4m3")
    tiny = np.array([2.0**-149, 3 * 2.0**-149, 2.0**-127, 2.0**-126, 1.5 * 2.0**-126], np.float32)
    x = np.zeros((3, 64), np.float32)
    x[:, 0] = 2.0**20
    x[0, 1:6], x[1, 1:6] = tiny, -tiny
    x[2, 40] = 1.0  # a block of ordinary values
    got = qa.quantize(x, fmt, rounding=rounding)
    want = reference.quantize_blocks(x, fmt, rounding)
    _same(got, np.array(want, dtype=np.float64).astype(np.float32))
    assert np.array_equal(qa.decode(qa.encode(x, fmt, rounding=rounding), fmt), got)


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "nvfp4"])
def test_inexact_scaled_elements_and_short_blocks_take_the_general_kernel(
    name, rng, general_calls, monkeypatch
):
    """An MX element so far below its block's maximum that ``x * 2**-e`` is not a normal
    float32 hands the array to the general kernel; a short last block of each row goes there
    with its own random indices."""
    bs = get_format(name).block_size
    sr = {"rounding": Rounding.STOCHASTIC, "seed": 4, "random_bits": 7}
    x = (rng.standard_normal((5, bs * 3 + 5)) * np.exp2(rng.integers(-30, 30, (5, 1)))).astype(
        np.float32
    )
    got = qa.quantize(x, name, **sr)
    codes = qa.encode(x, name, **sr).codes
    assert {c[0] for c in general_calls} == {name[:2] + "_kernel"}
    assert all(c[2] == 5 for c in general_calls)  # only the short last blocks
    _same(got, _general(lambda: qa.quantize(x, name, **sr), monkeypatch))
    assert np.array_equal(codes, _general(lambda: qa.encode(x, name, **sr).codes, monkeypatch))
    if name == "mxfp8_e4m3":
        y = x[:, : bs * 3].copy()
        y[0, :bs] = 1.0
        y[0, 3] = np.float32(2.0**-140)  # x * 2**-e is a float32 subnormal
        general_calls.clear()
        got = qa.quantize(y, name, **sr)
        assert general_calls == [("mx_kernel", 5, bs * 3)]
        _same(got, _general(lambda: qa.quantize(y, name, **sr), monkeypatch))


@pytest.mark.parametrize("name", ["mxfp8_e5m2", "mxfp4_e2m1", "mxint8", "nvfp4"])
def test_decode_kernel_equals_the_general_decode(name, rng, monkeypatch):
    """Codes of NaN, zero and ordinary blocks, rows with a short last block, into float32 and
    float64: the table kernel against the chunked float64 route."""
    bs = get_format(name).block_size
    for n in (bs * 4, bs * 2 + 3):
        x = (rng.standard_normal((7, n)) * np.exp2(rng.integers(-140, 120, (7, 1)))).astype(
            np.float32
        )
        x[0, 1] = np.nan
        x[1] = 0.0
        enc = qa.encode(x, name)
        for dtype in (np.float32, np.float64):
            got = qa.decode(enc, name, dtype=dtype)
            want = _general(lambda e=enc, d=dtype: qa.decode(e, name, dtype=d), monkeypatch)
            assert got.dtype == want.dtype
            ok = (got.view(np.uint8) == want.view(np.uint8)).reshape(got.shape + (-1,)).all(-1)
            assert (ok | np.isnan(want)).all()
            assert np.array_equal(np.isnan(got), np.isnan(want))


_SCALE_CODES = {8: [0, 1, 100, 127, 128, 200, 254, 255], 4: [0, 1, 7, 8, 0x38, 0x7E, 0x7F, 0xF8]}


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp4_e2m1", "nvfp4"])
def test_decode_by_arithmetic_every_element_code(name, monkeypatch):
    """Every element code under edge scale codes (the smallest, NaN, E4M3 subnormals and
    negative scales for NVFP4, with a tensor scale whose product rounds), rows with a short
    last block, into float32 and float64: the arithmetic kernel (``decode_blocks32``) against
    the general route; a code outside the element format is refused from the kernel's pass."""
    fmt = get_format(name)
    assert blocks._element_plan32(fmt) is not None
    ne, bs = 1 << fmt.element.bits, fmt.block_size
    sc = np.array(_SCALE_CODES[fmt.scale.bits if fmt.tensor_scale else 8], np.uint8)
    kw = {"tensor_scale": float(np.float32(0.7))} if fmt.tensor_scale else {}
    for n in (max(ne, bs) * 2, ne + 3):
        codes = np.tile(np.arange(ne, dtype=np.uint8), (sc.size, -(-n // ne)))[:, :n].copy()
        scales = np.repeat(sc[:, None], -(-n // bs), axis=1)
        for dtype in (np.float32, np.float64):
            got = qa.decode(codes, name, scale=scales, dtype=dtype, **kw)

            def general(c=codes, s=scales, d=dtype):
                return qa.decode(c, name, scale=s, dtype=d, **kw)

            want = _general(general, monkeypatch)
            _same(got, want)
    if ne == 256:  # every uint8 is an 8-bit code
        return
    big = np.zeros((64, bs * 8), np.uint8)
    big[40, 77] = ne  # one code past the element format, deep in the array
    with pytest.raises(ValueError, match=rf"codes must lie in \[0, 2\*\*{fmt.element.bits}\)"):
        qa.decode(big, name, scale=np.zeros((64, 8), np.uint8), dtype=np.float64, **kw)


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "nvfp4"])
def test_out_is_written_directly_and_may_be_the_input(name, rng):
    x = _data(rng, 4, 128, 32)
    want = qa.quantize(x, name)
    out = np.full_like(x, 7.0)
    assert qa.quantize(x, name, out=out) is out
    _same(out, want)
    y = x.copy()
    assert qa.quantize(y, name, out=y) is y  # in place: the input is read before it is written
    _same(y, want)
    z = np.ascontiguousarray(x[:, :100])  # a short last block: the general kernel rereads input
    wz = qa.quantize(z, name)
    qa.quantize(z, name, out=z)
    _same(z, wz)
