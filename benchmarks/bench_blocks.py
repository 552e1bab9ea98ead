"""Block-format and per-channel int8 round trips on a 4096x4096 float32 matrix.

Prints throughput and the ratio to the plain element-format round trip (qa.quantize(x, elem)),
measured in the same run: each case and its element format are timed in alternation, best of
``--repeat`` rounds, so that a noisy machine affects both alike. Target (issue 3): block formats
cost at most 1.5x the element format.

Run: python benchmarks/bench_blocks.py [--n 4096] [--repeat 7] [--threads T] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import qemu_arrays as qa


def _once(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _best_pair(fn, efn, repeat):
    fn()  # compile / warm up
    efn()
    t = te = float("inf")
    for _ in range(repeat):
        t = min(t, _once(fn))
        te = min(te, _once(efn))
    return t, te


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="threads (default: all)")
    ap.add_argument("--quick", action="store_true", help="a 1024x1024 matrix, 3 rounds")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.repeat = 1024, 3
    if args.threads:
        qa.set_num_threads(args.threads)
    n = args.n
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, n)).astype(np.float32)
    ts = qa.encode(x, "nvfp4").tensor_scale
    e4m3 = ("float8_e4m3fn", lambda: qa.quantize(x, "float8_e4m3fn"))
    e2m1 = ("float4_e2m1fn", lambda: qa.quantize(x, "float4_e2m1fn"))
    int8 = ("int8 scale=0.05", lambda: qa.quantize(x, "int8", scale=0.05))
    cases = [
        ("mxfp8_e4m3", lambda: qa.quantize(x, "mxfp8_e4m3"), *e4m3),
        ("mxfp4_e2m1", lambda: qa.quantize(x, "mxfp4_e2m1"), *e2m1),
        ("nvfp4", lambda: qa.quantize(x, "nvfp4"), *e2m1),
        ("nvfp4 (given tensor scale)", lambda: qa.quantize(x, "nvfp4", scale=ts), *e2m1),
        ("int8 per-channel absmax", lambda: qa.quantize(x, "int8", scale="absmax", axis=0),
         *int8),
        ("int8 per-group of 32", lambda: qa.quantize(x, "int8", scale="absmax", axis=1,
                                                     block_size=32), *int8),
    ]  # fmt: skip
    threads = args.threads or "all"
    print(f"{n}x{n} float32, blocks along the last axis; best of {args.repeat}; threads: {threads}")
    print(f"{'format':28s} {'Melem/s':>9s} {'element':>18s} {'Melem/s':>9s} {'ratio':>6s}")
    for name, fn, ename, efn in cases:
        t, te = _best_pair(fn, efn, args.repeat)
        print(f"{name:28s} {x.size / t / 1e6:9.1f} {ename:>18s} {x.size / te / 1e6:9.1f} "
              f"{t / te:6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
