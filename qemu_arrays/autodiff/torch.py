"""PyTorch adapter (also public as :mod:`qemu_arrays.torch`): ``fake_quant`` (a
``torch.library`` custom op with any gradient estimator), ``quantize_model`` (a whole model in
place), ``QuantizedModule`` (one module, wrapped), ``quantize_tensor`` (values, no autograd).

The operation is in :mod:`qemu_arrays.autodiff.torch_ops`, the modules in
:mod:`qemu_arrays.autodiff.torch_modules`.
"""

from __future__ import annotations

from qemu_arrays.autodiff.torch_modules import (
    QuantizationWarning,
    QuantizedConv1d,
    QuantizedConv2d,
    QuantizedLinear,
    QuantizedModule,
    quantize_model,
    quantize_module,
)
from qemu_arrays.autodiff.torch_ops import (
    _from_numpy,
    _to_numpy,
    element_scales,
    fake_quant,
    quantize_tensor,
)
from qemu_arrays.quantspec import QuantSpec

__all__ = [
    "QuantSpec",
    "QuantizationWarning",
    "QuantizedConv1d",
    "QuantizedConv2d",
    "QuantizedLinear",
    "QuantizedModule",
    "element_scales",
    "fake_quant",
    "quantize_model",
    "quantize_module",
    "quantize_tensor",
]

_ = (_from_numpy, _to_numpy)  # kept importable from here (older code and tests use them)
