"""JAX adapter (also public as :mod:`qemu_arrays.jax`): fake quantization with
``jax.custom_vjp``, traceable by ``jax.jit``, ``jax.grad`` and ``jax.vmap``.

The forward pass is ``qemu_arrays.quantize`` bit for bit, computed by the library's own
traceable route (element, scaled and block formats alike: :mod:`qemu_arrays.routes.generic`,
``generic_scaled``, ``generic_blocks``), no host callback. So under ``jax.vmap`` each example is
quantized on its own (its own absmax, its own MX/NVFP4 blocks and tensor scale, stochastic
rounding indexed within the example), as a loop over the examples would. The random key and
array scales are traced arguments: a new key at every step does not retrace.

The backward pass is ``grad * q̂'(x / s)``: the estimator's derivative on the element grid at
``x`` over each element's scale (the block scale for MX/NVFP4), in ``jax.numpy``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from qemu_arrays.estimators import LSQ, STE, Estimator
from qemu_arrays.formats.block_spec import BlockFormat
from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.spec import IntFormat
from qemu_arrays.quantspec import QuantSpec

__all__ = ["element_scales", "fake_quant", "quantize_params"]


def _quantize(x, fmt, seed, scale, kw):
    from qemu_arrays import quantize

    extra = {}
    if seed is not None:
        extra["seed"] = seed
    if scale is not None:
        extra["scale"] = scale
    try:
        return quantize(x, fmt, **dict(kw), **extra)
    except ValueError:
        if not (isinstance(fmt, IntFormat) and not jax.config.jax_enable_x64):
            raise
    # integer formats whose float64 quotient JAX's 32-bit mode cannot trace exactly (a scale
    # that is not a power of two): the host computes them, one example at a time under vmap
    return _host_quantize(x, fmt, seed, scale, kw)


def _host_quantize(x, fmt, seed, scale, kw):
    from qemu_arrays import quantize

    def host(a, sd, sc):
        a = np.asarray(a)
        extra = {}
        if sd is not None:
            extra["seed"] = np.asarray(sd)
        if sc is not None:
            extra["scale"] = np.asarray(sc)
        return np.asarray(quantize(a, fmt, **dict(kw), **extra), dtype=a.dtype)

    if seed is not None and jnp.issubdtype(seed.dtype, jax.dtypes.prng_key):
        seed = jax.random.key_data(seed)
    shape = jax.ShapeDtypeStruct(x.shape, x.dtype)
    return jax.pure_callback(host, shape, x, seed, scale, vmap_method="sequential")


def element_scales(x, format, **quantize_kwargs):  # noqa: A002
    """The scale of every element of ``x`` under ``quantize(x, format, ...)`` (traceable; float32
    unless ``x`` is float64): 1 without a scale, the scale of its tensor, channel or group, the
    block scale (times NVFP4's tensor scale) of block formats."""
    from qemu_arrays import decode, encode

    fmt = get_format(format)
    dt = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    scale = quantize_kwargs.get("scale")
    keys = ("scale", "axis", "block_size", "scale_format")
    kw = {k: v for k, v in quantize_kwargs.items() if k in keys and v is not None}
    if not isinstance(fmt, BlockFormat):
        if scale is None:
            return jnp.ones((), dt)
        if not isinstance(scale, str) and not (set(kw) - {"scale"}):
            return jnp.asarray(scale, dt)
    enc = encode(x, fmt, **kw)
    if isinstance(fmt, BlockFormat):
        s = decode(enc.scales, fmt.scale).astype(dt)
        if enc.tensor_scale is not None:
            s = s * jnp.asarray(enc.tensor_scale, dt)
    else:
        s = jnp.asarray(enc.scales, dt)
    if s.size == 1:
        return s.reshape(())
    if enc.block_size is not None:
        s = jnp.repeat(s, enc.block_size, axis=enc.axis)
        s = jax.lax.slice_in_dim(s, 0, x.shape[enc.axis], axis=enc.axis)
    return jnp.broadcast_to(s, x.shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _fake_quant(x, seed, scale, fmt, est, kw):
    return _quantize(x, fmt, seed, scale, kw)


def _fwd(x, seed, scale, fmt, est, kw):
    return _quantize(x, fmt, seed, scale, kw), (x, seed, scale)


def _bwd(fmt, est_mode, kw, res, grad):
    x, seed, scale = res
    est, per_element = est_mode
    if type(est) is STE:
        gx = grad
    elif not per_element:  # its own (scaled) grid, or none
        gx = est.backward(x, grad)
    else:  # on the element grid, at x over each element's scale
        s = element_scales(x, fmt, **{**dict(kw), **({} if scale is None else {"scale": scale})})
        gx = grad * est.derivative(x / s.astype(x.dtype)).astype(grad.dtype)
    return gx, None, None


_fake_quant.defvjp(_fwd, _bwd)


def _split(kw: dict):
    """(static keywords as a hashable tuple, array scale or None)."""
    scale = kw.pop("scale", None)
    if scale is not None and not isinstance(scale, (str, int, float)):
        scale = jnp.asarray(scale)
    elif scale is not None:
        kw["scale"] = scale
        scale = None
    return tuple(sorted(kw.items())), scale


def fake_quant(x, format, estimator: Estimator | None = None, *, key=None, **fields):  # noqa: A002
    """Quantize ``x`` in the forward pass, ``estimator`` (default the STE) in the backward pass.

    ``format``: a format name or object, or a :class:`~qemu_arrays.QuantSpec` (``fields``
    override its fields). ``key``: a ``jax.random`` key (traced: a new key per step does not
    retrace), the seed of stochastic rounding; ``seed=`` an int works too (static: a new int
    retraces). ``scale``: a number, a rule (``"absmax"``), or an array (``jnp`` or NumPy, traced;
    per channel with ``axis=``, per group with ``block_size=``). Other fields (``rounding``,
    ``axis``, ``block_size``, ``scale_format``, ``offset``, ...) go to ``qemu_arrays.quantize``.
    """
    if isinstance(format, QuantSpec):
        kw = {**format.quantize_kwargs(), **fields}
        estimator = format.estimator if estimator is None else estimator
        fmt = format.format
    else:
        fmt = get_format(format)
        kw = dict(fields)
    est = STE() if estimator is None else estimator
    if not isinstance(est, Estimator):
        msg = (
            f"estimator must be a qemu_arrays.estimators.Estimator, got {est!r}; "
            "hint: STE(), DSQ(k=3.0), Custom(derivative_fn=...)"
        )
        raise TypeError(msg)
    if isinstance(est, LSQ):
        msg = "LSQ's learned step is not supported by the JAX adapter; hint: use PWL() for x"
        raise ValueError(msg)
    seed = key
    if key is not None and kw.get("seed") is not None:
        msg = "give the seed once: key= (a jax.random key, traced) or seed= (an int)"
        raise ValueError(msg)
    if seed is None and kw.get("seed") is not None and not isinstance(kw["seed"], int):
        seed = kw.pop("seed")  # an array seed: traced too
    static, scale = _split(kw)
    sc = dict(static).get("scale")
    per_element = False
    if type(est) is not STE and est.needs_grid and est.format is None:
        if isinstance(sc, (int, float)) and not (set(dict(static)) & {"axis", "block_size",
                                                                       "scale_format"}):  # fmt: skip
            est = est.on(fmt, float(sc))  # one number: the scaled grid (as before)
        else:
            est = est.on(fmt.element if isinstance(fmt, BlockFormat) else fmt)
            per_element = True
    return _fake_quant(x, seed, scale, fmt, (est, per_element), static)


def quantize_params(params, spec, *, where=None, key=None):
    """``fake_quant`` on every floating-point leaf of a pytree (``where(path, leaf)`` chooses
    leaves; default every floating leaf of 2 or more dimensions: weights, not biases). With a
    ``key``, each leaf gets its own key (``jax.random.fold_in`` of its position)."""
    leaves, tree = jax.tree_util.tree_flatten_with_path(params)

    def chosen(path, leaf):
        if not jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating):
            return False
        return where(path, leaf) if where is not None else jnp.ndim(leaf) >= 2

    out = []
    for i, (path, leaf) in enumerate(leaves):
        if not chosen(path, leaf):
            out.append(leaf)
            continue
        k = None if key is None else jax.random.fold_in(key, i)
        out.append(fake_quant(leaf, spec, key=k))
    return jax.tree_util.tree_unflatten(tree, out)
