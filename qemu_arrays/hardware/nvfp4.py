"""NVFP4 as each software stack computes it: the float32 operation sequences of torchao, NVIDIA
ModelOpt and Transformer Engine, which differ in where they divide, multiply by a reciprocal
and clamp, and so move ties and tiny blocks.

Every operation below is one float32 operation rounded to nearest even (NumPy float32), E4M3
block scales saturate at 448, E2M1 elements saturate at ±6 (nearest even). Blocks are 16
consecutive elements along the last axis. ``quantize`` returns the parts (elements, block scales
and the per-tensor decode scale) and their product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from qemu_arrays.api import quantize as _quantize
from qemu_arrays.formats.enums import Overflow
from qemu_arrays.hardware.registry import Profile, register_profile

__all__ = ["NVFP4Parts", "NVFP4Profile"]

_F = np.float32


class NVFP4Parts(NamedTuple):
    """The quantized parts: ``values = elements * block_scales * tensor_scale``."""

    elements: np.ndarray
    """E2M1 values (float32), the shape of ``x``."""
    block_scales: np.ndarray
    """E4M3 values (float32), one per block: shape ``x.shape[:-1] + (n // 16,)``."""
    tensor_scale: np.float32
    """The per-tensor decode multiplier (float32)."""
    values: np.ndarray
    """``elements * block_scales`` (exact) times ``tensor_scale``, rounded once to float32."""


def _e4m3(v):
    return _quantize(np.asarray(v, _F), "float8_e4m3fn", overflow=Overflow.SATURATE)


def _e2m1(v):
    return _quantize(np.clip(np.asarray(v, _F), _F(-6), _F(6)), "float4_e2m1fn")


def _torchao(xb, amax_t):
    s_t = _F(amax_t) / _F(2688.0)
    amax_b = np.max(np.abs(xb), axis=-1, keepdims=True)
    sb = _e4m3(np.clip((amax_b / _F(6.0)) / s_t, _F(2.0**-6), _F(448.0)))
    mult = (_F(1.0) / s_t) / sb
    return _e2m1(xb * mult), sb, s_t


def _modelopt(xb, amax_t):
    s2 = _F(amax_t) / _F(2688.0)
    amax_b = np.max(np.abs(xb), axis=-1, keepdims=True)
    sb = amax_b / (_F(6.0) * s2)
    sb = np.where(sb == 0, _F(1.0), sb)
    sb = _e4m3(np.clip(sb, _F(2.0**-9), _F(448.0)))
    return _e2m1(xb / (sb * s2)), sb, s2


def _transformer_engine(xb, amax_t):
    fmax = np.finfo(_F).max
    s_enc = _F(2688.0) / _F(amax_t) if amax_t != 0 else _F(1.0)
    s_enc = min(s_enc, fmax)
    if s_enc == 0:
        s_enc = _F(1.0)
    amax_b = np.max(np.abs(xb), axis=-1, keepdims=True)
    sb = _e4m3(amax_b * (s_enc * (_F(1.0) / _F(6.0))))
    s_dec = _F(1.0) / s_enc
    with np.errstate(divide="ignore"):
        inv = np.where(sb == 0, _F(0.0), np.minimum(_F(1.0) / (sb * s_dec), fmax))
    return _e2m1(xb * inv), sb, s_dec


_RECIPES = {"torchao": _torchao, "modelopt": _modelopt, "transformer-engine": _transformer_engine}


@dataclass(frozen=True, kw_only=True)
class NVFP4Profile(Profile):
    """NVFP4 (16-element blocks, E4M3 block scales, E2M1 elements, a float32 tensor scale) by
    one stack's float32 sequence (``recipe``: "torchao", "modelopt", "transformer-engine")."""

    recipe: str = "torchao"

    def quantize(self, x, *, tensor_amax=None) -> NVFP4Parts:
        """The stack's NVFP4 parts of the float32 array ``x`` (last axis a multiple of 16, finite
        values); ``tensor_amax``: the per-tensor amax the stack is given (default ``max|x|``)."""
        x = np.asarray(x)
        if x.dtype != _F or x.ndim == 0 or x.shape[-1] % 16:
            msg = (
                f"x must be a float32 array whose last axis is a multiple of 16, got dtype "
                f"{x.dtype} and shape {x.shape}; hint: x.astype(numpy.float32), pad the last axis"
            )
            raise ValueError(msg)
        if not np.all(np.isfinite(x)):
            msg = (
                "x has NaN or inf, where the stacks disagree (Transformer Engine's kernel gives "
                "+6, its reference +0, torchao a NaN scale); hint: filter the input"
            )
            raise ValueError(msg)
        amax_t = _F(np.max(np.abs(x))) if tensor_amax is None else _F(tensor_amax)
        xb = x.reshape(*x.shape[:-1], -1, 16)
        with np.errstate(over="ignore", invalid="ignore"):
            q, sb, ts = _RECIPES[self.recipe](xb, amax_t)
        values = ((q.astype(np.float64) * sb) * np.float64(ts)).astype(_F)
        return NVFP4Parts(q.reshape(x.shape), sb[..., 0], _F(ts), values.reshape(x.shape))


_TE_SRC = "NVIDIA/TransformerEngine transformer_engine/common/cast/nvfp4/core_nvfp4.cuh (d0067d0)"
register_profile(
    NVFP4Profile(
        name="torchao-nvfp4",
        emulates="torchao nvfp4_quantize with per_tensor_amax_to_scale (tensor scale amax/2688 "
        "kept as a decode multiplier; block scale clamped below at 2^-6; elements multiplied "
        "by RN(RN(1/s_t)/s_b))",
        sources=("pytorch/ao torchao/prototype/mx_formats/nvfp4_tensor.py (0.18.0 wheel)",),
        uncertain=("the parts are torchao's; values multiplies them as described above",),
        confidence="tested",
        recipe="torchao",
    )
)
register_profile(
    NVFP4Profile(
        name="modelopt-nvfp4",
        emulates="NVIDIA ModelOpt NVFP4QTensor (weights_scaling_factor_2 = amax/2688; block "
        "scale clamped below at 2^-9; elements divided by RN(s_b * s2))",
        sources=(
            "NVIDIA/Model-Optimizer modelopt/torch/quantization/qtensor/nvfp4_tensor.py "
            "(a2fbac7), _cast_per_block_scale_to_fp8",
        ),
        uncertain=(
            "transcribed from the source, not run (ModelOpt not installed); older releases "
            "(TensorRT-Model-Optimizer 2025-12) have no 2^-9 clamp",
            "ModelOpt's MSE search over E4M3 scale candidates is not modelled",
        ),
        confidence="documented",
        recipe="modelopt",
    )
)
register_profile(
    NVFP4Profile(
        name="transformer-engine-nvfp4",
        emulates="Transformer Engine NVFP4 cast kernel, 1D blocks (S_enc = 2688/amax; block "
        "scale E4M3(amax_b * RN(S_enc * RN(1/6))), no lower clamp; elements multiplied by "
        "min(1/(s_b * S_dec), FLT_MAX), 0 where s_b = 0)",
        sources=(_TE_SRC, "transformer_engine/common/cast/nvfp4/quantize_transpose_nvfp4.cuh"),
        uncertain=(
            "transcribed from the source, not run (needs a GPU); assumes IEEE division (no "
            "--use_fast_math in the common library build)",
            "2D 16x16 weight blocks, random Hadamard transforms, stochastic rounding of "
            "gradients and the 4over6 mode are not modelled",
        ),
        confidence="documented",
        recipe="transformer-engine",
    )
)
