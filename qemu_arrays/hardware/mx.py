"""MX block-scale profiles: the shared-exponent rule a specification or library uses.

A profile quantizes with the registered MX format whose scale rule is replaced by its own
(``ScaleRule``, ``docs/blocks.md``); elements saturate, as in every MX stack below, and round to
nearest even (microxcaling: ties away from zero) unless the call passes ``rounding=``. Library
bugs that the profile does not reproduce are listed in ``uncertain``.
"""

from __future__ import annotations

import dataclasses

from qemu_arrays.api import encode as _encode
from qemu_arrays.api import quantize as _quantize
from qemu_arrays.formats.block_spec import BlockFormat
from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.enums import Rounding, ScaleRule
from qemu_arrays.hardware.registry import Profile, register_profile

__all__ = ["MXProfile"]

_MX = ("mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4_e2m1")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MXProfile(Profile):
    """``quantize``/``encode`` of MX formats under the profile's scale rule."""

    scale_rule: ScaleRule = ScaleRule.FLOOR
    rounding: Rounding = Rounding.NEAREST_EVEN
    """The elements' rounding when the call passes none."""
    formats: tuple[str, ...] = _MX

    def block_format(self, fmt) -> BlockFormat:
        """The MX format ``fmt`` (a name of ``formats``) with this profile's scale rule."""
        name = getattr(fmt, "name", fmt)
        if name not in self.formats:
            msg = (
                f"profile {self.name!r} has no format {name!r}; allowed: "
                f"{', '.join(self.formats)}; hint: profile({self.name!r}).formats"
            )
            raise ValueError(msg)
        base = get_format(name)
        return dataclasses.replace(base, scale_rule=self.scale_rule, name=f"{name}@{self.name}")

    def quantize(self, x, fmt, **kw):
        """``qemu_arrays.quantize`` with this profile's block format (same keywords)."""
        kw.setdefault("rounding", self.rounding)
        return _quantize(x, self.block_format(fmt), **kw)

    def encode(self, x, fmt, **kw):
        """``qemu_arrays.encode`` with this profile's block format (same keywords)."""
        kw.setdefault("rounding", self.rounding)
        return _encode(x, self.block_format(fmt), **kw)


_TORCHAO = "pytorch/ao torchao/prototype/mx_formats/mx_tensor.py (0.18.0 wheel) to_mx / to_dtype"
_TORCHAO_BUGS = (
    "torchao 0.18 divides blocks whose scale code is 0 (2^-127) by 2^-126, so they dequantize "
    "to half the input (FLOOR/CEIL/EVEN); not reproduced (fixed in torchao after 0.18)",
    "torchao 0.18 treats a non-NaN block with an infinity as finite (a finite scale code, "
    "elements clamped); here such a block gets a NaN scale",
)
register_profile(
    MXProfile(
        name="ocp-mx",
        emulates="OCP Microscaling Formats (MX) v1.0: shared exponent floor(log2 amax) - emax, "
        "elements rounded to nearest even with saturation",
        sources=("OCP Microscaling Formats (MX) Specification v1.0, section 6.3",),
        uncertain=(
            "the specification leaves the scale of an all-zero block open (here 2^-127)",
            "microxcaling, the reference code, rounds elements half away from zero by default "
            "and computes log2 in float32 (one too large within 2^-24 below a power of two)",
        ),
        confidence="documented",
        scale_rule=ScaleRule.FLOOR,
    )
)
for _mode, _rule, _what in (
    ("floor", ScaleRule.FLOOR, "FLOOR (the exponent field of amax minus emax)"),
    (
        "ceil",
        ScaleRule.CEIL_POW2,
        "CEIL (the exponent field of amax, plus one if its fraction "
        "field is not 0, minus emax: ScaleRule.CEIL_POW2, not ScaleRule.CEIL)",
    ),
    ("even", ScaleRule.EVEN, "EVEN (amax rounded at m+1 bits, then FLOOR)"),
    ("rceil", ScaleRule.RCEIL, "RCEIL (ceil(log2(amax / max)), cuBLAS's rule)"),
):
    register_profile(
        MXProfile(
            name=f"torchao-mx-{_mode}",
            emulates=f"torchao MX quantization, ScaleCalculationMode.{_what}",
            sources=(_TORCHAO,),
            uncertain=_TORCHAO_BUGS
            + (
                (
                    "torchao 0.18's CPU RCEIL takes ceil(log2) of a float32, one too small for "
                    "amax / max within a few ulps above a power of two; not reproduced (exact "
                    "here, as torchao after 0.18 and the hardware cvt.rp)",
                )
                if _rule is ScaleRule.RCEIL
                else ()
            ),
            confidence="tested",
            scale_rule=_rule,
        )
    )

_MXX = "microsoft/microxcaling mx/mx_ops.py _quantize_mx, _shared_exponents; mx/elemwise_ops.py"
register_profile(
    MXProfile(
        name="microxcaling",
        emulates="microxcaling (OCP's MX reference code), _quantize_mx with round='nearest' "
        "(its default) on the Python path: shared exponent floor(log2 amax) - emax, elements "
        "rounded to nearest with ties away from zero, saturating",
        sources=(f"{_MXX} (commit 7bc41952)",),
        uncertain=(
            "microxcaling takes floor(torch.log2(amax)) of a float32: within 2^-24 below a "
            "power of two it is one too large (amax 1024 (1 - 2^-24) with E4M3 gives the scale "
            "4, here 2); not reproduced (exact here)",
            "its element rounding floor(|a| + 0.5) is a float32 addition: the one float32 "
            "value 0.5 - 2^-25 of a scaled element rounds to 1 there, to 0 here",
            "the custom CUDA/C++ extension path (custom_cuda=True) was not read",
        ),
        confidence="tested",
        scale_rule=ScaleRule.FLOOR,
        rounding=Rounding.NEAREST_AWAY,
        formats=(*_MX, "mxint8"),
    )
)
register_profile(
    MXProfile(
        name="quark",
        emulates="AMD Quark fake_quantize_mx with scale_calculation_mode='even' (its default): "
        "amax rounded at m+1 significant bits by adding half an ulp to its float32 bits, then "
        "FLOOR; FP8 elements clamped to +-max and cast (nearest even)",
        sources=(
            "amd/Quark quark/torch/quantization/utils.py even_round, get_dtype_params; "
            "quark/torch/kernel/hw_emulation/hw_emulation_interface.py fake_quantize_mx "
            "(commit 1d27b558)",
        ),
        uncertain=(
            "rounding half up at m+1 bits (Quark) and half to even (ScaleRule.EVEN) move the "
            "scale at the same inputs (the one tie that can carry has an odd last bit)",
            "FP4/FP6 elements go through Quark's C++ fake_quantize_to_low_precision_fp "
            "(round_mode 0), which was not read: nearest even assumed",
            "Quark rounds an MXINT8 amax at 9 significant bits (mbits 8), not at the 7 of "
            "ScaleRule.EVEN, so MXINT8 is not offered here",
            "an all-zero block gets Quark's scale 2^(-126 - emax) clamped (values are zero "
            "either way); here 2^-127",
        ),
        confidence="documented",
        scale_rule=ScaleRule.EVEN,
    )
)
