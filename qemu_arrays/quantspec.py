"""``QuantSpec``: one quantization, described once, for PyTorch and JAX alike.

A frozen record of everything ``qemu_arrays.quantize`` takes besides the array (the format, its
scale rule and granularity, the rounding) and the gradient estimator of the backward pass.
``qemu_arrays.torch.fake_quant``, ``qemu_arrays.torch.quantize_model`` and
``qemu_arrays.jax.fake_quant`` take a spec or a format name (then :func:`as_spec`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from qemu_arrays.formats.block_spec import BlockFormat
from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.enums import Overflow, Rounding
from qemu_arrays.request import Op, round_request

__all__ = ["QuantSpec", "as_spec"]


@dataclass(frozen=True)
class QuantSpec:
    """What to quantize to, and how; the arguments of ``qemu_arrays.quantize`` but the array.

    ``scale``: None (the format's own values), ``"absmax"`` (or another rule of
    docs/scaled.md), a number or an array; ``axis``/``block_size`` give one scale per channel or
    per group; ``scale_format`` rounds the scales themselves (E8M0, E4M3, ...). ``estimator``: the
    gradient estimator of the backward pass (None: the straight-through estimator). The fields
    are checked when the spec is built, with the library's usual errors.
    """

    format: Any
    scale: Any = None
    axis: int | None = None
    block_size: int | None = None
    scale_format: Any = None
    rounding: Rounding = Rounding.NEAREST_EVEN
    overflow: Overflow = Overflow.OWN
    seed: int | None = None
    stream: int = 0
    estimator: Any = None

    def __post_init__(self):
        fmt = get_format(self.format)
        object.__setattr__(self, "format", fmt)
        if isinstance(self.rounding, str):  # "stochastic" as Rounding.STOCHASTIC
            object.__setattr__(self, "rounding", _enum(Rounding, "rounding", self.rounding))
        if isinstance(self.overflow, str):
            object.__setattr__(self, "overflow", _enum(Overflow, "overflow", self.overflow))
        scale = self.scale
        if hasattr(scale, "shape") or isinstance(scale, (list, tuple)):
            scale = 1.0  # arrays are checked against the data's shape when used
        round_request(
            Op.QUANTIZE, fmt, rounding=self.rounding, overflow=self.overflow, seed=self.seed,
            stream=self.stream, offset=0, random_bits=None, scale=scale, zero_point=None,
            via_float32=False, axis=None, block_size=self.block_size,
            scale_format=self.scale_format, symmetric=None, percentile=None,
        )  # fmt: skip
        if self.axis is not None and (
            isinstance(self.axis, bool) or not isinstance(self.axis, int)
        ):
            msg = f"axis must be an int or None, got {self.axis!r}; hint: axis=0 (per channel)"
            raise TypeError(msg)
        if self.estimator is not None:
            from qemu_arrays.estimators import Estimator

            if not isinstance(self.estimator, Estimator):
                msg = (
                    f"estimator must be a qemu_arrays.estimators.Estimator or None, got "
                    f"{self.estimator!r}; hint: STE(), DSQ(k=3.0), PWL()"
                )
                raise TypeError(msg)

    def __repr__(self) -> str:
        parts = [repr(self.format.name)]
        for f in dataclasses.fields(self)[1:]:
            v = getattr(self, f.name)
            if v == f.default if not hasattr(v, "shape") else False:
                continue
            if f.name == "scale_format":
                v = getattr(get_format(v), "name", v)
            elif isinstance(v, (Rounding, Overflow)):
                v = f"{type(v).__name__}.{v.name}"
                parts.append(f"{f.name}={v}")
                continue
            parts.append(f"{f.name}={v!r}")
        return f"QuantSpec({', '.join(parts)})"

    @property
    def is_block(self) -> bool:
        return isinstance(self.format, BlockFormat)

    def quantize_kwargs(self) -> dict:
        """The keywords of ``qemu_arrays.quantize`` (those that differ from its defaults)."""
        kw = {
            "scale": self.scale, "axis": self.axis, "block_size": self.block_size,
            "scale_format": self.scale_format, "seed": self.seed,
        }  # fmt: skip
        kw = {k: v for k, v in kw.items() if v is not None}
        if self.rounding is not Rounding.NEAREST_EVEN:
            kw["rounding"] = self.rounding
        if self.overflow is not Overflow.OWN:
            kw["overflow"] = self.overflow
        if self.stream:
            kw["stream"] = self.stream
        return kw

    def replace(self, **changes) -> QuantSpec:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)


def _enum(cls, name, value):
    try:
        return cls[value.upper()]
    except KeyError:
        allowed = ", ".join(repr(m.name.lower()) for m in cls)
        msg = f"{name} must be a {cls.__name__} member or one of {allowed}, got {value!r}"
        raise ValueError(msg) from None


def as_spec(spec_or_format, *, default_scale=None, **fields) -> QuantSpec:
    """A :class:`QuantSpec` from a spec (fields replaced by ``fields``) or a format name/object
    (with ``default_scale`` for integer and float formats when ``fields`` give no scale)."""
    if isinstance(spec_or_format, QuantSpec):
        return spec_or_format.replace(**fields) if fields else spec_or_format
    fmt = get_format(spec_or_format)
    if "scale" not in fields and default_scale is not None and not isinstance(fmt, BlockFormat):
        fields["scale"] = default_scale
    return QuantSpec(fmt, **fields)
