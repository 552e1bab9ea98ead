"""What several routes share: the random-generator arguments of a request, the element offset
the kernels take, and the chunks of the decodes (whose temporaries stay chunk-sized)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from qemu_arrays.formats.reference import key
from qemu_arrays.request import Request
from qemu_arrays.validation import DEFAULT_RANDOM_BITS

__all__ = [
    "DECODE_CHUNK",
    "chunks",
    "group_values",
    "kernel_offset",
    "random_args",
    "random_keys",
    "seed_int",
    "seed_words",
]

random_keys = lru_cache(maxsize=64)(key)
"""The key words ``(k0, k1, k2)`` of ``(seed, stream)`` (docs/formats.md), cached."""


def seed_words(seed):
    """``(high word, low word)`` of an array seed, as arrays of its own namespace (traceable).

    A JAX PRNG key gives its two uint32 data words (``jax.random.key(s)`` holds ``[0, s]`` for
    ``s < 2**32``, so it means the seed ``s``); an integer array of shape (2,) holds the two
    words; one of shape () is the low word (high word 0)."""
    name = str(seed.dtype)
    if name.startswith("key"):
        import jax

        data = jax.random.key_data(seed)
        if data.shape[-1] != 2:
            msg = (
                f"seed: a JAX key of implementation {name} has {data.shape[-1]} data words; the "
                "seed takes two (threefry2x32, JAX's default); hint: jax.random.key(s) with the "
                "default implementation, or pass seed=jax.random.bits(key, (2,), 'uint32')"
            )
            raise ValueError(msg)
        return data[..., 0], data[..., 1]
    if tuple(seed.shape) == (2,):
        return seed[0], seed[1]
    return seed * 0, seed


def seed_int(seed) -> int:
    """An int seed, or the int ``high * 2**32 + low`` of a concrete array seed."""
    if seed is None or isinstance(seed, int):
        return seed or 0
    hi, lo = seed_words(seed)
    return (int(np.asarray(hi)) % (1 << 32)) << 32 | (int(np.asarray(lo)) % (1 << 32))


def kernel_offset(offset: int) -> int:
    """The element offset (an int in ``[0, 2**64)``, reduced so by the request) as the int64 the
    kernels add element indices to: the same 64 bits in two's complement, so that their low and
    high 32-bit words, which key the random bits, are those of ``offset`` (numba types a Python
    int of 2**63 or more as uint64, and would then refuse small offsets)."""
    offset %= 1 << 64
    return offset - (1 << 64) if offset >= 1 << 63 else offset


def random_args(req: Request, itemsize: int) -> tuple[int, int, int, int]:
    """``(r, k0, k1, k2)`` for the kernels: the random bits per element (default exact for the
    item size the kernels read: 32 for 4 bytes, 53 for 8) and the key words."""
    r = DEFAULT_RANDOM_BITS[itemsize] if req.random_bits is None else req.random_bits
    seed = seed_int(req.seed) if req.rounding.stochastic else 0
    k0, k1, k2 = random_keys(seed, req.stream)
    return r, k0, k1, k2


#: elements per step of the chunked decode: its temporaries stay this size, not the array's
DECODE_CHUNK = 1 << 14


def chunks(n: int):
    """``(lo, hi)`` bounds of the consecutive chunks of ``n`` elements."""
    for lo in range(0, n, DECODE_CHUNK):
        yield lo, min(n, lo + DECODE_CHUNK)


def group_values(a, shape, axis, block_size, lo, hi):
    """Elements ``lo:hi`` (C order over ``shape``) of the group-shaped array ``a`` (0-d, or the
    group shape with dimensions of 1 broadcast) expanded to one value per element, computed
    for that range only: the whole expansion is never formed."""
    a = np.asarray(a)
    if a.size == 1:
        return a.reshape(1)
    idx = np.unravel_index(np.arange(lo, hi, dtype=np.intp), shape)
    flat = np.zeros(hi - lo, dtype=np.intp)
    for d, (i, g) in enumerate(zip(idx, a.shape, strict=True)):
        if g == 1:
            continue
        flat *= g
        flat += i // block_size if (d == axis and block_size is not None) else i
    return a.reshape(-1)[flat]
