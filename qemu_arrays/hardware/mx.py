"""MX block-scale profiles: the shared-exponent rule a specification or library uses.

A profile quantizes with the registered MX format whose scale rule is replaced by its own
(``ScaleRule``, ``docs/blocks.md``); elements round to nearest even and saturate, as every MX
stack below does. Library bugs that the profile does not reproduce are listed in ``uncertain``.
"""

from __future__ import annotations

import dataclasses

from qemu_arrays.api import encode as _encode
from qemu_arrays.api import quantize as _quantize
from qemu_arrays.formats.block_spec import BlockFormat
from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.enums import ScaleRule
from qemu_arrays.hardware.registry import Profile, register_profile

__all__ = ["MXProfile"]

_MX = ("mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4_e2m1")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MXProfile(Profile):
    """``quantize``/``encode`` of MX formats under the profile's scale rule."""

    scale_rule: ScaleRule = ScaleRule.FLOOR
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
        return _quantize(x, self.block_format(fmt), **kw)

    def encode(self, x, fmt, **kw):
        """``qemu_arrays.encode`` with this profile's block format (same keywords)."""
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
for _rule, _what in (
    (ScaleRule.FLOOR, "ScaleCalculationMode.FLOOR (the exponent field of amax minus emax)"),
    (ScaleRule.EVEN, "ScaleCalculationMode.EVEN (amax rounded at m+1 bits, then FLOOR)"),
    (ScaleRule.RCEIL, "ScaleCalculationMode.RCEIL (ceil(log2(amax / max)), cuBLAS's rule)"),
):
    register_profile(
        MXProfile(
            name=f"torchao-mx-{_rule.name.lower()}",
            emulates=f"torchao MX quantization, {_what}",
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
