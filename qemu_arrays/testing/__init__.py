"""Property testing for number formats and gradient estimators, for users' own test suites.

* Hypothesis strategies: :func:`float_formats`, :func:`int_formats`, :func:`block_formats`,
  :func:`representable_values`, :func:`values_near`, :func:`arrays`.
* The battery: :func:`check_format` (on ``qemu_arrays.quantize`` or on your own quantize function)
  and :func:`check_estimator`, returning reports with a minimal example per failed property.

Importing this package does not import hypothesis; the strategies import it when called.
See ``docs/testing.md``.
"""

from qemu_arrays.testing.checks import (
    PROPERTIES,
    EstimatorReport,
    Failure,
    FormatReport,
    check_estimator,
    check_format,
)
from qemu_arrays.testing.strategies import (
    arrays,
    block_formats,
    decode_model,
    float_formats,
    format_values,
    int_formats,
    probe_points,
    representable_values,
    values_near,
)

__all__ = [
    "PROPERTIES",
    "EstimatorReport",
    "Failure",
    "FormatReport",
    "arrays",
    "block_formats",
    "check_estimator",
    "check_format",
    "decode_model",
    "float_formats",
    "format_values",
    "int_formats",
    "probe_points",
    "representable_values",
    "values_near",
]
