"""qemu_arrays.jax: per-example semantics under vmap, traced keys and scales, no host callback
for block formats, estimators on block formats, quantize_params."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="jax is an optional extra (qemu-arrays[jax])")
jnp = pytest.importorskip("jax.numpy", reason="jax is an optional extra (qemu-arrays[jax])")

import qemu_arrays as qa  # noqa: E402
import qemu_arrays.jax as qj  # noqa: E402
from qemu_arrays.estimators import DSQ  # noqa: E402

SR = qa.Rounding.STOCHASTIC


def _x(shape=(8, 64), seed=0):
    rng = np.random.default_rng(seed)
    scale = np.logspace(-2, 2, shape[0], dtype=np.float32)[:, None]
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def test_vmap_quantizes_each_example_on_its_own():
    x = _x()
    loop = np.stack([qa.quantize(r, "nvfp4") for r in x])
    assert (qa.quantize(x, "nvfp4") != loop).sum() > 100  # the whole batch is another thing
    got = jax.jit(jax.vmap(lambda r: qj.fake_quant(r, "nvfp4")))(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(got), loop)
    keys = jax.random.split(jax.random.key(1), x.shape[0])
    f = jax.vmap(lambda r, k: qj.fake_quant(r, "float8_e4m3fn", rounding=SR, key=k))
    got = np.asarray(jax.jit(f)(jnp.asarray(x), keys))
    seeds = [
        int(np.asarray(jax.random.key_data(k))[1])
        | int(np.asarray(jax.random.key_data(k))[0]) << 32
        for k in keys
    ]  # noqa: E501
    loop = np.stack(
        [
            qa.quantize(r, "float8_e4m3fn", rounding=SR, seed=s)
            for r, s in zip(x, seeds, strict=True)
        ]
    )  # noqa: E501
    np.testing.assert_array_equal(got, loop)


def test_traced_key_does_not_retrace():
    x = jnp.asarray(_x((4, 32)))
    traces = []

    @jax.jit
    def step(a, key):
        traces.append(1)
        return qj.fake_quant(a, "float8_e5m2", rounding=SR, key=key)

    for s in (3, 4, 5):
        got = np.asarray(step(x, jax.random.key(s)))
        want = qa.quantize(np.asarray(x), "float8_e5m2", rounding=SR, seed=s)
        np.testing.assert_array_equal(got, want)
    assert len(traces) == 1


def test_jnp_scales_and_rules_under_jit_and_grad():
    x = _x((6, 40))
    s = np.linspace(0.01, 0.2, 6, dtype=np.float32)[:, None]
    f = jax.jit(lambda a, sc: qj.fake_quant(a, "float4_e2m1fn", scale=sc, axis=0))
    want = qa.quantize(x, "float4_e2m1fn", scale=s, axis=0)
    np.testing.assert_array_equal(np.asarray(f(jnp.asarray(x), jnp.asarray(s))), want)
    spec = qj.QuantSpec("int8", scale="absmax", axis=0, scale_format="float8_e8m0fnu")
    g = jax.jit(jax.grad(lambda a: jnp.sum(qj.fake_quant(a, spec) * 2.0)))(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(g), np.full(x.shape, 2.0, np.float32))


def test_block_formats_trace_without_host_callback():
    x = jnp.asarray(_x((4, 64)))
    for name in ("mxfp4_e2m1", "nvfp4", "mxint8"):
        jaxpr = str(jax.make_jaxpr(lambda a, n=name: qj.fake_quant(a, n))(x))
        assert "callback" not in jaxpr, name
    fmt, est = "mxfp4_e2m1", DSQ(k=3.0)
    g = jax.jit(jax.grad(lambda a: jnp.sum(qj.fake_quant(a, fmt, est))))(x)
    s = qj.element_scales(x, fmt)
    want = est.on(qa.get_format(fmt).element).derivative(x / s)
    np.testing.assert_array_equal(np.asarray(g), np.asarray(want))
    assert not bool(jnp.all(g == 1.0))


def test_quantize_params():
    params = {"w": jnp.asarray(_x((4, 8))), "b": jnp.ones(8), "n": jnp.arange(3)}
    q = qj.quantize_params(params, qj.QuantSpec("int4", scale="absmax"))
    np.testing.assert_array_equal(
        np.asarray(q["w"]), qa.quantize(_x((4, 8)), "int4", scale="absmax")
    )
    assert q["b"] is params["b"]
    assert q["n"] is params["n"]
