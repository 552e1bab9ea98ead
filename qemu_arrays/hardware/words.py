"""Random words for profiles whose hardware takes one word per instruction: the caller's, or
the library's counter-based generator (``docs/formats.md``) in NumPy, one word per instruction."""

from __future__ import annotations

import numpy as np

__all__ = ["counter_words", "lane_bits"]

_M32 = np.uint32(0xFFFFFFFF)


def _mix32(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def _key(seed: int, stream: int) -> tuple[np.uint32, np.uint32, np.uint32]:
    s = int(seed) % (1 << 64)
    st = int(stream) % (1 << 32)

    def mix(v: int) -> int:
        return int(_mix32(np.array([v & 0xFFFFFFFF], np.uint32))[0])

    k0 = mix((s & 0xFFFFFFFF) ^ 0x243F6A88)
    k1 = mix((s >> 32) ^ k0 ^ 0x85A308D3)
    k2 = mix(st ^ k1 ^ 0x13198A2E)
    return np.uint32(k0), np.uint32(k1), np.uint32(k2)


def counter_words(n: int, seed: int, stream: int = 0, offset: int = 0) -> np.ndarray:
    """Word 0 of the counter-based generator for indices ``offset .. offset + n - 1`` (uint32),
    the same words ``qemu_arrays.formats.reference.random_word(seed, stream, i, 0)`` gives."""
    k0, k1, k2 = _key(seed, stream)
    idx = np.arange(n, dtype=np.uint64) + np.uint64(int(offset) % (1 << 64))
    lo = (idx & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    hi = (idx >> np.uint64(32)).astype(np.uint32)
    with np.errstate(over="ignore"):
        h = _mix32(lo ^ k2)
        h = _mix32(h ^ hi ^ k1)
        return _mix32(h + k0)


def lane_bits(words: np.ndarray, n: int, fields: tuple[tuple[int, int], ...]) -> np.ndarray:
    """The random integer of each of ``n`` elements: element ``i`` is lane ``i % k`` of word
    ``i // k`` (``k = len(fields)``), and lane ``j`` reads the bit field ``fields[j] = (lowest
    bit, width)`` of its word."""
    k = len(fields)
    w = np.repeat(np.asarray(words, dtype=np.uint32).reshape(-1), k)[:n]
    lane = np.arange(n) % k
    lo = np.array([f[0] for f in fields], np.uint32)[lane]
    width = np.array([f[1] for f in fields], np.uint32)[lane]
    return ((w >> lo) & ((np.uint32(1) << width) - np.uint32(1))).astype(np.uint32)
