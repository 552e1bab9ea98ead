"""PyTorch QAT costs: ``qemu_arrays.torch.fake_quant`` forward (+backward) against PyTorch's own
``x.to(float8_e4m3fn).to(float32)`` at 128x64 and 4096x4096 float32, and a digits QAT step with
FP8 weights and activations against the same step in plain PyTorch. Prints times and ratios in
one run (issue 14's targets: forward within 2x of the cast, a QAT step within 1.5x).

    python benchmarks/bench_qat.py [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch

import qemu_arrays.torch as qt


def per_call(f, n):
    f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n


def fake_quant_vs_cast():
    for shape, n in (((128, 64), 200), ((4096, 4096), 3)):
        x = torch.randn(shape)
        xg = x.clone().requires_grad_(True)
        cast = per_call(lambda x=x: x.to(torch.float8_e4m3fn).to(torch.float32), n)
        fwd = per_call(lambda x=x: qt.fake_quant(x, "float8_e4m3fn"), n)

        def fwd_bwd(xg=xg):
            qt.fake_quant(xg, "float8_e4m3fn").sum().backward()

        fb = per_call(fwd_bwd, n)
        print(
            f"{shape}: torch cast {cast * 1e3:.3f} ms, fake_quant fwd {fwd * 1e3:.3f} ms "
            f"({fwd / cast:.1f}x), fwd+bwd {fb * 1e3:.3f} ms"
        )


def qat_step():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y)

    def make(quant):
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
        if quant:
            qt.quantize_model(m, weights="float8_e4m3fn", activations="float8_e4m3fn")
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        b = torch.arange(128)

        def step():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(X[b]), y[b]).backward()
            opt.step()

        return step

    plain, quant = per_call(make(False), 100), per_call(make(True), 100)
    print(
        f"digits step: plain {plain * 1e3:.3f} ms, FP8 weights+activations {quant * 1e3:.3f} ms"
        f" ({quant / plain:.1f}x)"
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    torch.set_num_threads(p.parse_args().threads)
    fake_quant_vs_cast()
    qat_step()
