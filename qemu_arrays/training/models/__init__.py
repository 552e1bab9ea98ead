"""Models for the SGD harness and the small interface a user's own model implements.

A model is any object with the attributes and methods of :class:`Model` (subclassing it is
optional but gives the linear defaults). Shapes: ``R`` replicas, ``B`` batch, ``d`` parameters.

``dim``                                   number of parameters ``d``
``time_unit``                             steps per unit of recorded time (``d`` for τ = t/d)
``init_weights(R, rng) -> (R, d)``        numpy float64 initial weights
``sample(R, B, rng) -> (X, y)``           numpy ``(R, B, d)`` features, ``(R, B)`` labels
``forward(w, X) -> (R, B)``               prediction from (quantized) weights and features
``loss_grad(pred, y) -> (R, B)``          d loss / d prediction (``pred - y`` for ½ squared error)
``backward(w, X, g) -> (R, d)``           gradient w.r.t. the weights used in ``forward``, given
                                          the (quantized) output gradient ``g``; batch-averaged
``regularizer_grad(w) -> (R, d) | None``  added to the (quantized) parameter gradient
``risk(w, sites, rng) -> (R,) | None``    analytic population risk of master weights ``w``
``default_sites() -> Sites``              the quantizers a model ships with (identity)

``forward``/``backward``/``loss_grad``/``regularizer_grad`` receive arrays of the run's backend
(numpy, torch, jax, ...); ``sample``/``init_weights`` return numpy, the harness converts.
"""

from __future__ import annotations

import numpy as np

from qemu_arrays.training.sites import Sites

__all__ = ["LinearRegression", "Model", "TeacherStudent"]


def _ns(x):
    if isinstance(x, np.ndarray):
        return np
    from array_api_compat import array_namespace

    return array_namespace(x)


class Model:
    """Base class: a linear predictor ``pred = output_scale · X·w`` with squared loss."""

    dim: int = 0
    time_unit: float = 1.0
    output_scale: float = 1.0

    def init_weights(self, replicas: int, rng: np.random.Generator) -> np.ndarray:
        return np.zeros((replicas, self.dim))

    def sample(self, replicas: int, batch: int, rng: np.random.Generator):  # pragma: no cover
        raise NotImplementedError

    def forward(self, w, X):
        xp = _ns(X)
        if xp is np:
            out = np.einsum("rbd,rd->rb", X, w)
        else:
            out = xp.matmul(X, w[..., None])[..., 0]
        return out if self.output_scale == 1.0 else out * self.output_scale

    def loss_grad(self, pred, y):
        return pred - y

    def backward(self, w, X, g):
        xp = _ns(X)
        if xp is np:
            out = np.einsum("rbd,rb->rd", X, g)
        else:
            out = xp.matmul(xp.matrix_transpose(X), g[..., None])[..., 0]
        return out * (self.output_scale / X.shape[1])

    def regularizer_grad(self, w):
        return None

    def risk(self, w, sites: Sites, rng: np.random.Generator | None = None):
        return None

    def default_sites(self) -> Sites:
        return Sites()


from qemu_arrays.training.models.linear_regression import LinearRegression  # noqa: E402
from qemu_arrays.training.models.teacher_student import TeacherStudent  # noqa: E402
