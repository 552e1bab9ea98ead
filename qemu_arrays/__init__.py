"""qemu_arrays: a hardware-faithful quantization emulator for numerical arrays.

``import qemu_arrays`` is light: it imports numpy, ml_dtypes and the format descriptors; numba
kernels compile on first use, and torch, jax, dask and numba.cuda load only when used.
"""

from qemu_arrays.api import decode, encode, quantize
from qemu_arrays.dispatch import Route, explain_route, route
from qemu_arrays.formats.catalog import list_formats, minifloat, p3109, register
from qemu_arrays.formats.spec import FloatFormat, IntFormat, Overflow, Rounding, Specials

__version__ = "0.1.0"


def get_format(name):
    """Look up a format by name (element, scaled and block formats), or pass a descriptor."""
    from qemu_arrays.formats.catalog import get_format as _get

    return _get(name)


__all__ = [
    "FloatFormat",
    "IntFormat",
    "Overflow",
    "Rounding",
    "Route",
    "Specials",
    "__version__",
    "decode",
    "encode",
    "explain_route",
    "get_format",
    "list_formats",
    "minifloat",
    "p3109",
    "quantize",
    "register",
    "route",
]

from qemu_arrays.formats.block_spec import BlockFormat, ScaleRule  # noqa: E402
from qemu_arrays.packing import pack, unpack  # noqa: E402
from qemu_arrays.qarray import QArray, asarray, load  # noqa: E402
from qemu_arrays.scaled import Encoded, compute_scale  # noqa: E402

__all__ += ["BlockFormat", "Encoded", "QArray", "ScaleRule", "asarray", "compute_scale", "load"]
__all__ += ["pack", "unpack"]
