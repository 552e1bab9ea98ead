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
    seed: Any = None
    """An int, or an array seed (a JAX key or a uint32 array of the seed's two words, traced
    under ``jax.jit``): see :func:`qemu_arrays.routes.common.seed_words`."""
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
    rbits: Any = field(default=None, compare=False)
    """Stochastic modes: the caller's random bits (an unsigned-integer array broadcast to x);
    ``random_bits`` is then set (default: the width of rbits' dtype)."""

    @property
    def is_block(self) -> bool:
        return isinstance(self.fmt, BlockFormat)

    @property
    def is_int(self) -> bool:
        return isinstance(self.fmt, IntFormat)

    @property
    def is_scaled_float(self) -> bool:
        """A float format with a scale (docs/scaled.md): ``Q(x / s) * s``, the quotient and
        the product in float32 (float64 for float64 input), the elements saturating."""
        return isinstance(self.fmt, FloatFormat) and self.scale is not None

    @property
    def scale_rule(self) -> str | None:
        """The scale rule's name when ``scale`` is one (integer and float formats), else None."""
        return self.scale if isinstance(self.scale, str) else None

    @property
    def scaled(self) -> bool:
        """Whether ``encode`` returns an ``Encoded`` (codes and scales): block formats always,
        integer and float formats when the scale is a rule or a granularity or scale format is
        given."""
        if self.is_block:
            return True
        return (self.is_int or self.is_scaled_float) and (
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


def _check_seed(seed, needed: bool):
    """An int seed (checked), or an array seed kept as given: a JAX PRNG key (its two data
    words are the seed's high and low 32 bits) or an integer array of shape () or (2,)
    (docs/formats.md); a traced one works on the generic route (``jax.jit``)."""
    dt = getattr(seed, "dtype", None)
    if dt is None or not hasattr(seed, "shape"):
        return check_seed(seed, needed)
    name = str(dt)
    if not (name.startswith("key") or name in ("uint32", "int32", "uint64", "int64")):
        msg = (
            f"seed must be an int, a JAX PRNG key or an integer array of shape () or (2,), got "
            f"an array of dtype {dt}; hint: seed=0 or seed=jax.random.key(0)"
        )
        raise TypeError(msg)
    if not name.startswith("key") and tuple(seed.shape) not in ((), (2,)):
        msg = (
            f"seed as an integer array must have shape () or (2,) (the seed's high and low "
            f"32-bit words), got shape {tuple(seed.shape)}; hint: jax.random.key_data(key)"
        )
        raise ValueError(msg)
    return seed


def _scalar_zero_point(zero_point, fmt):
    """A zero point given as one number, checked against the format's codes (an int); arrays
    are the route's to check (they may live in any library)."""
    if zero_point is None or hasattr(zero_point, "shape") or isinstance(zero_point, (list, tuple)):
        return zero_point
    return int(check_zero_point(zero_point, fmt))


def _given(**kw):
    return {k: v for k, v in kw.items() if v is not None}


_UNSIGNED_BITS = {"uint8": 8, "uint16": 16, "uint32": 32, "uint64": 64}


def _check_rbits(rbits, rounding, seed, random_bits, fmt):
    """``random_bits`` for caller-supplied bits: checks that ``rbits`` applies and its dtype."""
    if not rounding.stochastic:
        msg = (
            f"rbits applies to the stochastic modes only (Rounding.STOCHASTIC, "
            f"Rounding.STOCHASTIC_EQUAL), got rounding={rounding!r}; hint: "
            "rounding=Rounding.STOCHASTIC"
        )
        raise ValueError(msg)
    if seed is not None:
        msg = (
            f"seed={seed!r} does not apply with rbits=: the random bits are the caller's; "
            "hint: leave seed out (or leave rbits out to use the counter-based generator)"
        )
        raise ValueError(msg)
    name = str(getattr(rbits, "dtype", "")).rsplit(".", 1)[-1]
    width = _UNSIGNED_BITS.get(name)
    if width is None:
        msg = (
            f"rbits must be an array of unsigned integers (uint8, uint16, uint32, uint64), got "
            f"{type(rbits).__name__} with dtype {name or None!r}; hint: "
            "numpy.asarray(bits, dtype=numpy.uint32)"
        )
        raise TypeError(msg)
    if random_bits is None and width > 62:
        msg = (
            "rbits of dtype uint64 needs random_bits= (at most 62 of its bits are used); "
            "hint: random_bits=32"
        )
        raise ValueError(msg)
    r = width if random_bits is None else random_bits
    if r > width:
        msg = (
            f"random_bits={r} exceeds the {width} bits of rbits' dtype {name}; allowed: 1.."
            f"{min(width, 62)}; hint: a wider rbits dtype, or random_bits={width}"
        )
        raise ValueError(msg)
    return r


def round_request(
    op, format, *, rounding, overflow, seed, stream, offset, random_bits, scale, zero_point,
    via_float32, axis, block_size, scale_format, symmetric, percentile, out=None, rbits=None,
) -> Request:  # fmt: skip
    """The :class:`Request` of ``quantize`` (``op`` QUANTIZE) or ``encode`` (ENCODE)."""
    fmt = check_format(format)
    rounding = check_enum("rounding", rounding, Rounding)
    overflow = check_enum("overflow", overflow, Overflow)
    stream = check_nonnegative_int("stream", stream)
    offset = check_nonnegative_int("offset", offset) % (1 << 64)  # as the seed: modulo 2**64
    random_bits = check_random_bits(random_bits)
    if rbits is not None:
        random_bits = _check_rbits(rbits, rounding, seed, random_bits, fmt)
    seed = _check_seed(seed, needed=rounding.stochastic and rbits is None)
    via_float32 = check_bool("via_float32", via_float32)
    common = {
        "op": op, "fmt": fmt, "rounding": rounding, "overflow": overflow, "seed": seed,
        "stream": stream, "offset": offset, "random_bits": random_bits,
        "via_float32": via_float32, "out": out, "rbits": rbits,
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
        if scale is None:
            extra = _given(
                zero_point=zero_point, axis=axis, block_size=block_size,
                scale_format=scale_format, symmetric=symmetric, percentile=percentile,
            )  # fmt: skip
            if extra:
                _not_for(
                    fmt, extra, "these keywords go with a scale; hint: scale='absmax' (with "
                    "axis=/block_size= for one scale per channel/group), see docs/scaled.md",
                )  # fmt: skip
            return Request(**common)
        return _scaled_float_request(
            common, fmt, scale, zero_point, axis, block_size, scale_format, symmetric,
            percentile,
        )  # fmt: skip
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


#: the overflow policies a scaled float format takes (its elements always saturate)
SCALED_FLOAT_OVERFLOW = (Overflow.OWN, Overflow.SATURATE)


def _scaled_float_request(common, fmt, scale, zero_point, axis, block_size, scale_format,
                          symmetric, percentile) -> Request:  # fmt: skip
    """A float format with a scale (docs/scaled.md): the rules and granularity of integer
    scales, symmetric only (no zero point), the elements saturating."""
    extra = _given(zero_point=zero_point, symmetric=symmetric)
    if extra:
        _not_for(
            fmt, extra, "a scaled float format is symmetric, with no zero point (the value of "
            "code c is value(c) * scale); hint: leave zero_point/symmetric out",
        )  # fmt: skip
    overflow = common["overflow"]
    if overflow not in SCALED_FLOAT_OVERFLOW:
        msg = (
            f"overflow={overflow!r} does not apply to {fmt.name!r} with a scale: the elements "
            "of a scaled float format always saturate (as integer codes clamp and MX elements "
            "saturate); allowed: Overflow.OWN, Overflow.SATURATE; hint: leave overflow out"
        )
        raise ValueError(msg)
    if isinstance(scale, bool) or not (
        isinstance(scale, (str, numbers.Real)) or hasattr(scale, "shape")
        or isinstance(scale, (list, tuple))
    ):  # fmt: skip
        msg = (
            f"scale must be a positive number, an array of them, or one of {SCALE_RULES}, got "
            f"{scale!r} ({type(scale).__name__}); hint: scale='absmax'"
        )
        raise TypeError(msg)
    if isinstance(scale, numbers.Real) and not (0 < float(scale) < float("inf")):
        msg = f"scale must be finite and > 0, got {scale!r}; hint: scale='absmax'"
        raise ValueError(msg)
    _sym, pct = _check_rule_options(scale, None, percentile)
    return Request(
        **common, scale=scale, axis=axis, block_size=check_block_size(block_size),
        scale_format=_check_scale_format(scale_format), symmetric=True, percentile=pct,
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
        extra = _given(zero_point=zero_point)
        if scale is None:
            extra.update(_given(axis=axis, block_size=block_size))
        if extra:
            _not_for(fmt, extra, "float codes decode without a zero point, and axis/block_size "
                     "go with scale= (the scales encode returned)")  # fmt: skip
        if isinstance(scale, str):
            msg = f"scale={scale!r} is a rule, which needs data; decode needs the scale values"
            raise ValueError(msg)
        if scale is None:
            return Request(Op.DECODE, fmt, dtype=dtype)
        return Request(
            Op.DECODE, fmt, scale=scale, axis=axis, block_size=check_block_size(block_size),
            dtype=dtype,
        )  # fmt: skip
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
