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


def _te_candidate(xb, amax_t, s_enc, sb, err_denom, mse):
    """One 4over6 candidate: its E2M1 elements under the block scale ``sb`` and its error,
    summed over the 16 elements in order in float32 (``quantize_4over6_nvfp4.cuh``)."""
    fmax = np.finfo(_F).max
    with np.errstate(divide="ignore"):
        inv = np.minimum(_F(1.0) / (sb * (_F(1.0) / s_enc)), fmax)
    q = _e2m1(xb * inv)
    diff = ((q * sb) * _F(amax_t)) / _F(err_denom) - xb
    e = diff * diff if mse else np.abs(diff)
    err = np.zeros(xb.shape[:-1], _F)
    for j in range(xb.shape[-1]):  # sequential, as the kernel's one thread per block
        err = err + e[..., j]
    return q, err


def _transformer_engine_4over6(xb, amax_t, e4m3_max=256, mse=False):
    fmax = np.finfo(_F).max
    s_enc = _F(e4m3_max * 6) / _F(amax_t) if amax_t != 0 else _F(1.0)
    s_enc = min(s_enc, fmax)
    if s_enc == 0:
        s_enc = _F(1.0)
    amax_b = np.max(np.abs(xb), axis=-1, keepdims=True)
    base = (amax_b / _F(6.0)) * s_enc
    s4 = _e4m3(np.minimum(base * _F(1.5), _F(448.0)))
    s6 = _e4m3(np.minimum(base, _F(448.0)))
    q4, err4 = _te_candidate(xb, amax_t, s_enc, s4, 6 * e4m3_max, mse)
    q6, err6 = _te_candidate(xb, amax_t, s_enc, s6, 6 * e4m3_max, mse)
    pick4 = (err4 < err6)[..., None]  # ties keep map-to-6
    return np.where(pick4, q4, q6), np.where(pick4, s4, s6), _F(1.0) / s_enc


_RECIPES = {
    "torchao": _torchao,
    "modelopt": _modelopt,
    "transformer-engine": _transformer_engine,
    "transformer-engine-4over6": _transformer_engine_4over6,
}


@dataclass(frozen=True, kw_only=True)
class NVFP4Profile(Profile):
    """NVFP4 (16-element blocks, E4M3 block scales, E2M1 elements, a float32 tensor scale) by
    one stack's float32 sequence (``recipe``: "torchao", "modelopt", "transformer-engine",
    "transformer-engine-4over6")."""

    recipe: str = "torchao"
    e4m3_max: int = 448
    """4over6 only: the E4M3 bound in the global scale ``e4m3_max * 6 / amax`` (256 or 448)."""
    err_mode: str = "MAE"
    """4over6 only: the error that picks a block's candidate, "MAE" or "MSE"."""

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
            if self.recipe == "transformer-engine-4over6":
                q, sb, ts = _transformer_engine_4over6(
                    xb, amax_t, self.e4m3_max, self.err_mode.upper() == "MSE"
                )
            else:
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
_TE_4O6 = "NVIDIA/TransformerEngine transformer_engine/common/cast/nvfp4/quantize_4over6_nvfp4.cuh"
register_profile(
    NVFP4Profile(
        name="transformer-engine-4over6",
        emulates="Transformer Engine NVFP4 '4over6' kernel, 1D row-wise blocks, its defaults "
        "(NVTE_NVFP4_4OVER6_E4M3_USE_256=all, ERR_MODE=MAE): S_enc = 256 * 6 / amax (the map-6 "
        "block scale tops out at 256); base = RN(amax_b / 6) * S_enc; candidates "
        "E4M3(min(base, 448)) (map to 6) and E4M3(min(1.5 base, 448)) (map to 4), each "
        "quantized as the standard kernel does; the one with the lower sum of "
        "|RN(RN(q s) amax / 1536) - x| wins, ties to map-to-6",
        sources=(
            f"{_TE_4O6} compute_scale_pair, cvt_fp32_to_fp4_8x_with_error, "
            "accumulate_dequant_error, quantize_stage_rowwise (d0067d0)",
            "transformer_engine/common/cast/nvfp4/core_nvfp4.cuh "
            "compute_global_encode_scaling_factor_FP4; common/recipe/__init__.py "
            "(NVTE_NVFP4_4OVER6* defaults)",
        ),
        uncertain=(
            "transcribed from the source, not run (the kernel needs sm_100); fields e4m3_max "
            "(448) and err_mode ('MSE') select the other settings",
            "NVTE_NVFP4_4OVER6_ERR_USE_FAST_MATH (errors from half-precision products), 2D "
            "16x16 weight blocks (errors summed over the tile) and row-scaled amax are not "
            "modelled",
            "a block scale that rounds to 0 gives the reciprocal FLT_MAX (not 0 as the "
            "standard kernel's reference): the elements saturate, their values are 0 either way",
        ),
        confidence="documented",
        recipe="transformer-engine-4over6",
        e4m3_max=256,
    )
)
