"""What the installed ml_dtypes does where its releases differ, found by asking it.

qemu_arrays computes every conversion itself, so its results never depend on the installed
ml_dtypes. The one exception is a promise: ``Overflow.ML_DTYPES`` means "as the installed
ml_dtypes casts", and ml_dtypes' casts have changed between releases:

=====================================  ==========================  ==========================
rule                                   ml_dtypes 0.5 and 0.6       ml_dtypes 0.7
=====================================  ==========================  ==========================
float64 input                          rounded to float32 first,   rounded once, directly
                                       then to the target (two
                                       roundings)
float32 subnormal into E8M0            every one above 2^-127      to nearest, like any
                                       goes *up* to 2^-126         other value
NaN into a format without NaN (FP6,    zero with the opposite      (unchanged)
FP4)                                   sign
=====================================  ==========================  ==========================

:func:`installed` finds out which rules hold by converting a handful of deciding inputs with the
installed ml_dtypes, once per process (never by reading its version string), and
``Overflow.ML_DTYPES`` follows the answer on every route. The rules of a given release can also
be named explicitly (:data:`BEFORE_0_7`, :data:`SINCE_0_7`), e.g. for the exact reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "BEFORE_0_7",
    "SINCE_0_7",
    "MlDtypesRules",
    "installed",
    "rounds_float64_via_float32",
]


@dataclass(frozen=True)
class MlDtypesRules:
    """The cast rules of one ml_dtypes release where releases differ (see the module text)."""

    float64_via_float32: bool
    """float64 input is rounded to float32 (nearest-even) first, then to the target."""
    e8m0_subnormal_up: bool
    """A float32 subnormal input into a format without zero (E8M0) goes up to a power of two."""
    nan_to_opposite_zero: bool
    """NaN into a format without NaN (but with zero) gives zero with the opposite sign."""
    source: str = ""
    """Where these rules come from (a release range, or the installed version that was probed)."""


#: ml_dtypes 0.5 and 0.6 (the oldest releases this project supports).
BEFORE_0_7 = MlDtypesRules(True, True, True, "ml_dtypes 0.5-0.6")
#: ml_dtypes 0.7.
SINCE_0_7 = MlDtypesRules(False, False, True, "ml_dtypes 0.7")


def _code(value: float, type_name: str, input_type) -> int:
    import ml_dtypes
    import numpy as np

    t = getattr(ml_dtypes, type_name)
    with np.errstate(invalid="ignore", over="ignore"):
        return int(np.array([value], dtype=input_type).astype(t).view(np.uint8)[0])


@lru_cache(maxsize=1)
def installed() -> MlDtypesRules:
    """The rules of the installed ml_dtypes, probed once on deciding inputs.

    - ``1 + 2^-4 + 2^-30`` (float64) into float8_e4m3fn: one rounding gives 1.125 (code 0x39);
      rounding to float32 first lands on the tie 1.0625, which goes to even, 1.0 (0x38).
    - ``1.25 * 2^-127`` (a float32 subnormal) into float8_e8m0fnu: to nearest gives 2^-127
      (code 0x00); the "up" rule gives 2^-126 (0x01).
    - NaN into float4_e2m1fn: -0 (code 0x8) is the opposite-signed zero.

    An answer that is neither of the known ones raises ``RuntimeError`` naming the input, so a
    new ml_dtypes behaviour is reported instead of silently mis-reproduced.
    """
    import ml_dtypes
    import numpy as np

    version = getattr(ml_dtypes, "__version__", "?")

    def decide(name, got, known):
        if got not in known:
            msg = (
                f"the installed ml_dtypes {version} converts the deciding input of rule {name!r} "
                f"to code {got:#x}, which is none of the known answers {sorted(known)}; "
                "Overflow.ML_DTYPES cannot reproduce it (please report this)"
            )
            raise RuntimeError(msg)
        return known[got]

    via32 = decide(
        "float64_via_float32",
        _code(1 + 2.0**-4 + 2.0**-30, "float8_e4m3fn", np.float64),
        {0x39: False, 0x38: True},
    )
    e8m0_up = decide(
        "e8m0_subnormal_up",
        _code(1.25 * 2.0**-127, "float8_e8m0fnu", np.float32),
        {0x00: False, 0x01: True},
    )
    nan_zero = decide(
        "nan_to_opposite_zero", _code(math.nan, "float4_e2m1fn", np.float32), {0x8: True}
    )
    return MlDtypesRules(via32, e8m0_up, nan_zero, f"ml_dtypes {version} (probed)")


def rounds_float64_via_float32(overflow, rules: MlDtypesRules | None = None) -> bool:
    """Whether float64 input is rounded to float32 first under ``overflow`` (only
    ``Overflow.ML_DTYPES``, where the ml_dtypes rules do so)."""
    from qemu_arrays.formats.spec import Overflow

    return overflow is Overflow.ML_DTYPES and (rules or installed()).float64_via_float32
