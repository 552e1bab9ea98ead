"""Stochastic-rounding conversion instructions that take their random bits from the program.

Each profile is data: for every destination format it names the source dtype the instruction
reads, how many elements one 32-bit random word serves and which bit field of the word each
element's lane reads, the overflow behaviour, and what NaN becomes. The arithmetic is the
library's carry rule (``quantize(..., rounding=Rounding.STOCHASTIC, rbits=...)``, docs/formats.md):
an element rounds away from zero exactly when ``floor(f 2^r) + b >= 2^r``, ``b`` its lane's ``r``
bits, the fraction taken relative to the destination's last place (normal or subnormal).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from qemu_arrays.api import quantize as _quantize
from qemu_arrays.formats.enums import Overflow, Rounding
from qemu_arrays.hardware.registry import Profile, register_profile
from qemu_arrays.hardware.words import counter_words, lane_bits

__all__ = ["SRConversion", "StochasticProfile"]


@dataclass(frozen=True)
class SRConversion:
    """One conversion of a profile: ``fmt`` from ``source`` with the word layout ``lanes``."""

    fmt: str
    source: str
    """The dtype the instruction reads ("float32", "float16")."""
    lanes: tuple[tuple[int, int], ...]
    """Per element of a word's group, in memory order: (lowest bit, width) of its random bits."""
    overflow: Overflow = Overflow.SATURATE
    nan_to_max: bool = False
    """NaN input gives +max (formats without NaN under ``.satfinite``)."""
    instruction: str = ""


@dataclass(frozen=True, kw_only=True)
class StochasticProfile(Profile):
    """A stochastic-rounding instruction family: ``quantize(x, fmt, rbits=words)`` gives what the
    chip computes for the random words ``words`` (one uint32 per instruction, elements grouped in
    memory order), or, with ``seed=``, for words drawn from the counter-based generator."""

    conversions: tuple[SRConversion, ...] = ()

    def formats(self) -> list[str]:
        return [c.fmt for c in self.conversions]

    def conversion(self, fmt: str) -> SRConversion:
        name = getattr(fmt, "name", fmt)
        for c in self.conversions:
            if c.fmt == name:
                return c
        msg = (
            f"profile {self.name!r} has no conversion to format {name!r}; allowed: "
            f"{', '.join(self.formats())}; hint: profile({self.name!r}).formats()"
        )
        raise ValueError(msg)

    def words_needed(self, fmt: str, n: int) -> int:
        """How many 32-bit random words ``n`` elements take (one per instruction)."""
        k = len(self.conversion(fmt).lanes)
        return -(-n // k)

    def quantize(self, x, fmt, *, rbits=None, seed=None, stream=0, offset=0):
        """``x`` (a NumPy array of the instruction's source dtype) converted as the hardware
        does. ``rbits``: uint32 words, ``words_needed(fmt, x.size)`` of them, in the order of
        the instructions (elements in C order, grouped ``len(lanes)`` per word); or ``seed``
        (with ``stream``, ``offset`` counting words) for the counter-based words."""
        c = self.conversion(fmt)
        x = np.asarray(x)
        if x.dtype != np.dtype(c.source):
            msg = (
                f"x has dtype {x.dtype}, and {c.instruction or self.name} reads {c.source}; "
                f"hint: x.astype(numpy.{c.source})"
            )
            raise TypeError(msg)
        words = self._words(c, x.size, rbits, seed, stream, offset)
        widths = {w for _, w in c.lanes}
        r = widths.pop()
        u = lane_bits(words, x.size, c.lanes).reshape(x.shape)
        if c.nan_to_max:
            x = np.where(np.isnan(x), np.array(np.inf, x.dtype), x)  # .satfinite: +max
        return _quantize(
            x, c.fmt, rounding=Rounding.STOCHASTIC, rbits=u, random_bits=r, overflow=c.overflow
        )

    def _words(self, c: SRConversion, n, rbits, seed, stream, offset):
        need = -(-n // len(c.lanes))
        if rbits is None:
            if seed is None or isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
                msg = (
                    f"seed={seed!r}: without rbits= the profile draws one counter-based word per "
                    "instruction and needs an integer seed; hint: seed=0, or pass rbits="
                )
                raise ValueError(msg)
            return counter_words(need, int(seed), stream, offset)
        if seed is not None:
            msg = f"seed={seed!r} does not apply with rbits=; hint: leave seed out"
            raise ValueError(msg)
        w = np.asarray(rbits)
        if w.dtype != np.uint32 or w.size != need:
            msg = (
                f"rbits must be {need} uint32 words (one per instruction, {len(c.lanes)} "
                f"element(s) each) for {n} elements, got dtype {w.dtype} and {w.size} words; "
                f"hint: numpy.asarray(words, dtype=numpy.uint32) of size {need}"
            )
            raise ValueError(msg)
        return w.reshape(-1)


# ---- NVIDIA sm_100a / sm_103a: cvt.rs ------------------------------------------------------------
# Operands in the ISA: `cvt.rs.f16x2.f32 d, a, b, rbits` puts a in d[31:16] and b in d[15:0]; the
# x4 forms put a in the top lane of d and f in the lowest. Elements here are in memory order
# (little endian), so element 0 of a group is the lowest lane: b of x2, f of x4.
_X4_16 = ((0, 16), (0, 16), (16, 16), (16, 16))  # f, e share rbits[15:0]; b, a share [31:16]
_PTX = "PTX ISA 8.7+, 'Data Movement and Conversion Instructions: cvt', .rs rounding modifier"
register_profile(
    StochasticProfile(
        name="nvidia-sm100-cvt.rs",
        emulates="NVIDIA Blackwell (sm_100a/sm_103a) cvt.rs stochastic-rounding conversions "
        "from float32",
        sources=(
            _PTX + " (cvt.rs{.relu}{.satfinite}.{f16x2,bf16x2}.f32; "
            "cvt.rs{.relu}.satfinite.{e4m3x4,e5m2x4,e2m3x4,e3m2x4,e2m1x4}.f32): rbits lane split",
            "NVIDIA/TransformerEngine transformer_engine/common/util/ptx.cuh (d0067d0): 8 random "
            "bits per element for cvt.rs.satfinite.e2m1x4.f32; rbits 0x80008000 as round-half-away",
        ),
        uncertain=(
            "x4 FP8/FP6 forms: the ISA says a and b share rbits[31:16] (e and f rbits[15:0]) and "
            "not how the pair is decorrelated; the profile gives both the same 16 bits (a "
            "third-party measurement reports 8 bits each, one bit-reversed)",
            "e2m1x4: which byte of which 16-bit half serves a, b, e, f; assumed a=[31:24], "
            "b=[15:8], e=[23:16], f=[7:0]",
            "destination-subnormal results: the random bits are assumed aligned below the "
            "destination's last place, as for normal results",
            "f16x2: rbits[31:29] and [15:13] are ignored (the ISA says they are 0)",
            "FP6 NaN input: assumed +max like e2m1 under .satfinite",
        ),
        confidence="documented",
        conversions=(
            SRConversion(
                "bfloat16",
                "float32",
                ((0, 16), (16, 16)),
                Overflow.OWN,
                instruction="cvt.rs.bf16x2.f32",
            ),  # fmt: skip
            SRConversion(
                "float16",
                "float32",
                ((0, 13), (16, 13)),
                Overflow.OWN,
                instruction="cvt.rs.f16x2.f32",
            ),  # fmt: skip
            SRConversion(
                "float8_e4m3fn", "float32", _X4_16, instruction="cvt.rs.satfinite.e4m3x4.f32"
            ),  # fmt: skip
            SRConversion(
                "float8_e5m2", "float32", _X4_16, instruction="cvt.rs.satfinite.e5m2x4.f32"
            ),  # fmt: skip
            SRConversion(
                "float6_e2m3fn",
                "float32",
                _X4_16,
                nan_to_max=True,
                instruction="cvt.rs.satfinite.e2m3x4.f32",
            ),  # fmt: skip
            SRConversion(
                "float6_e3m2fn",
                "float32",
                _X4_16,
                nan_to_max=True,
                instruction="cvt.rs.satfinite.e3m2x4.f32",
            ),  # fmt: skip
            SRConversion(
                "float4_e2m1fn",
                "float32",
                ((0, 8), (16, 8), (8, 8), (24, 8)),
                nan_to_max=True,
                instruction="cvt.rs.satfinite.e2m1x4.f32",
            ),  # fmt: skip
        ),
    )
)

# ---- AMD CDNA3 (gfx942, MI300) and gfx950 (MI355): v_cvt_sr_fp8_f32 / v_cvt_sr_bf8_f32 ----------
register_profile(
    StochasticProfile(
        name="amd-gfx942-cvt-sr",
        emulates="AMD MI300 (gfx942) V_CVT_SR_FP8_F32 / V_CVT_SR_BF8_F32 into the FNUZ FP8 types, "
        "one 32-bit random operand per element",
        sources=(
            "hipBLASLt hipblaslt_float8_bc.h hip_f8_impl::cast_to_f8 (also MIOpen, rocBLAS, "
            "composable_kernel): adds rng & ((1 << (23 - wm)) - 1) to the mantissa, keeps the carry",
            "ROCm builtin __builtin_amdgcn_cvt_sr_fp8_f32(float, int rand, int old, int sel)",
        ),
        uncertain=(
            "which bits of src1 the silicon uses: the gfx942 host model uses the LOW 20 (fp8) / "
            "21 (bf8) bits, the gfx950 OCP model the high ones (CDNA3 ISA text not read)",
            "overflow: the model clamps to max finite with clip (assumed; without it, NaN)",
        ),
        confidence="inferred",
        conversions=(
            SRConversion("float8_e4m3fnuz", "float32", ((0, 20),), instruction="v_cvt_sr_fp8_f32"),
            SRConversion("float8_e5m2fnuz", "float32", ((0, 21),), instruction="v_cvt_sr_bf8_f32"),
        ),
    )
)
register_profile(
    StochasticProfile(
        name="amd-gfx950-cvt-sr",
        emulates="AMD MI355 (gfx950) V_CVT_SR_FP8_F32 / V_CVT_SR_BF8_F32 into OCP E4M3/E5M2, "
        "one 32-bit random operand per element",
        sources=(
            "ROCm amd_hip_ocp_host.hpp fcbx::from_float_sr: adds seed >> (9 + m) (the top 20/21 "
            "bits) aligned one past the kept mantissa bit, then truncates",
        ),
        uncertain=(
            "a host model, not the ISA text; overflow assumed saturating (clamp) as the HIP "
            "saturating wrappers do",
        ),
        confidence="inferred",
        conversions=(
            SRConversion("float8_e4m3fn", "float32", ((12, 20),), instruction="v_cvt_sr_fp8_f32"),
            SRConversion("float8_e5m2", "float32", ((11, 21),), instruction="v_cvt_sr_bf8_f32"),
        ),
    )
)

# ---- Intel Xe: SRND ---------------------------------------------------------------------------
register_profile(
    StochasticProfile(
        name="intel-xe-srnd",
        emulates="Intel Xe vISA SRND (opcode 0x1e): float32 -> float16 with Src1[12:0], "
        "float16 -> bf8 (E5M2) with Src1[7:0]",
        sources=(
            "intel-graphics-compiler documentation/visa/instructions/SRND.md (IGC 1.0.17791): the "
            "random bits are added to the source mantissa with Src1[0] at mantissa bit 0, then "
            "the sum is truncated",
        ),
        uncertain=(
            "destination-subnormal results: the document aligns the random bits with the source "
            "mantissa's lowest bit (LSB), which for subnormal results perturbs only low bits; "
            "this profile aligns them below the destination's last place (as for normal results, "
            "where both readings agree) and so differs there",
        ),
        confidence="documented",
        conversions=(
            SRConversion("float16", "float32", ((0, 13),), Overflow.OWN, instruction="SRND f->hf"),
            SRConversion(
                "float8_e5m2", "float16", ((0, 8),), Overflow.OWN, instruction="SRND hf->bf8"
            ),  # fmt: skip
        ),
    )
)
