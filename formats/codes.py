"""The integer codes the scalar cores and kernels take, derived from the enums (one table).

numba reads module-level ints as compile-time constants, so the cores import these names; they
are computed here from :mod:`qemu_arrays.formats.enums`, never renumbered by hand elsewhere.
:func:`overflow_code` is the one place where a policy's code depends on more than its member
(``Overflow.ML_DTYPES`` follows the installed ml_dtypes, :mod:`qemu_arrays.formats.ml_dtypes_rules`).
"""

from __future__ import annotations

from qemu_arrays.formats.enums import Overflow, Rounding, ScaleRule, Specials
from qemu_arrays.formats.ml_dtypes_rules import MlDtypesRules, installed

__all__ = [
    "CEIL",
    "CEIL_POW2",
    "EVEN",
    "FINITE",
    "FINITE_ONLY",
    "FLOOR",
    "FN",
    "FNUZ",
    "IEEE",
    "INF",
    "JAM",
    "ML_DTYPES",
    "ML_DTYPES_SUBNORMAL_UP",
    "NAN",
    "NAN_ERROR",
    "ODD",
    "OWN",
    "P3109",
    "RCEIL",
    "RFLOOR",
    "RHALF_UP",
    "RAZ",
    "RDN",
    "RNA",
    "RND",
    "RNE",
    "RNO",
    "RNU",
    "RNZ",
    "RTZ",
    "RUP",
    "SATURATE",
    "SR",
    "SRE",
    "overflow_code",
]

# ---- result status of a rounded value (the cores' own; no enum) --------------------------------
FINITE = 0
INF = 1
NAN = 2
NAN_ERROR = 3  # NaN (or zero without a zero code) into a format that cannot hold it

# ---- Rounding ---------------------------------------------------------------------------------
RNE = int(Rounding.NEAREST_EVEN)
RNA = int(Rounding.NEAREST_AWAY)
RTZ = int(Rounding.TOWARD_ZERO)
RUP = int(Rounding.UP)
RDN = int(Rounding.DOWN)
ODD = int(Rounding.TO_ODD)
SR = int(Rounding.STOCHASTIC)
RNZ = int(Rounding.NEAREST_ZERO)
RNO = int(Rounding.NEAREST_ODD)
RNU = int(Rounding.NEAREST_UP)
RND = int(Rounding.NEAREST_DOWN)
RAZ = int(Rounding.AWAY_FROM_ZERO)
JAM = int(Rounding.JAM)
SRE = int(Rounding.STOCHASTIC_EQUAL)

# ---- Overflow ---------------------------------------------------------------------------------
OWN = int(Overflow.OWN)
SATURATE = int(Overflow.SATURATE)
ML_DTYPES = int(Overflow.ML_DTYPES)  # NaN into a format without NaN: the opposite-signed zero
ML_DTYPES_SUBNORMAL_UP = max(Overflow) + 1  # as ML_DTYPES, and float32 subnormals into a
# format without zero round up to a power of two (ml_dtypes before 0.7)

# ---- Specials ---------------------------------------------------------------------------------
IEEE = int(Specials.IEEE)
FN = int(Specials.FN)
FNUZ = int(Specials.FNUZ)
FINITE_ONLY = int(Specials.FINITE)
P3109 = int(Specials.P3109)

# ---- ScaleRule --------------------------------------------------------------------------------
FLOOR = int(ScaleRule.FLOOR)
CEIL = int(ScaleRule.CEIL)
EVEN = int(ScaleRule.EVEN)
RCEIL = int(ScaleRule.RCEIL)
CEIL_POW2 = int(ScaleRule.CEIL_POW2)
RFLOOR = int(ScaleRule.RFLOOR)
RHALF_UP = int(ScaleRule.RHALF_UP)


def overflow_code(overflow: Overflow, rules: MlDtypesRules | None = None) -> int:
    """The kernels' code of an ``Overflow`` member.

    ``Overflow.ML_DTYPES`` becomes :data:`ML_DTYPES_SUBNORMAL_UP` where the ml_dtypes rules
    (default: those of the installed ml_dtypes) send float32 subnormals up into E8M0, else
    :data:`ML_DTYPES`.
    """
    if overflow is Overflow.ML_DTYPES and (rules or installed()).e8m0_subnormal_up:
        return ML_DTYPES_SUBNORMAL_UP
    return int(overflow)
