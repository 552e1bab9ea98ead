"""PyTorch adapter: fake quantization with a gradient estimator in the backward pass.

``fake_quant(t, spec_or_format, estimator)`` returns ``qemu_arrays.quantize`` of ``t`` bit for
bit and back-propagates ``grad * Q̂'(t)``. The forward pass is the custom op
``qemu_arrays::quantize`` (``torch.library``, with a fake implementation), so
``torch.compile(fullgraph=True)`` traces through it; CPU tensors are quantized in place of their
NumPy views (no copy), CUDA tensors by the CUDA kernels (scaled formats: on the host).

The estimator's derivative is that of its surrogate on the *element grid* times the scale of
each element: ``Q̂'(x) = q̂'(x / s)`` with ``s`` the element's scale (per tensor, per channel, per
group, or the block scale of an MX/NVFP4 block times NVFP4's tensor scale), so every estimator
works on every scaled and block format. With :class:`~qemu_arrays.estimators.LSQ` and a tensor
``scale`` that requires grad, the step size is learned (LSQ's step-size gradient).

The modules (:class:`QuantizedModule`, :func:`quantize_model`) are in
:mod:`qemu_arrays.autodiff.torch_modules`; ``qemu_arrays.torch`` is the public module.
"""

from __future__ import annotations

import ast
from typing import Optional

import numpy as np
import torch

from qemu_arrays.estimators import LSQ, STE, Estimator
from qemu_arrays.formats.block_spec import BlockFormat
from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.enums import Overflow, Rounding
from qemu_arrays.quantspec import QuantSpec, as_spec

__all__ = ["element_scales", "fake_quant", "quantize_tensor", "spec_of"]


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


def _check_tensor(t):
    if not isinstance(t, torch.Tensor):
        msg = f"t must be a torch.Tensor, got {type(t).__name__}; hint: torch.as_tensor(x)"
        raise TypeError(msg)


def quantize_tensor(t: torch.Tensor, format, **quantize_kwargs) -> torch.Tensor:  # noqa: A002
    """``qemu_arrays.quantize`` on a tensor's values (no autograd), same dtype and device."""
    _check_tensor(t)
    return _quantize_values(t.detach(), get_format(format), quantize_kwargs)


def _host(v):
    """Array arguments (scales) as NumPy for the library."""
    return _to_numpy(v) if isinstance(v, torch.Tensor) else v


def _quantize_values(t: torch.Tensor, fmt, kw: dict) -> torch.Tensor:
    """The values (same dtype and device): CPU tensors through zero-copy NumPy views, CUDA
    tensors on the device where the CUDA route can, else through the host."""
    from qemu_arrays import quantize

    kw = {k: _host(v) for k, v in kw.items()}
    if t.device.type == "cpu":
        return _from_numpy(np.asarray(quantize(_to_numpy(t), fmt, **kw)), t)
    try:
        return quantize(t.contiguous(), fmt, **kw)
    except NotImplementedError:  # scaled formats on CUDA: the host computes them
        return _from_numpy(np.asarray(quantize(_to_numpy(t), fmt, **kw)), t)


# ---- the custom op -----------------------------------------------------------------------------

_ENUMS = {"rounding": Rounding, "overflow": Overflow}


def _options(kw: dict) -> str:
    """The non-array keywords as a string ``k=repr(v);...`` (a custom op's arguments are typed;
    plain string formatting, so that ``torch.compile`` traces it)."""
    parts = []
    for k in sorted(kw):
        v = kw[k]
        if isinstance(v, (Rounding, Overflow)):
            v = v.name
        elif k == "scale_format" and v is not None:
            v = get_format(v).name
        elif isinstance(v, (np.integer, np.floating)):
            v = v.item()
        parts.append(f"{k}={v!r}")
    return ";".join(parts)


def _parse(options: str) -> dict:
    kw = {}
    for part in options.split(";") if options else ():
        k, _, v = part.partition("=")
        kw[k] = ast.literal_eval(v)
    for k, cls in _ENUMS.items():
        if k in kw:
            kw[k] = cls[kw[k]]
    return kw


@torch.library.custom_op("qemu_arrays::quantize", mutates_args=())
def _quantize_op(
    x: torch.Tensor,
    scale: Optional[torch.Tensor],  # noqa: UP045 - torch.library reads the annotation
    fmt: str,
    options: str,
) -> torch.Tensor:
    kw = _parse(options)
    if scale is not None:
        kw["scale"] = scale
    return _quantize_values(x.detach(), get_format(fmt), kw)


@_quantize_op.register_fake
def _(x, scale, fmt, options):
    return torch.empty_like(x)


def _ste_backward(ctx, grad):
    return grad, None, None, None


_quantize_op.register_autograd(_ste_backward)


def _op_format_name(fmt) -> str | None:
    """The catalogue name of ``fmt`` when it resolves back to it (the op takes names)."""
    try:
        return fmt.name if get_format(fmt.name) == fmt else None
    except (ValueError, TypeError):
        return None


def _forward(t: torch.Tensor, fmt, kw: dict) -> torch.Tensor:
    """The quantized values of ``t``: the custom op (differentiable: straight-through)."""
    scale = kw.get("scale")
    if isinstance(scale, (np.ndarray, list, tuple)):
        scale = torch.as_tensor(np.asarray(scale, dtype=np.float64))
    name = _op_format_name(fmt)
    if name is None:
        return _Direct.apply(t, fmt, kw)
    rest = {k: v for k, v in kw.items() if k != "scale"}
    if isinstance(scale, torch.Tensor):
        return _quantize_op(t, scale.detach(), name, _options(rest))
    if scale is not None:
        rest["scale"] = scale
    return _quantize_op(t, None, name, _options(rest))


class _Direct(torch.autograd.Function):
    """Formats outside the catalogue (built by hand): the same values, straight through."""

    @staticmethod
    def forward(ctx, t, fmt, kw):
        return _quantize_values(t.detach(), fmt, kw)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


# ---- scales of every element ----------------------------------------------------------------


def element_scales(t: torch.Tensor, format, **quantize_kwargs) -> torch.Tensor:  # noqa: A002
    """The scale of every element of ``t`` under ``quantize(t, format, **quantize_kwargs)``
    (float64, ``t``'s shape and device): 1 without a scale, the given or computed scale of its
    tensor, channel or group, the block scale (times NVFP4's tensor scale) of block formats."""
    from qemu_arrays import decode, encode

    fmt = get_format(format)
    scale = quantize_kwargs.get("scale")
    if not isinstance(fmt, BlockFormat):
        if scale is None:
            return torch.ones((), dtype=torch.float64, device=t.device)
        if not isinstance(scale, str) and quantize_kwargs.get("axis") is None and (
            quantize_kwargs.get("block_size") is None
        ) and quantize_kwargs.get("scale_format") is None:  # fmt: skip
            return torch.as_tensor(_host(scale), dtype=torch.float64).to(t.device)
    kw = {k: _host(v) for k, v in quantize_kwargs.items() if k in _SCALE_KEYS}
    enc = encode(_to_numpy(t.detach()), fmt, **kw)
    if isinstance(fmt, BlockFormat):
        s = np.asarray(decode(enc.scales, fmt.scale, dtype=np.float64))
        if enc.tensor_scale is not None:
            s = s * float(enc.tensor_scale)
    else:
        s = np.asarray(enc.scales, dtype=np.float64)
    return torch.from_numpy(_expand(s, tuple(t.shape), enc.axis, enc.block_size)).to(t.device)


_SCALE_KEYS = ("scale", "axis", "block_size", "scale_format", "percentile", "symmetric")


def _expand(s: np.ndarray, shape, axis, block_size) -> np.ndarray:
    if s.size == 1:
        return s.reshape(())
    if block_size is not None:
        s = np.repeat(s, block_size, axis=axis)
        s = np.take(s, np.arange(shape[axis]), axis=axis)
    return np.array(np.broadcast_to(s, shape))  # a writable copy


# ---- estimators -------------------------------------------------------------------------------


def _element_format(fmt):
    return fmt.element if isinstance(fmt, BlockFormat) else fmt


class _Estimated(torch.autograd.Function):
    """Forward: the quantized values; backward: ``grad * q̂'(t / s)`` on the element grid."""

    @staticmethod
    def forward(ctx, t, fmt, est, kw):
        y = _quantize_values(t.detach(), fmt, kw)
        ctx.save_for_backward(t, element_scales(t, fmt, **kw))
        ctx.est = est
        return y

    @staticmethod
    def backward(ctx, grad):
        t, s = ctx.saved_tensors
        u = t.detach().double() / s
        return grad * ctx.est.derivative(u).to(grad.dtype), None, None, None


class _FakeQuantLSQ(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t, scale_t, fmt, est, kwargs):
        kwargs = {**kwargs, "scale": float(scale_t.detach().cpu())}
        y = _quantize_values(t.detach(), fmt, kwargs)
        ctx.save_for_backward(t, scale_t)
        ctx.est = est
        return y

    @staticmethod
    def backward(ctx, grad):
        t, scale_t = ctx.saved_tensors
        est = ctx.est
        t = t.detach()
        s = scale_t.detach()
        grad_t = est.backward(t / s, grad)
        grad_scale = None
        if ctx.needs_input_grad[1]:
            grad_scale = est.step_gradient(t, grad, s).reshape(scale_t.shape)
        return grad_t, grad_scale, None, None, None


def _check_estimator(estimator):
    if not isinstance(estimator, Estimator):
        msg = (
            f"estimator must be a qemu_arrays.estimators.Estimator, got {estimator!r}; "
            "hint: STE(), DSQ(k=3.0), Custom(derivative_fn=...)"
        )
        raise TypeError(msg)


def _tensor_scale(scale):
    """A tensor scale: a 0-d/one-element tensor stays a number unless it requires grad (LSQ);
    a larger one (per channel/group) is given to the library as an array."""
    if scale.numel() == 1 and not scale.requires_grad:
        return float(scale.detach().cpu())
    return scale


def fake_quant(
    t: torch.Tensor,
    format,  # noqa: A002
    estimator: Estimator | None = None,
    *,
    scale=None,
    **quantize_kwargs,
) -> torch.Tensor:
    """Quantize ``t`` in the forward pass, ``estimator`` (default the STE) in the backward pass.

    ``format``: a format name or object, or a :class:`~qemu_arrays.QuantSpec` (whose fields the
    keywords override). ``quantize_kwargs`` (``rounding``, ``seed``, ``offset``, ``axis``,
    ``block_size``, ``scale_format``, ...) go to ``qemu_arrays.quantize``. ``scale``: a number, a
    rule (``"absmax"``), an array or a tensor (per channel with ``axis=``, per group with
    ``block_size=``); with ``estimator=LSQ()`` a 0-d tensor scale that requires grad receives
    LSQ's step-size gradient. A fixed ``seed`` gives the same stochastic rounding at every call
    (the quantized modules advance ``offset`` at every training step; do so here by hand).
    """
    _check_tensor(t)
    if isinstance(format, QuantSpec):
        spec = format
        kw = {**spec.quantize_kwargs(), **quantize_kwargs}
        if scale is not None:
            kw["scale"] = scale
        estimator = spec.estimator if estimator is None else estimator
        fmt = spec.format
    else:
        fmt = get_format(format)
        kw = dict(quantize_kwargs)
        if scale is not None:
            kw["scale"] = scale
    estimator = STE() if estimator is None else estimator
    _check_estimator(estimator)
    scale = kw.get("scale")
    if isinstance(scale, torch.Tensor):
        scale = kw["scale"] = _tensor_scale(scale)
        if isinstance(scale, torch.Tensor) and scale.requires_grad:
            if not isinstance(estimator, LSQ) or scale.numel() != 1:
                msg = (
                    "scale requires grad but the estimator is "
                    f"{type(estimator).__name__}; only LSQ learns the step size (one scale per "
                    "tensor); hint: estimator=LSQ() or scale.detach()"
                )
                raise ValueError(msg)
            est = estimator if estimator.format is not None else estimator.on(fmt)
            kw.pop("scale")
            return _FakeQuantLSQ.apply(t, scale, fmt, est, kw)
    if type(estimator) is STE:
        return _forward(t, fmt, kw)
    if estimator.format is not None or not estimator.needs_grid:  # its own grid, or none
        return _OwnGrid.apply(t, fmt, estimator, kw)
    if scale is None and not isinstance(fmt, BlockFormat):
        return _OwnGrid.apply(t, fmt, estimator.on(fmt), kw)
    if isinstance(scale, (int, float)) and not isinstance(scale, bool) and not (
        set(kw) & {"axis", "block_size", "scale_format"}
    ):  # one number: the estimator on the scaled grid (as before)  # fmt: skip
        return _OwnGrid.apply(t, fmt, estimator.on(fmt, float(scale)), kw)
    return _Estimated.apply(t, fmt, estimator.on(_element_format(fmt)), kw)


class _OwnGrid(torch.autograd.Function):
    """An estimator with its own (scaled) grid: ``grad * Q̂'(t)``."""

    @staticmethod
    def forward(ctx, t, fmt, est, kw):
        ctx.save_for_backward(t)
        ctx.est = est
        return _quantize_values(t.detach(), fmt, kw)

    @staticmethod
    def backward(ctx, grad):
        (t,) = ctx.saved_tensors
        return ctx.est.backward(t.detach(), grad), None, None, None


def spec_of(spec_or_format, *, default_scale="absmax", **fields) -> QuantSpec:
    """A :class:`QuantSpec` from a spec or a format name (integer and float formats: with
    ``default_scale``, absmax scaling unless said otherwise)."""
    return as_spec(spec_or_format, default_scale=default_scale, **fields)
