"""What a number format is: descriptors, the catalogue, the exact reference and scalar cores.

This package is the bottom layer of qemu_arrays; it imports neither ``qemu_arrays`` nor
``cuda_kernels``. Its numba modules (``qemu_arrays.formats.cores``, ``qemu_arrays.formats.block_cores``,
``qemu_arrays.formats.bits``, and ``qemu_arrays.formats.jit_cache`` which keeps their callers' on-disk caches fresh) are
imported only by the kernels that need them.
"""

from qemu_arrays.formats.catalog import get_format, list_formats, minifloat, p3109, register
from qemu_arrays.formats.spec import FloatFormat, IntFormat, Overflow, Rounding, Specials

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
