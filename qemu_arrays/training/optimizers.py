"""Optimizers and step-size schedules for the harness (vectorised over replicas).

An optimizer has ``init(w) -> state`` and ``step(w, grad, lr, t, state) -> (w_new, state)``;
``w`` and ``grad`` are ``(R, d)`` arrays (``w`` is never modified in place), ``lr`` the step
size at step ``t`` (0-based).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from qemu_arrays.theory.kinds import OptimizerKind, coerce_kind

__all__ = [
    "SGD",
    "Adam",
    "OptimizerKind",
    "constant",
    "cosine",
    "inverse_time",
    "make_optimizer",
    "step_decay",
]


class SGD:
    """Plain SGD, or heavy-ball momentum ``v = μ v + g; w -= lr·v`` (``nesterov``: ``w -= lr·(g + μ v)``)."""

    def __init__(self, momentum: float = 0.0, *, nesterov: bool = False):
        momentum = float(momentum)
        if not 0.0 <= momentum < 1.0:
            msg = f"momentum must be in [0, 1), got {momentum}"
            raise ValueError(msg)
        self.momentum, self.nesterov = momentum, bool(nesterov)

    def init(self, w):
        return None if self.momentum == 0 else w * 0

    def step(self, w, grad, lr, t, state):
        if self.momentum == 0:
            return w - lr * grad, None
        v = self.momentum * state + grad
        upd = grad + self.momentum * v if self.nesterov else v
        return w - lr * upd, v

    def __repr__(self):
        return f"SGD(momentum={self.momentum}, nesterov={self.nesterov})"


class Adam:
    """Adam (Kingma & Ba) with bias correction."""

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        for n, b in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= float(b) < 1.0:
                msg = f"{n} must be in [0, 1), got {b}"
                raise ValueError(msg)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def init(self, w):
        return (w * 0, w * 0)

    def step(self, w, grad, lr, t, state):
        m, v = state
        m = self.beta1 * m + (1 - self.beta1) * grad
        v = self.beta2 * v + (1 - self.beta2) * grad * grad
        mh = m / (1 - self.beta1 ** (t + 1))
        vh = v / (1 - self.beta2 ** (t + 1))
        return w - lr * mh / ((vh) ** 0.5 + self.eps), (m, v)

    def __repr__(self):
        return f"Adam(beta1={self.beta1}, beta2={self.beta2}, eps={self.eps})"


def make_optimizer(optimizer):
    """None/``OptimizerKind.SGD`` -> SGD(); ``MOMENTUM`` -> SGD(0.9); ``ADAM`` -> Adam();
    optimizer objects as is. The strings 'sgd', 'momentum', 'adam' work with a
    DeprecationWarning."""
    if optimizer is None:
        return SGD()
    if isinstance(optimizer, (str, OptimizerKind)):
        kind = coerce_kind(
            OptimizerKind,
            optimizer,
            "optimizer",
            hint="or pass an optimizer object such as SGD(0.9) or Adam()",
        )
        return {OptimizerKind.SGD: SGD, OptimizerKind.MOMENTUM: lambda: SGD(0.9),
                OptimizerKind.ADAM: Adam}[kind]()  # fmt: skip
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "step")):
        msg = f"optimizer {optimizer!r} needs init(w) and step(w, grad, lr, t, state) methods"
        raise TypeError(msg)
    return optimizer


def constant(lr: float) -> Callable[[int], float]:
    """``lr_t = lr``."""
    return lambda t: lr


def inverse_time(lr: float, t0: float) -> Callable[[int], float]:
    """``lr_t = lr / (1 + t/t0)``."""
    return lambda t: lr / (1.0 + t / t0)


def step_decay(lr: float, every: int, factor: float = 0.5) -> Callable[[int], float]:
    """``lr_t = lr · factor^(t // every)`` (the geometric schedule of tail-averaging analyses)."""
    return lambda t: lr * factor ** (t // every)


def cosine(lr: float, total: int, final: float = 0.0) -> Callable[[int], float]:
    """Cosine decay from ``lr`` to ``final`` over ``total`` steps."""
    return lambda t: final + 0.5 * (lr - final) * (1 + math.cos(math.pi * min(t, total) / total))
