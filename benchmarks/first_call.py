"""Seconds to the first result: import and the first call of eight common operations.

Each operation is timed on its first call in this process, so the figures include numba's
compile (a fresh environment or an empty ``NUMBA_CACHE_DIR``: "cold") or the load of the
compiled kernels from the on-disk cache (a second run: "warm"). ``--n 256`` (default) gives
256x256 arrays, which run on the calling thread; ``--n 1024`` arrays large enough for the
thread pool, whose driver compiles too. Run it twice in a fresh environment:

    NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/first_call.py      # cold
    python benchmarks/first_call.py                                   # warm (same cache dir)

Not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="arrays of n x n float32 (default 256)")
    args = ap.parse_args(argv)
    os.environ.setdefault("QEMU_ARRAYS_COMPILE_NOTICE", "0")
    t0 = time.perf_counter()
    import numpy as np

    import qemu_arrays as qa

    t_import = time.perf_counter() - t0
    x = np.random.default_rng(0).standard_normal((args.n, args.n)).astype(np.float32)
    x64 = x.astype(np.float64)
    sr = qa.Rounding.STOCHASTIC
    ops = [
        ("quantize e4m3 float32", lambda: qa.quantize(x, "float8_e4m3fn")),
        ("quantize e4m3 stochastic", lambda: qa.quantize(x, "float8_e4m3fn", rounding=sr, seed=0)),
        ("quantize e4m3 float64", lambda: qa.quantize(x64, "float8_e4m3fn")),
        ("encode e4m3", lambda: qa.encode(x, "float8_e4m3fn")),
        ("quantize int8 absmax", lambda: qa.quantize(x, "int8", scale="absmax")),
        ("quantize int8 per-channel", lambda: qa.quantize(x, "int8", scale="absmax", axis=0)),
        ("quantize mxfp8", lambda: qa.quantize(x, "mxfp8_e4m3")),
        ("quantize nvfp4", lambda: qa.quantize(x, "nvfp4")),
        ("decode e4m3", lambda: qa.decode(qa.encode(x, "float8_e4m3fn"), "float8_e4m3fn")),
    ]
    print(f"{'import':28s} {t_import:7.2f} s")
    total = 0.0
    for name, fn in ops:
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        total += dt
        print(f"{name:28s} {dt:7.2f} s", flush=True)
    print(f"{'total (without import)':28s} {total:7.2f} s")
    print(f"python {sys.version.split()[0]}, arrays {args.n}x{args.n}")


if __name__ == "__main__":
    main()
