"""Emulated GEMM against numpy's float32 matmul on the same arrays (issue 17).

Prints, for 1024x1024x1024 and 4096x4096x256 (M x K x N ... here M x K times K x N), the time of
each emulated mode and its ratio to ``A @ B`` in float32, measured in the same run: each mode and
numpy are timed in alternation, best of ``--repeat`` rounds. Inputs are float8_e4m3fn values.
Targets: the per-addition-rounded sequential mode at most 30x numpy's float32 matmul on one
thread; the blocked mode with exact partial sums (block_k >= 32, promotion into float32) at most
3x.

Run: python benchmarks/bench_matmul.py [--threads 1] [--repeat 3] [--quick] [--only WORDS]
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _threads_from_argv(argv) -> str:
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


# BLAS reads its thread count when numpy is imported: set it first
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _threads_from_argv(sys.argv)

import numpy as np  # noqa: E402

import qemu_arrays as qa  # noqa: E402

R = qa.Rounding


def _once(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _best_pair(fn, ref, repeat):
    fn()  # compile / warm up
    ref()
    t = tr = float("inf")
    for _ in range(repeat):
        t = min(t, _once(fn))
        tr = min(tr, _once(ref))
    return t, tr


MODES = [
    ("sequential bfloat16 RNE", {"accumulator": "bfloat16"}, 30),
    ("sequential e8m13 RNE", {"accumulator": qa.FloatFormat(exponent_bits=8, mantissa_bits=13)},
     30),
    ("sequential bfloat16 toward-zero", {"accumulator": "bfloat16",
                                         "rounding": R.TOWARD_ZERO}, 30),
    ("sequential bfloat16 stochastic", {"accumulator": "bfloat16", "rounding": R.STOCHASTIC,
                                        "seed": 1}, 30),
    ("sequential bfloat16 stochastic, random_bits=15",
     {"accumulator": "bfloat16", "rounding": R.STOCHASTIC, "seed": 1, "random_bits": 15}, 30),
    ("sequential float32 RNE (native)", {"accumulator": "float32"}, 30),
    ("pairwise bfloat16 RNE", {"accumulator": "bfloat16", "order": "pairwise"}, 30),
    ("blocked exact partials, block_k=32 -> float32",
     {"accumulator": None, "order": "blocked", "block_k": 32}, 3),
    ("blocked exact partials, block_k=128 -> float32",
     {"accumulator": None, "order": "blocked", "block_k": 128}, 3),
    ("blocked e8m13 block_k=128 -> float32",
     {"accumulator": qa.FloatFormat(exponent_bits=8, mantissa_bits=13), "order": "blocked",
      "block_k": 128}, 30),
    ("exact sum, one rounding", {"accumulator": None}, 3),
]  # fmt: skip


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="numba and BLAS threads (default 1)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="256x256x256 and 1024x1024x64 only")
    ap.add_argument("--only", default="", help="run the modes whose name contains one of these "
                    "comma-separated words (default: all)")  # fmt: skip
    args = ap.parse_args(argv)
    import numba

    numba.set_num_threads(args.threads)
    shapes = [(1024, 1024, 1024), (4096, 256, 4096)]
    if args.quick:
        shapes = [(256, 256, 256), (1024, 64, 1024)]
    rng = np.random.default_rng(0)
    print(f"threads={args.threads}; ratio = emulated time / numpy float32 matmul time")
    fails = []
    for M, K, N in shapes:
        A = np.asarray(qa.quantize(rng.standard_normal((M, K)).astype(np.float32),
                                   "float8_e4m3fn"))  # fmt: skip
        B = np.asarray(qa.quantize(rng.standard_normal((K, N)).astype(np.float32),
                                   "float8_e4m3fn"))  # fmt: skip
        print(f"\n{M}x{K} @ {K}x{N} (float8_e4m3fn values in float32 arrays)")
        words = [w for w in args.only.split(",") if w]
        for name, kw, target in MODES:
            if words and not any(w in name for w in words):
                continue
            t, tr = _best_pair(lambda kw=kw, A=A, B=B: qa.matmul(A, B, allow_narrow=True, **kw),
                               lambda A=A, B=B: A @ B, args.repeat)  # fmt: skip
            ratio = t / tr
            flag = "ok" if ratio <= target else "MISSES"
            if ratio > target:
                fails.append(f"{M}x{K}x{N} {name}")
            print(f"  {name:48s} {t * 1e3:9.1f} ms  numpy {tr * 1e3:7.1f} ms  "
                  f"ratio {ratio:6.1f}  (target <= {target}: {flag})")  # fmt: skip
    print("\nmissed targets:", ", ".join(fails) if fails else "none")


if __name__ == "__main__":
    main()
