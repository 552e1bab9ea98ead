"""What a number format is: descriptors, the catalogue, the exact reference and scalar cores.

This package is the bottom layer of qemu_arrays; it imports neither ``qemu_arrays`` nor
``cuda_kernels``. Its numba modules (``formats.cores``, ``formats.block_cores``,
``formats.bits``, and ``formats.jit_cache`` which keeps their callers' on-disk caches fresh) are
imported only by the kernels that need them.
"""

from formats.catalog import get_format, list_formats, minifloat, p3109, register
from formats.spec import FloatFormat, IntFormat, Overflow, Rounding, Specials

__all__ = [
    "FloatFormat",
    "IntFormat",
    "Overflow",
    "Rounding",
    "Specials",
    "get_format",
    "list_formats",
    "minifloat",
    "p3109",
    "register",
]
