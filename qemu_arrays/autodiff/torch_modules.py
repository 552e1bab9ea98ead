"""Quantized PyTorch modules: ``quantize_model`` (a whole model, in place) and
``QuantizedModule`` (one module, wrapped).

A quantized ``nn.Linear``/``nn.Conv1d``/``nn.Conv2d`` fake-quantizes its weight and its input in
the forward pass and the gradient of its output in the backward pass, each by a
:class:`~qemu_arrays.QuantSpec`. Stochastic rounding draws fresh bits at every training step:
each module keeps a step counter (the buffer ``qat_step``, saved in its ``state_dict``) advanced
by every forward pass in training mode, and the element offset of the random bits is
``step * numel``; the stream is ``spec.stream + 3 * index + role`` (``index``: the module's
position in the model, ``role``: 0 weight, 1 input, 2 gradient), so that no two quantizers
share bits. Everything stays reproducible from the seed.
"""

from __future__ import annotations

import fnmatch
import warnings

import torch

from qemu_arrays.autodiff.torch_ops import _quantize_values, fake_quant, spec_of
from qemu_arrays.estimators import STE, Estimator
from qemu_arrays.formats.enums import Rounding
from qemu_arrays.formats.spec import FloatFormat
from qemu_arrays.quantspec import QuantSpec

__all__ = [
    "QuantizationWarning",
    "QuantizedConv1d",
    "QuantizedConv2d",
    "QuantizedLinear",
    "QuantizedModule",
    "quantize_model",
    "quantize_module",
]

_M64 = (1 << 64) - 1


class QuantizationWarning(UserWarning):
    """A format cannot hold a tensor's values without a scale."""


def _range_problem(t: torch.Tensor, spec: QuantSpec) -> str | None:
    """Why an unscaled float format cannot hold ``t`` (more than half of its non-zero values
    flush to zero, or some saturate), or None."""
    fmt = spec.format
    if spec.scale is not None or not isinstance(fmt, FloatFormat):
        return None
    with torch.no_grad():
        x = t.detach()
        q = _quantize_values(x, fmt, spec.quantize_kwargs() | {"rounding": Rounding.NEAREST_EVEN})
        nz = x != 0
        flushed = int(((q == 0) & nz).sum())
        n = int(nz.sum())
        sat = int((x.abs() > float(fmt.max)).sum())
    if n and flushed * 2 > n:
        return f"{flushed} of its {n} non-zero values flush to zero in {fmt.name!r}"
    if sat:
        return f"{sat} of its values exceed {fmt.name!r}'s largest value {fmt.max:g}"
    return None


def _warn_range(module, what: str, t: torch.Tensor, spec: QuantSpec | None) -> None:
    if spec is None or getattr(module, "_qat_warned", False):
        return
    why = _range_problem(t, spec)
    if why is None:
        return
    module._qat_warned = True
    msg = (
        f"{type(module).__name__}: the {what} cannot be held by {spec.format.name!r} without a "
        f"scale: {why}; training would see mostly zeros (or clipped values); hint: "
        f"scale='absmax' (QuantSpec({spec.format.name!r}, scale='absmax'))"
    )
    warnings.warn(msg, QuantizationWarning, stacklevel=4)


class _GradQuant(torch.autograd.Function):
    """Identity forward; the gradient quantized by ``spec`` in the backward pass."""

    @staticmethod
    def forward(ctx, y, spec, kw):
        ctx.spec, ctx.kw = spec, kw
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad):
        spec = ctx.spec
        kw = {**spec.quantize_kwargs(), **ctx.kw}
        return _quantize_values(grad.detach(), spec.format, kw), None, None


class _Quantizers:
    """The weight, input and gradient quantizers of a module, and its step counter."""

    qat_weights: QuantSpec | None
    qat_activations: QuantSpec | None
    qat_gradients: QuantSpec | None

    def _qat_setup(self, weights, activations, gradients, index: int) -> None:
        self.qat_weights = weights
        self.qat_activations = activations
        self.qat_gradients = gradients
        self.qat_index = int(index)
        self._qat_warned = False
        self.register_buffer("qat_step", torch.zeros((), dtype=torch.int64))

    def _qat_kw(self, spec: QuantSpec, role: int, numel: int) -> dict:
        if not spec.rounding.stochastic:  # fresh bits each step for every stochastic mode
            return {}
        step = int(self.qat_step)
        return {
            "offset": (step * numel) & _M64,
            "stream": spec.stream + 3 * self.qat_index + role,
        }

    def _qat_weight(self, w):
        spec = self.qat_weights
        if spec is None:
            return w
        _warn_range(self, "weight", w, spec)
        return fake_quant(w, spec, **self._qat_kw(spec, 0, w.numel()))

    def _qat_input(self, x):
        spec = self.qat_activations
        if spec is None:
            return x
        _warn_range(self, "input", x, spec)
        return fake_quant(x, spec, **self._qat_kw(spec, 1, x.numel()))

    def _qat_output(self, y):
        spec = self.qat_gradients
        if spec is not None and y.requires_grad:
            y = _GradQuant.apply(y, spec, self._qat_kw(spec, 2, y.numel()))
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                self.qat_step += 1
        return y

    def extra_repr(self) -> str:
        base = super().extra_repr()
        parts = [
            f"{k}={v!r}"
            for k, v in (
                ("weights", self.qat_weights),
                ("activations", self.qat_activations),
                ("gradients", self.qat_gradients),
            )
            if v is not None
        ]
        return ", ".join([base, *parts]) if base else ", ".join(parts)


class QuantizedLinear(_Quantizers, torch.nn.Linear):
    """``nn.Linear`` with quantized weight, input and output gradient (see the module doc)."""

    def forward(self, x):
        y = torch.nn.functional.linear(self._qat_input(x), self._qat_weight(self.weight), self.bias)
        return self._qat_output(y)


class QuantizedConv1d(_Quantizers, torch.nn.Conv1d):
    """``nn.Conv1d`` with quantized weight, input and output gradient."""

    def forward(self, x):
        y = self._conv_forward(self._qat_input(x), self._qat_weight(self.weight), self.bias)
        return self._qat_output(y)


class QuantizedConv2d(_Quantizers, torch.nn.Conv2d):
    """``nn.Conv2d`` with quantized weight, input and output gradient."""

    def forward(self, x):
        y = self._conv_forward(self._qat_input(x), self._qat_weight(self.weight), self.bias)
        return self._qat_output(y)


_SWAPS = {
    torch.nn.Linear: QuantizedLinear,
    torch.nn.Conv1d: QuantizedConv1d,
    torch.nn.Conv2d: QuantizedConv2d,
}


def _role_spec(name, value):
    if value is None:
        return None
    try:
        return spec_of(value)
    except (TypeError, ValueError) as exc:
        msg = (
            f"{name} must be a QuantSpec or a format name (integer and float formats get "
            f"scale='absmax'), got {value!r}: {exc}"
        )
        raise type(exc)(msg) from None


def quantize_model(
    model: torch.nn.Module,
    *,
    weights=None,
    activations=None,
    gradients=None,
    modules=(torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d),
    skip=(),
) -> torch.nn.Module:
    """Quantize every ``nn.Linear``/``nn.Conv1d``/``nn.Conv2d`` of ``model`` in place.

    ``weights``/``activations``/``gradients``: a :class:`~qemu_arrays.QuantSpec` or a format name
    (integer and float formats then scale by ``"absmax"`` per tensor; block formats by their
    blocks), or None (not quantized). ``modules``: the module types to swap (of those three);
    ``skip``: names (``fnmatch`` patterns, e.g. ``"head"`` or ``"blocks.*.proj"``) of modules
    left as they are. Each matching module becomes a :class:`QuantizedLinear` (...) in place: its
    parameters, hooks and ``state_dict`` keys stay (a buffer ``qat_step`` is added). Returns
    ``model``.
    """
    if not isinstance(model, torch.nn.Module):
        msg = f"model must be a torch.nn.Module, got {type(model).__name__}"
        raise TypeError(msg)
    specs = [_role_spec(n, v) for n, v in
             (("weights", weights), ("activations", activations), ("gradients", gradients))]  # fmt: skip
    if all(s is None for s in specs):
        msg = "quantize_model needs weights=, activations= or gradients=; hint: weights='int8'"
        raise ValueError(msg)
    types = tuple(modules) if isinstance(modules, (tuple, list)) else (modules,)
    bad = [t for t in types if t not in _SWAPS]
    if bad:
        msg = (
            f"modules must be among {[t.__name__ for t in _SWAPS]}, got {bad}; hint: the default "
            "quantizes all three"
        )
        raise ValueError(msg)
    skip = (skip,) if isinstance(skip, str) else tuple(skip)
    index = 0
    for name, m in model.named_modules():
        if type(m) not in types or any(fnmatch.fnmatchcase(name, p) for p in skip):
            continue
        m.__class__ = _SWAPS[type(m)]
        m._qat_setup(*specs, index)
        if hasattr(m, "weight"):
            m.qat_step = m.qat_step.to(m.weight.device)
        index += 1
    if index == 0:
        msg = (
            f"model has no module of the types {[t.__name__ for t in types]} outside skip="
            f"{list(skip)}; nothing was quantized"
        )
        raise ValueError(msg)
    return model


class QuantizedModule(_Quantizers, torch.nn.Module):
    """Wrap ``module`` so that its parameters named in ``param_names`` (default the weight) and/or
    its first input are fake-quantized on every forward call (and, with ``grad_format``, the
    gradient of its output in the backward pass).

    ``weight_format``/``input_format``/``grad_format``: formats or :class:`QuantSpec` (None: not
    quantized); ``weight_scale``/``input_scale``/``grad_scale``: their scales (numbers or rules
    such as ``"absmax"``; needed by integer formats; a float format without a scale that
    flushes most values to zero warns once with :class:`QuantizationWarning`);
    ``estimator`` (and ``input_estimator``, default the same) choose the backward pass; other
    keywords go to ``qemu_arrays.quantize``. The wrapped module's parameters stay full-precision
    latent weights (the optimizer updates them). For a whole model use :func:`quantize_model`.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        weight_format=None,
        input_format=None,
        grad_format=None,
        estimator: Estimator = STE(),  # noqa: B008
        input_estimator: Estimator | None = None,
        weight_scale=None,
        input_scale=None,
        grad_scale="absmax",
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
        self.estimator = estimator
        self.input_estimator = estimator if input_estimator is None else input_estimator
        self.param_names = tuple(param_names)
        self.quantize_kwargs = dict(quantize_kwargs)
        fields = {k: v for k, v in quantize_kwargs.items() if k in _SPEC_FIELDS}
        self._extra = {k: v for k, v in quantize_kwargs.items() if k not in _SPEC_FIELDS}

        def spec(fmt, scale, est):
            if fmt is None or isinstance(fmt, QuantSpec):
                return fmt
            return QuantSpec(fmt, scale=scale, estimator=est, **fields)

        self._qat_setup(
            spec(weight_format, weight_scale, estimator),
            spec(input_format, input_scale, self.input_estimator),
            spec(grad_format, grad_scale, None),
            0,
        )

    @property
    def weight_format(self):
        return None if self.qat_weights is None else self.qat_weights.format

    @property
    def input_format(self):
        return None if self.qat_activations is None else self.qat_activations.format

    def _fq(self, t, spec, role):
        return fake_quant(t, spec, **self._extra, **self._qat_kw(spec, role, t.numel()))

    def quantized_parameters(self) -> dict[str, torch.Tensor]:
        """The fake-quantized parameters used by the forward pass (differentiable)."""
        spec = self.qat_weights
        if spec is None:
            return {}
        out = {}
        for n in self.param_names:
            p = self.module.get_parameter(n)
            _warn_range(self, f"parameter {n!r}", p, spec)
            out[n] = self._fq(p, spec, 0)
        return out

    def forward(self, *args, **kwargs):
        if self.qat_activations is not None and args:
            _warn_range(self, "input", args[0], self.qat_activations)
            args = (self._fq(args[0], self.qat_activations, 1), *args[1:])
        params = self.quantized_parameters()
        if not params:
            y = self.module(*args, **kwargs)
        else:
            y = torch.func.functional_call(self.module, params, args, kwargs)
        if isinstance(y, torch.Tensor):
            return self._qat_output(y)
        return y


_SPEC_FIELDS = ("axis", "block_size", "scale_format", "rounding", "overflow", "seed", "stream")


def quantize_module(module: torch.nn.Module, **kwargs) -> QuantizedModule:
    """``QuantizedModule(module, **kwargs)``."""
    return QuantizedModule(module, **kwargs)
