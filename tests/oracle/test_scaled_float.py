"""Scaled float formats against the exact oracle (docs/scaled.md, "Scaled float formats"):
``s = float32(amax / fmt.max)`` (then rounded into ``scale_format``), ``q = float32(x / s)``,
``Q(q)`` by ``formats/reference.quantize_value`` (saturating), ``float32(Q(q) * s)``."""

from __future__ import annotations

import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats.reference import quantize_value

R, O = qa.Rounding, qa.Overflow


def _data(shape=(5, 48), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * np.logspace(-6, 4, shape[0])[:, None]
    x = x.astype(np.float32)
    x[0, :3] = [0.0, -0.0, np.float32(1e-41)]  # zeros and a subnormal
    x[2] = 0.0  # a group of zeros: scale 1
    return x


def _groups(x, axis, block_size):
    """Boolean masks of the groups: the tensor; one per index along ``axis`` (per channel); or
    runs of ``block_size`` along ``axis`` for each position of the other axes."""
    if axis is None:
        return [np.ones(x.shape, bool)]
    if block_size is None:
        out = []
        for i in range(x.shape[axis]):
            m = np.zeros(x.shape, bool)
            np.moveaxis(m, axis, 0)[i] = True
            out.append(m)
        return out
    out = []
    moved = np.moveaxis(np.arange(x.size).reshape(x.shape), axis, -1)
    for pos in np.ndindex(*moved.shape[:-1]):
        for g in range(0, moved.shape[-1], block_size):
            m = np.zeros(x.size, bool)
            m[moved[pos][g : g + block_size]] = True
            out.append(m.reshape(x.shape))
    return out


def _oracle(x, fmt_name, axis=None, block_size=None, scale_format=None):
    fmt = qa.get_format(fmt_name)
    want = np.empty_like(x)
    for m in _groups(x, axis, block_size):
        amax = float(np.max(np.abs(x[m]))) if m.any() else 0.0
        s = np.float32(amax / float(fmt.max)) if amax > 0 else np.float32(1.0)
        if scale_format is not None:
            sf = qa.get_format(scale_format)
            s = np.float32(quantize_value(float(s), sf, R.NEAREST_EVEN, O.SATURATE))
            if s == 0:  # a scale is never zero: the scale format's smallest positive value
                s = np.float32(sf.smallest_subnormal if sf.has_zero else sf.min)
        q = (x[m] / s).astype(np.float32)
        v = np.array([quantize_value(float(e), fmt, R.NEAREST_EVEN, O.SATURATE) for e in q])
        want[m] = (v.astype(np.float32) * s).astype(np.float32)
    return want


@pytest.mark.parametrize(
    ("fmt", "kw"),
    [
        ("float4_e2m1fn", {}),
        ("float4_e2m1fn", {"axis": 0}),
        ("float8_e4m3fn", {"axis": 1, "block_size": 16, "scale_format": "float8_e8m0fnu"}),
        ("float8_e5m2", {"axis": 0, "scale_format": "float8_e4m3fn"}),
        ("float6_e3m2fn", {"axis": 1, "block_size": 32}),
    ],
    ids=["fp4-tensor", "fp4-channel", "fp8-groups-e8m0", "e5m2-channel-e4m3", "fp6-groups"],
)
def test_absmax_matches_the_oracle(fmt, kw):
    x = _data()
    got = qa.quantize(x, fmt, scale="absmax", **kw)
    want = _oracle(x, fmt, kw.get("axis"), kw.get("block_size"), kw.get("scale_format"))
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    # the group maximum lands on the format's largest value (exactly, without a scale format)
    if "scale_format" not in kw:
        fmax = float(qa.get_format(fmt).max)
        for m in _groups(x, kw.get("axis"), kw.get("block_size")):
            if np.abs(x[m]).max() > 0:
                s = np.float32(np.abs(x[m]).max() / fmax)
                assert np.abs(got[m]).max() == np.float32(np.float32(fmax) * s)
    enc = qa.encode(x, fmt, scale="absmax", **kw)
    np.testing.assert_array_equal(qa.decode(enc, fmt), got)
    qarr = qa.asarray(x, fmt, scale="absmax", **kw)
    np.testing.assert_array_equal(np.asarray(qarr), got)


def test_a_given_scale_and_saturation():
    x = np.array([0.0, 0.01, 0.26, -0.3, 5.0, -1e9], np.float32)
    got = qa.quantize(x, "float4_e2m1fn", scale=0.05)
    # x / 0.05 = 0, 0.2, 5.2, -6, 100, -2e10 -> 0, 0, 5 (nearest of 4, 6: 5.2 -> 6? no: 4|6 tie
    # rule), -6, 6 (saturates), -6 (saturates)
    want = np.array(
        [quantize_value(float(np.float32(v / np.float32(0.05))), "float4_e2m1fn", R.NEAREST_EVEN,
                        O.SATURATE) for v in x], np.float32,
    ) * np.float32(0.05)  # fmt: skip
    np.testing.assert_array_equal(got, want.astype(np.float32))
    assert got[4] == np.float32(6 * np.float32(0.05))
    assert got[5] == -np.float32(6 * np.float32(0.05))


def test_stochastic_rounding_of_the_quotient():
    x = _data((3, 40), seed=4)
    kw = {"scale": "absmax", "axis": 0, "rounding": R.STOCHASTIC, "seed": 9}
    got = qa.quantize(x, "float4_e2m1fn", **kw)
    s = qa.compute_scale(x, "float4_e2m1fn", rule="absmax", axis=0)[0].astype(np.float32)
    q = (x / s).astype(np.float32)
    want = qa.quantize(q, "float4_e2m1fn", rounding=R.STOCHASTIC, seed=9, overflow=O.SATURATE)
    np.testing.assert_array_equal(got, (want * s).astype(np.float32))
