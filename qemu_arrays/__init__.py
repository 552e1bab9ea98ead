"""qemu_arrays: a hardware-faithful quantization emulator for numerical arrays.

``import qemu_arrays`` is light: it imports numpy, ml_dtypes and the format descriptors; numba
kernels are imported and compiled on first use, and torch, jax, dask and numba.cuda load only
when used. The layers, top to bottom (docs/architecture.md): this façade
(:mod:`qemu_arrays.api`; :mod:`qemu_arrays.matmul` for ``matmul`` and ``dot``), the dispatcher
(:mod:`qemu_arrays.dispatch`), the routes
(:mod:`qemu_arrays.routes`), the kernels (:mod:`qemu_arrays.kernels`,
:mod:`qemu_arrays.cuda_kernels`) and the formats with their scalar cores
(:mod:`qemu_arrays.formats`).
"""

from qemu_arrays.api import decode, encode, quantize
from qemu_arrays.dispatch import Route, explain_route, route
from qemu_arrays.encoded import Encoded
from qemu_arrays.formats.block_spec import BlockFormat
from qemu_arrays.formats.catalog import get_format, list_formats, minifloat, p3109, register
from qemu_arrays.formats.enums import Overflow, Rounding, ScaleRule, Specials
from qemu_arrays.formats.spec import FloatFormat, IntFormat
from qemu_arrays.kernels.runtime import get_num_threads, set_compile_notice, set_num_threads
from qemu_arrays.matmul import dot, matmul
from qemu_arrays.packing import pack, unpack
from qemu_arrays.qarray import QArray, asarray, load
from qemu_arrays.quantspec import QuantSpec
from qemu_arrays.scales import compute_scale

__version__ = "0.1.0"

__all__ = [
    "BlockFormat",
    "Encoded",
    "FloatFormat",
    "IntFormat",
    "Overflow",
    "QArray",
    "QuantSpec",
    "Rounding",
    "Route",
    "ScaleRule",
    "Specials",
    "__version__",
    "asarray",
    "compute_scale",
    "decode",
    "dot",
    "encode",
    "explain_route",
    "get_format",
    "get_num_threads",
    "list_formats",
    "load",
    "matmul",
    "minifloat",
    "p3109",
    "pack",
    "quantize",
    "register",
    "route",
    "set_compile_notice",
    "set_num_threads",
    "unpack",
]
