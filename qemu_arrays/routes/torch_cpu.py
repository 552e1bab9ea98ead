"""PyTorch CPU tensors: the NumPy route on zero-copy views (a copy only for non-contiguous or
conjugate/negative-bit views), results as tensors sharing memory with NumPy's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from qemu_arrays.encoded import Encoded
from qemu_arrays.request import Op, Request
from qemu_arrays.routes import cpu

__all__ = ["run", "to_numpy", "to_torch"]

_TORCH_TO_NP = {"float16": np.float16, "float32": np.float32, "float64": np.float64}


def _np_dtype(dtype):
    """A NumPy dtype for a dtype named by PyTorch or NumPy."""
    import ml_dtypes

    s = str(dtype)
    if s.startswith("torch."):
        s = s[6:]
        if s not in _TORCH_TO_NP and s != "bfloat16":
            msg = f"dtype must be float16, bfloat16, float32 or float64, got {dtype}"
            raise TypeError(msg)
        return np.dtype(ml_dtypes.bfloat16) if s == "bfloat16" else np.dtype(_TORCH_TO_NP[s])
    return np.dtype(dtype)


def to_numpy(t):
    """A NumPy view of a CPU tensor (a copy only when it is not contiguous)."""
    import ml_dtypes
    import torch

    t = t.detach()
    if t.is_conj() or t.is_neg() or not t.is_contiguous():
        t = t.resolve_conj().resolve_neg().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def to_torch(a):
    """A tensor sharing the memory of NumPy array ``a`` (0-d kept)."""
    import ml_dtypes
    import torch

    a = np.asarray(a)
    if not a.flags.c_contiguous:
        a = a.copy()  # (np.ascontiguousarray would turn 0-d into 1-d)
    if a.dtype == np.dtype(ml_dtypes.bfloat16):
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _is_tensor(a) -> bool:
    return type(a).__module__.split(".", 1)[0] == "torch"


def _convert_result(res, conv):
    if isinstance(res, np.ndarray):
        return conv(res)
    if isinstance(res, Encoded):
        return res._replace(
            **{k: conv(v) for k, v in res._asdict().items() if isinstance(v, np.ndarray)}
        )
    return res


def run(x, req: Request):
    """The NumPy route on a zero-copy view of the CPU tensor ``x``."""
    import torch

    xn = to_numpy(x)
    changes = {}
    out = req.out
    if out is not None:
        if not isinstance(out, torch.Tensor) or out.device.type != "cpu" or not out.is_contiguous():
            msg = "out must be a contiguous PyTorch CPU tensor for PyTorch CPU input"
            raise TypeError(msg)
        changes["out"] = to_numpy(out)
    if req.op is Op.DECODE and req.dtype is not None:
        changes["dtype"] = _np_dtype(req.dtype)
    for k in ("scale", "zero_point", "tensor_scale"):
        v = getattr(req, k)
        if _is_tensor(v):
            changes[k] = to_numpy(v)
    res = cpu.run(xn, replace(req, **changes) if changes else req)
    if out is not None:
        return out
    if isinstance(res, np.ndarray) and res.size == xn.size:
        res = res.reshape(xn.shape)  # 0-d input keeps its shape
    return _convert_result(res, to_torch)
