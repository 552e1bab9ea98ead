"""What a number format is: descriptors, the catalogue, the exact reference and scalar cores.

This package is the bottom layer of qemu_arrays; it imports neither ``qemu_arrays`` nor
``cuda_kernels``. ``formats.cores`` (numba) is imported only by the kernels that need it.
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
