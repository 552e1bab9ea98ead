"""The stochastic-rounding profiles (issue 16) against transcriptions of their documents: the
vectors below are computed by hand from the rule each source states (PTX ISA ``cvt.rs``, the AMD
host models, Intel's SRND page), as gfloat writes the P3109 tables into its tests. No library
runs these instructions on a CPU, so these transcriptions are the test."""

from __future__ import annotations

import numpy as np
import pytest

from qemu_arrays.hardware import profile
from qemu_arrays.hardware.words import counter_words


def _f32(*words):
    return np.array(words, np.uint32).view(np.float32)


def _bits16(a, dtype):
    return np.asarray(a).astype(dtype).view(np.uint16).tolist()


def test_ptx_bf16x2_and_f16x2():
    p = profile("nvidia-sm100-cvt.rs")
    # 1 + 2^-8 into bfloat16 (r = 16): up iff the lane's 16 bits >= 0x8000. Element 0 of a pair is
    # operand b (d[15:0], rbits[15:0]), element 1 is a (rbits[31:16]).
    x = _f32(0x3F808000, 0x3F808000)
    got = p.quantize(x, "bfloat16", rbits=np.array([0x80007FFF], np.uint32))
    assert got.tolist() == [1.0, 1.0078125]
    # 0x3F800FFF into float16 (r = 13, discarded 0xFFF): up iff lane bits >= 0x1001; bits 13..15
    # of each half are ignored
    x = _f32(0x3F800FFF, 0x3F800FFF)
    got = p.quantize(x, "float16", rbits=np.array([(0x1001 << 16) | 0xF000], np.uint32))
    assert _bits16(got, np.float16) == [0x3C00, 0x3C01]


def test_ptx_fp8_fp4_x4():
    p = profile("nvidia-sm100-cvt.rs")
    # 1 + 0x12345 2^-23 into E4M3 (r = 16, F = 0x1234): up iff lane >= 0xEDCC; f, e read
    # rbits[15:0], b, a read rbits[31:16]
    x = _f32(*[0x3F812345] * 4)
    got = p.quantize(x, "float8_e4m3fn", rbits=np.array([0xEDCCEDCB], np.uint32))
    assert got.tolist() == [1.0, 1.0, 1.125, 1.125]
    # 1.25 into E2M1 (r = 8, F = 0x80): up iff the lane's byte >= 0x80; f=[7:0], e=[23:16],
    # b=[15:8], a=[31:24]
    x = np.full(4, 1.25, np.float32)
    got = p.quantize(x, "float4_e2m1fn", rbits=np.array([0x80807F7F], np.uint32))
    assert got.tolist() == [1.0, 1.5, 1.0, 1.5]
    # .satfinite: NaN -> +6, -inf -> -6 (e2m1 has no NaN); exact values never move
    x = np.array([np.nan, -np.inf, 1.0, 4.0], np.float32)
    got = p.quantize(x, "float4_e2m1fn", rbits=np.array([0xFFFFFFFF], np.uint32))
    assert got.tolist() == [6.0, -6.0, 1.0, 4.0]
    # rbits = 0x80008000 on e4m3x4 is round-half-away (Transformer Engine's use)
    x = np.array([1.0625, 1.1875, -1.0625, 1.07], np.float32)
    got = p.quantize(x, "float8_e4m3fn", rbits=np.array([0x80008000], np.uint32))
    assert got.tolist() == [1.125, 1.25, -1.125, 1.125]


@pytest.mark.parametrize(
    ("name", "fmt", "rng", "want"),
    [
        # 1 + 0x12345 2^-23 into E4M3 (r = 20): up iff the 20 bits >= 2^20 - 0x12345 = 0xEDCBB
        ("amd-gfx942-cvt-sr", "float8_e4m3fnuz", [0x000EDCBB, 0xEDCBB000, 0x000EDCBA], [1.125, 1.0, 1.0]),
        ("amd-gfx950-cvt-sr", "float8_e4m3fn", [0x000EDCBB, 0xEDCBB000, 0xEDCBA000], [1.0, 1.125, 1.0]),
    ],
)  # fmt: skip
def test_amd_cvt_sr_bit_fields(name, fmt, rng, want):
    x = _f32(*[0x3F812345] * len(rng))
    assert profile(name).quantize(x, fmt, rbits=np.array(rng, np.uint32)).tolist() == want


def test_intel_srnd():
    p = profile("intel-xe-srnd")
    x = _f32(0x3F800FFF, 0x3F800FFF)
    got = p.quantize(x, "float16", rbits=np.array([0xFFFF1000, 0x00001001], np.uint32))
    assert _bits16(got, np.float16) == [0x3C00, 0x3C01]
    # float16 -> bf8 (E5M2), Src1[7:0]: 1 + 2^-10 has F = 1 (of 8 bits): up iff byte == 0xFF
    h = np.array([1.0009765625] * 2, np.float16)
    got = p.quantize(h, "float8_e5m2", rbits=np.array([0xFE, 0xFF], np.uint32))
    assert got.tolist() == [1.0, 1.25]


def test_seed_draws_one_counter_word_per_instruction():
    p = profile("nvidia-sm100-cvt.rs")
    x = np.linspace(-3, 3, 37, dtype=np.float32)
    words = counter_words(p.words_needed("float8_e5m2", x.size), seed=5, offset=3)
    want = p.quantize(x, "float8_e5m2", rbits=words)
    np.testing.assert_array_equal(p.quantize(x, "float8_e5m2", seed=5, offset=3), want)
