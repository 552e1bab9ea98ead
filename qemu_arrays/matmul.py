"""Emulated matrix multiplication and dot products: the façade of ``matmul`` and ``dot``.

The products of the inputs are exact; how they are summed is the emulated part: every addition
is rounded into the ``accumulator`` format with ``rounding``, in the given ``order``
(``docs/matmul.md``). Each function normalises its keywords once into a
:class:`~qemu_arrays.matmul_request.MatmulRequest` and hands it to
:func:`qemu_arrays.dispatch.run_matmul`, which picks the route (NumPy and PyTorch CPU: numba
kernels; CUDA device arrays: CUDA kernels; JAX and other array-API arrays: through the host).
Hardware models (tensor cores) are profiles of :mod:`qemu_arrays.hardware.mma`, which call
:func:`mma_matmul`.
"""

from __future__ import annotations

from typing import Any

from qemu_arrays import dispatch
from qemu_arrays.formats.enums import Rounding
from qemu_arrays.matmul_request import MatmulRequest, MmaModel, matmul_request

__all__ = ["dot", "matmul", "mma_matmul"]


def matmul(
    a: Any,
    b: Any,
    *,
    accumulator: Any = "float32",
    rounding: Rounding = Rounding.NEAREST_EVEN,
    order: str | None = None,
    block_k: int | None = None,
    promote_to: Any = None,
    fma: bool = True,
    allow_narrow: bool = False,
    seed: int | None = None,
    stream: int = 0,
    random_bits: int | None = None,
) -> Any:
    """``a @ b`` with the products exact and every addition rounded into ``accumulator``.

    Parameters
    ----------
    a, b : float arrays (NumPy, PyTorch, CUDA device arrays, JAX/array-API) or QArrays
        Their values are used as they are (quantize them first); plain arrays must hold
        float32 values (float16, bfloat16, float32 arrays, or float64 arrays of such values).
        QArrays of block formats (MX) are multiplied block by block with their scales (the
        OCP MX block dot product). Shapes follow ``numpy.matmul`` (batches broadcast).
    accumulator : float format or name, or None
        Every addition ``acc <- R(acc + a_k b_k)`` is rounded into it; None sums exactly.
    rounding : Rounding
        The rounding of every addition (and promotion). ``STOCHASTIC`` needs ``seed``.
    order : "sequential", "pairwise", "blocked" or None
        None is "sequential" (for MX operands: "blocked" over their blocks).
    block_k, promote_to
        order="blocked": runs of ``block_k`` products are summed from zero in the
        accumulator, and each partial sum is added into ``promote_to`` (default float32)
        with one rounding (DeepSeek-V3's promotion, ``block_k=128``).
    fma : bool
        True: ``acc <- R(acc + a_k b_k)`` with the product exact; False: the product is
        rounded into the accumulator first.
    allow_narrow : bool
        Allow an accumulator (or ``promote_to``) with fewer significand bits or a smaller
        exponent range than the inputs.
    seed, stream, random_bits
        Stochastic rounding: event ``t`` of output element ``e`` draws the counter-based
        random integer of index ``e * 2**32 + t`` (``docs/matmul.md``).

    Returns an array of the input's library (float32, or float64 when an input is float64 or
    the result format needs it) of shape ``numpy.matmul(a, b).shape``.
    """
    req = matmul_request(
        "matmul", accumulator=accumulator, rounding=rounding, order=order, block_k=block_k,
        promote_to=promote_to, fma=fma, allow_narrow=allow_narrow, seed=seed, stream=stream,
        random_bits=random_bits,
    )  # fmt: skip
    return dispatch.run_matmul(a, b, req)


def dot(
    a: Any,
    b: Any,
    *,
    accumulator: Any = "float32",
    rounding: Rounding = Rounding.NEAREST_EVEN,
    order: str | None = None,
    block_k: int | None = None,
    promote_to: Any = None,
    fma: bool = True,
    allow_narrow: bool = False,
    seed: int | None = None,
    stream: int = 0,
    random_bits: int | None = None,
) -> Any:
    """The emulated dot product of two vectors (a 0-d array), or :func:`matmul` of 1-D and 2-D
    operands (``numpy.dot``'s cases up to two dimensions). Keywords as :func:`matmul`."""
    req = matmul_request(
        "dot", accumulator=accumulator, rounding=rounding, order=order, block_k=block_k,
        promote_to=promote_to, fma=fma, allow_narrow=allow_narrow, seed=seed, stream=stream,
        random_bits=random_bits,
    )  # fmt: skip
    return dispatch.run_matmul(a, b, req)


def mma_matmul(
    a: Any,
    b: Any,
    model: MmaModel,
    c: Any = None,
    *,
    a_format: str | None = None,
    b_format: str | None = None,
) -> Any:
    """``a @ b (+ c)`` through a tensor-core model (``qemu_arrays.hardware.mma`` profiles call
    this; use ``qemu_arrays.hardware.profile(name).matmul(a, b)``). Plain arrays must hold
    values of ``a_format``/``b_format`` (default: the model's first input format)."""
    if not isinstance(model, MmaModel):
        msg = f"model must be a qemu_arrays.matmul_request.MmaModel, got {type(model).__name__}"
        raise TypeError(msg)
    for name, f in (("a_format", a_format), ("b_format", b_format)):
        if f is not None and f not in model.input_formats:
            msg = (
                f"{name}={f!r} is not an input format of this model; allowed: "
                f"{', '.join(model.input_formats)}"
            )
            raise ValueError(msg)
    req = MatmulRequest(op="matmul", accumulator=None, model=model, c=c,
                        formats=(a_format, b_format))  # fmt: skip
    return dispatch.run_matmul(a, b, req)
