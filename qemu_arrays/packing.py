"""Bit packing of codes narrower than a byte: the storage layout hardware uses.

The layout is a little-endian bit stream: code ``i`` (``bits`` wide) occupies stream bits
``[i * bits, (i + 1) * bits)``, its least significant bit first, and byte ``j`` holds stream bits
``[8 j, 8 j + 8)`` with stream bit ``8 j`` as the byte's least significant bit. Hence

* 4-bit codes (FP4 E2M1, INT4): two per byte, element ``2i`` in the **low** nibble and element
  ``2i + 1`` in the high nibble (the layout of PyTorch's ``float4_e2m1fn_x2`` and of NVIDIA's
  packed FP4); ``pack([0x1, 0x2, 0x3], 4) == [0x21, 0x03]``;
* 6-bit codes (FP6): four in three bytes, ``w = c0 | c1 << 6 | c2 << 12 | c3 << 18`` stored as the
  bytes ``w & 0xFF, (w >> 8) & 0xFF, w >> 16``; ``pack([1, 2, 3, 4], 6) == [0x81, 0x30, 0x10]``;
* 2-bit codes: four per byte, element ``4i`` in the lowest two bits.

A length that does not fill the last byte is padded with zero bits; :func:`unpack` needs the
count. Codes of 8 bits and more are stored as they are (one machine word each).
"""

from __future__ import annotations

import numbers
import sys

import numpy as np

from qemu_arrays.validation import check_codes

__all__ = ["pack", "packed_nbytes", "unpack"]

_UNPACK_CHUNK = 1 << 14  # codes per step of unpack (a multiple of 8: chunks start on a byte)


def _check_bits(bits):
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not 1 <= bits <= 8:
        msg = f"bits must be an int in [1, 8], got {bits!r}; hint: 4 for FP4/INT4, 6 for FP6"
        raise ValueError(msg)
    return int(bits)


def packed_nbytes(count: int, bits: int) -> int:
    """Bytes that ``count`` codes of ``bits`` bits occupy once packed."""
    return -(-int(count) * _check_bits(bits) // 8)


def pack(codes, bits, *, check=True):
    """Pack the codes (any shape, read in C order) into a 1-D uint8 array.

    Raises ``ValueError`` when a code does not fit in ``bits`` bits. ``check=False`` skips
    that scan of the codes, for an integer array the caller vouches for (codes ``encode``
    returned): a code that does not fit then corrupts its neighbours.
    """
    bits = _check_bits(bits)
    c = check_codes(codes, bits, f"a {bits}-bit packing") if check else np.asarray(codes)
    c = c.reshape(-1)
    c = c.astype(np.uint8, copy=False)
    if bits == 8:
        return c.copy()
    if bits in (2, 4, 6) and c.size >= _KERNEL_FROM and sys.byteorder == "little":
        return _pack_kernel(c, bits)
    if bits == 4:
        if c.size % 2:
            c = np.concatenate([c, np.zeros(1, np.uint8)])
        return (c[0::2] | (c[1::2] << 4)).astype(np.uint8)
    stream = np.unpackbits(c[:, None], axis=1, count=bits, bitorder="little").reshape(-1)
    return np.packbits(stream, bitorder="little")


_KERNEL_FROM = 1 << 12  # codes from which pack() runs the numba kernel (kernels/pack.py)


def _pack_kernel(c, bits):
    """:func:`pack` of uint8 codes by the numba kernel for the whole groups (a last partial
    group, if any, by the NumPy code below on its few codes)."""
    from qemu_arrays.kernels.pack import GROUP, pack_groups

    k, nbytes = GROUP[bits]
    c = np.ascontiguousarray(c)
    ng = c.size // k
    out = np.empty(packed_nbytes(c.size, bits), dtype=np.uint8)
    pack_groups(c, bits, out)
    if ng * k < c.size:
        out[ng * nbytes :] = pack(c[ng * k :], bits)
    return out


def unpack(packed, bits, count):
    """The first ``count`` codes (uint8, 1-D) of a packed byte array (inverse of :func:`pack`)."""
    bits = _check_bits(bits)
    p = np.asarray(packed)
    if p.dtype != np.uint8:
        msg = f"packed must be a uint8 array, got dtype {p.dtype}; hint: the bytes pack() returned"
        raise TypeError(msg)
    p = p.reshape(-1)
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
        msg = f"count must be a non-negative int, got {count!r}; hint: the number of codes packed"
        raise ValueError(msg)
    need = packed_nbytes(count, bits)
    if p.size < need:
        msg = (
            f"count={count} codes of {bits} bits need {need} bytes, packed holds {p.size}: count "
            "must fit the packed bytes; hint: the count pack() was given"
        )
        raise ValueError(msg)
    if bits == 8:
        return p[:count].copy()
    if bits == 4:
        out = np.empty(2 * need, dtype=np.uint8)
        out[0::2] = p[:need] & 0xF
        out[1::2] = p[:need] >> 4
        return out[:count]
    out = np.empty(count, dtype=np.uint8)
    for lo in range(0, count, _UNPACK_CHUNK):  # chunk-sized temporaries (8 bytes per code)
        hi = min(count, lo + _UNPACK_CHUNK)
        b0, b1 = lo * bits // 8, -(-hi * bits // 8)  # lo is a multiple of 8: whole bytes
        stream = np.unpackbits(p[b0:b1], bitorder="little")[: (hi - lo) * bits]
        out[lo:hi] = np.packbits(stream.reshape(hi - lo, bits), axis=1, bitorder="little")[:, 0]
    return out
