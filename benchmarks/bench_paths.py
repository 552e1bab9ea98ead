"""Every element path's time as a multiple of the copy time (``np.copyto``, same byte count).

One run, repetitions interleaved (each repetition times every path once, so load on the machine
spreads over all of them), on 2**24 standard-normal values by default, on one thread and on all
threads. Prints, per path, the min-max range of ``time / copy time`` over the repetitions
(the copy timed right before each path): 1.0 is memory speed, the issue-15 target is <= 2.

A fresh output pays the page faults of a new array, which the copy into an existing one does
not: the ``out=`` rows show the kernels' own time.

Rows: E4M3 nearest-even and stochastic (fresh output and ``out=``), toward zero / up / down,
float64 input, float16 and bfloat16 input, ``encode``; ml_dtypes' ``astype`` round trip and
torch's ``.to(float8_e4m3fn).to(float32)`` for comparison (when installed). Not a test.
Usage: ``python benchmarks/bench_paths.py [--log2n 24] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import time

import ml_dtypes
import numba
import numpy as np

import qemu_arrays as qa

R = qa.Rounding


def _paths(x):
    x64 = x.astype(np.float64)
    x16 = x.astype(np.float16)
    xbf = x.astype(ml_dtypes.bfloat16)
    out = np.empty_like(x)
    e4 = "float8_e4m3fn"
    paths = {
        "E4M3 nearest-even": (x, lambda: qa.quantize(x, e4)),
        "E4M3 nearest-even out=": (x, lambda: qa.quantize(x, e4, out=out)),
        "E4M3 stochastic": (x, lambda: qa.quantize(x, e4, rounding=R.STOCHASTIC, seed=1)),
        "E4M3 stochastic out=": (
            x,
            lambda: qa.quantize(x, e4, rounding=R.STOCHASTIC, seed=1, out=out),
        ),
        "E4M3 toward zero": (x, lambda: qa.quantize(x, e4, rounding=R.TOWARD_ZERO)),
        "E4M3 up": (x, lambda: qa.quantize(x, e4, rounding=R.UP)),
        "E4M3 down": (x, lambda: qa.quantize(x, e4, rounding=R.DOWN)),
        "E4M3 RNE float64 in": (x64, lambda: qa.quantize(x64, e4)),
        "E4M3 RNE float16 in": (x16, lambda: qa.quantize(x16, e4)),
        "E4M3 RNE bfloat16 in": (xbf, lambda: qa.quantize(xbf, e4)),
        "encode E4M3": (x, lambda: qa.encode(x, e4)),
        "ml_dtypes astype round trip": (
            x,
            lambda: x.astype(ml_dtypes.float8_e4m3fn).astype(np.float32),
        ),
        "ml_dtypes astype to codes": (x, lambda: x.astype(ml_dtypes.float8_e4m3fn)),
    }
    try:
        import torch

        xt = torch.from_numpy(x)
        paths["torch fp8 cast round trip"] = (
            x,
            lambda: xt.to(torch.float8_e4m3fn).to(torch.float32),
        )
    except ImportError:
        pass
    return paths


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(x, repeat, threads):
    """{path: [time / copy time per repetition]} with ``threads`` threads."""
    qa.set_num_threads(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    paths = _paths(x)
    copies = {}
    for a, fn in paths.values():  # warm-up: compiles, page faults
        fn()
        dst = np.empty_like(a)
        copies[a.dtype] = (dst, a)
    ratios: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(repeat):
        for name, (a, fn) in paths.items():
            dst, src = copies[a.dtype]
            t_copy = min(_timed(lambda d=dst, s=src: np.copyto(d, s)) for _ in range(2))
            ratios[name].append(_timed(fn) / t_copy)
    return ratios


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log2n", type=int, default=24)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args(argv)
    x = np.random.default_rng(0).standard_normal(1 << a.log2n).astype(np.float32)
    nmax = numba.config.NUMBA_NUM_THREADS
    print(
        f"n = 2**{a.log2n}, {a.repeat} interleaved repetitions; ml_dtypes {ml_dtypes.__version__}"
    )
    res = {t: measure(x, a.repeat, t) for t in sorted({1, nmax})}
    hdr = "".join(f"  {t} thread(s): min-max (median)" for t in res)
    print(f"{'path (time / np.copyto time)':32s}{hdr}")
    for name in res[1]:
        cells = []
        for t in res:
            v = sorted(res[t][name])
            cells.append(f"  {v[0]:6.2f} - {v[-1]:6.2f} ({v[len(v) // 2]:5.2f})      ")
        print(f"{name:32s}{''.join(cells)}")


if __name__ == "__main__":
    main()
