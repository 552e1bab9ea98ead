"""Autodiff adapters: quantize in the forward pass, a gradient estimator in the backward pass.

* :mod:`qemu_arrays.autodiff.torch`: ``fake_quant`` (a ``torch.autograd.Function``) and
  ``QuantizedModule`` (quantizes a layer's weight and/or input);
* :mod:`qemu_arrays.autodiff.jax`: ``fake_quant`` with ``jax.custom_vjp``, usable under
  ``jax.jit``.

The submodules import torch/jax; this package imports neither, so ``import qemu_arrays`` stays
light. For hand-written NumPy loops use ``estimator.backward(x, grad)`` from
:mod:`qemu_arrays.estimators`.
"""

__all__: list[str] = []
