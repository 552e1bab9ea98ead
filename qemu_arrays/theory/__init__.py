"""Theory that predicts the harness: exact risk recursions and limit equations.

``qemu_arrays.theory.linreg_risk``: quantized SGD on Gaussian linear regression (paper 002).
``qemu_arrays.theory.ste_dynamics``: STE dynamics of the quantized teacher-student model
(paper 000); import it as a submodule.
"""

from qemu_arrays.theory.linreg_risk import (
    SiteNoise,
    approximation_error,
    effective_dimension,
    eps_fp,
    eps_int,
    fp_beats_int,
    fp_beats_int_exact,
    fp_mantissa_threshold,
    int_fp_data_risks,
    optimal_quantized_weights,
    quantized_spectrum,
    risk_recursion,
    site_noise,
)

__all__ = [
    "SiteNoise",
    "approximation_error",
    "effective_dimension",
    "eps_fp",
    "eps_int",
    "fp_beats_int",
    "fp_beats_int_exact",
    "fp_mantissa_threshold",
    "int_fp_data_risks",
    "optimal_quantized_weights",
    "quantized_spectrum",
    "risk_recursion",
    "site_noise",
]
