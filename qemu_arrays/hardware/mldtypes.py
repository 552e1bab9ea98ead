"""The ml_dtypes profile: casts as the installed ml_dtypes performs them.

``astype`` into ml_dtypes' narrow float types rounds to nearest even and sends values beyond the
format's range where ml_dtypes sends them (infinity, NaN, or saturation per type); how it treats
float64 input and float32 subnormals into E8M0 changed in ml_dtypes 0.7. The profile does not
remember either behaviour: :mod:`qemu_arrays.formats.ml_dtypes_rules` probes the installed
ml_dtypes once (cached) on deciding inputs, and ``Overflow.ML_DTYPES`` follows the answer on
every route (docs/formats.md, "Overflow.ML_DTYPES and ml_dtypes versions").
"""

from __future__ import annotations

import dataclasses

from qemu_arrays.api import encode as _encode
from qemu_arrays.api import quantize as _quantize
from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.enums import Overflow, Rounding
from qemu_arrays.hardware.registry import Profile, register_profile

__all__ = ["MlDtypesProfile"]

#: the catalogue formats that are ml_dtypes types of the same name
_FORMATS = (
    "float8_e3m4", "float8_e4m3", "float8_e4m3b11fnuz", "float8_e4m3fn", "float8_e4m3fnuz",
    "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu", "float8_e5m3fnu", "float6_e2m3fn",
    "float6_e3m2fn", "float4_e2m1fn", "bfloat16",
)  # fmt: skip


@dataclasses.dataclass(frozen=True, kw_only=True)
class MlDtypesProfile(Profile):
    """``quantize``/``encode`` as ``x.astype(ml_dtypes type)`` of the installed ml_dtypes."""

    formats: tuple[str, ...] = _FORMATS

    def _check(self, fmt, kw):
        name = getattr(fmt, "name", fmt)
        if name not in self.formats:
            msg = (
                f"profile {self.name!r} has no format {name!r}; allowed: "
                f"{', '.join(self.formats)}; hint: profile({self.name!r}).formats"
            )
            raise ValueError(msg)
        bad = sorted(set(kw) - {"out"})
        if bad:
            msg = (
                f"profile {self.name!r} takes no {', '.join(bad)}: an ml_dtypes cast rounds to "
                "nearest even with ml_dtypes' overflow; hint: qemu_arrays.quantize for other modes"
            )
            raise TypeError(msg)
        return get_format(name)

    def quantize(self, x, fmt, **kw):
        """The values ``x.astype(<fmt>).astype(x.dtype)`` gives (``out=`` allowed)."""
        f = self._check(fmt, kw)
        return _quantize(x, f, rounding=Rounding.NEAREST_EVEN, overflow=Overflow.ML_DTYPES, **kw)

    def encode(self, x, fmt, **kw):
        """The codes ``x.astype(<fmt>)`` holds."""
        f = self._check(fmt, kw)
        return _encode(x, f, rounding=Rounding.NEAREST_EVEN, overflow=Overflow.ML_DTYPES, **kw)

    def rules(self):
        """What the installed ml_dtypes was found to do (probed once per process)."""
        from qemu_arrays.formats.ml_dtypes_rules import installed

        return installed()


register_profile(
    MlDtypesProfile(
        name="ml-dtypes",
        emulates="ml_dtypes casts (x.astype(ml_dtypes.<type>)) of the installed version, 0.5.1 "
        "and later: nearest-even, ml_dtypes' overflow per type, its float64 and E8M0 rules",
        sources=(
            "jax-ml/ml_dtypes, ml_dtypes/include/float8.h and mxfloat.h (ConvertImpl)",
            "qemu_arrays/formats/ml_dtypes_rules.py: the installed version's behaviour, probed",
        ),
        uncertain=(
            "a version newer than those tested (0.5.1, 0.7.0) is followed through the probes "
            "of float64 rounding, E8M0 subnormals and NaN signs; a change elsewhere in its casts "
            "would show in tests/oracle/test_mldtypes_agreement.py",
        ),
        confidence="tested",
    )
)
