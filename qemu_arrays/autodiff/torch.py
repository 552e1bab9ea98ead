"""PyTorch adapter: fake quantization with a gradient estimator in the backward pass.

``fake_quant(t, format, estimator)`` returns ``qemu_arrays.quantize`` of ``t`` bit for bit (on
the tensor's values, computed on the host and moved back to ``t``'s device) and back-propagates
``grad * estimator.derivative(t)``. With :class:`~qemu_arrays.estimators.LSQ` and a tensor
``scale`` that requires grad, the step size is learned (LSQ's step-size gradient).
"""

from __future__ import annotations

import numpy as np
import torch

from qemu_arrays.estimators import LSQ, STE, Estimator

__all__ = ["QuantizedModule", "fake_quant", "quantize_module", "quantize_tensor"]


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _from_numpy(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    a = np.ascontiguousarray(a)
    if a.dtype.name == "bfloat16":
        t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    else:
        t = torch.from_numpy(a)
    return t.to(like.device)


def quantize_tensor(t: torch.Tensor, format, **quantize_kwargs) -> torch.Tensor:  # noqa: A002
    """``qemu_arrays.quantize`` on a tensor's values (no autograd), same dtype and device."""
    from qemu_arrays import quantize

    if not isinstance(t, torch.Tensor):
        msg = f"t must be a torch.Tensor, got {type(t).__name__}; hint: torch.as_tensor(x)"
        raise TypeError(msg)
    return _from_numpy(quantize(_to_numpy(t), format, **quantize_kwargs), t)


def _bind(estimator, format, scale):  # noqa: A002
    if not isinstance(estimator, Estimator):
        msg = (
            f"estimator must be a qemu_arrays.estimators.Estimator, got {estimator!r}; "
            "hint: STE(), DSQ(k=3.0), Custom(derivative_fn=...)"
        )
        raise TypeError(msg)
    if isinstance(estimator, LSQ):
        return estimator if estimator.format is not None else estimator.on(format)
    if estimator.needs_grid and estimator.format is None:
        return estimator.on(format, scale)
    return estimator


class _FakeQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t, scale_t, fmt, est, kwargs):
        scale = None if scale_t is None else float(scale_t.detach().cpu())
        if scale is not None:
            kwargs = {**kwargs, "scale": scale}
        y = quantize_tensor(t, fmt, **kwargs)
        ctx.save_for_backward(t, scale_t)
        ctx.est = est
        return y

    @staticmethod
    def backward(ctx, grad):
        t, scale_t = ctx.saved_tensors
        est = ctx.est
        t = t.detach()
        grad_scale = None
        if isinstance(est, LSQ) and scale_t is not None:
            s = scale_t.detach()
            grad_t = est.backward(t / s, grad)
            if ctx.needs_input_grad[1]:
                grad_scale = est.step_gradient(t, grad, s).reshape(scale_t.shape)
        else:
            grad_t = est.backward(t, grad)
        return grad_t, grad_scale, None, None, None


def fake_quant(
    t: torch.Tensor,
    format,  # noqa: A002
    estimator: Estimator = STE(),  # noqa: B008 - frozen, immutable default
    *,
    scale=None,
    **quantize_kwargs,
) -> torch.Tensor:
    """Quantize ``t`` to ``format`` in the forward pass, ``estimator`` in the backward pass.

    ``quantize_kwargs`` (``rounding``, ``overflow``, ``seed``, ...) go to
    ``qemu_arrays.quantize``. ``scale`` (integer formats): a number, or a 0-d tensor; with
    ``estimator=LSQ()`` a tensor scale that requires grad receives LSQ's step-size gradient.
    An estimator without a grid is placed on ``format`` (and ``scale``).
    """
    if not isinstance(t, torch.Tensor):
        msg = f"t must be a torch.Tensor, got {type(t).__name__}; hint: torch.as_tensor(x)"
        raise TypeError(msg)
    scale_t = None
    num_scale = scale
    if isinstance(scale, torch.Tensor):
        if scale.numel() != 1:
            msg = f"scale must be a number or a one-element tensor, got shape {tuple(scale.shape)}"
            raise ValueError(msg)
        if scale.requires_grad and not isinstance(estimator, LSQ):
            msg = (
                "scale requires grad but the estimator is "
                f"{type(estimator).__name__}; only LSQ learns the step size; hint: "
                "estimator=LSQ() or scale.detach()"
            )
            raise ValueError(msg)
        scale_t = scale
        num_scale = float(scale.detach().cpu())
    elif scale is not None:
        scale_t = torch.tensor(float(scale), dtype=torch.float64)
    est = _bind(estimator, format, num_scale)
    return _FakeQuant.apply(t, scale_t, format, est, dict(quantize_kwargs))


class QuantizedModule(torch.nn.Module):
    """Wrap ``module`` so that its parameters named in ``param_names`` (default the weight) and/or
    its first input are fake-quantized on every forward call.

    ``weight_format``/``input_format``: formats (None: not quantized); ``weight_scale`` /
    ``input_scale`` for integer formats; ``estimator`` (and ``input_estimator``, default the same)
    choose the backward pass; other keywords go to ``qemu_arrays.quantize``. The wrapped
    module's parameters stay full-precision latent weights (the optimizer updates them).
    """

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        weight_format=None,
        input_format=None,
        estimator: Estimator = STE(),  # noqa: B008
        input_estimator: Estimator | None = None,
        weight_scale=None,
        input_scale=None,
        param_names: tuple[str, ...] = ("weight",),
        **quantize_kwargs,
    ):
        super().__init__()
        if not isinstance(module, torch.nn.Module):
            msg = f"module must be a torch.nn.Module, got {type(module).__name__}"
            raise TypeError(msg)
        names = dict(module.named_parameters())
        missing = [n for n in param_names if n not in names]
        if weight_format is not None and missing:
            msg = (
                f"param_names {missing} are not parameters of {type(module).__name__}; "
                f"it has {sorted(names)}"
            )
            raise ValueError(msg)
        self.module = module
        self.weight_format = weight_format
        self.input_format = input_format
        self.estimator = estimator
        self.input_estimator = estimator if input_estimator is None else input_estimator
        self.weight_scale = weight_scale
        self.input_scale = input_scale
        self.param_names = tuple(param_names)
        self.quantize_kwargs = dict(quantize_kwargs)

    def quantized_parameters(self) -> dict[str, torch.Tensor]:
        """The fake-quantized parameters used by the forward pass (differentiable)."""
        if self.weight_format is None:
            return {}
        return {
            n: fake_quant(
                self.module.get_parameter(n),
                self.weight_format,
                self.estimator,
                scale=self.weight_scale,
                **self.quantize_kwargs,
            )
            for n in self.param_names
        }

    def forward(self, *args, **kwargs):
        if self.input_format is not None and args:
            x = fake_quant(
                args[0],
                self.input_format,
                self.input_estimator,
                scale=self.input_scale,
                **self.quantize_kwargs,
            )
            args = (x, *args[1:])
        params = self.quantized_parameters()
        if not params:
            return self.module(*args, **kwargs)
        return torch.func.functional_call(self.module, params, args, kwargs)


def quantize_module(module: torch.nn.Module, **kwargs) -> QuantizedModule:
    """``QuantizedModule(module, **kwargs)``."""
    return QuantizedModule(module, **kwargs)
