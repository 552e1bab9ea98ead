"""Closed sets of choices of the theory, the training harness and the reproductions, as enums.

Every function that used to take one of these as a string (``grid="A"``, ``ste="identity"``,
``optimizer="sgd"``, ...) takes the enum member now; the old strings still work and raise a
``DeprecationWarning`` that names the member to use. Anything else is a ``ValueError`` naming
the parameter, the value, the allowed members and a hint.

Plain numpy-free module, cheap to import (the theory imports it).
"""

from __future__ import annotations

import enum
import warnings

__all__ = [
    "ErrorConvention",
    "GridKind",
    "LrConvention",
    "OptimizerKind",
    "SteVariant",
    "coerce_kind",
]


class GridKind(enum.Enum):
    """The uniform grids ``Q_{b, omega}`` of ``NOTES_ste_dynamics.md`` section 2.3.

    ``A``: 2^b levels ``-omega + k Delta`` with the endpoints (the most literal "b bits");
    ``M``: 2^b cell centres; ``D``: 2^b + 1 mid-tread levels including 0; ``C``: 2^b - 1
    mid-tread levels including 0.
    """

    A = "A"
    M = "M"
    D = "D"
    C = "C"


class SteVariant(enum.Enum):
    """The straight-through estimator of the weights: ``g = 1`` or ``g = 1{|w| <= omega}``."""

    IDENTITY = "identity"
    CLIPPED = "clipped"


class ErrorConvention(enum.Enum):
    """How the STE theory reports the error: ``eps_g``, ``2 eps_g`` or ``2 eps_g + sigma^2``."""

    HALF = "half"
    FULL = "full"
    TEST_MSE = "test_mse"


class LrConvention(enum.Enum):
    """``SGD``: ``w <- w - eta grad``; ``HALF``: the paper's eta is twice the notes' one."""

    SGD = "sgd"
    HALF = "half"


class OptimizerKind(enum.Enum):
    """The optimizers the harness and the reproductions build by name."""

    SGD = "sgd"
    MOMENTUM = "momentum"
    ADAM = "adam"


def coerce_kind(kind: type[enum.Enum], value, param: str, *, hint: str = "", stacklevel: int = 3):
    """``value`` as a member of ``kind``.

    A member is returned as is; a string equal to a member's value (or, case-insensitively, its
    name) is accepted with a ``DeprecationWarning``; anything else raises ``ValueError`` (or
    ``TypeError`` for a value of the wrong type) naming ``param``, the value and the members.
    """
    if isinstance(value, kind):
        return value
    allowed = ", ".join(f"{kind.__name__}.{m.name}" for m in kind)
    if isinstance(value, str):
        for m in kind:
            if value == m.value or value.upper() == m.name:
                warnings.warn(
                    f"{param}={value!r} as a string is deprecated; pass {kind.__name__}.{m.name} "
                    f"(from qemu_arrays.theory.kinds import {kind.__name__})",
                    DeprecationWarning,
                    stacklevel=stacklevel,
                )
                return m
        msg = f"{param} must be one of {allowed}, got {value!r}" + (
            f"; hint: {hint}" if hint else ""
        )
        raise ValueError(msg)
    msg = f"{param} must be one of {allowed}, got {type(value).__name__} {value!r}" + (
        f"; hint: {hint}" if hint else ""
    )
    raise TypeError(msg)
