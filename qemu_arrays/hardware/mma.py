"""Matrix-multiply profiles: tensor-core dot-product models and the OCP MX block dot product.

Each profile's ``matmul(a, b, c=None)`` computes ``a @ b (+ c)`` as the modelled instruction
chain does (``docs/matmul.md``, "Hardware models"). The NVIDIA models are transcriptions of two
published bit-accurate models that agree on every parameter used here (MMA-Sim and Khattak &
Mikaitis), not measurements of this project; what they leave open is listed in ``uncertain``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qemu_arrays.hardware.registry import Profile, register_profile
from qemu_arrays.matmul import matmul, mma_matmul
from qemu_arrays.matmul_request import MmaModel

__all__ = ["ExactBlockDotProfile", "MmaProfile"]

MMA_SIM = "microsoft/MMA-Sim @ c78513835c8b (Xie et al., arXiv 2511.10909)"
KHATTAK = (
    "north-numerical-computing/MATLAB-tensor-core @ b12b5a700957 (Khattak & Mikaitis, "
    "arXiv 2512.07004)"
)
COMMON_UNCERTAIN = (
    "the sign of an exact zero result (+0 assumed, both models)",
    "NaN payloads (a canonical NaN is returned)",
    "Khattak's lower clamp of the alignment exponent (ignored; matters only far inside the "
    "binary32 subnormal range)",
    "zero operands are left out of the largest exponent (Khattak; MMA-Sim gives them exponent "
    "-126, which differs only for bfloat16/tf32 inputs)",
    "which library kernel runs (split-K, stream-K) is outside the model: one dot product is "
    "one chain of instructions in increasing k",
)

_FP8 = ("float8_e4m3fn", "float8_e5m2")
_MX_ELEMENTS = ("float8_e4m3fn", "float8_e5m2", "float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn")


@dataclass(frozen=True, kw_only=True)
class MmaProfile(Profile):
    """A tensor-core model: chains of truncating fused steps (:class:`MmaModel`)."""

    model: MmaModel = field(default_factory=lambda: MmaModel(("float16",), 8, 24))

    def matmul(
        self, a: Any, b: Any, c: Any = None, *, a_format: str | None = None,
        b_format: str | None = None,
    ) -> Any:  # fmt: skip
        """``a @ b (+ c)``: float32 values (a NumPy array, or the operands' library). ``a``,
        ``b``: QArrays of the model's input formats, or arrays holding values of
        ``a_format``/``b_format`` (default: the first input format); ``c`` float32 values."""
        return mma_matmul(a, b, self.model, c, a_format=a_format, b_format=b_format)


@dataclass(frozen=True, kw_only=True)
class ExactBlockDotProfile(Profile):
    """A software model: exact block dot products, promoted into ``promote_to``."""

    promote_to: str = "float32"

    def matmul(self, a: Any, b: Any) -> Any:
        """``a @ b`` of two MX QArrays (or an MX QArray and an array)."""
        return matmul(a, b, accumulator=None, promote_to=self.promote_to, order="blocked")


register_profile(
    MmaProfile(
        name="nvidia-h100-fp8-fast-accum",
        emulates="NVIDIA Hopper (H100/H200) wgmma with FP8 e4m3/e5m2 inputs and the whole K loop in "
        "the tensor-core accumulator (cuBLASLt CUBLASLT_MATMUL_DESC_FAST_ACCUM, "
        "torch._scaled_mm(use_fast_accum=True))",
        sources=(
            f"{MMA_SIM}: mmasim/simulator/nv_ptx.py l.157 (13 accumulator fraction bits, f32_e8m13 "
            "output), mmasim/simulator/arithmetic.py fused_dot_add",
            f"{KHATTAK}: models/H100TC.m l.108-109 (fma=32, neab=-10)",
            "DeepSeek-V3 Technical Report (arXiv 2412.19437) s3.3.2: about 14 bits kept in FP8 "
            "GEMM accumulation on H800",
            "PyTorch blog (IBM, 2025) 'Some Matrix Multiplication Engines Are Not As Accurate As We "
            "Thought': H100 FP8 outputs have e8m13 precision",
        ),
        uncertain=COMMON_UNCERTAIN
        + (
            "not measured by this project on a GPU (docs/matmul.md gives a torch._scaled_mm probe)",
        ),
        confidence="documented",
        model=MmaModel(_FP8, group=32, frac_bits=13, out_precision=14),
    )
)

register_profile(
    MmaProfile(
        name="nvidia-h100-fp8-promote128",
        emulates="Hopper FP8 wgmma chains of 128 products (4 instructions) from zero, each partial "
        "sum added into a float32 total on the CUDA cores with round-to-nearest-even "
        "(DeepSeek-V3's promotion; CUTLASS '2xAcc' with mma_promotion_interval=4)",
        sources=(
            "DeepSeek-V3 Technical Report (arXiv 2412.19437) s3.3.2: N_C = 128 elements, promotion "
            "to FP32 registers on CUDA cores",
            "CUTLASS include/cutlass/gemm/collective/fp8_accumulation.hpp (GmmaFP8Accumulation: "
            "accum += accum_temp every mma_promotion_interval MMAs)",
            f"the fused step as nvidia-h100-fp8-fast-accum ({MMA_SIM}; {KHATTAK})",
        ),
        uncertain=COMMON_UNCERTAIN
        + (
            "per-group scale factors (DeepSeek's FFMA of the partial times the scales) are not "
            "modelled: plain FP8 operands only",
            "the interval is the paper's; cuBLAS's own non-fast-accumulation interval is not "
            "documented",
        ),
        confidence="inferred",
        model=MmaModel(_FP8, group=32, frac_bits=13, out_precision=14, promote_interval=128),
    )
)

register_profile(
    MmaProfile(
        name="nvidia-a100-fp16",
        emulates="NVIDIA Ampere (A100) mma with float16/bfloat16 inputs and float32 accumulation: "
        "fused steps of 8 products, 24 fraction bits kept, float32 output rounded toward "
        "zero",
        sources=(
            "Fasi, Higham, Mikaitis, Pranesh, 'Numerical behavior of NVIDIA tensor cores', PeerJ CS "
            "7:e330 (2021), and its test suite north-numerical-computing/"
            "tensor-cores-numerical-behavior @ 9dae3fcf401",
            f"{MMA_SIM}: nv_ptx.py (Ampere, 24 bits, m16n8k16 split in two halves of 8)",
            f"{KHATTAK}: models/A100TC.m l.50-52 (fma=8, neab=1)",
        ),
        uncertain=COMMON_UNCERTAIN,
        confidence="documented",
        model=MmaModel(("float16", "bfloat16"), group=8, frac_bits=24, out_precision=24),
    )
)

register_profile(
    MmaProfile(
        name="nvidia-v100-fp16",
        emulates="NVIDIA Volta (V100) mma/wmma with float16 inputs and float32 accumulation: fused "
        "steps of 4 products, 23 fraction bits kept, float32 output rounded toward zero",
        sources=(
            "Fasi, Higham, Mikaitis, Pranesh, PeerJ CS 7:e330 (2021), tc_test_numerics-V100.cu",
            f"{MMA_SIM}: nv_ptx.py l.17-24 (Volta, 23 bits)",
            f"{KHATTAK}: models/V100TC.m l.38-40 (fma=4, neab=0)",
        ),
        uncertain=COMMON_UNCERTAIN,
        confidence="documented",
        model=MmaModel(("float16",), group=4, frac_bits=23, out_precision=24),
    )
)

register_profile(
    MmaProfile(
        name="nvidia-b200-mxf8f6f4",
        emulates="NVIDIA Blackwell (B200) tcgen05.mma kind::mxf8f6f4.block_scale: one MX block of 32 "
        "products per fused step, the E8M0 scales shifting the products' exponents, 25 "
        "fraction bits kept, float32 output rounded toward zero",
        sources=(
            f"{MMA_SIM}: nv_ptx.py l.103/223 (25 bits), arithmetic.py fused_dot_add with scale_a, "
            "scale_b",
            f"{KHATTAK}: models/B200TC.m l.103 (fma=32, neab=2)",
            "OCP Microscaling Formats (MX) v1.0 s6.1 (the block dot product X_A X_B sum P_A P_B; "
            "internal precision implementation-defined)",
        ),
        uncertain=COMMON_UNCERTAIN,
        confidence="documented",
        model=MmaModel(_MX_ELEMENTS, group=32, frac_bits=25, out_precision=24, block_scaled=True),
    )
)

register_profile(
    ExactBlockDotProfile(
        name="ocp-mx-exact-fp32",
        emulates="the OCP MX v1.0 general dot product with exact block dot products: each block's "
        "X_A X_B sum P_A P_B exact, the blocks added into float32 in k order with "
        "round-to-nearest-even (a software reference, not a chip)",
        sources=(
            "OCP Microscaling Formats (MX) v1.0 s6.1, s6.2 (order and internal precision are "
            "implementation-defined; this profile fixes exact blocks, sequential float32 "
            "promotion)",
        ),
        uncertain=("hardware may truncate inside a block (see nvidia-b200-mxf8f6f4)",),
        confidence="documented",
    )
)
