"""JAX fake_quant per call: a new key per step against a fixed key under jit (no retrace), the
per-example agreement of vmap with a loop (NVFP4), and the traced block route against the
NumPy route through a host callback. Prints times and ratios in one run (not a timed test).

    python benchmarks/bench_jax_qat.py
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import qemu_arrays as qa
import qemu_arrays.jax as qj


def per_call(f, *args, n=50):
    jax.block_until_ready(f(*args))
    t = time.perf_counter()
    for _ in range(n):
        jax.block_until_ready(f(*args))
    return (time.perf_counter() - t) / n


def main():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((128, 64)).astype(np.float32))
    sr = qa.Rounding.STOCHASTIC
    f = jax.jit(lambda a, k: qj.fake_quant(a, "float8_e4m3fn", rounding=sr, key=k))
    fixed = per_call(f, x, jax.random.key(0))
    keys = [jax.random.key(i) for i in range(60)]
    jax.block_until_ready(f(x, keys[0]))
    t = time.perf_counter()
    for k in keys[1:]:
        jax.block_until_ready(f(x, k))
    fresh = (time.perf_counter() - t) / (len(keys) - 1)
    print(
        f"jit, fixed key: {fixed * 1e3:.3f} ms/call; new key per step: {fresh * 1e3:.3f} ms/call"
        f" (ratio {fresh / fixed:.2f})"
    )

    xb = (rng.standard_normal((32, 32)) * np.logspace(-2, 2, 32)[:, None]).astype(np.float32)
    got = np.asarray(jax.jit(jax.vmap(lambda r: qj.fake_quant(r, "nvfp4")))(jnp.asarray(xb)))
    loop = np.stack([qa.quantize(r, "nvfp4") for r in xb])
    whole = qa.quantize(xb, "nvfp4")
    print(
        f"vmap NVFP4: {(got != loop).sum()} of {got.size} values differ from per-example "
        f"calls (the whole batch as one tensor: {(whole != loop).sum()} differ)"
    )

    big = jnp.asarray(rng.standard_normal((512, 512)).astype(np.float32))
    traced = jax.jit(lambda a: qj.fake_quant(a, "mxfp4_e2m1"))

    def host(a):
        return jax.pure_callback(
            lambda v: qa.quantize(np.asarray(v), "mxfp4_e2m1"),
            jax.ShapeDtypeStruct(a.shape, a.dtype),
            a,
        )

    hosted = jax.jit(host)
    tt, th = per_call(traced, big, n=20), per_call(hosted, big, n=20)
    print(
        f"mxfp4 512x512 under jit: traced {tt * 1e3:.2f} ms, host callback {th * 1e3:.2f} ms "
        f"(traced/host {tt / th:.2f})"
    )


if __name__ == "__main__":
    main()
