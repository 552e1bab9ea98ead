"""A call of ``quantize``/``encode``/``decode``, normalised once: the :class:`Request`.

The façade (:mod:`qemu_arrays.api`) turns its keywords into a frozen :class:`Request` here,
checking everything that does not depend on the array: the format, the enums, the integers of the
random generator, and which keywords apply to the format's kind (a keyword that does not apply
is an error, never ignored). The dispatcher and the routes read the request; none of them looks
at the façade's signature or calls back into it.
"""

from __future__ import annotations

import enum
import numbers
from dataclasses import dataclass, field, replace
from typing import Any

from qemu_arrays.formats.block_spec import BlockFormat
from qemu_arrays.formats.spec import FloatFormat, IntFormat, Overflow, Rounding
from qemu_arrays.validation import (
    check_block_size,
    check_bool,
    check_enum,
    check_format,
    check_nonnegative_int,
    check_random_bits,
    check_seed,
    check_tensor_scale,
    check_zero_point,
)

__all__ = ["SCALE_RULES", "Op", "Request", "decode_request", "round_request"]

#: the scale rules of scaled integer formats (docs/scaled.md)
SCALE_RULES = ("absmax", "percentile", "mse")
DEFAULT_SYMMETRIC = True
DEFAULT_PERCENTILE = 99.9


class Op(enum.Enum):
    """The three operations."""

    QUANTIZE = "quantize"
    ENCODE = "encode"
    DECODE = "decode"


@dataclass(frozen=True)
class Request:
    """One call, its keywords checked and normalised (defaults filled in).

    Array-valued keywords (``scale``, ``zero_point``, ``out``) are kept as the caller gave them
    (any array library); the route converts them.
    """

    op: Op
    fmt: FloatFormat | IntFormat | BlockFormat
    rounding: Rounding = Rounding.NEAREST_EVEN
    overflow: Overflow = Overflow.OWN
    seed: int | None = None
    stream: int = 0
    offset: int = 0
    random_bits: int | None = None
    """None: exact for the input (32 bits for 16/32-bit input, 53 for float64)."""
    via_float32: bool = False
    scale: Any = None
    """Integer formats: a number, an array or a rule name; NVFP4 (quantize/encode): the
    per-tensor scale; block formats (decode): the block scale codes."""
    zero_point: Any = None
    axis: int | None = None
    block_size: int | None = None
    scale_format: FloatFormat | None = None
    symmetric: bool = DEFAULT_SYMMETRIC
    percentile: float = DEFAULT_PERCENTILE
    tensor_scale: Any = None
    """decode of two-level block formats: the per-tensor scale."""
    dtype: Any = None
    """decode: the output dtype as the caller named it (None: float32)."""
    out: Any = field(default=None, compare=False)

    @property
    def is_block(self) -> bool:
        return isinstance(self.fmt, BlockFormat)

    @property
    def is_int(self) -> bool:
        return isinstance(self.fmt, IntFormat)

    @property
    def scale_rule(self) -> str | None:
        """The scale rule's name when ``scale`` is one (integer formats), else None."""
        return self.scale if isinstance(self.scale, str) else None

    @property
    def scaled(self) -> bool:
        """Whether ``encode`` returns an ``Encoded`` (codes and scales): block formats always,
        integer formats when the scale is a rule or a granularity or scale format is given."""
        if self.is_block:
            return True
        return self.is_int and (
            self.scale_rule is not None
            or self.axis is not None
            or self.block_size is not None
            or self.scale_format is not None
        )

    def with_offset(self, offset: int) -> Request:
        """The same request for a chunk whose first element is element ``offset`` of the whole."""
        return replace(self, offset=offset % (1 << 64))


def _not_for(fmt, given: dict, why: str):
    names = ", ".join(f"{k}={v!r}" for k, v in given.items())
    msg = f"{names} does not apply to {fmt.name!r}: {why}"
    if "hint:" not in why:
        msg += f"; hint: leave {', '.join(given)} out"
    raise ValueError(msg)


def _check_scale_format(scale_format):
    if scale_format is None:
        return None
    fmt = check_format(scale_format, "scale_format")
    if not isinstance(fmt, FloatFormat):
        msg = (
            f"scale_format must be a float format (float32, float16, bfloat16, "
            f"float8_e8m0fnu, float8_e4m3fn, ...), got {fmt.name!r}; hint: "
            "scale_format='float16'"
        )
        raise ValueError(msg)
    return fmt


def _check_rule_options(scale, symmetric, percentile):
    """(symmetric, percentile) with defaults; they apply only to a scale rule."""
    rule = scale if isinstance(scale, str) else None
    if rule is not None and rule not in SCALE_RULES:
        msg = (
            f"scale rule must be one of {SCALE_RULES} (or a number/array), got {scale!r}; "
            "hint: scale='absmax'"
        )
        raise ValueError(msg)
    if symmetric is not None:
        symmetric = check_bool("symmetric", symmetric)
        if rule is None:
            msg = (
                f"symmetric={symmetric!r} applies to a scale rule (scale='absmax', ...) only; "
                "hint: with a given scale pass zero_point= instead"
            )
            raise ValueError(msg)
    if percentile is not None:
        if isinstance(percentile, bool) or not isinstance(percentile, numbers.Real):
            msg = f"percentile must be a number in (0, 100], got {percentile!r}; hint: 99.9"
            raise TypeError(msg)
        if not 0 < float(percentile) <= 100:  # (NaN fails too)
            msg = f"percentile must be in (0, 100], got {percentile}; hint: 99.9"
            raise ValueError(msg)
        if rule != "percentile":
            msg = (
                f"percentile={percentile!r} applies to scale='percentile' only, got "
                f"scale={scale!r}; hint: scale='percentile'"
            )
            raise ValueError(msg)
    return (
        DEFAULT_SYMMETRIC if symmetric is None else symmetric,
        DEFAULT_PERCENTILE if percentile is None else float(percentile),
    )


def _scalar_zero_point(zero_point, fmt):
    """A zero point given as one number, checked against the format's codes (an int); arrays
    are the route's to check (they may live in any library)."""
    if zero_point is None or hasattr(zero_point, "shape") or isinstance(zero_point, (list, tuple)):
        return zero_point
    return int(check_zero_point(zero_point, fmt))


def _given(**kw):
    return {k: v for k, v in kw.items() if v is not None}


def round_request(
    op, format, *, rounding, overflow, seed, stream, offset, random_bits, scale, zero_point,
    via_float32, axis, block_size, scale_format, symmetric, percentile, out=None,
) -> Request:  # fmt: skip
    """The :class:`Request` of ``quantize`` (``op`` QUANTIZE) or ``encode`` (ENCODE)."""
    fmt = check_format(format)
    rounding = check_enum("rounding", rounding, Rounding)
    overflow = check_enum("overflow", overflow, Overflow)
    stream = check_nonnegative_int("stream", stream)
    offset = check_nonnegative_int("offset", offset) % (1 << 64)  # as the seed: modulo 2**64
    seed = check_seed(seed, needed=rounding is Rounding.STOCHASTIC)
    random_bits = check_random_bits(random_bits)
    via_float32 = check_bool("via_float32", via_float32)
    common = {
        "op": op, "fmt": fmt, "rounding": rounding, "overflow": overflow, "seed": seed,
        "stream": stream, "offset": offset, "random_bits": random_bits,
        "via_float32": via_float32, "out": out,
    }  # fmt: skip
    if isinstance(fmt, BlockFormat):
        extra = _given(
            zero_point=zero_point, scale_format=scale_format, symmetric=symmetric,
            percentile=percentile,
        )  # fmt: skip
        if extra:
            _not_for(fmt, extra, "a block format's scales come from its scale rule")
        if block_size is not None and block_size != fmt.block_size:
            msg = (
                f"block_size={block_size!r} does not match the block format {fmt.name!r}, whose "
                f"blocks hold {fmt.block_size} elements; hint: leave block_size out, or build a "
                "BlockFormat with another block_size"
            )
            raise ValueError(msg)
        if overflow not in (Overflow.OWN, Overflow.SATURATE):
            msg = (
                f"overflow={overflow!r} does not apply to the block format {fmt.name!r}: "
                "elements always saturate (the MX rule); allowed: Overflow.OWN, "
                "Overflow.SATURATE; hint: leave overflow out"
            )
            raise ValueError(msg)
        if scale is not None and not fmt.tensor_scale:
            msg = (
                f"scale={scale!r} (a per-tensor scale) applies to two-level formats such as "
                f"nvfp4 only, not {fmt.name!r}; hint: leave scale out (the block scales come "
                "from the data)"
            )
            raise ValueError(msg)
        if scale is not None:
            scale = check_tensor_scale(scale)
        return Request(**common, scale=scale, axis=axis, block_size=fmt.block_size)
    if isinstance(fmt, FloatFormat):
        extra = _given(
            scale=scale, zero_point=zero_point, axis=axis, block_size=block_size,
            scale_format=scale_format, symmetric=symmetric, percentile=percentile,
        )  # fmt: skip
        if extra:
            _not_for(
                fmt, extra, "scale/zero_point apply to integer formats, with their granularity "
                "(axis, block_size, scale_format, symmetric, percentile); hint: see "
                "docs/scaled.md",
            )  # fmt: skip
        return Request(**common)
    # integer formats
    if scale is None:
        msg = (
            f"integer format {fmt.name!r} needs scale= (the step between integer codes), e.g. "
            "scale=0.05, or a rule: scale='absmax' (per channel: axis=0); see docs/scaled.md"
        )
        raise ValueError(msg)
    if isinstance(scale, str) and zero_point is not None:
        msg = (
            f"zero_point={zero_point!r} does not apply with a scale rule (scale={scale!r}), "
            "which computes the zero point; hint: pass symmetric=False instead"
        )
        raise ValueError(msg)
    sym, pct = _check_rule_options(scale, symmetric, percentile)
    zero_point = _scalar_zero_point(zero_point, fmt)
    return Request(
        **common, scale=scale, zero_point=zero_point, axis=axis,
        block_size=check_block_size(block_size), scale_format=_check_scale_format(scale_format),
        symmetric=sym, percentile=pct,
    )  # fmt: skip


def decode_request(
    format, *, dtype, scale, zero_point, axis, block_size, tensor_scale, encoded=None
) -> Request:
    """The :class:`Request` of ``decode``; ``encoded`` is the ``Encoded`` tuple when one was
    given (its scales and granularity fill the keywords the caller left out)."""
    fmt = check_format(format)
    if encoded is not None:
        given = _given(scale=scale, zero_point=zero_point, block_size=block_size)
        if given:
            msg = (
                f"decode of an Encoded takes its scales from it; {', '.join(given)} must be left "
                "out (hint: decode(enc.codes, fmt, scale=...) to use other scales)"
            )
            raise ValueError(msg)
        scale, zero_point = encoded.scales, encoded.zero_points
        axis = encoded.axis if axis is None else axis
        block_size = encoded.block_size
        if tensor_scale is None:
            tensor_scale = encoded.tensor_scale
    if isinstance(fmt, BlockFormat):
        extra = _given(zero_point=zero_point)
        if extra:
            _not_for(fmt, extra, "block formats have no zero point")
        if block_size is not None and block_size != fmt.block_size:
            msg = (
                f"block_size={block_size!r} does not match {fmt.name!r} ({fmt.block_size}); "
                "hint: leave block_size out"
            )
            raise ValueError(msg)
        if tensor_scale is not None and not fmt.tensor_scale:
            _not_for(fmt, {"tensor_scale": tensor_scale}, "it has no per-tensor scale")
        if tensor_scale is not None:
            tensor_scale = check_tensor_scale(tensor_scale, "tensor_scale")
        if scale is None:
            msg = (
                f"decoding the block format {fmt.name!r} needs the scale codes (scale=None was "
                "given); hint: pass the Encoded tuple from encode, or scale=<scale codes>"
            )
            raise ValueError(msg)
        return Request(
            Op.DECODE, fmt, scale=scale, axis=axis, block_size=fmt.block_size,
            tensor_scale=tensor_scale, dtype=dtype,
        )  # fmt: skip
    if tensor_scale is not None:
        _not_for(fmt, {"tensor_scale": tensor_scale}, "it applies to two-level block formats")
    if isinstance(fmt, FloatFormat):
        extra = _given(scale=scale, zero_point=zero_point, axis=axis, block_size=block_size)
        if extra:
            _not_for(fmt, extra, "float codes decode without scales")
        return Request(Op.DECODE, fmt, dtype=dtype)
    if scale is None:
        msg = (
            f"decoding the integer format {fmt.name!r} needs scale= (the values are k * scale); "
            "hint: pass the Encoded tuple from encode"
        )
        raise ValueError(msg)
    if isinstance(scale, str):
        msg = (
            f"scale={scale!r} is a rule, which needs data; decode needs the scale values; "
            "hint: pass the Encoded tuple from encode"
        )
        raise ValueError(msg)
    return Request(
        Op.DECODE, fmt, scale=scale, zero_point=_scalar_zero_point(zero_point, fmt), axis=axis,
        block_size=check_block_size(block_size), dtype=dtype,
    )  # fmt: skip
