"""Block formats (OCP MX v1.0, NVFP4) against the exact block-by-block reference.

The reference (``qemu_arrays.formats.reference.quantize_blocks``) is written from docs/blocks.md
with Fraction arithmetic and the scalar oracle ``quantize_value``; it shares no code with the
numba kernels.
"""

from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats.block_spec import BlockFormat, ScaleRule
from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.reference import (
    quantize_blocks,
    quantize_mx_block,
    quantize_value,
    random_bits,
)
from qemu_arrays.formats.spec import Overflow, Rounding

MX_NAMES = ("mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4_e2m1", "mxint8")
ALL_NAMES = (*MX_NAMES, "nvfp4")


def reference(x, fmt, rounding=Rounding.NEAREST_EVEN, seed=0, ts=None):
    """The exact reference along the last axis of a 2-D array, as a float64 array."""
    return np.array(quantize_blocks(x, fmt, rounding, seed=seed, tensor_scale=ts), np.float64)


# ---- test data ---------------------------------------------------------------------------------


def _special_blocks(fmt, bs):
    """Rows of one block each: the edge cases the issue lists."""
    emax = fmt.element_emax
    mx = fmt.element_max
    base = np.linspace(-1, 1, bs)
    rows = {
        "all_zero": np.zeros(bs),
        "neg_zeros": -np.zeros(bs),
        "nan": np.where(np.arange(bs) == 3, np.nan, base),
        "inf": np.where(np.arange(bs) == 5, np.inf, base),
        "neg_inf": np.where(np.arange(bs) == 0, -np.inf, base),
        "max_at_pow2": base * 2.0**emax,  # amax exactly 2^emax: scale 1
        "max_at_elem_max": base * mx,  # amax exactly the element max
        "max_just_above": np.where(np.arange(bs) == bs - 1, np.nextafter(np.float32(mx), 99), base),
        "max_just_below_pow2": base * float(np.nextafter(np.float32(2.0**emax), 0)),
        "subnormal_elements": np.concatenate([[2.0**emax], 2.0 ** np.arange(-1, -bs, -1)]),
        "tiny_block": base * 2.0**-140,  # scale clamps at 2^-127
        "float32_subnormals": base * 2.0**-148,
        "huge": base * 2.0**127,
        "one_value": np.where(np.arange(bs) == 7, -3.3, 0.0),
    }
    return rows


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return rng


def _block_data(fmt, rng):
    bs = fmt.block_size
    special = _special_blocks(fmt, bs)
    rand = [rng.standard_normal(bs) * 2.0 ** rng.integers(-20, 20) for _ in range(6)]
    rows = np.array(list(special.values()) + rand, dtype=np.float64)
    with np.errstate(over="ignore"):
        return rows.astype(np.float32)


def _assert_same(got, want, ctx):
    got = np.asarray(got, dtype=np.float64)
    g_nan, w_nan = np.isnan(got), np.isnan(want)
    bad = (g_nan != w_nan) | (~g_nan & ((got != want) | (np.signbit(got) != np.signbit(want))))
    if bad.any():
        idx = np.argwhere(bad)[:6]
        ex = [(tuple(i), got[tuple(i)], want[tuple(i)]) for i in idx]
        pytest.fail(f"{ctx}: {int(bad.sum())} mismatches (index, got, expected): {ex}")


# ---- tests against the reference -------------------------------------------------------------


@pytest.mark.parametrize("name", MX_NAMES)
@pytest.mark.parametrize("rule", list(ScaleRule), ids=lambda r: r.name)
def test_mx_matches_reference_every_rule(name, rule, data):
    fmt = get_format(name).with_rule(rule)
    x = _block_data(fmt, data)
    got = qa.quantize(x, fmt)
    assert got.dtype == np.float32
    assert got.shape == x.shape
    _assert_same(got, reference(x, fmt), f"{name} {rule.name}")


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize(
    "rounding", [r for r in Rounding if r <= Rounding.STOCHASTIC], ids=lambda r: r.name
)
def test_every_rounding_mode_matches_reference(name, rounding, data):
    fmt = get_format(name)
    x = _block_data(fmt, data)
    got = qa.quantize(
        x, fmt, rounding=rounding, seed=11 if rounding is Rounding.STOCHASTIC else None
    )
    ts = qa.encode(x, fmt).tensor_scale if fmt.tensor_scale else None
    _assert_same(got, reference(x, fmt, rounding, seed=11, ts=ts), f"{name} {rounding.name}")


def test_nvfp4_matches_reference_random(data):
    fmt = get_format("nvfp4")
    x = (data.standard_normal((8, 48)) * np.exp(data.standard_normal((8, 1)) * 3)).astype(
        np.float32
    )
    enc = qa.encode(x, fmt)
    amax = float(np.abs(x).max())
    assert enc.tensor_scale == np.float32(quantize_value(Fraction(amax) / 2688, "float32"))
    _assert_same(qa.quantize(x, fmt), reference(x, fmt, ts=enc.tensor_scale), "nvfp4")


def test_nvfp4_given_tensor_scale(data):
    fmt = get_format("nvfp4")
    x = data.standard_normal((3, 32)).astype(np.float32)
    got = qa.quantize(x, fmt, scale=np.float32(0.001))
    _assert_same(got, reference(x, fmt, ts=np.float32(0.001)), "nvfp4 scale=0.001")
    with pytest.raises(ValueError, match="per-tensor"):
        qa.quantize(x, fmt, scale=-1.0)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_partial_last_block_is_zero_padded(name, data):
    fmt = get_format(name)
    n = fmt.block_size * 2 + 5
    x = data.standard_normal((3, n)).astype(np.float32)
    padded = np.concatenate([x, np.zeros((3, fmt.block_size - 5), np.float32)], axis=1)
    kw = {"scale": qa.encode(x, fmt).tensor_scale} if fmt.tensor_scale else {}
    got = qa.quantize(x, fmt, **kw)
    assert got.shape == x.shape
    np.testing.assert_array_equal(got, qa.quantize(padded, fmt, **kw)[:, :n])
    enc = qa.encode(x, fmt)
    assert enc.scales.shape == (3, 3)
    assert enc.codes.shape == x.shape


@pytest.mark.parametrize("name", ["mxfp4_e2m1", "mxint8", "nvfp4"])
def test_axis_and_index_order(name, data):
    """Blocks along axis 0 equal blocks along the last axis of the transpose, and stochastic
    rounding uses each element's C-order index of the original array."""
    fmt = get_format(name)
    x = data.standard_normal((40, 5)).astype(np.float32)
    a = qa.quantize(x, fmt, axis=0)
    b = qa.quantize(np.ascontiguousarray(x.T), fmt).T
    np.testing.assert_array_equal(a, b)
    if fmt.tensor_scale:
        return
    sr = qa.quantize(x, fmt, axis=0, rounding=Rounding.STOCHASTIC, seed=3)
    want = np.empty_like(x, dtype=np.float64)
    for j in range(5):
        for b0 in range(0, 40, fmt.block_size):
            rows = range(b0, min(b0 + fmt.block_size, 40))
            us = [random_bits(3, 0, i * 5 + j, 32) for i in rows]
            vals, _ = quantize_mx_block(
                [float(x[i, j]) for i in rows], fmt, Rounding.STOCHASTIC, us, 32
            )
            want[list(rows), j] = vals
    _assert_same(sr, want, f"{name} SR axis=0")


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float64])
def test_other_input_dtypes(dtype, data):
    fmt = get_format("mxfp8_e5m2")
    x = data.standard_normal((2, 64)).astype(dtype)
    got = qa.quantize(x, fmt)
    assert got.dtype == np.dtype(dtype)
    want = reference(x.astype(np.float64), fmt)
    _assert_same(got.astype(np.float64), want.astype(dtype).astype(np.float64), str(dtype))


@pytest.mark.parametrize("name", ALL_NAMES)
def test_encode_decode_round_trip(name, data):
    fmt = get_format(name)
    x = _block_data(fmt, data)
    enc = qa.encode(x, fmt)
    assert enc.codes.dtype == np.uint8
    assert enc.scales.dtype == np.uint8
    _assert_same(qa.decode(enc, fmt), qa.quantize(x, fmt).astype(np.float64), name)
    # decoding the codes with explicit scale codes gives the same
    kw = {"tensor_scale": enc.tensor_scale} if fmt.tensor_scale else {}
    again = qa.decode(enc.codes, fmt, scale=enc.scales, **kw)
    _assert_same(again, qa.quantize(x, fmt).astype(np.float64), name)


def test_mx_scale_codes_and_nan_scale():
    fmt = get_format("mxfp4_e2m1")
    x = np.zeros((3, 32), np.float32)
    x[0, 0] = 6.0  # floor(log2 6) - emax(2) = 0 -> E8M0 code 127
    x[1, 1] = np.nan
    enc = qa.encode(x, fmt)
    assert enc.scales.tolist() == [[127], [0xFF], [0]]
    assert np.isnan(qa.decode(enc, fmt)[1]).all()
    assert enc.codes[0, 0] == 0b0111  # 6.0 in E2M1


def test_bad_arguments():
    x = np.ones((2, 32), np.float32)
    with pytest.raises(ValueError, match="scalar"):
        qa.quantize(np.float32(1.0), "mxfp8_e4m3")
    with pytest.raises(ValueError, match="elements always saturate"):
        qa.quantize(x, "mxfp8_e4m3", overflow=Overflow.ML_DTYPES)
    with pytest.raises(ValueError, match="axis"):
        qa.quantize(x, "mxfp8_e4m3", axis=2)
    with pytest.raises(ValueError, match="scale codes have shape"):
        qa.decode(np.zeros((2, 32), np.uint8), "mxfp8_e4m3", scale=np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="per-tensor scale"):
        qa.quantize(x, "mxfp8_e4m3", scale=2.0)
    with pytest.raises(ValueError, match="block_size"):
        BlockFormat(element=get_format("float4_e2m1fn"), scale=get_format("e8m0"), block_size=0)
    y = x.copy()
    qa.quantize(y, "nvfp4")
    np.testing.assert_array_equal(x, y)  # input untouched


# ---- worked examples ---------------------------------------------------------------------------
# Hand-computed from the algorithm of OCP MX v1.0 section 6.3 (shared_exp = floor(log2(amax)) -
# emax_elem, X = 2^shared_exp, P_i = quantize(V_i / X) saturating) and from NVIDIA's NVFP4
# description (E4M3 block scale = amax_b / (6 * tensor scale), tensor scale = amax / (6 * 448)).
# Each row: (block values, expected scale code, expected element values after decode).

MX_EXAMPLES = [
    pytest.param(
        "mxfp8_e4m3", [448.0, 1.0, -0.0625], 127, [448.0, 1.0, -0.0625], id="e4m3_max_448_scale_1"
    ),
    pytest.param("mxfp8_e4m3", [500.0, 1.0], 127, [448.0, 1.0], id="e4m3_500_saturates_to_448"),
    pytest.param("mxfp8_e4m3", [512.0, 1.0], 128, [512.0, 1.0], id="e4m3_512_scale_2"),
    pytest.param(
        "mxfp4_e2m1", [6.0, 0.25, 0.75], 127, [6.0, 0.0, 1.0], id="fp4_6_scale_1_ties_even"
    ),
    pytest.param("mxfp4_e2m1", [7.0, 3.0], 127, [6.0, 3.0], id="fp4_7_saturates_to_6"),
    pytest.param("mxfp4_e2m1", [8.0, 1.0, 0.5], 128, [8.0, 1.0, 0.0], id="fp4_8_scale_2"),
    pytest.param("mxfp4_e2m1", [0.375, 0.1], 127 - 4, [0.375, 0.09375], id="fp4_small_scale_2^-4"),
    pytest.param("mxfp6_e2m3", [7.5, 0.1], 127, [7.5, 0.125], id="fp6_e2m3_max_7_5"),
    pytest.param("mxfp6_e3m2", [28.0, 0.3], 127, [28.0, 0.3125], id="fp6_e3m2_max_28"),
    pytest.param("mxfp8_e5m2", [57344.0, 3.0], 127, [57344.0, 3.0], id="e5m2_max_57344"),
    pytest.param("mxint8", [1.5, -0.01], 127, [1.5, -0.015625], id="int8_1_6_fixed_point"),
    pytest.param("mxint8", [-2.0, 1.0], 128, [-2.0, 1.0], id="int8_minus_2_scale_2"),
    pytest.param("mxint8", [1.99, 0.5], 127, [1.984375, 0.5], id="int8_max_127_over_64"),
    pytest.param("mxfp4_e2m1", [0.0, 0.0], 0, [0.0, 0.0], id="all_zero_scale_2^-127"),
]


@pytest.mark.parametrize(("name", "vals", "scale_code", "expected"), MX_EXAMPLES)
def test_mx_worked_examples(name, vals, scale_code, expected):
    fmt = get_format(name)
    x = np.zeros(32, np.float32)
    x[: len(vals)] = vals
    enc = qa.encode(x, fmt)
    assert int(enc.scales[0]) == scale_code
    np.testing.assert_array_equal(qa.decode(enc, fmt)[: len(vals)], np.float32(expected))


RULE_EXAMPLES = [
    # mxfp4: element max 6 = 1.5 * 2^2, emax 2, one mantissa bit
    pytest.param(ScaleRule.FLOOR, 7.0, 0, id="floor_7"),
    pytest.param(ScaleRule.CEIL, 7.0, 1, id="ceil_7_rounds_up_to_8"),
    pytest.param(ScaleRule.EVEN, 7.0, 1, id="even_7_tie_to_8"),
    pytest.param(ScaleRule.EVEN, 6.9, 0, id="even_6.9_to_6"),
    pytest.param(ScaleRule.CEIL, 6.0, 0, id="ceil_6_exact"),
    pytest.param(ScaleRule.RCEIL, 6.0, 0, id="rceil_6_fits"),
    pytest.param(ScaleRule.RCEIL, 6.01, 1, id="rceil_6.01_needs_2"),
    pytest.param(ScaleRule.RCEIL, 12.0, 1, id="rceil_12_is_6_times_2"),
    pytest.param(ScaleRule.FLOOR, 4.0, 0, id="floor_4_boundary"),
    pytest.param(ScaleRule.FLOOR, 3.999, -1, id="floor_below_4"),
]


@pytest.mark.parametrize(("rule", "amax", "exp"), RULE_EXAMPLES)
def test_scale_rule_examples(rule, amax, exp):
    fmt = get_format("mxfp4_e2m1").with_rule(rule)
    x = np.zeros(32, np.float32)
    x[0] = amax
    assert int(qa.encode(x, fmt).scales[0]) - 127 == exp


NV_EXAMPLES = [
    # tensor scale fixed at 1: block scale = E4M3(amax / 6), d = block scale, element E2M1(x / d)
    pytest.param([2688.0, 6.0, 3.0], 448.0, [2688.0, 0.0, 0.0], id="top_block_scale_448"),
    pytest.param([6.0, 1.0, 0.4], 1.0, [6.0, 1.0, 0.5], id="scale_1"),
    pytest.param([7.0, 2.5], 1.125, [6.75, 2.25], id="scale_7/6_rounds_to_1.125"),
    pytest.param([0.01, 0.004], 2.0**-9, [0.01171875, 0.00390625], id="subnormal_e4m3_scale_2^-9"),
    pytest.param([0.003, 0.001], 0.0, [0.0, 0.0], id="scale_underflows_to_zero"),
]


@pytest.mark.parametrize(("vals", "block_scale", "expected"), NV_EXAMPLES)
def test_nvfp4_worked_examples(vals, block_scale, expected):
    fmt = get_format("nvfp4")
    x = np.zeros(16, np.float32)
    x[: len(vals)] = vals
    enc = qa.encode(x, fmt, scale=np.float32(1.0))
    s = qa.decode(enc.scales, "float8_e4m3fn", dtype=np.float64)[0]
    assert s == block_scale
    np.testing.assert_array_equal(qa.decode(enc, fmt)[: len(vals)], np.float32(expected))
