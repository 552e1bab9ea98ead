"""Stochastic rounding: the exact probability of rounding up (enumerating every r-bit random
integer through the reference), agreement of the fast path with the reference element by
element, unbiasedness, and the reproducibility promises of the counter-based generator."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.reference import encode_value, quantize_value, random_bits
from qemu_arrays.formats.spec import Rounding

SR = Rounding.STOCHASTIC
FRACTIONS = (
    Fraction(0),
    Fraction(1, 64),
    Fraction(1, 16),
    Fraction(3, 16),
    Fraction(1, 5),
    Fraction(1, 3),
    Fraction(1, 2),
    Fraction(5, 8),
    Fraction(2, 3),
    Fraction(15, 16),
    Fraction(63, 64),
)

# (format, a grid value v, the grid spacing just above v): x = v + f * spacing
CASES = (
    ("float8_e4m3fn", Fraction(5, 4), Fraction(1, 8)),  # normal binade [1, 2)
    ("float8_e4m3fn", Fraction(3, 2**9), Fraction(1, 2**9)),  # subnormals
    ("float8_e4m3fn", Fraction(0), Fraction(1, 2**9)),  # between 0 and the smallest
    ("float8_e5m2", Fraction(96), Fraction(16)),
    ("float4_e2m1fn", Fraction(3, 1), Fraction(1)),
    ("float8_e8m0fnu", Fraction(4), Fraction(4)),  # [4, 8): the only candidates
    ("binary8p3", Fraction(7, 4), Fraction(1, 4)),
)


def _ups(x, fmt, r, down):
    """How many of the 2^r random integers round x away from `down` (through the reference)."""
    return sum(quantize_value(x, fmt, SR, u=u, r=r) != down for u in range(1 << r))


@pytest.mark.parametrize("r", [1, 2, 3, 4, 6])
@pytest.mark.parametrize(("name", "v", "spacing"), CASES)
def test_probability_of_rounding_up_is_exactly_floor_f_2r_over_2r(name, v, spacing, r):
    fmt = get_format(name)
    for f in FRACTIONS:
        for sign in (1, -1) if fmt.signed else (1,):
            x = sign * (v + f * spacing)
            down = float(sign * v)
            if x == 0 or (not fmt.has_zero and v == 0):
                continue
            expected = math.floor(f * (1 << r))
            assert _ups(x, fmt, r, down) == expected, (name, float(x), f, r)
            # the up-neighbour is the next grid value, away from zero
            up = quantize_value(x, fmt, SR, u=0, r=r)
            if expected:
                assert up == float(sign * (v + spacing))


@pytest.mark.parametrize("r", [1, 3, 4])
def test_int_format_probability(r):
    int8 = get_format("int8")
    for f in FRACTIONS:
        for sign in (1, -1):
            x = float(sign * (3 + f) * Fraction(1, 4))  # exact: the quotient is 3 + f
            ups = sum(
                quantize_value(x, int8, SR, u=u, r=r, scale=0.25) != sign * 0.75
                for u in range(1 << r)
            )
            assert ups == math.floor(f * (1 << r))


def test_the_random_integer_decides_in_order():
    """Rounds up exactly for the u below the threshold: u < floor(f * 2^r)."""
    fmt = get_format("float8_e4m3fn")
    x = float(Fraction(5, 4) + Fraction(5, 16) * Fraction(1, 8))  # f = 5/16
    got = [quantize_value(x, fmt, SR, u=u, r=4) for u in range(16)]
    assert got == [1.375] * 5 + [1.25] * 11


# ---- the fast path ---------------------------------------------------------------------------


@pytest.mark.parametrize("r", [3, 4, 8, 32])
@pytest.mark.parametrize("name", ["float8_e4m3fn", "float4_e2m1fn", "float8_e5m2"])
def test_fast_path_is_the_reference_element_by_element(name, r, same_codes):
    import qemu_arrays as qa

    fmt = get_format(name)
    x = np.full(2000, 1.3, dtype=np.float32)
    codes = qa.encode(x, fmt, rounding=SR, seed=77, random_bits=r)
    x0 = float(x[0])
    expected = [encode_value(x0, fmt, SR, u=random_bits(77, 0, i, r), r=r) for i in range(x.size)]
    same_codes(codes, np.array(expected), f"{name} r={r}", inputs=x)


@pytest.mark.parametrize("r", [4, 32])
def test_fast_path_mean_is_unbiased(r):
    """The mean of N roundings of one value is down + p * (up - down), with
    p = floor(f * 2^r) / 2^r, within 5 standard deviations."""
    import qemu_arrays as qa

    fmt = get_format("float8_e4m3fn")
    n = 200_000
    x = np.float32(1.3)
    down, up = 1.25, 1.375
    f = (Fraction(float(x)) - Fraction(down)) / Fraction(up - down)
    p = Fraction(math.floor(f * (1 << r)), 1 << r)
    y = qa.quantize(np.full(n, x), fmt, rounding=SR, seed=2024, random_bits=r)
    assert set(np.unique(y).tolist()) == {down, up}
    mean = y.astype(np.float64).mean()
    expected = down + float(p) * (up - down)
    sigma = (up - down) * math.sqrt(float(p * (1 - p)) / n)
    assert abs(mean - expected) < 5 * sigma
    if r == 4:  # truncating f to 4 bits biases the mean down, and the test sees it
        assert float(p) < float(f)


def test_same_seed_same_output_different_seed_different_output(rng):
    import qemu_arrays as qa

    x = rng.normal(size=5000).astype(np.float32)
    a = qa.quantize(x, "float8_e4m3fn", rounding=SR, seed=5)
    b = qa.quantize(x, "float8_e4m3fn", rounding=SR, seed=5)
    c = qa.quantize(x, "float8_e4m3fn", rounding=SR, seed=6)
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.05
    d = qa.quantize(x, "float8_e4m3fn", rounding=SR, seed=5, stream=1)
    assert (a != d).mean() > 0.05
    # big seeds are reduced modulo 2^64
    e = qa.quantize(x, "float8_e4m3fn", rounding=SR, seed=5 + 2**64)
    np.testing.assert_array_equal(a, e)


def test_stream_and_offset_index_the_reference_generator(same_codes):
    import qemu_arrays as qa

    fmt = get_format("float8_e5m2")
    x = np.full(300, 0.3, dtype=np.float32)
    codes = qa.encode(x, fmt, rounding=SR, seed=9, stream=3, offset=1000)
    expected = [
        encode_value(float(x[0]), fmt, SR, u=random_bits(9, 3, 1000 + i, 32), r=32)
        for i in range(x.size)
    ]
    same_codes(codes, np.array(expected), "stream=3 offset=1000", inputs=x)


def test_chunks_with_offset_equal_the_whole_array(rng):
    import qemu_arrays as qa

    x = rng.normal(size=(40, 25)).astype(np.float32)
    whole = qa.quantize(x, "float4_e2m1fn", rounding=SR, seed=11)
    flat = x.reshape(-1)
    parts = [
        qa.quantize(flat[a:b], "float4_e2m1fn", rounding=SR, seed=11, offset=a)
        for a, b in ((0, 1), (1, 333), (333, 334), (334, 1000))
    ]
    np.testing.assert_array_equal(np.concatenate(parts).reshape(x.shape), whole)
    # without the offset, chunks would reuse the same random bits
    restart = qa.quantize(flat[334:], "float4_e2m1fn", rounding=SR, seed=11)
    assert (restart != whole.reshape(-1)[334:]).any()


def test_float64_input_uses_53_bits_by_default(same_codes):
    import qemu_arrays as qa

    fmt = get_format("float8_e4m3fn")
    x = np.full(500, 1.3, dtype=np.float64)
    codes = qa.encode(x, fmt, rounding=SR, seed=3)
    expected = [encode_value(1.3, fmt, SR, u=random_bits(3, 0, i, 53), r=53) for i in range(500)]
    same_codes(codes, np.array(expected), "float64 r=53", inputs=x)


def test_16_bit_inputs_use_32_bits(same_codes):
    import qemu_arrays as qa

    fmt = get_format("float4_e2m1fn")
    x = np.full(300, 1.3, dtype=np.float16)
    codes = qa.encode(x, fmt, rounding=SR, seed=8)
    x0 = float(x[0])
    expected = [encode_value(x0, fmt, SR, u=random_bits(8, 0, i, 32), r=32) for i in range(300)]
    same_codes(codes, np.array(expected), "float16 r=32", inputs=x)


def test_stochastic_argument_errors():
    import qemu_arrays as qa

    x = np.ones(3, dtype=np.float32)
    with pytest.raises(ValueError, match="seed"):
        qa.quantize(x, "float8_e4m3fn", rounding=SR)
    for bad in (0, 63, -1):
        with pytest.raises(ValueError, match="random_bits"):
            qa.quantize(x, "float8_e4m3fn", rounding=SR, seed=0, random_bits=bad)
    with pytest.raises(ValueError, match="offset"):
        qa.quantize(x, "float8_e4m3fn", rounding=SR, seed=0, offset=-1)
