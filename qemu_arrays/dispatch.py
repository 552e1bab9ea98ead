"""The route ladder: which implementation computes ``quantize``/``encode``/``decode`` for an array.

Every route gives the same bits (``docs/backends.md``); the route only decides speed and where
the work runs. The ladder, first match wins:

1. NumPy arrays (and Python/NumPy scalars, lists, tuples): the numba CPU kernels
   (:mod:`qemu_arrays.routes.cpu`);
2. PyTorch CPU tensors: the numba CPU kernels on a zero-copy NumPy view of the tensor;
3. device memory (``__cuda_array_interface__``: CuPy arrays, PyTorch CUDA tensors, numba device
   arrays): the numba-CUDA kernels of :mod:`qemu_arrays.cuda_kernels`, on the caller's stream;
4. Dask arrays: lazily, chunk by chunk, each chunk through its own route with its global offset;
5. JAX arrays (and tracers, so ``jax.jit``, ``jax.grad`` and ``jax.vmap`` work), and anything
   else that speaks the array API: the generic implementation, element, scaled and block formats
   (:mod:`qemu_arrays.routes.generic`, ``generic_scaled``, ``generic_blocks``); only ``decode``
   of block formats takes the HOST route there (a copy to NumPy and back, not traceable).

What each route can do is one table, :data:`CAPABILITIES`: a call asking a route for something
it cannot do raises ``NotImplementedError`` naming the keyword and the routes that can, and
:func:`explain_route` reads the same table. Nothing switches silently. The per-type part of the
decision is cached (one entry per array type, i.e. per namespace).
"""

from __future__ import annotations

import enum
import numbers
from dataclasses import dataclass

import numpy as np

from qemu_arrays.formats.block_spec import BlockFormat
from qemu_arrays.formats.enums import Rounding
from qemu_arrays.request import Op, Request
from qemu_arrays.validation import check_format

__all__ = [
    "CAPABILITIES",
    "Capability",
    "Route",
    "explain_route",
    "matmul_route",
    "route",
    "run",
    "run_matmul",
]


class Route(enum.Enum):
    """The implementation a call takes."""

    NUMPY = "numba CPU kernels"
    TORCH_CPU = "numba CPU kernels on a zero-copy NumPy view of the PyTorch CPU tensor"
    CUDA = "numba-CUDA kernels on the caller's current CUDA stream"
    DASK = "lazy Dask map_blocks, each block through its own route with its global offset"
    GENERIC = "generic array-API implementation (jit-traceable)"
    HOST = "copy to NumPy, numba CPU kernels, copy back (decode of block formats off NumPy)"


@dataclass(frozen=True)
class Capability:
    """What a route can compute (the one table the dispatcher and the docs read)."""

    element: bool
    """Element formats (float and integer with one scale per tensor)."""
    block: bool
    """Block formats (MX, NVFP4)."""
    granularity: bool
    """Scales per channel/group, arrays of scales, the "absmax" rule, ``scale_format``."""
    out: bool
    """``out=`` (writing into a caller's array)."""
    traceable: bool
    """Runs under ``jax.jit``/``jax.grad``/``jax.vmap`` (JAX tracers)."""
    matmul: bool = False
    """``matmul``/``dot`` (docs/matmul.md). JAX and array-API arrays take the HOST route for
    them (not traceable); CUDA device arrays run the CUDA kernels (every order, the exact
    sums) and go through the host for the hardware models (``routes/matmul_cuda.py``); Dask arrays have no matmul route."""
    caller_bits: bool = False
    """Caller-supplied random bits (``rbits=``): the CUDA kernels take them (one array argument
    and a flag), the numba CPU kernels do not (NumPy and PyTorch CPU run them through the
    generic route); Dask takes them chunk by chunk (each chunk with its slice of ``rbits``)."""
    equal_sr: bool = False
    """``Rounding.STOCHASTIC_EQUAL``: the CUDA kernels draw its bit, the numba CPU kernels do
    not (NumPy and PyTorch CPU run it through the generic route)."""
    scaled_float: bool = False
    """Float formats with a scale (docs/scaled.md)."""
    rules: tuple[str, ...] = ()
    """The scale rules (``scale="absmax"``, ...) it computes."""
    zero_points: bool = False
    """Integer zero points (``zero_point=`` arrays, ``symmetric=False``)."""
    block_decode: bool = True
    """``decode`` of block formats."""


_ALL_RULES = ("absmax", "percentile", "mse")

CAPABILITIES: dict[Route, Capability] = {
    Route.NUMPY: Capability(
        element=True, block=True, granularity=True, out=True, traceable=False, scaled_float=True,
        rules=_ALL_RULES, zero_points=True, caller_bits=True, equal_sr=True, matmul=True,
    ),
    Route.TORCH_CPU: Capability(
        element=True, block=True, granularity=True, out=True, traceable=False, scaled_float=True,
        rules=_ALL_RULES, zero_points=True, caller_bits=True, equal_sr=True, matmul=True,
    ),
    Route.CUDA: Capability(
        element=True, block=True, granularity=False, out=True, traceable=False, matmul=True,
        caller_bits=True, equal_sr=True,
    ),
    Route.DASK: Capability(
        element=True, block=False, granularity=False, out=False, traceable=False,
        caller_bits=True, equal_sr=True,
    ),
    Route.GENERIC: Capability(
        element=True, block=True, granularity=True, out=True, traceable=True, scaled_float=True,
        rules=("absmax",), block_decode=False, caller_bits=True, equal_sr=True,
    ),
    Route.HOST: Capability(
        element=False, block=True, granularity=True, out=False, traceable=False, matmul=True
    ),
}  # fmt: skip

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
        return Route.CUDA
    if kind == "dask":
        return Route.DASK
    if kind == "cuda":
        return Route.CUDA
    if kind in ("jax", "generic"):
        return Route.GENERIC
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
    fmt = None if format is None else check_format(format)
    if r is Route.CUDA and isinstance(fmt, BlockFormat):
        msg += (
            f" (block format {fmt.name}: block maximum, scale and elements fused in one kernel "
            "on the device, qemu_arrays.routes.cuda_blocks)"
        )
    cap = CAPABILITIES[r]
    missing = [
        what
        for what, ok in (
            ("per-channel/group scales and scale rules", cap.granularity),
            ("scaled float formats", cap.scaled_float),
            ("the percentile and mse rules", "mse" in cap.rules or not cap.granularity),
            ("zero points", cap.zero_points or not cap.granularity),
            ("out=", cap.out),
            ("block formats", cap.block),
            (
                "decode of block formats (it takes the HOST route)",
                cap.block_decode or not cap.block,
            ),
        )
        if not ok
    ]
    if missing:
        msg += "; not on this route: " + ", ".join(missing)
    return msg


def _able(feature: str) -> str:
    names = [r.name for r, c in CAPABILITIES.items() if getattr(c, feature)]
    return ", ".join(names)


def _needs_caller_bits(req: Request) -> bool:
    """Whether a NumPy/PyTorch CPU call needs the generic route (the numba CPU kernels draw bits
    for ``Rounding.STOCHASTIC`` only, and never take the caller's)."""
    return req.rbits is not None or req.rounding is Rounding.STOCHASTIC_EQUAL


def _check_capability(r: Route, req: Request) -> None:
    cap = CAPABILITIES[r]
    for what, asked, flag in (
        ("rbits=", req.rbits is not None, "caller_bits"),
        (f"rounding={req.rounding!r}", req.rounding is Rounding.STOCHASTIC_EQUAL, "equal_sr"),
    ):
        if asked and not getattr(cap, flag):
            msg = (
                f"{what} is not supported on the {r.name} route ({r.value}); routes with it: "
                f"{_able(flag)}; hint: convert x to NumPy (or JAX) first"
            )
            raise NotImplementedError(msg)
    if req.is_block and not cap.block:
        msg = (
            f"block format {req.fmt.name!r} is not supported on the {r.name} route ({r.value}); "
            f"routes with block formats: {_able('block')}; hint: x.compute() first for Dask, "
            "or quantize per chunk with map_blocks"
        )
        raise NotImplementedError(msg)
    if req.out is not None and not cap.out:
        msg = f"out= is not supported on the {r.name} route ({r.value}); hint: use the return value"
        raise NotImplementedError(msg)
    if req.is_scaled_float and not cap.scaled_float:
        msg = (
            f"scale= with the float format {req.fmt.name!r} (a scaled float format) is not "
            f"supported on the {r.name} route ({r.value}); it works on {_able('scaled_float')}; "
            "hint: convert x to NumPy first, or, for PyTorch CUDA tensors, "
            "qemu_arrays.torch.fake_quant (which scales on the device)"
        )
        raise NotImplementedError(msg)
    if req.scale_rule is not None and req.scale_rule not in cap.rules and cap.granularity:
        able = ", ".join(r_.name for r_, c in CAPABILITIES.items() if req.scale_rule in c.rules)
        msg = (
            f"scale={req.scale_rule!r} is not supported on the {r.name} route ({r.value}); it "
            f"works on {able}; hint: compute the scales on NumPy (qemu_arrays.compute_scale) "
            "and pass them as scale=, or use scale='absmax'"
        )
        raise NotImplementedError(msg)
    zp_array = not (req.zero_point is None or isinstance(req.zero_point, int))
    if (
        req.is_int and cap.granularity and not cap.zero_points and req.op is not Op.DECODE
        and (not req.symmetric or zp_array)
    ):  # fmt: skip
        msg = (
            f"zero points (symmetric=False, zero_point arrays) are not supported on the "
            f"{r.name} route ({r.value}); they work on "
            f"{', '.join(r_.name for r_, c in CAPABILITIES.items() if c.zero_points)}; "
            "hint: symmetric scales, or convert x to NumPy first"
        )
        raise NotImplementedError(msg)
    if (req.is_int or req.is_scaled_float) and not cap.granularity:
        given = [
            k
            for k, v in (
                ("axis", req.axis),
                ("block_size", req.block_size),
                ("scale_format", req.scale_format),
            )  # fmt: skip
            if v is not None
        ]
        if req.scale_rule is not None:
            given.insert(0, f"scale={req.scale!r} (a scale rule)")
        if given:
            msg = (
                f"{', '.join(given)} is not supported on the {r.name} route ({r.value}); it works "
                f"on {_able('granularity')}; hint: pass one scale value, or convert x to NumPy "
                "first"
            )
            raise NotImplementedError(msg)


def _check_not_in_graph(x) -> None:
    """A PyTorch tensor that requires grad, with grad enabled: its result would silently leave
    the autograd graph; refuse, pointing to the differentiable ``fake_quant``."""
    if not getattr(x, "requires_grad", False):
        return
    import torch

    if torch.is_grad_enabled():
        msg = (
            "x is a tensor that requires grad: qemu_arrays.quantize returns plain values, which "
            "would silently detach it from the autograd graph; hint: "
            "qemu_arrays.torch.fake_quant(x, format, ...) is differentiable (straight-through or "
            "any estimator), or quantize x.detach() (or under torch.no_grad())"
        )
        raise ValueError(msg)


def run(x, req: Request):
    """The result of ``req`` on ``x`` through the route ``x`` takes (the façade's one call)."""
    r = route(x, req.fmt)
    _check_capability(r, req)
    if req.op is Op.QUANTIZE and r in (Route.TORCH_CPU, Route.CUDA):
        _check_not_in_graph(x)
    if r in (Route.NUMPY, Route.TORCH_CPU) and _needs_caller_bits(req):
        from qemu_arrays.routes import generic_host

        return generic_host.run(x, req)
    if r is Route.NUMPY:
        from qemu_arrays.routes import cpu

        return cpu.run(x, req)
    if r is Route.TORCH_CPU:
        from qemu_arrays.routes import torch_cpu

        return torch_cpu.run(x, req)
    if r is Route.CUDA:
        from qemu_arrays.routes import cuda

        return cuda.run(x, req)
    if r is Route.DASK:
        from qemu_arrays.routes import dask

        return dask.run(x, req, run_chunk=run)
    if r is Route.HOST:
        from qemu_arrays.routes import host

        return host.run(x, req)
    from qemu_arrays.routes import generic

    if req.is_block and req.op is Op.DECODE:
        from qemu_arrays.routes import host

        return host.run(x, req)
    if generic.needs_scaled_path(req):
        import array_api_compat

        xp = array_api_compat.array_namespace(x)
        if req.is_block:
            from qemu_arrays.routes import generic_blocks

            return generic_blocks.run(xp, x, req)
        from qemu_arrays.routes import generic_scaled

        return generic_scaled.run(xp, x, req)
    return generic.run(x, req)


# ---- matmul / dot (docs/matmul.md) -------------------------------------------------------------


def _is_qarray(x) -> bool:
    """A QArray (or any object with the operand protocol): codes and scales on the host."""
    return hasattr(type(x), "__qemu_arrays_operand__")


def _matmul_route_of(x, name: str) -> Route:
    if _is_qarray(x):
        return Route.NUMPY
    if isinstance(x, (numbers.Number, list, tuple)):
        msg = (
            f"{name} must be an array (NumPy, PyTorch, CUDA, JAX or array-API) or a QArray, got "
            f"{type(x).__name__}; hint: numpy.asarray({name}, dtype=numpy.float32)"
        )
        raise TypeError(msg)
    r = route(x)
    return Route.HOST if r is Route.GENERIC else r


def matmul_route(a, b) -> Route:
    """The route ``matmul(a, b)`` takes: both operands' route, a QArray joining the NumPy or
    PyTorch CPU route of the other operand."""
    ra, rb = _matmul_route_of(a, "a"), _matmul_route_of(b, "b")
    if _is_qarray(a) and rb is Route.TORCH_CPU:
        ra = rb
    if _is_qarray(b) and ra is Route.TORCH_CPU:
        rb = ra
    if ra is not rb:
        msg = (
            f"a and b take different routes ({ra.name} and {rb.name}); both must be arrays of "
            "one library on one device (QArrays combine with NumPy arrays and PyTorch CPU "
            "tensors); hint: convert one operand, e.g. numpy.asarray(b)"
        )
        raise TypeError(msg)
    if not CAPABILITIES[ra].matmul:
        able = ", ".join(r.name for r, c in CAPABILITIES.items() if c.matmul)
        msg = (
            f"matmul is not supported on the {ra.name} route ({ra.value}); routes with matmul: "
            f"{able}; hint: x.compute() first for Dask arrays"
        )
        raise NotImplementedError(msg)
    return ra


def run_matmul(a, b, req):
    """The result of the matmul request ``req`` (a
    :class:`~qemu_arrays.matmul_request.MatmulRequest`) on ``a`` and ``b``."""
    r = matmul_route(a, b)
    if r in (Route.NUMPY, Route.TORCH_CPU):
        from qemu_arrays.routes import matmul_cpu

        return matmul_cpu.run(a, b, req)
    if r is Route.CUDA:
        from qemu_arrays.routes import matmul_cuda

        return matmul_cuda.run(a, b, req)
    # JAX and array-API arrays: a copy to the host and back
    from qemu_arrays.routes import matmul_host

    return matmul_host.run(a, b, req)
