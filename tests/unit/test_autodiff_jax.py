"""JAX adapter: forward bit-exact with quantize (also under jit), backward = derivative x grad."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="jax is an optional extra (qemu-arrays[jax])")
jnp = pytest.importorskip("jax.numpy", reason="jax is an optional extra (qemu-arrays[jax])")

import qemu_arrays as qa  # noqa: E402
from qemu_arrays.autodiff.jax import fake_quant  # noqa: E402
from qemu_arrays.estimators import DSQ, EDE, HTGE, LSQ, MAD, STE, Custom  # noqa: E402

CASES = [
    ("float8_e4m3fn", {}, jnp.float32),
    ("float4_e2m1fn", {}, jnp.bfloat16),
    ("float6_e3m2fn", {}, jnp.float16),
    ("int4", {"scale": 0.25}, jnp.float32),
]
ESTIMATORS = [STE(), MAD(), DSQ(k=3.0), EDE(progress=0.5)]


def _data(dtype, n=257, seed=0):
    x = np.random.default_rng(seed).normal(scale=3.0, size=n).astype(np.float32)
    return jnp.asarray(x, dtype=dtype)


@pytest.mark.parametrize(("fmt", "kw", "dtype"), CASES)
def test_forward_bit_exact_eager_and_jit(fmt, kw, dtype):
    x = _data(dtype)
    want = qa.quantize(np.asarray(x), fmt, **kw)
    eager = np.asarray(fake_quant(x, fmt, **kw))
    jitted = np.asarray(jax.jit(lambda a: fake_quant(a, fmt, **kw))(x))
    assert eager.dtype == want.dtype
    np.testing.assert_array_equal(eager.view(np.uint8), want.view(np.uint8))
    np.testing.assert_array_equal(jitted.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize(("fmt", "kw", "dtype"), [c for c in CASES if c[2] == jnp.float32])
def test_grad_is_derivative_times_upstream(est, fmt, kw, dtype):
    x = _data(dtype, seed=1)
    up = _data(dtype, seed=2)
    bound = est.on(fmt, kw.get("scale")) if est.needs_grid else est

    def loss(a):
        return jnp.sum(fake_quant(a, fmt, est, **kw) * up)

    g_eager = np.asarray(jax.grad(loss)(x))
    g_jit = np.asarray(jax.jit(jax.grad(loss))(x))
    want = np.asarray(up) * np.asarray(bound.derivative(x))
    np.testing.assert_array_equal(g_eager, want)
    np.testing.assert_array_equal(g_jit, want)
    np.testing.assert_allclose(
        g_eager, np.asarray(up) * bound.derivative(np.asarray(x, np.float64)), rtol=2e-5, atol=2e-6
    )


def test_vjp_and_vmap():
    x = _data(jnp.float32, n=12, seed=3).reshape(3, 4)
    est = HTGE(t=4.0)
    # under jit: one compilation (the traceable route op by op would compile each operation)
    y, (g,) = jax.jit(lambda a: (lambda yv: (yv[0], yv[1](jnp.ones_like(a))))(
        jax.vjp(lambda b: fake_quant(b, "float8_e4m3fn", est), a)))(x)  # fmt: skip
    np.testing.assert_array_equal(np.asarray(y), qa.quantize(np.asarray(x), "float8_e4m3fn"))
    np.testing.assert_array_equal(np.asarray(g), np.asarray(est.on("float8_e4m3fn").derivative(x)))
    rows = jax.jit(jax.vmap(lambda r: fake_quant(r, "float8_e4m3fn")))(x)
    np.testing.assert_array_equal(np.asarray(rows), np.asarray(y))


def test_stochastic_and_custom():
    x = _data(jnp.float32, seed=4)
    kw = {"rounding": qa.Rounding.STOCHASTIC, "seed": 11}
    y = jax.jit(lambda a: fake_quant(a, "float8_e5m2", **kw))(x)
    np.testing.assert_array_equal(np.asarray(y), qa.quantize(np.asarray(x), "float8_e5m2", **kw))
    est = Custom(derivative_fn=lambda a: 1.0 + 0.5 * a * a)
    g = jax.jit(jax.grad(lambda a: jnp.sum(fake_quant(a, "int8", est, scale=0.1))))(x)
    np.testing.assert_allclose(np.asarray(g), 1.0 + 0.5 * np.asarray(x) ** 2, rtol=1e-6)


def test_bad_arguments():
    with pytest.raises(TypeError, match="estimator"):
        fake_quant(_data(jnp.float32), "int8", "ste", scale=1.0)
    with pytest.raises(ValueError, match="LSQ"):
        fake_quant(_data(jnp.float32), "int8", LSQ(), scale=1.0)
