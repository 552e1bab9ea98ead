"""numba CPU kernel of :func:`qemu_arrays.packing.pack` for 2-, 4- and 6-bit codes.

The layout is :mod:`qemu_arrays.packing`'s little-endian bit stream; a group is the fewest codes
that fill whole bytes (four 2-bit codes in one byte, two 4-bit codes in one, four 6-bit codes in
three). The span reads each group's codes as one little-endian word (a uint16 or uint32 view of
the code bytes: contiguous loads, so the loop vectorizes) and gathers their bits with shifts and
masks; the caller packs a last partial group.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qemu_arrays.kernels.runtime import run

_JIT = {"cache": True, "nogil": True}
GROUP = {2: (4, 1), 4: (2, 1), 6: (4, 3)}  # bits: (codes, bytes) per group
_WORD = {2: np.uint32, 4: np.uint16, 6: np.uint32}
_PER = 1 << 14  # groups per parallel task


@njit(**_JIT)
def _pack_span(g0, g1, w, out, bits):
    """Groups ``g0:g1`` of :func:`pack_groups` (``w`` the groups' codes as words)."""
    if bits == 4:
        for j in range(g1 - g0):  # unsigned indices: no negative-index wraparound code
            g = np.uint64(g0) + np.uint64(j)
            v = w[g]
            out[g] = np.uint8((v & np.uint16(0xF)) | ((v >> np.uint16(4)) & np.uint16(0xF0)))
    elif bits == 2:
        for j in range(g1 - g0):
            g = np.uint64(g0) + np.uint64(j)
            v = w[g]
            out[g] = np.uint8(
                (v & np.uint32(0x3))
                | ((v >> np.uint32(6)) & np.uint32(0xC))
                | ((v >> np.uint32(12)) & np.uint32(0x30))
                | ((v >> np.uint32(18)) & np.uint32(0xC0))
            )
    else:
        for j in range(g1 - g0):
            g = np.uint64(g0) + np.uint64(j)
            v = w[g]
            p = (
                (v & np.uint32(0x3F))
                | ((v >> np.uint32(2)) & np.uint32(0xFC0))
                | ((v >> np.uint32(4)) & np.uint32(0x3F000))
                | ((v >> np.uint32(6)) & np.uint32(0xFC0000))
            )
            out[3 * g] = np.uint8(p & np.uint32(0xFF))
            out[3 * g + 1] = np.uint8((p >> np.uint32(8)) & np.uint32(0xFF))
            out[3 * g + 2] = np.uint8(p >> np.uint32(16))
    return 0


@njit(cache=True, nogil=True, inline="always")
def _six48(v):
    """Eight 6-bit codes, one per byte of the little-endian word ``v``, as 48 stream bits."""
    v = (v & np.uint64(0x003F003F003F003F)) | ((v >> np.uint64(2)) & np.uint64(0x0FC00FC00FC00FC0))
    v = (v & np.uint64(0x00000FFF00000FFF)) | ((v >> np.uint64(4)) & np.uint64(0x00FFF00000FFF000))
    return (v & np.uint64(0xFFFFFF)) | ((v >> np.uint64(8)) & np.uint64(0xFFFFFF000000))


@njit(**_JIT)
def _pack6_span(q0, q1, w, out):
    """Quads ``q0:q1`` of :func:`pack_groups` for 6-bit codes: sixteen codes (two uint64 words
    of ``w``) into twelve bytes (three uint32 words of ``out``), word stores only."""
    m32 = np.uint64(0xFFFFFFFF)
    for j in range(q1 - q0):  # unsigned indices: no negative-index wraparound code
        q = np.uint64(q0) + np.uint64(j)
        a = _six48(w[2 * q])
        b = _six48(w[2 * q + np.uint64(1)])
        out[3 * q] = np.uint32(a & m32)
        out[3 * q + np.uint64(1)] = np.uint32((a >> np.uint64(32)) | ((b << np.uint64(16)) & m32))
        out[3 * q + np.uint64(2)] = np.uint32(b >> np.uint64(16))
    return 0


def pack_groups(c, bits, out):
    """Pack the whole groups of the uint8 codes ``c`` (1-D, C-contiguous, each below
    ``2**bits``; ``bits`` 2, 4 or 6; a little-endian machine) into ``out``: ``len(c) // codes
    per group`` groups. 6-bit codes go sixteen at a time (four groups in three uint32 words);
    the groups after the last whole sixteen by the group loop."""
    k, nbytes = GROUP[bits]
    ng = c.size // k
    g0 = 0
    if bits == 6:
        nq = c.size // 16
        w64, o32 = c[: nq * 16].view(np.uint64), out[: nq * 12].view(np.uint32)
        run(c.size, "decode", _pack6_span, nq, _PER, w64, o32)
        g0 = 4 * nq
    if ng > g0:
        w = c[g0 * k : ng * k].view(_WORD[bits])
        run(c.size, "decode", _pack_span, ng - g0, _PER, w, out[g0 * nbytes :], bits)
