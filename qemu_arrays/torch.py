"""PyTorch: quantization-aware training with qemu_arrays (docs/training-loops.md).

``fake_quant(t, spec_or_format, estimator, **fields)``: differentiable fake quantization (a
``torch.library`` custom op, ``torch.compile(fullgraph=True)`` traces it);
``quantize_model(model, weights=..., activations=..., gradients=...)``: every ``nn.Linear`` /
``nn.Conv1d`` / ``nn.Conv2d`` quantized in place; ``QuantSpec``: one quantization described once.
This module imports torch; ``import qemu_arrays`` does not.
"""

from __future__ import annotations

from qemu_arrays.autodiff.torch import (
    QuantizationWarning,
    QuantizedConv1d,
    QuantizedConv2d,
    QuantizedLinear,
    QuantizedModule,
    QuantSpec,
    element_scales,
    fake_quant,
    quantize_model,
    quantize_module,
    quantize_tensor,
)

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
