"""Integer quantization with scales: rules, granularity, zero points and stored scale formats."""

from __future__ import annotations

import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats.reference import quantize_value
from qemu_arrays.scales import compute_scale


@pytest.fixture
def w(rng):
    return (rng.standard_normal((5, 48)) * rng.uniform(0.1, 10, (5, 1))).astype(np.float32)


@pytest.mark.parametrize("rule", ["absmax", "percentile", "mse"])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("fmt", ["int8", "int4", "int8_narrow"])
def test_per_channel_equals_per_tensor_channel_by_channel(w, rule, symmetric, fmt):
    kw = {"scale": rule, "symmetric": symmetric}
    if rule == "percentile":  # percentile= applies to that rule only (an error with the others)
        kw["percentile"] = 99.0
    got = qa.quantize(w, fmt, axis=0, **kw)
    for c in range(w.shape[0]):
        np.testing.assert_array_equal(got[c], qa.quantize(w[c], fmt, **kw))
    got1 = qa.quantize(w, fmt, axis=1, **kw)
    for c in range(w.shape[1]):
        np.testing.assert_array_equal(got1[:, c], qa.quantize(w[:, c], fmt, **kw))


@pytest.mark.parametrize("block_size", [16, 20, 48])
def test_groups_equal_per_tensor_group_by_group(w, block_size):
    got = qa.quantize(w, "int4", scale="absmax", block_size=block_size)
    for r in range(w.shape[0]):
        for g0 in range(0, 48, block_size):
            np.testing.assert_array_equal(
                got[r, g0 : g0 + block_size],
                qa.quantize(w[r, g0 : g0 + block_size], "int4", scale="absmax"),
            )
    got0 = qa.quantize(w, "int4", scale="absmax", block_size=2, axis=0)
    np.testing.assert_array_equal(got0[0:2, 7], qa.quantize(w[0:2, 7], "int4", scale="absmax"))


@pytest.mark.parametrize("fmt", ["int8", "int4", "uint8", "int8_narrow"])
def test_asymmetric_all_positive_uses_full_grid(rng, fmt):
    f = qa.get_format(fmt)
    x = rng.uniform(3.0, 7.0, 1000).astype(np.float32)
    x[0], x[1] = 0.0, 7.5  # hits both ends of [0, max]
    enc = qa.encode(x, fmt, scale="absmax", symmetric=False)
    k = enc.codes.astype(np.int64)
    if f.signed:
        k = np.where(k >> (f.bits - 1), k - (1 << f.bits), k)
    assert k.min() == f.min
    assert k.max() == f.max
    assert int(enc.zero_points) == f.min  # lo = 0 maps to the lowest code
    sym = qa.encode(x, fmt, scale="absmax").codes.astype(np.int64)
    if f.signed:
        sym = np.where(sym >> (f.bits - 1), sym - (1 << f.bits), sym)
        assert sym.min() >= 0  # symmetric wastes the negative half
    np.testing.assert_array_equal(
        qa.decode(enc, fmt), qa.quantize(x, fmt, scale="absmax", symmetric=False)
    )


def test_absmax_scale_and_reference(w):
    s, z = compute_scale(w, "int8", axis=0)
    np.testing.assert_array_equal(s[:, 0], np.abs(w).max(axis=1).astype(np.float64) / 127)
    assert (z == 0).all()
    got = qa.quantize(w, "int8", scale="absmax", axis=0)
    for c in range(w.shape[0]):
        sc = float(s[c, 0])
        want = [quantize_value(float(v), "int8", scale=sc) for v in w[c]]
        np.testing.assert_array_equal(got[c], np.float32(want))


@pytest.mark.parametrize(
    "sfmt", ["float32", "float16", "bfloat16", "float8_e8m0fnu", "float8_e4m3fn"]
)
def test_scale_stored_in_format(w, sfmt):
    enc = qa.encode(w, "int8", scale="absmax", axis=0, scale_format=sfmt)
    raw, _ = compute_scale(w, "int8", axis=0)
    want = qa.quantize(raw, sfmt, overflow=qa.Overflow.SATURATE)
    np.testing.assert_array_equal(enc.scales, want)
    # every stored scale is a value of the format
    np.testing.assert_array_equal(qa.quantize(enc.scales, sfmt), enc.scales)
    np.testing.assert_array_equal(
        qa.decode(enc, "int8"), qa.quantize(w, "int8", scale="absmax", axis=0, scale_format=sfmt)
    )


def test_e8m0_scale_is_power_of_two(w):
    s, _ = compute_scale(w, "int8", axis=0, scale_format="e8m0")
    m, _ = np.frexp(s)
    assert (m == 0.5).all()


def test_mse_not_worse_than_absmax(rng):
    x = rng.standard_t(3, (4, 512)).astype(np.float32)  # heavy tails: clipping helps
    err = {}
    for rule in ("absmax", "mse"):
        q = qa.quantize(x, "int4", scale=rule, axis=0)
        err[rule] = ((q.astype(np.float64) - x) ** 2).sum(axis=1)
    assert (err["mse"] <= err["absmax"]).all()
    assert (err["mse"] < err["absmax"]).any()


def test_percentile_clips(rng):
    x = rng.standard_normal(1000).astype(np.float32)
    x[0] = 100.0
    s_abs, _ = compute_scale(x, "int8")
    s_pct, _ = compute_scale(x, "int8", rule="percentile", percentile=99.0)
    assert float(s_pct) < float(s_abs) / 10


def test_given_scale_arrays(w):
    s = np.abs(w).max(axis=1).astype(np.float64) / 127
    a = qa.quantize(w, "int8", scale=s, axis=0)
    np.testing.assert_array_equal(a, qa.quantize(w, "int8", scale="absmax", axis=0))
    g = np.full((5, 3), 0.05)
    b = qa.quantize(w, "int8", scale=g, block_size=16)
    np.testing.assert_array_equal(b, qa.quantize(w, "int8", scale=0.05))


def test_zero_and_nonfinite_groups(rng):
    x = np.zeros((3, 8), np.float32)
    x[1] = rng.standard_normal(8)
    s, _ = compute_scale(x, "int8", axis=0)
    assert s[0, 0] == 1.0
    np.testing.assert_array_equal(qa.quantize(x, "int8", scale="absmax", axis=0)[0], 0.0)


def test_bad_arguments(w):
    with pytest.raises(ValueError, match="rule"):
        qa.quantize(w, "int8", scale="max")
    with pytest.raises(ValueError, match="axis"):
        qa.quantize(w, "int8", scale="absmax", axis=3)
    with pytest.raises(ValueError, match="block_size"):
        qa.quantize(w, "int8", scale="absmax", block_size=0)
    with pytest.raises(ValueError, match="percentile"):
        qa.quantize(w, "int8", scale="percentile", percentile=0)
    with pytest.raises(ValueError, match="does not fit"):
        qa.quantize(w, "int8", scale=np.ones(7), axis=0)
    with pytest.raises(ValueError, match="scale_format"):
        qa.quantize(w, "int8", scale="absmax", scale_format="int8")
    with pytest.raises(ValueError, match="rule"):
        qa.decode(np.zeros(3, np.uint8), "int8", scale="absmax")
    y = w.copy()
    qa.quantize(w, "int8", scale="mse", axis=0)
    np.testing.assert_array_equal(w, y)
