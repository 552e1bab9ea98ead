"""What several routes share: the random-generator arguments of a request, the code tables."""

from __future__ import annotations

from functools import lru_cache

from qemu_arrays.formats.reference import key
from qemu_arrays.formats.spec import Rounding
from qemu_arrays.request import Request
from qemu_arrays.validation import DEFAULT_RANDOM_BITS

__all__ = ["random_args", "random_keys"]

random_keys = lru_cache(maxsize=64)(key)
"""The key words ``(k0, k1, k2)`` of ``(seed, stream)`` (docs/formats.md), cached."""


def random_args(req: Request, itemsize: int) -> tuple[int, int, int, int]:
    """``(r, k0, k1, k2)`` for the kernels: the random bits per element (default exact for the
    item size the kernels read: 32 for 4 bytes, 53 for 8) and the key words."""
    r = DEFAULT_RANDOM_BITS[itemsize] if req.random_bits is None else req.random_bits
    seed = req.seed if req.rounding is Rounding.STOCHASTIC else 0
    k0, k1, k2 = random_keys(seed or 0, req.stream)
    return r, k0, k1, k2
