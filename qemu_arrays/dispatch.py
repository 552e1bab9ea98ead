"""The route ladder: which implementation computes ``quantize``/``encode``/``decode`` for an array.

Every route gives the same bits (``docs/backends.md``); the route only decides speed and where
the work runs. The ladder, first match wins:

1. ``numpy`` arrays: the numba CPU kernels (:mod:`qemu_arrays.api`, never through this module);
2. PyTorch CPU tensors: the numba CPU kernels on a zero-copy NumPy view of the tensor;
3. device memory (``__cuda_array_interface__``: CuPy arrays, PyTorch CUDA tensors, numba device
   arrays): the numba-CUDA kernels of :mod:`cuda_kernels` (launched by
   :mod:`qemu_arrays.cuda_route`), on the caller's current stream;
4. Dask arrays: lazily, block by block (``map_blocks``), each run of consecutive elements with its
   global element offset, so stochastic rounding is bit-identical to the whole array;
5. JAX arrays (and tracers, so ``jax.jit`` and ``jax.grad`` work), and anything else that speaks
   the array API (array-api-strict, ...): the generic implementation :mod:`qemu_arrays.generic`.

Block formats (MX, NVFP4) take the fused block kernels of :mod:`cuda_kernels` (host side:
:mod:`qemu_arrays.cuda_blocks`) on route 3, and run on the host for route 5 (a copy to NumPy and back, not traceable); Dask refuses
them. :func:`explain_route` says which. Nothing switches silently: :func:`route` and
:func:`explain_route` tell which route a call takes, and an unsupported keyword on a route raises.
The per-type part of the decision is cached (one entry per array type, i.e. per namespace).
"""

from __future__ import annotations

import enum
import inspect
import numbers
from functools import lru_cache

import numpy as np

__all__ = ["Route", "explain_route", "route"]


class Route(enum.Enum):
    """The implementation a call takes."""

    NUMPY = "numba CPU kernels"
    TORCH_CPU = "numba CPU kernels on a zero-copy NumPy view of the PyTorch CPU tensor"
    CUDA = "numba-CUDA kernels on the caller's current CUDA stream"
    DASK = "lazy Dask map_blocks, each block through its own route with its global offset"
    GENERIC = "generic array-API implementation (jit-traceable)"
    HOST = "copy to NumPy, numba CPU kernels, copy back (block formats on JAX/array-API arrays)"


# the per-type rung of the ladder, cached per array type (= per namespace)
_TYPE_CACHE: dict[type, str] = {}


def _type_kind(tp) -> str:
    kind = _TYPE_CACHE.get(tp)
    if kind is not None:
        return kind
    mod = tp.__module__ or ""
    top = mod.split(".", 1)[0]
    if issubclass(tp, (np.ndarray, np.generic)):
        kind = "numpy"
    elif top == "torch":
        kind = "torch"
    elif top in ("jax", "jaxlib"):
        kind = "jax"
    elif top == "dask":
        kind = "dask"
    elif top in ("cupy", "numba", "numba_cuda") or hasattr(tp, "__cuda_array_interface__"):
        kind = "cuda"
    elif hasattr(tp, "__array_namespace__"):
        kind = "generic"
    else:
        kind = "unsupported"
    _TYPE_CACHE[tp] = kind
    return kind


def _is_block(fmt) -> bool:
    return getattr(fmt, "kind", "") == "block"


def route(x, format=None) -> Route:
    """The route ``quantize(x, format)`` takes (``format`` matters only for block formats)."""
    kind = _type_kind(type(x))
    if kind == "numpy" or isinstance(x, (numbers.Number, list, tuple)):
        return Route.NUMPY
    if kind == "torch":
        if x.device.type == "cpu":
            return Route.TORCH_CPU
        if x.device.type != "cuda":
            msg = (
                f"x is a PyTorch tensor on device {x.device}, and only CPU and CUDA tensors are "
                "supported; hint: x.cpu()"
            )
            raise TypeError(msg)
        kind = "cuda"
    if kind == "dask":
        return Route.DASK
    fmt = None if format is None else _fmt(format)
    if kind == "cuda":
        return Route.CUDA
    if kind in ("jax", "generic"):
        return Route.HOST if _is_block(fmt) else Route.GENERIC
    msg = (
        f"x of type {type(x).__module__}.{type(x).__qualname__} is not an array qemu_arrays can "
        "route: it must be a NumPy array, a PyTorch tensor, a CuPy/numba device array, a JAX or "
        "Dask array, or an array of an array-API namespace; hint: numpy.asarray(x)"
    )
    raise TypeError(msg)


def explain_route(x, format=None) -> str:
    """A sentence saying which route ``quantize(x, format)`` takes and why."""
    r = route(x, format)
    tp = f"{type(x).__module__}.{type(x).__qualname__}"
    msg = f"{tp} -> {r.name}: {r.value}"
    fmt = None if format is None else _fmt(format)
    if r is Route.CUDA and _is_block(fmt):
        msg += (
            f" (block format {fmt.name}: block maximum, scale and elements fused in one kernel "
            "on the device, qemu_arrays.cuda_blocks)"
        )
    return msg


def _encoded_codes(x):
    """The element codes of an ``Encoded`` tuple (what decides its route), else ``x``."""
    if isinstance(x, tuple) and hasattr(x, "_fields") and "codes" in x._fields:
        return x.codes
    return x


def on_device(codes) -> bool:
    """Whether ``decode`` of an ``Encoded`` with these element codes takes the CUDA route."""
    kind = _type_kind(type(codes))
    if kind == "torch":
        return codes.device.type == "cuda"
    return kind == "cuda"


def _fmt(format):
    from qemu_arrays.formats.catalog import get_format

    return get_format(format)


# ---- keyword checking ------------------------------------------------------------------------

# keywords every route honours; the others must keep their default off the CPU routes
_PORTABLE = {
    "rounding", "overflow", "seed", "stream", "offset", "random_bits", "scale", "zero_point",
    "via_float32", "dtype",
}  # fmt: skip


@lru_cache(maxsize=8)
def _defaults(op: str) -> dict:
    from qemu_arrays import api

    sig = inspect.signature(getattr(api, op))
    return {
        k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty
    }


def _check_portable(op, kw, r: Route, allow=()):
    defaults = _defaults(op)
    for k, v in kw.items():
        if k in _PORTABLE or k in allow:
            continue
        d = defaults.get(k, None)
        same = v is d or (isinstance(v, (int, float, str)) and v == d)
        if not same:
            msg = (
                f"{k}={v!r} is not supported on the {r.name} route ({r.value}); it works on "
                "NumPy and PyTorch CPU input; hint: convert x to NumPy first"
            )
            raise NotImplementedError(msg)
    if isinstance(kw.get("scale"), str):
        msg = (
            f"scale={kw['scale']!r} (a scale rule) is not supported on the {r.name} route; "
            "hint: pass a number, or use NumPy/PyTorch CPU input"
        )
        raise NotImplementedError(msg)


def _portable(kw):
    return {k: v for k, v in kw.items() if k in _PORTABLE and k != "dtype"}


# ---- entry point (called at the top of api.quantize/encode/decode) ---------------------------


def call(op: str, kw: dict):
    """Run ``api.<op>`` for a non-NumPy array: ``kw`` is the public function's ``locals()``."""
    kw = dict(kw)
    x = kw.pop("codes" if op == "decode" else "x")
    format = kw.pop("format")
    fmt = _fmt(format)
    r = route(_encoded_codes(x), fmt)
    if r is Route.TORCH_CPU:
        return _torch_cpu(op, x, fmt, kw)
    if r is Route.DASK:
        return _dask(op, x, fmt, kw)
    if r is Route.HOST:
        return _host(op, x, fmt, kw)
    if r is Route.CUDA:
        extra = ("axis", "tensor_scale") if _is_block(fmt) else ()
        _check_portable(op, kw, r, allow=("out", *extra))
        from qemu_arrays import cuda_route

        more = {k: kw[k] for k in extra if kw.get(k) is not None}
        return cuda_route.run(
            op, x, fmt, **_portable(kw), **more, out=kw.get("out"), dtype=kw.get("dtype")
        )
    # generic
    _check_portable(op, kw, r, allow=("out",))
    return _generic(op, x, fmt, kw)


# ---- routes ----------------------------------------------------------------------------------


def _generic(op, x, fmt, kw):
    import array_api_compat

    from qemu_arrays import generic

    xp = array_api_compat.array_namespace(x)
    out = kw.get("out")
    if op == "decode":
        res = generic.decode(
            x, fmt, dtype=_xp_dtype(xp, kw.get("dtype")), scale=kw.get("scale"),
            zero_point=kw.get("zero_point"), xp=xp,
        )  # fmt: skip
    else:
        res = getattr(generic, op)(x, fmt, **_portable(kw), xp=xp)
    if out is None:
        return res
    if _type_kind(type(out)) == "jax" or type(out) is not type(res):
        msg = (
            f"out= must be a mutable array of x's type, got {type(out).__name__} (JAX arrays are "
            "immutable); hint: use the return value"
        )
        raise TypeError(msg)
    out[...] = res
    return out


def _xp_dtype(xp, dtype):
    if dtype is None:
        return xp.float32
    name = str(np.dtype(dtype)) if not str(dtype).startswith("torch.") else str(dtype)[6:]
    found = getattr(xp, name, None)
    if found is None:
        msg = f"dtype {dtype!r} has no counterpart in namespace {xp.__name__}"
        raise TypeError(msg)
    return found


_TORCH_TO_NP = {"float16": np.float16, "float32": np.float32, "float64": np.float64}


def _torch_np_dtype(dtype):
    import ml_dtypes

    s = str(dtype)
    if s.startswith("torch."):
        s = s[6:]
        return np.dtype(ml_dtypes.bfloat16) if s == "bfloat16" else np.dtype(_TORCH_TO_NP[s])
    return np.dtype(dtype)


def _torch_to_numpy(t):
    """A NumPy view of a CPU tensor (a copy only when it is not contiguous)."""
    import ml_dtypes
    import torch

    t = t.detach()
    if t.is_conj() or t.is_neg() or not t.is_contiguous():
        t = t.resolve_conj().resolve_neg().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _numpy_to_torch(a):
    import ml_dtypes
    import torch

    a = np.asarray(a)
    if not a.flags.c_contiguous:
        a = a.copy()  # (np.ascontiguousarray would turn 0-d into 1-d)
    if a.dtype == np.dtype(ml_dtypes.bfloat16):
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _convert_result(res, conv):
    if isinstance(res, np.ndarray):
        return conv(res)
    if isinstance(res, tuple) and hasattr(res, "_replace"):  # Encoded named tuple
        return res._replace(
            **{k: conv(v) for k, v in res._asdict().items() if isinstance(v, np.ndarray)}
        )
    return res


def _torch_cpu(op, x, fmt, kw):
    from qemu_arrays import api

    xn = _torch_to_numpy(x)
    out = kw.get("out")
    if out is not None:
        import torch

        if not isinstance(out, torch.Tensor) or out.device.type != "cpu" or not out.is_contiguous():
            msg = "out must be a contiguous PyTorch CPU tensor for PyTorch CPU input"
            raise TypeError(msg)
        kw["out"] = _torch_to_numpy(out)
    if op == "decode" and "dtype" in kw:
        kw["dtype"] = _torch_np_dtype(kw["dtype"])
    for k in ("scale", "zero_point", "tensor_scale"):
        if _type_kind(type(kw.get(k))) == "torch":
            kw[k] = _torch_to_numpy(kw[k])
    res = getattr(api, op)(xn, fmt, **kw)
    if out is not None:
        return out
    if isinstance(res, np.ndarray) and res.size == xn.size:
        res = res.reshape(xn.shape)  # 0-d input keeps its shape
    return _convert_result(res, _numpy_to_torch)


def _host(op, x, fmt, kw):
    """Block formats off NumPy: copy to host, compute, copy back into x's namespace."""
    import array_api_compat

    from qemu_arrays import api

    xp = array_api_compat.array_namespace(x)
    if kw.get("out") is not None:
        msg = "out= is not supported for block formats off NumPy; hint: use the return value"
        raise NotImplementedError(msg)
    kw.pop("out", None)
    if _type_kind(type(x)) == "jax":
        import jax

        if isinstance(x, jax.core.Tracer):
            msg = (
                f"block format {fmt.name!r} is computed on the host and cannot be traced by "
                "jax.jit/jax.grad; hint: call it outside jit, or use an element format"
            )
            raise NotImplementedError(msg)
    host = np.asarray(x.get() if hasattr(x, "get") else _to_numpy(x))
    res = getattr(api, op)(host, fmt, **kw)
    dev = getattr(x, "device", None)

    def back(a):
        return xp.asarray(a, device=dev) if dev is not None else xp.asarray(a)

    return _convert_result(res, back)


def _to_numpy(x):
    kind = _type_kind(type(x))
    if kind == "torch":
        return _torch_to_numpy(x.cpu())
    try:
        return np.from_dlpack(x)
    except (TypeError, RuntimeError, BufferError):
        return np.asarray(x)


# ---- Dask -------------------------------------------------------------------------------------


def _runs(block_shape, starts, global_shape):
    """Yield (index into the block, global C-order offset of that run) for each run of
    consecutive elements: the block's trailing axes that span the whole array, plus one more."""
    n = len(global_shape)
    strides = [1] * n
    for j in range(n - 2, -1, -1):
        strides[j] = strides[j + 1] * int(global_shape[j + 1])
    full = 0
    for j in range(n - 1, -1, -1):
        if block_shape[j] == global_shape[j] and starts[j] == 0:
            full += 1
        else:
            break
    lead = max(0, n - full - 1)
    base = sum(int(s) * st for s, st in zip(starts, strides))
    for idx in np.ndindex(*block_shape[:lead]):
        off = base + sum(int(i) * strides[j] for j, i in enumerate(idx))
        yield idx, off


def _dask_block(op, fmt, kw, global_shape, block, block_info=None):
    import qemu_arrays

    fn = getattr(qemu_arrays, op)
    from qemu_arrays.formats.spec import Rounding

    stochastic = kw.get("rounding") == Rounding.STOCHASTIC
    if op == "decode" or not stochastic or block.ndim == 0 or block.size == 0:
        return fn(block, fmt, **kw)
    starts = [s for s, _ in block_info[0]["array-location"]]
    base = int(kw.get("offset", 0))
    parts = {}
    for idx, off in _runs(block.shape, starts, global_shape):
        sub = np.ascontiguousarray(block[idx]) if isinstance(block, np.ndarray) else block[idx]
        parts[idx] = fn(sub, fmt, **{**kw, "offset": base + off})
    if len(parts) == 1 and () in parts:
        return parts[()]
    first = next(iter(parts.values()))
    res = np.empty(block.shape, dtype=first.dtype) if isinstance(first, np.ndarray) else None
    if res is None:
        msg = "stochastic rounding of Dask arrays with non-NumPy chunks needs row-wise chunks"
        raise NotImplementedError(msg)
    for idx, v in parts.items():
        res[idx] = v
    return res


def _dask(op, x, fmt, kw):
    from functools import partial

    from qemu_arrays import generic

    if _is_block(fmt):
        msg = (
            f"block format {fmt.name!r} on Dask arrays is not supported (blocks would straddle "
            "chunks); hint: x.compute() first, or quantize per chunk with map_blocks"
        )
        raise NotImplementedError(msg)
    _check_portable(op, kw, Route.DASK)
    kw = {k: v for k, v in kw.items() if k != "out"}
    if op == "decode":
        dt = _torch_np_dtype(kw.get("dtype") or np.float32)
    elif op == "encode":
        dt = np.dtype(generic._code_dtype(np, fmt.bits))
    else:
        dt = x.dtype
    fn = partial(_dask_block, op, fmt, kw, tuple(int(s) for s in x.shape))
    meta = np.empty((0,) * x.ndim, dtype=dt)
    return x.map_blocks(fn, dtype=dt, meta=meta)
