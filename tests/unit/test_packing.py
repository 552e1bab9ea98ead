"""pack/unpack: round trips over every code of every packed format, and the documented layout."""

from __future__ import annotations

import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.packing import pack, packed_nbytes, unpack

PACKED_FORMATS = ["float4_e2m1fn", "int4", "uint4", "int2", "float6_e2m3fn", "float6_e3m2fn"]


@pytest.mark.parametrize("name", PACKED_FORMATS)
@pytest.mark.parametrize("extra", [0, 1, 2, 3, 5])
def test_round_trip_every_code_odd_lengths(name, extra):
    bits = qa.get_format(name).bits
    codes = np.arange(1 << bits, dtype=np.uint8)
    codes = np.concatenate([codes, codes[::-1], codes[:extra]])
    packed = pack(codes, bits)
    assert packed.dtype == np.uint8
    assert packed.size == packed_nbytes(codes.size, bits) == -(-codes.size * bits // 8)
    np.testing.assert_array_equal(unpack(packed, bits, codes.size), codes)


@pytest.mark.parametrize("bits", range(1, 9))
def test_round_trip_random_all_widths(bits, rng):
    codes = rng.integers(0, 1 << bits, size=101).astype(np.uint8)
    np.testing.assert_array_equal(unpack(pack(codes, bits), bits, 101), codes)


LAYOUT = [
    pytest.param(4, [0x1, 0x2, 0x3], [0x21, 0x03], id="fp4_low_nibble_first_odd"),
    pytest.param(4, [0xF, 0x0], [0x0F], id="fp4_first_in_low_nibble"),
    pytest.param(4, [0x0, 0xF], [0xF0], id="fp4_second_in_high_nibble"),
    pytest.param(6, [1, 2, 3, 4], [0x81, 0x30, 0x10], id="fp6_four_in_three_bytes"),
    pytest.param(6, [0x3F, 0, 0, 0], [0x3F, 0x00, 0x00], id="fp6_first_in_low_bits"),
    pytest.param(6, [0, 0, 0, 0x3F], [0x00, 0x00, 0xFC], id="fp6_last_in_high_bits"),
    pytest.param(6, [0x3F], [0x3F], id="fp6_single_code"),
    pytest.param(2, [1, 2, 3, 0, 1], [0x39, 0x01], id="int2_four_per_byte"),
    pytest.param(8, [0xAB, 0x01], [0xAB, 0x01], id="byte_codes_unchanged"),
]


@pytest.mark.parametrize(("bits", "codes", "packed"), LAYOUT)
def test_worked_layout_examples(bits, codes, packed):
    got = pack(np.array(codes, dtype=np.uint8), bits)
    assert got.tolist() == packed
    assert unpack(got, bits, len(codes)).tolist() == codes


def test_fp4_codes_of_values_pack_as_documented():
    # 1.0 is E2M1 code 0b0010, -6.0 is 0b1111: packed (1.0, -6.0) -> 0xF2
    codes = qa.encode(np.array([1.0, -6.0], np.float32), "float4_e2m1fn")
    assert pack(codes, 4).tolist() == [0xF2]


def test_errors():
    with pytest.raises(ValueError, match="bits"):
        pack(np.zeros(3, np.uint8), 9)
    with pytest.raises(ValueError, match="lie in"):
        pack(np.array([16], np.uint8), 4)
    with pytest.raises(TypeError, match="integer"):
        pack(np.zeros(3), 4)
    with pytest.raises(ValueError, match="need"):
        unpack(np.zeros(1, np.uint8), 6, 4)
    c = np.array([1, 2, 3], np.uint8)
    pack(c, 4)
    assert c.tolist() == [1, 2, 3]


@pytest.mark.parametrize("bits", [2, 4, 6])
@pytest.mark.parametrize("extra", [0, 1, 3, 13])
def test_the_pack_kernel_equals_the_numpy_packing(bits, extra, rng, monkeypatch):
    """Large arrays pack with the numba kernel (whole groups; 6-bit codes sixteen at a time,
    then the whole groups after them: ``extra=13``) and NumPy (a partial last group)."""
    from qemu_arrays import packing

    codes = rng.integers(0, 1 << bits, size=(1 << 13) + extra, dtype=np.uint8)
    got = pack(codes, bits)
    monkeypatch.setattr(packing, "_KERNEL_FROM", 1 << 40)
    np.testing.assert_array_equal(got, pack(codes, bits))
