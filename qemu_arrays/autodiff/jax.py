"""JAX adapter: fake quantization with ``jax.custom_vjp``, usable under ``jax.jit``/``vmap``.

The forward pass is ``qemu_arrays.quantize`` bit for bit, run on the host through
``jax.pure_callback`` (so it traces); the backward pass is ``grad * estimator.derivative(x)``
in ``jax.numpy`` (the estimators are array-API code, traceable as they are).
:func:`_quantize_forward` is the single place to swap for a pure ``jax.numpy`` quantizer.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from qemu_arrays.estimators import LSQ, STE, Estimator

__all__ = ["fake_quant"]


def _quantize_forward(x, fmt, kwargs: tuple):
    """The forward quantizer: ``qemu_arrays.quantize`` through ``jax.pure_callback``."""
    from qemu_arrays import quantize

    def host(a):
        a = np.asarray(a)
        return np.asarray(quantize(a, fmt, **dict(kwargs)), dtype=a.dtype)

    shape = jax.ShapeDtypeStruct(x.shape, x.dtype)
    return jax.pure_callback(host, shape, x, vmap_method="broadcast_all")


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _fake_quant(x, fmt, est, kwargs):
    return _quantize_forward(x, fmt, kwargs)


def _fwd(x, fmt, est, kwargs):
    return _quantize_forward(x, fmt, kwargs), x


def _bwd(fmt, est, kwargs, x, grad):
    return (est.backward(x, grad),)


_fake_quant.defvjp(_fwd, _bwd)


def fake_quant(x, format, estimator: Estimator = STE(), **quantize_kwargs):  # noqa: A002, B008
    """Quantize ``x`` to ``format`` in the forward pass, ``estimator`` in the backward pass.

    ``quantize_kwargs`` (``rounding``, ``overflow``, ``seed``, ``scale`` as a number, ...) go
    to ``qemu_arrays.quantize``; they must be hashable (they key the traced computation). An
    estimator without a grid is placed on ``format`` (and ``scale``). The step size is not
    learned here (LSQ's step gradient: use ``estimator.step_gradient`` or the PyTorch adapter).
    """
    if not isinstance(estimator, Estimator):
        msg = (
            f"estimator must be a qemu_arrays.estimators.Estimator, got {estimator!r}; "
            "hint: STE(), DSQ(k=3.0), Custom(derivative_fn=...)"
        )
        raise TypeError(msg)
    scale = quantize_kwargs.get("scale")
    if scale is not None and not isinstance(scale, (int, float)):
        msg = f"scale must be a Python number here, got {type(scale).__name__}"
        raise TypeError(msg)
    est = estimator
    if isinstance(est, LSQ):
        msg = "LSQ's learned step is not supported by the JAX adapter; hint: use PWL() for x"
        raise ValueError(msg)
    if est.needs_grid and est.format is None:
        est = est.on(format, scale)
    kwargs = tuple(sorted(quantize_kwargs.items()))
    return _fake_quant(x, format, est, kwargs)
