"""CPU speed of the element-format round trip, against the libraries a user would otherwise pick.

Times, in one run on the same float32 array (2**24 standard-normal values by default):

* ``qa.quantize(x, fmt)`` against ``x.astype(ml_dtypes.<fmt>).astype(np.float32)`` for E4M3,
  E5M2, E2M1 and bfloat16, on one thread and on all threads;
* int8 with a scale against the NumPy formula ``np.clip(np.round(x / s), -128, 127) * s``;
* stochastic rounding into E4M3 against gfloat's ``round_ndarray`` (Stochastic, 23 random bits);
* a plain memory copy of the array (``np.copyto``), the bandwidth limit.

Prints best-of-``--repeat`` times and ratios (>1 means qemu_arrays is faster). Not a test.
Usage: ``python benchmarks/bench_cpu.py [--log2n 24] [--repeat 5] [--quick]``.
"""

from __future__ import annotations

import argparse
import time

import ml_dtypes
import numba
import numpy as np

import qemu_arrays as qa


def best_time(fn, repeat):
    fn()  # warm-up (compiles on first call)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log2n", type=int, default=24)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="2**20 elements, 2 repeats")
    a = p.parse_args(argv)
    if a.quick:
        a.log2n, a.repeat = 20, 2
    n = 1 << a.log2n
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    nthreads = numba.config.NUMBA_NUM_THREADS
    print(f"n = 2**{a.log2n} float32, best of {a.repeat}; all threads = {nthreads}")

    dst = np.empty_like(x)
    t_copy = best_time(lambda: np.copyto(dst, x), a.repeat)
    print(f"{'memory copy':40s} {t_copy * 1e3:9.2f} ms  ({2 * x.nbytes / t_copy / 1e9:.1f} GB/s)")

    rows = []
    for name in ("float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "bfloat16"):
        t = getattr(ml_dtypes, name)
        t_ml = best_time(lambda t=t: x.astype(t).astype(np.float32), a.repeat)
        qa.set_num_threads(1)
        t_1 = best_time(lambda name=name: qa.quantize(x, name), a.repeat)
        qa.set_num_threads(nthreads)
        t_n = best_time(lambda name=name: qa.quantize(x, name), a.repeat)
        rows.append((f"{name} RNE", t_ml, "ml_dtypes cast", t_1, t_n))

    s = np.float32(0.05)
    t_np = best_time(lambda: np.clip(np.round(x / s), -128, 127) * s, a.repeat)
    qa.set_num_threads(1)
    t_1 = best_time(lambda: qa.quantize(x, "int8", scale=0.05), a.repeat)
    qa.set_num_threads(nthreads)
    t_n = best_time(lambda: qa.quantize(x, "int8", scale=0.05), a.repeat)
    rows.append(("int8 scale=0.05 RNE", t_np, "numpy formula", t_1, t_n))

    sr = qa.Rounding.STOCHASTIC
    try:
        import gfloat
        from gfloat.formats import format_info_ocp_e4m3

        m = 1 << 20 if n > 1 << 20 else n  # gfloat is slow: time a slice, scale to n
        xs = x[:m].astype(np.float64)
        rng = np.random.default_rng(1)

        def gf():
            bits = rng.integers(0, 1 << 23, size=m, dtype=np.int64)
            return gfloat.round_ndarray(
                format_info_ocp_e4m3, xs, gfloat.RoundMode.Stochastic, srbits=bits, srnumbits=23
            )

        t_gf = best_time(gf, max(1, a.repeat // 2)) * (n / m)
        ref_name = "gfloat round_ndarray"
    except ImportError:
        t_gf, ref_name = float("nan"), "gfloat (not installed)"
    qa.set_num_threads(1)
    t_1 = best_time(lambda: qa.quantize(x, "float8_e4m3fn", rounding=sr, seed=0), a.repeat)
    qa.set_num_threads(nthreads)
    t_n = best_time(lambda: qa.quantize(x, "float8_e4m3fn", rounding=sr, seed=0), a.repeat)
    rows.append(("float8_e4m3fn stochastic", t_gf, ref_name, t_1, t_n))

    print(
        f"{'operation':28s} {'reference':22s} {'ref ms':>9s} {'qa 1T ms':>9s} {'x ref':>7s}"
        f" {'qa nT ms':>9s} {'x ref':>7s} {'/copy':>6s}"
    )
    for label, t_ref, ref, t_1, t_n in rows:
        print(
            f"{label:28s} {ref:22s} {t_ref * 1e3:9.2f} {t_1 * 1e3:9.2f} {t_ref / t_1:7.1f}"
            f" {t_n * 1e3:9.2f} {t_ref / t_n:7.1f} {t_n / t_copy:6.2f}"
        )


if __name__ == "__main__":
    main()
