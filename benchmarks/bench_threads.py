"""Where each CPU kernel family's thread pool starts to pay: serial against parallel per call.

For every kernel family (element general, element nearest-even, decode, scaled, block) and a
ladder of sizes, times one call with the serial variant forced and one with the parallel
variant forced (``qemu_arrays.kernels.runtime.force``), in alternation, median of ``--repeat`` pairs
(the machine may be shared), and prints both and their ratio; the size where the parallel
variant starts to win is the family's ``qemu_arrays.kernels.runtime.SERIAL_BELOW``. It also prints the
default per-call time (the variant ``quantize`` picks) of small arrays.

Run: python benchmarks/bench_threads.py [--repeat 15] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import qemu_arrays as qa
from qemu_arrays.kernels import runtime


def _once(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def families(n):
    """(family, operation on an n-element input) pairs."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(np.float32)
    rows = max(1, n // 256)
    x2 = x[: rows * 256].reshape(rows, 256)
    codes = rng.integers(0, 1 << 19, n, dtype=np.uint32)  # tf32 codes (19 bits: no table)
    sr = qa.Rounding.STOCHASTIC
    return [
        ("element", lambda: qa.quantize(x, "float8_e4m3fn", rounding=sr, seed=0)),
        ("element_rne", lambda: qa.quantize(x, "float8_e4m3fn")),
        ("decode", lambda: qa.decode(codes, "tf32")),
        ("scaled", lambda: qa.quantize(x2, "int8", scale="absmax", axis=0)),
        ("block", lambda: qa.quantize(x2, "mxfp8_e4m3")),
        ("block", lambda: qa.quantize(x2, "nvfp4")),
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    args = ap.parse_args(argv)
    logs = range(10, 21, 2) if args.quick else range(10, 23)
    repeat = 5 if args.quick else args.repeat
    print(f"threads {qa.get_num_threads()}, layer {runtime.init_threading()}; median of {repeat}")
    print(
        f"{'family':12s} {'case':>6s} {'n':>9s} {'serial us':>10s} {'parallel us':>12s} {'ratio':>6s}"
    )
    for lg in logs:
        n = 1 << lg
        for k, item in enumerate(families(n)):
            fam, fn = item
            with runtime.force("serial"):
                fn()
            with runtime.force("parallel"):
                fn()
            ts, tp = [], []
            for _ in range(repeat):
                with runtime.force("serial"):
                    ts.append(_once(fn))
                with runtime.force("parallel"):
                    tp.append(_once(fn))
            s, p = statistics.median(ts), statistics.median(tp)
            print(f"{fam:12s} {k:6d} {n:9d} {s * 1e6:10.1f} {p * 1e6:12.1f} {s / p:6.2f}")


if __name__ == "__main__":
    main()
