"""What the CUDA routes share: array adapters (CuPy, PyTorch CUDA, numba device arrays), launch
geometry, cached per-device buffers, and the request's kernel arguments."""

from __future__ import annotations

import math
import threading
from contextlib import nullcontext

import numpy as np

from qemu_arrays.cuda_kernels import simulated
from qemu_arrays.request import Request
from qemu_arrays.routes.common import kernel_offset, random_args

_THREADS = 256
_SMS: dict = {}
_STREAMS: dict = {}  # (device, stream handle) -> numba external stream
_SCRATCH: dict = {}  # small read-only device buffers (unused outputs, decode tables), per device
_LOCAL = threading.local()  # per host thread: the buffers kernels write (error flag, amax)


# ---- array adapters --------------------------------------------------------------------------


class _Lib:
    """What the route needs from the caller's library: views, allocation, the current stream."""

    def __init__(self, x):
        mod = type(x).__module__.split(".", 1)[0]
        self.kind = "torch" if mod == "torch" else "cupy" if mod == "cupy" else "numba"

    def contiguous(self, x):
        if self.kind == "torch":
            return x.detach().contiguous()
        if self.kind == "cupy":
            import cupy

            return cupy.ascontiguousarray(x)
        if not x.is_c_contiguous():
            msg = "x is a non-contiguous numba device array; hint: pass a contiguous copy"
            raise ValueError(msg)
        return x

    def broadcast(self, x, shape):
        """``x`` broadcast to ``shape``, as a contiguous copy (PyTorch and CuPy)."""
        if self.kind == "torch":
            return x.broadcast_to(shape).contiguous()
        import cupy

        return cupy.ascontiguousarray(cupy.broadcast_to(x, shape))

    def flat(self, x):
        return x.reshape(-1) if self.kind != "numba" else x.reshape(x.size)

    def np_dtype(self, x):
        if self.kind == "torch":
            import ml_dtypes
            import torch

            return {
                torch.float16: np.dtype(np.float16),
                torch.bfloat16: np.dtype(ml_dtypes.bfloat16),
                torch.float32: np.dtype(np.float32),
                torch.float64: np.dtype(np.float64),
                torch.uint8: np.dtype(np.uint8),
                torch.int8: np.dtype(np.int8),
                torch.int16: np.dtype(np.int16),
                torch.uint16: np.dtype(np.uint16),
                torch.int32: np.dtype(np.int32),
                torch.uint32: np.dtype(np.uint32),
                torch.int64: np.dtype(np.int64),
                torch.uint64: np.dtype(np.uint64),
            }[x.dtype]
        return np.dtype(x.dtype)

    def lib_dtype(self, dt):
        dt = np.dtype(dt)
        if self.kind == "torch":
            import torch

            return getattr(torch, dt.name)
        return dt

    def empty(self, like, shape, dt):
        dt = np.dtype(dt)
        if self.kind == "torch":
            import torch

            return torch.empty(shape, dtype=self.lib_dtype(dt), device=like.device)
        if self.kind == "cupy":
            import cupy

            return cupy.empty(shape, dtype=dt)
        from numba import cuda

        return cuda.device_array(shape, dtype=dt)

    def view(self, x, dt):
        """Same bits, integer dtype ``dt`` of the same width (signed types: CAI-safe)."""
        if self.kind == "torch":
            return x.view(self.lib_dtype(dt))
        return x.view(np.dtype(dt))

    def cast(self, x, dt):
        if self.kind == "torch":
            return x.to(self.lib_dtype(dt))
        if self.kind == "cupy":
            return x.astype(np.dtype(dt))
        msg = f"dtype conversion of numba device arrays to {dt} is not supported"
        raise TypeError(msg)

    def device_index(self, x):
        if self.kind == "torch":
            return x.device.index or 0
        if self.kind == "cupy":
            return x.device.id
        return None

    def stream(self, x):
        """The caller's current stream (call inside :meth:`device_ctx`); cached per handle."""
        from numba import cuda

        if simulated():
            return cuda.default_stream()
        if self.kind == "torch":
            import torch

            ptr = torch.cuda.current_stream(x.device).cuda_stream
        elif self.kind == "cupy":
            import cupy

            ptr = cupy.cuda.get_current_stream().ptr
        else:
            return cuda.default_stream()
        if not ptr:
            return cuda.default_stream()
        key = (self.device_index(x), ptr)
        st = _STREAMS.get(key)
        if st is None:
            st = _STREAMS[key] = cuda.external_stream(ptr)
        return st

    def device_ctx(self, x):
        from numba import cuda

        idx = None if simulated() else self.device_index(x)
        return nullcontext() if idx is None else cuda.gpus[idx]


def _nb(a):
    """A numba device array over the same memory (no synchronisation: same stream)."""
    from numba import cuda

    if type(a).__module__.split(".", 1)[0] in ("numba", "numba_cuda"):
        return a
    return cuda.as_cuda_array(a, sync=False)


def _grid(n):
    from numba import cuda

    if simulated():  # the simulator starts a Python thread per CUDA thread, per block
        return max(1, min(math.ceil(n / 32), 2)), 32
    dev = cuda.get_current_device()
    sms = _SMS.get(dev.id)
    if sms is None:
        sms = _SMS[dev.id] = dev.MULTIPROCESSOR_COUNT
    return max(1, min(math.ceil(n / _THREADS), sms * 32)), _THREADS


_INT_OF = {
    2: np.uint16,
    4: np.uint32,
    8: np.int64,
}  # views of the bits (int64: the cores return int64)


# ---- cached per-device buffers and per-format constants ---------------------------------------


def _device_key():
    from numba import cuda

    return 0 if simulated() else cuda.get_current_device().id


def _stream_id(stream):
    try:
        return int(stream.handle)  # (int(stream) of the default stream returns an enum)
    except (TypeError, ValueError, AttributeError):
        return id(stream)


def scratch(dtype):
    """A 1-element device array of ``dtype`` that kernels never write (an unused output)."""
    from numba import cuda

    key = ("ro", _device_key(), np.dtype(dtype).str)
    buf = _SCRATCH.get(key)
    if buf is None:
        buf = _SCRATCH[key] = cuda.device_array(1, dtype=dtype)
    return buf


def scratch_owned(name, dtype, stream):
    """A 1-element device array that kernels write, one per (device, stream) and host thread
    (kept in thread-local storage), so that concurrent calls never share it. Zeroed once."""
    from numba import cuda

    bufs = getattr(_LOCAL, "bufs", None)
    if bufs is None:
        bufs = _LOCAL.bufs = {}
    key = (name, _device_key(), 0 if simulated() else _stream_id(stream))
    buf = bufs.get(key)
    if buf is None:
        buf = bufs[key] = cuda.to_device(np.zeros(1, dtype=dtype))
    return buf


_SIGNED_OF = {"uint16": "int16", "uint32": "int32", "uint64": "int64"}


def rbits_arg(req: Request, shape: tuple, stream):
    """``(rb, has_rb)`` for the kernels: the request's ``rbits`` broadcast to ``shape`` (x's),
    flat in C order, on the device, and 1; or a 1-element buffer the kernels never read, and 0.

    A device array (CuPy, PyTorch CUDA, numba) of ``x``'s shape is used in place (PyTorch's
    wider unsigned types as signed views of the same bits: the kernels use only the low
    ``random_bits`` bits); one of another shape is broadcast by its own library into a
    contiguous copy (numba device arrays through the host); a host array is broadcast on the
    host and copied to the device once. The dtype was checked by the request."""
    rb = req.rbits
    if rb is None:
        return scratch(np.uint32), 0
    rshape = tuple(int(s) for s in (rb.shape if hasattr(rb, "shape") else np.shape(rb)))
    try:
        ok = np.broadcast_shapes(rshape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        msg = (
            f"rbits of shape {rshape} does not broadcast to x of shape {shape}; hint: one "
            "random word per element (or a shape that broadcasts)"
        )
        raise ValueError(msg)
    if math.prod(shape) == 0:
        return scratch(np.uint32), 0
    from numba import cuda

    mod = type(rb).__module__.split(".", 1)[0]
    if mod == "torch":
        on_device = bool(rb.is_cuda)
    else:
        on_device = hasattr(rb, "__cuda_array_interface__")
    if not on_device:
        host = rb.numpy() if mod == "torch" else np.asarray(rb)
        flat = np.ascontiguousarray(np.broadcast_to(host, shape)).reshape(-1)
        return cuda.to_device(flat, stream=stream), 1
    lib = _Lib(rb)
    if lib.kind == "torch" and str(rb.dtype)[6:] in _SIGNED_OF:
        rb = lib.view(rb, _SIGNED_OF[str(rb.dtype)[6:]])
    if lib.kind == "numba" and (rshape != shape or not rb.is_c_contiguous()):
        flat = np.ascontiguousarray(np.broadcast_to(rb.copy_to_host(), shape)).reshape(-1)
        return cuda.to_device(flat, stream=stream), 1
    if rshape != shape:
        rb = lib.broadcast(rb, shape)
    return _nb(lib.flat(lib.contiguous(rb))), 1


def _keywords(req: Request) -> dict:
    """The request as the keyword view the launch code reads."""
    return {
        "request": req, "rounding": req.rounding, "overflow": req.overflow,
        "via_float32": req.via_float32, "offset": kernel_offset(req.offset), "scale": req.scale,
        "zero_point": req.zero_point, "axis": req.axis, "tensor_scale": req.tensor_scale,
    }  # fmt: skip


def _rounding_args(kw, itemsize):
    """``(rounding, r, k0, k1, k2)`` of the request for the kernels."""
    req = kw["request"]
    return (req.rounding, *random_args(req, itemsize))


def _np_dtype(dtype):
    s = str(dtype)
    if s.startswith("torch."):
        import ml_dtypes

        s = s[6:]
        return np.dtype(ml_dtypes.bfloat16) if s == "bfloat16" else np.dtype(s)
    return np.dtype(dtype)
