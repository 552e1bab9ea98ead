"""Block formats: an element format whose blocks share a scale stored in a scale format.

:class:`BlockFormat` composes two descriptors, as the OCP Microscaling (MX) v1.0 specification
does: ``element`` (the per-value format: FP8/FP6/FP4 or a fixed-point integer) and ``scale`` (the
shared per-block scale: E8M0 for MX, E4M3 for NVFP4), plus the block size, the rule that turns a
block's largest magnitude into a scale (:class:`ScaleRule`), and, for two-level formats such as
NVFP4, a per-tensor FP32 scale. The semantics (how the scale is computed and how elements are
rounded) are defined in ``docs/blocks.md`` and implemented in :mod:`qemu_arrays.blocks`.

The named block formats (``mxfp8_e4m3``, ``mxfp8_e5m2``, ``mxfp6_e2m3``, ``mxfp6_e3m2``,
``mxfp4_e2m1``, ``mxint8``, ``nvfp4``) are built in :mod:`qemu_arrays.formats.catalog`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qemu_arrays.formats.enums import ScaleRule
from qemu_arrays.formats.spec import FloatFormat, IntFormat, check_name

__all__ = ["BlockFormat", "ScaleRule"]


def _check_bool(name, value):
    if not isinstance(value, bool):
        msg = f"{name} must be a bool, got {value!r} ({type(value).__name__}); hint: True or False"
        raise TypeError(msg)


@dataclass(frozen=True, kw_only=True)
class BlockFormat:
    """Blocks of ``block_size`` elements along one axis sharing one scale.

    Parameters
    ----------
    element
        The element format (``FloatFormat``, or ``IntFormat`` read as fixed point with
        ``element_fraction_bits`` fraction bits, as MXINT8's 1.6 two's complement).
    scale
        The scale format: E8M0 (a power of two, MX) or a float format such as E4M3 (NVFP4).
    block_size
        Elements per block (32 for MX, 16 for NVFP4).
    scale_rule
        For power-of-two scales: how the block maximum becomes the scale (:class:`ScaleRule`).
    tensor_scale
        True for two-level formats (NVFP4): a float32 per-tensor scale multiplies the block
        scales; the block scale is rounded into ``scale`` (round to nearest even, saturating,
        subnormals kept).
    element_fraction_bits
        Integer elements only: the value of code ``k`` is ``k * 2^-element_fraction_bits``.
    name
        Display name (not part of the value).
    """

    element: FloatFormat | IntFormat
    scale: FloatFormat
    block_size: int
    scale_rule: ScaleRule = ScaleRule.FLOOR
    tensor_scale: bool = False
    element_fraction_bits: int = 0
    name: str = field(default="", compare=False)

    kind = "block"

    def __post_init__(self):
        if not isinstance(self.element, (FloatFormat, IntFormat)):
            msg = (
                f"element must be a FloatFormat or IntFormat, got {self.element!r}; hint: "
                "qemu_arrays.get_format('float4_e2m1fn')"
            )
            raise TypeError(msg)
        if not isinstance(self.scale, FloatFormat):
            msg = (
                f"scale must be a FloatFormat (E8M0, E4M3, ...), got {self.scale!r}; hint: "
                "qemu_arrays.get_format('float8_e8m0fnu')"
            )
            raise TypeError(msg)
        bs = self.block_size
        if isinstance(bs, bool) or not isinstance(bs, int) or not 1 <= bs <= 1 << 20:
            msg = f"block_size must be an int in [1, 2**20], got {bs!r}; hint: 32 for MX"
            raise ValueError(msg)
        try:
            rule = ScaleRule(self.scale_rule)
        except ValueError:
            allowed = ", ".join(f"ScaleRule.{r.name}" for r in ScaleRule)
            msg = (
                f"scale_rule must be one of {allowed}, got {self.scale_rule!r}; hint: "
                "scale_rule=qemu_arrays.ScaleRule.FLOOR (OCP MX)"
            )
            raise ValueError(msg) from None
        object.__setattr__(self, "scale_rule", rule)
        _check_bool("tensor_scale", self.tensor_scale)
        check_name(self.name)
        fb = self.element_fraction_bits
        if isinstance(fb, bool) or not isinstance(fb, int) or not 0 <= fb <= 31:
            msg = (
                f"element_fraction_bits must be an int in [0, 31], got {fb!r}; hint: 6 for "
                "MXINT8's 1.6 fixed point"
            )
            raise ValueError(msg)
        if fb and not isinstance(self.element, IntFormat):
            msg = (
                f"element_fraction_bits={fb} applies to integer elements only, not "
                f"{self.element.name}; hint: leave it 0"
            )
            raise ValueError(msg)
        if self.element.bits > 16:
            msg = (
                f"element must have at most 16 bits (block element codes are stored as "
                f"uint8/uint16), got {self.element.name} with {self.element.bits}; hint: an FP8, "
                "FP6, FP4 or int8 element"
            )
            raise ValueError(msg)
        if self.scale.bits > 8:
            msg = (
                f"scale must have at most 8 bits (block scale codes are stored as uint8), got "
                f"{self.scale.name} with {self.scale.bits}; hint: float8_e8m0fnu (MX) or "
                "float8_e4m3fn with tensor_scale=True (NVFP4)"
            )
            raise ValueError(msg)
        if self.power_of_two_scale:
            if self.tensor_scale:
                msg = (
                    f"tensor_scale=True needs a scale format with mantissa bits (e.g. E4M3), "
                    f"not {self.scale.name}; hint: tensor_scale=False for the MX rule"
                )
                raise ValueError(msg)
        elif not isinstance(self.element, FloatFormat):
            msg = (
                f"a scale format with mantissa bits ({self.scale.name}) needs a float element "
                f"format, got element {self.element.name}; hint: scale=float8_e8m0fnu for "
                "integer elements"
            )
            raise ValueError(msg)
        elif not self.tensor_scale:
            msg = (
                f"scale {self.scale.name} has mantissa bits, which only the two-level rule of "
                "NVFP4 computes (block scale = scale format(amax / (element max * tensor "
                "scale))): pass tensor_scale=True; a power-of-two scale format (mantissa_bits=0, "
                "e.g. float8_e8m0fnu) takes the MX rule; hint: tensor_scale=True"
            )
            raise ValueError(msg)
        if not self.element.signed:
            msg = (
                f"block formats need a signed element format, got element {self.element.name}; "
                "hint: a signed FP or int element"
            )
            raise ValueError(msg)
        if not self.name:
            object.__setattr__(
                self, "name", f"block{bs}_{self.element.name}_{self.scale.name}_{rule.name}"
            )

    # ---- derived values -------------------------------------------------------------------
    @property
    def power_of_two_scale(self) -> bool:
        """Whether the scale format holds only powers of two (no mantissa bits, like E8M0)."""
        return self.scale.mantissa_bits == 0

    @property
    def bits(self) -> int:
        """Bits of one element code."""
        return self.element.bits

    @property
    def scale_bits(self) -> int:
        return self.scale.bits

    @property
    def bits_per_value(self) -> float:
        """Average storage per element: element bits plus the block scale's share."""
        return self.element.bits + self.scale.bits / self.block_size

    @property
    def element_emax(self) -> int:
        """Exponent of the element format's largest power of two (``emax_elem`` of the spec)."""
        if isinstance(self.element, FloatFormat):
            return self.element.emax
        return self.element.max.bit_length() - 1 - self.element_fraction_bits

    @property
    def element_max(self) -> float:
        """Largest element magnitude (fixed-point value for integer elements)."""
        if isinstance(self.element, FloatFormat):
            return self.element.max
        return self.element.max / (1 << self.element_fraction_bits)

    def with_rule(self, rule: ScaleRule) -> BlockFormat:
        """The same format with another scale rule (the name gets the rule appended)."""
        from dataclasses import replace

        rule = ScaleRule(rule)
        return replace(self, scale_rule=rule, name=f"{self.name.split(':')[0]}:{rule.name}")

    def __repr__(self):
        extra = ", tensor_scale=True" if self.tensor_scale else ""
        if self.element_fraction_bits:
            extra += f", element_fraction_bits={self.element_fraction_bits}"
        return (
            f"BlockFormat(name={self.name!r}, element={self.element.name}, "
            f"scale={self.scale.name}, block_size={self.block_size}, "
            f"scale_rule=ScaleRule.{self.scale_rule.name}{extra})"
        )
