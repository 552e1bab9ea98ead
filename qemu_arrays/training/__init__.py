"""The SGD harness: quantizers at the six sites of an SGD step, models, optimizers, sweeps.

Quick start::

    from qemu_arrays.training import LinearRegression, AdditiveNoise, run_sgd
    model = LinearRegression(d=50, spectrum=2.0, w_star=1.0, noise=1.0)
    res = run_sgd(model, steps=1000, lr=0.1, replicas=32, sites={"data": AdditiveNoise(1e-2)},
                  average=True, seed=0)
    res.mean("risk_avg"), res.sem("risk_avg")

See ``docs/training.md``.
"""

from qemu_arrays.training.models import LinearRegression, Model, TeacherStudent
from qemu_arrays.training.optimizers import (
    SGD,
    Adam,
    constant,
    cosine,
    inverse_time,
    make_optimizer,
    step_decay,
)
from qemu_arrays.training.quantizers import (
    GRIDS,
    AdditiveNoise,
    FormatQuantizer,
    Identity,
    MultiplicativeNoise,
    Quantizer,
    QuantizerLike,
    UniformQuantizer,
    as_quantizer,
    gaussian_moments,
)
from qemu_arrays.training.sgd import TrainResult, log_grid, run_sgd
from qemu_arrays.training.sites import SITE_NAMES, Sites
from qemu_arrays.training.sweep import run_sweep

__all__ = [
    "GRIDS",
    "SGD",
    "SITE_NAMES",
    "Adam",
    "AdditiveNoise",
    "FormatQuantizer",
    "Identity",
    "LinearRegression",
    "Model",
    "MultiplicativeNoise",
    "Quantizer",
    "QuantizerLike",
    "Sites",
    "TeacherStudent",
    "TrainResult",
    "UniformQuantizer",
    "as_quantizer",
    "constant",
    "cosine",
    "gaussian_moments",
    "inverse_time",
    "log_grid",
    "make_optimizer",
    "run_sgd",
    "run_sweep",
    "step_decay",
]
