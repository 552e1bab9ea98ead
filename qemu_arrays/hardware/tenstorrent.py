"""Tenstorrent Wormhole B0 ``SFPSTOCHRND`` (float to float): float32 lanes rounded to 7 or 10
fraction bits, stochastically from the lane's hardware PRNG or half away from zero.

The documented rule compares the discarded bits, widened to 23 bits, with 23 random bits ``R``:
an element rounds away from zero when ``D << (23 - n) >= R`` (``n`` = 16 discarded bits for
bfloat16, 13 for the 10-bit "FP16A" result, which keeps float32's exponent: ``tf32``). For
``R != 0`` that is the library's carry rule with ``b = 2^23 - R`` (``docs/formats.md``); ``R = 0``
rounds every value away, exact ones included, which no carry rule does. Before rounding,
float32 subnormals and -0 become +0 and NaN becomes the infinity of its sign; nothing saturates.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from qemu_arrays.api import quantize as _quantize
from qemu_arrays.formats.enums import Rounding
from qemu_arrays.hardware.registry import Profile, register_profile
from qemu_arrays.hardware.words import counter_words

__all__ = ["TenstorrentRoundProfile", "advance_prng"]

_DISCARD = {"bfloat16": 16, "tf32": 13}  # SFPSTOCHRND_MOD1_FP32_TO_FP16B / _FP16A
_M23 = np.uint32(0x7FFFFF)


def advance_prng(state: int, n: int) -> np.ndarray:
    """The ``n`` words one lane's PRNG returns from ``state`` (uint32), as ``VectorUnit.md``
    describes it: each call returns the state, then shifts it right by one and sets bit 31 to
    the inverted parity of the bits 0x80200003 of the returned word."""
    s = int(state) & 0xFFFFFFFF
    out = np.empty(n, np.uint32)
    for i in range(n):
        out[i] = s
        taps = bin(s & 0x80200003).count("1")
        s = (((~taps) & 1) << 31) | (s >> 1)
    return out


@dataclass(frozen=True, kw_only=True)
class TenstorrentRoundProfile(Profile):
    """``quantize(x, fmt, rbits=words)``: ``x`` float32, ``fmt`` "bfloat16" or "tf32",
    ``words`` one uint32 per element (what ``AdvancePRNG`` returned for its lane; the low 23
    bits are used), or ``seed=`` for counter-based words, or ``stochastic=False`` for the
    instruction's round-half-away mode. Returns float32 values."""

    def formats(self) -> list[str]:
        return list(_DISCARD)

    def quantize(self, x, fmt, *, rbits=None, seed=None, stream=0, offset=0, stochastic=True):
        name = getattr(fmt, "name", fmt)
        if name not in _DISCARD:
            msg = f"fmt must be one of {', '.join(_DISCARD)}, got {name!r}; hint: 'bfloat16'"
            raise ValueError(msg)
        x = np.asarray(x)
        if x.dtype != np.float32:
            msg = f"x has dtype {x.dtype}, and SFPSTOCHRND reads float32; hint: x.astype(float32)"
            raise TypeError(msg)
        r = self._random(x.size, rbits, seed, stream, offset, stochastic).reshape(x.shape)
        b = x.view(np.uint32)
        ef = (b >> np.uint32(23)) & np.uint32(0xFF)
        b = np.where(ef == 0, np.uint32(0), b)  # subnormals and -0: +0
        b = np.where(ef == 0xFF, b & np.uint32(0xFF800000), b)  # inf, NaN: signed inf
        xs = b.view(np.float32)
        carry = ((np.uint32(1 << 23) - r) & _M23).astype(np.uint32)
        y = _quantize(xs, name, rounding=Rounding.STOCHASTIC, rbits=carry, random_bits=23)
        n = _DISCARD[name]
        always = (r == 0) & (ef != 0) & (ef != 0xFF)  # R = 0: D << (23 - n) >= 0 always
        up = ((b >> np.uint32(n)) << np.uint32(n)) + np.uint32(1 << n)
        return np.where(always, up.view(np.float32), y).astype(np.float32)

    @staticmethod
    def _random(n, rbits, seed, stream, offset, stochastic):
        if not stochastic:
            if rbits is not None or seed is not None:
                msg = "rbits= and seed= do not apply with stochastic=False; hint: leave them out"
                raise ValueError(msg)
            return np.full(n, 0x400000, np.uint32)
        if rbits is None:
            if seed is None or isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
                msg = (
                    f"seed={seed!r}: without rbits= the profile draws one counter-based word per "
                    "element and needs an integer seed; hint: seed=0, or pass rbits="
                )
                raise ValueError(msg)
            return counter_words(n, int(seed), stream, offset) & _M23
        if seed is not None:
            msg = f"seed={seed!r} does not apply with rbits=; hint: leave seed out"
            raise ValueError(msg)
        w = np.asarray(rbits)
        if w.dtype != np.uint32 or w.size != n:
            msg = (
                f"rbits must be {n} uint32 words (one per element), got dtype {w.dtype} and "
                f"{w.size} words; hint: numpy.asarray(words, dtype=numpy.uint32)"
            )
            raise ValueError(msg)
        return w.reshape(-1) & _M23


_TT = "tenstorrent/tt-isa-documentation WormholeB0/TensixTile/TensixCoprocessor"
register_profile(
    TenstorrentRoundProfile(
        name="tenstorrent-wh-sfpstochrnd",
        emulates="Tenstorrent Wormhole B0 SFPSTOCHRND, float-to-float flavour (Mod1 "
        "FP32_TO_FP16B: bfloat16 precision; FP32_TO_FP16A: 10 fraction bits, here tf32): "
        "away from zero when (discarded bits << (23 - n)) >= the lane's 23 PRNG bits",
        sources=(
            f"{_TT}/SFPSTOCHRND_FloatFloat.md (functional model; commit 3930471)",
            f"{_TT}/VectorUnit.md, section PRNG (AdvancePRNG, one 32-bit LFSR per lane)",
        ),
        uncertain=(
            "the document's >= rounds an exact value away when the 23 random bits are all 0: "
            "probability 2^-23 for uniform bits (issue 16 quotes 2^-16, which the document "
            "does not support); the LFSR's own statistics are poor, and its seeding is not "
            "modelled (advance_prng gives one lane's sequence from a state)",
            "which PRNG word reaches which element follows the lanes of a 32-lane vector "
            "register; rbits= takes that word per element, the caller arranges the lanes",
            "the FloatInt and IntInt flavours (with the documented bug that |x| < 0.5 never "
            "rounds stochastically) are not modelled",
        ),
        confidence="documented",
    )
)
