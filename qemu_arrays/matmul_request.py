"""A call of ``matmul``/``dot``, normalised once: the :class:`MatmulRequest`.

The façade (:mod:`qemu_arrays.matmul`) turns its keywords into a frozen request here, checking
everything that does not depend on the arrays: the formats (the accumulator, the promotion
format), the rounding mode, the order and which keywords apply to it, the random generator's
integers. What depends on the arrays (shapes, dtypes, whether the accumulator is narrower than
the inputs, the output dtype) is checked by :func:`qemu_arrays.routes.matmul_common.plan`, the
same for every route. The semantics are those of ``docs/matmul.md``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

from qemu_arrays.formats.enums import Rounding
from qemu_arrays.formats.spec import FloatFormat
from qemu_arrays.validation import (
    check_bool,
    check_enum,
    check_format,
    check_nonnegative_int,
    check_random_bits,
    check_seed,
)

__all__ = ["ORDERS", "MatmulRequest", "MmaModel", "check_accumulator", "matmul_request"]

#: the summation orders (docs/matmul.md)
ORDERS = ("sequential", "pairwise", "blocked")
#: the largest ``p + random_bits`` of a stochastically rounded addition (the kernels' exact
#: sum keeps 61 bits; docs/matmul.md)
MAX_P_PLUS_R = 60
FLOAT32 = check_format("float32")


@dataclass(frozen=True)
class MmaModel:
    """The parameters of a tensor-core dot-product model (``docs/matmul.md``, "Hardware
    models"): chains of truncating fused steps of ``group`` products with ``frac_bits`` bits
    kept below the largest nominal exponent, rounded toward zero to ``out_precision`` bits on
    the binary32 grid; optionally the partial sums of every ``promote_interval`` products added
    into a float32 total with round-to-nearest-even (DeepSeek-V3's promotion)."""

    input_formats: tuple[str, ...]
    group: int
    frac_bits: int
    out_precision: int = 24
    promote_interval: int | None = None
    block_scaled: bool = False
    """Operands are MX block formats whose E8M0 scale exponents shift the products'
    exponents inside the fused step (Blackwell ``block_scale``); the group is the block."""


@dataclass(frozen=True)
class MatmulRequest:
    """One ``matmul``/``dot`` call, its keywords checked and normalised."""

    op: str
    """"matmul" or "dot"."""
    accumulator: FloatFormat | None = FLOAT32
    """None: the exact sum (rounded once into the output, or exact partial sums of blocks)."""
    rounding: Rounding = Rounding.NEAREST_EVEN
    order: str | None = None
    """None: "sequential", or "blocked" over the blocks of block-format (MX) operands."""
    block_k: int | None = None
    promote_to: FloatFormat | None = None
    """The format partial sums are added into (order "blocked"); None there means float32."""
    fma: bool = True
    allow_narrow: bool = False
    seed: int | None = None
    stream: int = 0
    random_bits: int | None = None
    """None: ``min(32, 60 - p)`` for the widest format rounded into stochastically."""
    model: MmaModel | None = None
    c: Any = field(default=None, compare=False)
    """A hardware model's initial accumulator (``D = A B + C``), any array or None."""
    formats: tuple[str | None, str | None] = (None, None)
    """A hardware model's input formats of plain-array operands ``a``, ``b`` (None: the
    model's first input format)."""


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def check_accumulator(name: str, fmt, *, allow_none: bool) -> FloatFormat | None:
    """``fmt`` as a float format the kernels can accumulate in: signed, with zero, every value
    a float64 value (at most 52 mantissa bits and float64's exponent range)."""
    if fmt is None:
        if allow_none:
            return None
        msg = f"{name}=None is not allowed; hint: a float format such as 'float32'"
        raise ValueError(msg)
    try:
        f = check_format(fmt)
    except (TypeError, ValueError) as exc:
        msg = f"{name}={fmt!r} is not a format: {exc}"
        raise type(exc)(msg) from None
    if not isinstance(f, FloatFormat):
        msg = (
            f"{name} must be a float format (FloatFormat or a name such as 'float32', "
            f"'bfloat16', 'float16'), got {f.name!r} ({type(f).__name__}); hint: integer "
            "accumulators are not modelled, use accumulator=None for an exact sum"
        )
        raise TypeError(msg)
    if not f.signed or not f.has_zero:
        msg = (
            f"{name}={f.name!r} must be signed and have a zero (a sum can be negative or zero); "
            "hint: 'float32', 'bfloat16', 'float16', or FloatFormat(exponent_bits=8, "
            "mantissa_bits=13)"
        )
        raise ValueError(msg)
    if f.mantissa_bits > 52 or f.emax > 1023 or f.emin - f.mantissa_bits < -1074:
        msg = (
            f"{name}={f.name!r} holds values that float64 does not (at most 52 mantissa bits, "
            "exponents within float64's range); hint: 'float64' is the widest accumulator"
        )
        raise ValueError(msg)
    return f


def _check_order(order):
    if order is None:
        return None
    if not isinstance(order, str) or order not in ORDERS:
        msg = (
            f"order must be one of {', '.join(map(repr, ORDERS))} (or None), got {order!r}; "
            "hint: order='blocked', block_k=128 for DeepSeek-V3's promotion"
        )
        raise ValueError(msg)
    return order


def _check_block_k(block_k):
    if block_k is None:
        return None
    if not _is_int(block_k) or block_k < 1:
        msg = f"block_k must be a positive int, got {block_k!r}; hint: block_k=128"
        raise ValueError(msg)
    return int(block_k)


def matmul_request(
    op: str,
    *,
    accumulator,
    rounding,
    order,
    block_k,
    promote_to,
    fma,
    allow_narrow,
    seed,
    stream,
    random_bits,
) -> MatmulRequest:
    """The :class:`MatmulRequest` of ``matmul`` (``op`` "matmul") or ``dot``."""
    acc = check_accumulator("accumulator", accumulator, allow_none=True)
    rounding = check_enum("rounding", rounding, Rounding)
    if rounding is Rounding.STOCHASTIC_EQUAL:
        msg = (
            "rounding=Rounding.STOCHASTIC_EQUAL is not modelled for matmul (its additions draw "
            "no random integers); hint: Rounding.STOCHASTIC, or quantize the result"
        )
        raise ValueError(msg)
    order = _check_order(order)
    block_k = _check_block_k(block_k)
    fma = check_bool("fma", fma)
    allow_narrow = check_bool("allow_narrow", allow_narrow)
    stream = check_nonnegative_int("stream", stream)
    seed = check_seed(seed, needed=rounding is Rounding.STOCHASTIC)
    random_bits = check_random_bits(random_bits)
    if order != "blocked":
        given = {
            k: v for k, v in (("block_k", block_k), ("promote_to", promote_to)) if v is not None
        }
        if given:
            what = ", ".join(f"{k}={v!r}" for k, v in given.items())
            msg = (
                f"{what} applies to order='blocked' only, got order={order!r}; hint: pass "
                "order='blocked' (block formats are summed block by block without it)"
            )
            raise ValueError(msg)
    promote = None
    if order == "blocked":  # block_k=None: the operands' block size (checked by the route)
        promote = check_accumulator("promote_to", FLOAT32 if promote_to is None else promote_to,
                                    allow_none=False)  # fmt: skip
    if not fma and acc is None:
        msg = (
            "fma=False rounds each product into the accumulator, and accumulator=None has none; "
            "hint: leave fma=True with accumulator=None"
        )
        raise ValueError(msg)
    if rounding is Rounding.STOCHASTIC and random_bits is not None:
        for f in (acc, promote):
            if f is not None and f.precision + random_bits > MAX_P_PLUS_R:
                msg = (
                    f"random_bits={random_bits} is too many for {f.name!r} ({f.precision} "
                    f"significand bits): stochastic additions need p + random_bits <= "
                    f"{MAX_P_PLUS_R}; hint: random_bits={MAX_P_PLUS_R - f.precision}"
                )
                raise ValueError(msg)
    return MatmulRequest(
        op=op, accumulator=acc, rounding=rounding, order=order, block_k=block_k,
        promote_to=promote, fma=fma, allow_narrow=allow_narrow, seed=seed, stream=stream,
        random_bits=random_bits,
    )  # fmt: skip
