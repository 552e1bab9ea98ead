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


def pack_groups(c, bits, out):
    """Pack the whole groups of the uint8 codes ``c`` (1-D, C-contiguous, each below
    ``2**bits``; ``bits`` 2, 4 or 6; a little-endian machine) into ``out``: ``len(c) // codes
    per group`` groups."""
    k, _ = GROUP[bits]
    ng = c.size // k
    w = c[: ng * k].view(_WORD[bits])
    run(c.size, "decode", _pack_span, ng, _PER, w, out, bits)
