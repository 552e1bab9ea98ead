"""Block-format and per-channel int8 round trips on a 4096x4096 float32 matrix.

Prints throughput and the ratio to the plain element-format round trip (qa.quantize(x, elem)),
measured in the same run. Target: block formats cost at most 1.5x the element format.
Run: python benchmarks/bench_blocks.py [n]
"""

from __future__ import annotations

import sys
import time

import numpy as np

import qemu_arrays as qa


def _best(fn, reps=5):
    fn()  # compile / warm up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(n=4096):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, n)).astype(np.float32)
    cases = [
        ("mxfp8_e4m3", lambda: qa.quantize(x, "mxfp8_e4m3"), "float8_e4m3fn",
         lambda: qa.quantize(x, "float8_e4m3fn")),
        ("mxfp4_e2m1", lambda: qa.quantize(x, "mxfp4_e2m1"), "float4_e2m1fn",
         lambda: qa.quantize(x, "float4_e2m1fn")),
        ("nvfp4", lambda: qa.quantize(x, "nvfp4"), "float4_e2m1fn",
         lambda: qa.quantize(x, "float4_e2m1fn")),
        ("int8 per-channel absmax", lambda: qa.quantize(x, "int8", scale="absmax", axis=0),
         "int8 scale=0.05", lambda: qa.quantize(x, "int8", scale=0.05)),
    ]  # fmt: skip
    print(f"{n}x{n} float32, blocks along the last axis; best of 5")
    print(f"{'format':28s} {'Melem/s':>9s} {'element':>18s} {'Melem/s':>9s} {'ratio':>6s}")
    for name, fn, ename, efn in cases:
        t, te = _best(fn), _best(efn)
        print(f"{name:28s} {x.size / t / 1e6:9.1f} {ename:>18s} {x.size / te / 1e6:9.1f} "
              f"{t / te:6.2f}")  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4096)
