"""Benchmark: one SGD-harness step with every site quantized vs a plain numpy step.

Setting (issue 6): linear regression, d = 1000, batch 1, 64 replicas. The baseline is the same
SGD step written directly in numpy with no quantization (sample, predict, residual, gradient,
update). Printed: microseconds per step and the overhead ratio (target: at most 3x).

Run: ``python benchmarks/bench_training.py [--steps N]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from qemu_arrays import Rounding
from qemu_arrays.training import (
    AdditiveNoise,
    FormatQuantizer,
    LinearRegression,
    MultiplicativeNoise,
    UniformQuantizer,
    run_sgd,
)

D, B, R, LR = 1000, 1, 64, 0.05


def plain_numpy(model: LinearRegression, steps: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    w = np.zeros((R, D))
    sq, ws = np.sqrt(model.eigenvalues), model.w_star
    t0 = time.perf_counter()
    for _ in range(steps):
        X = rng.standard_normal((R, B, D))
        X *= sq
        y = X @ ws + model.noise * rng.standard_normal((R, B))
        pred = np.einsum("rbd,rd->rb", X, w)
        g = np.einsum("rbd,rb->rd", X, pred - y) / B
        w = w - LR * g
    return (time.perf_counter() - t0) / steps


def harness(model, steps: int, sites, prefetch: int = 1) -> float:
    run_sgd(model, steps=3, lr=LR, batch=B, replicas=R, sites=sites, seed=1)  # warm up/compile
    t0 = time.perf_counter()
    run_sgd(
        model, steps=steps, lr=LR, batch=B, replicas=R, sites=sites, seed=1, n_records=2,
        prefetch=prefetch,
    )  # fmt: skip
    return (time.perf_counter() - t0) / steps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--quick", action="store_true", help="40 steps")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps = 40
    model = LinearRegression(D, 2.0, 1.0, 1.0)
    noise_sites = {
        "data": AdditiveNoise(1e-3),
        "labels": AdditiveNoise(1e-3),
        "weights": UniformQuantizer(8, 4.0),
        "activations": MultiplicativeNoise(1e-3),
        "output_grad": AdditiveNoise(1e-3, dither=True),
        "param_grad": MultiplicativeNoise(1e-3, shared=False),
    }
    sr = Rounding.STOCHASTIC
    hw_sites = {
        "data": FormatQuantizer("float8_e4m3fn", rounding=sr),
        "labels": FormatQuantizer("bfloat16"),
        "weights": FormatQuantizer("int8", scale="absmax"),
        "activations": FormatQuantizer("float8_e4m3fn"),
        "output_grad": FormatQuantizer("float8_e5m2", rounding=sr),
        "param_grad": FormatQuantizer("float8_e5m2", rounding=sr),
    }
    base = plain_numpy(model, args.steps)
    rows = [("plain numpy step, no quantization", base)]
    rows.append(("harness, no quantization", harness(model, args.steps, None)))
    rows.append(
        ("harness, 6 sites: noise models + Q_{b,ω}", harness(model, args.steps, noise_sites))
    )
    rows.append(("harness, 6 sites: hardware formats", harness(model, args.steps, hw_sites)))
    rows.append(
        (
            "harness, 6 sites: hardware formats, prefetch=64",
            harness(model, args.steps, hw_sites, prefetch=64),
        )
    )
    print(f"d={D}, batch={B}, replicas={R}, steps={args.steps}")
    for name, t in rows:
        print(f"{name:<50s} {t * 1e6:9.1f} us/step   ratio {t / base:5.2f}x")


if __name__ == "__main__":
    main()
