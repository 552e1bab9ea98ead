"""JAX: quantization-aware training with qemu_arrays (docs/training-loops.md).

``fake_quant(x, spec_or_format, estimator, *, key=None, **fields)``: differentiable fake
quantization traced by ``jax.jit``/``grad``/``vmap`` (per example under ``vmap``), with traced keys
and scales; ``quantize_params(params, spec)``: every weight of a pytree. This module imports JAX;
``import qemu_arrays`` does not.
"""

from __future__ import annotations

from qemu_arrays.autodiff.jax import element_scales, fake_quant, quantize_params
from qemu_arrays.quantspec import QuantSpec

__all__ = ["QuantSpec", "element_scales", "fake_quant", "quantize_params"]
