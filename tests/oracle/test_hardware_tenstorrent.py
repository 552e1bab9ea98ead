"""Tenstorrent SFPSTOCHRND (float to float) against a transcription of its functional model in
tenstorrent/tt-isa-documentation (WormholeB0/TensixTile/TensixCoprocessor/
SFPSTOCHRND_FloatFloat.md, VectorUnit.md section PRNG, commit 3930471). Nothing runs the chip:
the transcription below is written from the document's text, element by element, in plain
Python integers, and shares no code with the profile (which uses the library's carry rule)."""

from __future__ import annotations

import numpy as np
import pytest

from qemu_arrays.hardware import profile
from qemu_arrays.hardware.tenstorrent import advance_prng

P = "tenstorrent-wh-sfpstochrnd"


def sfpstochrnd(x: int, prng: int, keep10: bool, stochastic: bool = True) -> int:
    """The document's model on the float32 bits ``x``; ``prng`` the word AdvancePRNG returned."""
    bits = (prng & 0x7FFFFF) if stochastic else 0x400000
    exp = (x >> 23) & 0xFF
    if exp == 0:  # subnormal or zero: +0
        return 0
    if exp == 255:  # inf or NaN: the infinity of its sign
        return x & 0xFF800000
    if keep10:  # FP32_TO_FP16A: 13 bits discarded
        d = x & 0x1FFF
        x -= d
        if (d << 10) >= bits:
            x += 0x2000
    else:  # FP32_TO_FP16B: 16 bits discarded
        d = x & 0xFFFF
        x -= d
        if (d << 7) >= bits:
            x += 0x10000
    return x


def _inputs(rng, n=3000):
    b = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    edge = np.array([0x3F800000, 0x3F808000, 0x3F807FFF, 0x3F801000, 0x80000000, 0x00012345,
                     0x80012345, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000,
                     0xFFC00001, 0x00800000, 0x7F7F8000, 0x3FFFFFFF], np.uint32)  # fmt: skip
    return np.concatenate([edge, b])


@pytest.mark.parametrize("fmt", ["bfloat16", "tf32"])
def test_profile_matches_the_documented_model(fmt, rng):
    xb = _inputs(rng)
    words = rng.integers(0, 1 << 32, xb.size, dtype=np.uint64).astype(np.uint32)
    words[:40] = np.array([0, 1, 0x400000, 0x7FFFFF, 0x800000, 0xFF800000] * 7)[:40]
    got = profile(P).quantize(xb.view(np.float32), fmt, rbits=words).view(np.uint32)
    want = [sfpstochrnd(int(a), int(w), fmt == "tf32") for a, w in zip(xb, words)]
    bad = np.flatnonzero(got != np.array(want, np.uint32))
    assert bad.size == 0, [(hex(xb[i]), hex(words[i]), hex(got[i]), hex(want[i])) for i in bad[:4]]


def test_round_half_away_mode_matches_the_documented_model(rng):
    xb = _inputs(rng, 500)
    for fmt in ("bfloat16", "tf32"):
        got = profile(P).quantize(xb.view(np.float32), fmt, stochastic=False).view(np.uint32)
        want = [sfpstochrnd(int(a), 0, fmt == "tf32", stochastic=False) for a in xb]
        assert got.tolist() == want


def test_documented_ge_rounds_exact_values_up_only_for_zero_bits():
    """x = 1.0 has no discarded bits: it rounds up exactly when the 23 random bits are 0 (the
    top 9 bits of the word are not read)."""
    x = np.ones(4, np.float32)
    w = np.array([0, 0xFF800000, 1, 0x00400000], np.uint32)
    y = profile(P).quantize(x, "bfloat16", rbits=w)
    assert y.tolist() == [1.0078125, 1.0078125, 1.0, 1.0]


def test_advance_prng_transcribed():
    """From the text: Result = State; Taps = popcount(Result & 0x80200003); State = (~Taps << 31)
    | (Result >> 1). State 1: taps 1 -> 0x00000000; then taps 0 -> 0x80000000; then taps 1
    -> 0x40000000; then 0x20000000 (taps 0, bit 31 set) -> 0xA0000000."""
    assert advance_prng(1, 4).tolist() == [1, 0, 0x80000000, 0x40000000]
    assert advance_prng(0x40000000, 3).tolist() == [0x40000000, 0xA0000000, 0x50000000]


def test_seeded_words_are_reproducible_and_checked():
    x = np.linspace(1, 2, 64, dtype=np.float32)
    a = profile(P).quantize(x, "bfloat16", seed=3)
    assert np.array_equal(a, profile(P).quantize(x, "bfloat16", seed=3))
    with pytest.raises(ValueError, match="rbits must be 64 uint32 words"):
        profile(P).quantize(x, "bfloat16", rbits=np.zeros(63, np.uint32))
    with pytest.raises(ValueError, match="fmt must be one of"):
        profile(P).quantize(x, "float16", seed=0)
    with pytest.raises(TypeError, match="reads float32"):
        profile(P).quantize(x.astype(np.float64), "bfloat16", seed=0)
