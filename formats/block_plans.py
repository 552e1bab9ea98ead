"""The constants of the block-format steps, as parameter objects built from a ``BlockFormat``.

The steps of :mod:`qemu_arrays.formats.block_cores` take these NamedTuples (numba compiles a
NamedTuple of ints), so the CPU route (:mod:`qemu_arrays.routes.cpu_blocks`) and the CUDA route
(:mod:`qemu_arrays.routes.cuda_blocks`) derive them in one place. No numba here.
"""

from __future__ import annotations

from typing import NamedTuple

from qemu_arrays.formats.block_spec import BlockFormat
from qemu_arrays.formats.spec import FloatFormat

__all__ = ["IntElement", "MxScalePlan", "RoundingArgs", "int_element", "mx_scale_plan"]


class MxScalePlan(NamedTuple):
    """The constants of the MX scale step (:func:`mx_scale`) and of the input layout."""

    in_e: int
    """Exponent bits of the input's IEEE layout (8: float32, 11: float64)."""
    in_m: int
    """Fraction bits of the input's IEEE layout (23 or 52)."""
    rule: int
    """The ``ScaleRule`` code (:mod:`qemu_arrays.formats.codes`)."""
    mprec: int
    """The element's mantissa bits in its top binade (see :func:`shared_exponent`)."""
    emax_elem: int
    """Exponent of the element format's top binade."""
    maxsig: int
    """Significand integer of the element maximum."""
    s_emin: int
    """Smallest exponent of the scale format."""
    s_emax: int
    """Largest exponent of the scale format."""
    s_bias: int
    """Bias of the scale format (code = exponent + bias)."""
    s_nan: int
    """The scale format's NaN code."""


class IntElement(NamedTuple):
    """Integer elements of an MX format (MXINT8): zeros for float elements."""

    is_int: int
    fb: int
    """Fraction bits: the element value is ``k * 2**-fb``."""
    qmin: int
    qmax: int
    cmask: int
    """Mask of an element code (two's complement)."""


def int_element(fmt: BlockFormat) -> IntElement:
    """The :class:`IntElement` of ``fmt``'s elements (zeros for float elements)."""
    el = fmt.element
    if isinstance(el, FloatFormat):
        return IntElement(0, 0, 0, 0, 0)
    cmask = (1 << (int(el.max).bit_length() + 1)) - 1
    return IntElement(1, fmt.element_fraction_bits, int(el.min), int(el.max), cmask)


def mx_scale_plan(fmt: BlockFormat, in_e: int, in_m: int) -> MxScalePlan:
    """The :class:`MxScalePlan` of an MX format for input of IEEE layout ``in_e``/``in_m``."""
    el, sc = fmt.element, fmt.scale
    if isinstance(el, FloatFormat):
        mprec, maxsig = el.mantissa_bits, el.params()[3]
    else:
        mprec, maxsig = int(el.max).bit_length() - 1, int(el.max)
    return MxScalePlan(
        in_e, in_m, int(fmt.scale_rule), mprec, fmt.element_emax, maxsig,
        sc.emin, sc.emax, sc.bias, (1 << sc.bits) - 1,
    )  # fmt: skip


class RoundingArgs(NamedTuple):
    """The rounding mode and the random key of one call, as the block kernels take them."""

    rnd: int
    """The ``Rounding`` code (:mod:`qemu_arrays.formats.codes`)."""
    k0: int
    k1: int
    k2: int
    offset: int
    """Counter of the first element (stochastic rounding)."""
    r: int
    """Random bits per element (stochastic rounding)."""
