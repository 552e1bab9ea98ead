"""CPU speed of the element-format paths, in the table of issue 15, against the libraries a user
would otherwise pick and against the memory copy.

One run on one float32 array (2**24 standard-normal values by default), on one thread and on all
threads, in interleaved rounds: each round times every row once, and the copy
(``np.copyto`` of the float32 array into an existing one, the best of two) and the ml_dtypes E4M3
round trip right before it, so that load on a shared machine spreads over all rows. Per row and
thread count it prints the min-max over the rounds of

* ``x ml_dtypes``: the speed relative to ml_dtypes' E4M3 round trip
  ``x.astype(ml_dtypes.float8_e4m3fn).astype(np.float32)`` (1.0 = as fast, > 1 faster), the
  issue's "qemu_arrays" column; the anchor rows (ml_dtypes, torch cast, gfloat SR, the copy) are
  measured the same way, so that they give the comparison column;
* ``/copy``: the time over the copy time of the row's input array (float64 and 16-bit input:
  that array; 1.0 = memory speed; the issue's targets: <= 2 for every rounding mode and input
  type, ``encode``; <= 1.5 for ``decode``, whose reference is the float32 copy).

A fresh output (every row without ``out=``) pays the page faults of a new array, which the copy
into an existing one does not. gfloat (when installed) runs on a 2**20 slice, scaled to the size,
once per thread count (it is plain NumPy, single-threaded). Block-format rows (MX, NVFP4) are
``bench_blocks.py``'s. Not a test.
Usage: ``python benchmarks/bench_cpu.py [--log2n 24] [--repeat 5] [--quick]``.
"""

from __future__ import annotations

import argparse
import time

import ml_dtypes
import numba
import numpy as np

import qemu_arrays as qa

R = qa.Rounding
E4 = "float8_e4m3fn"


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def rows(x):
    """``[(label, fn, input)]``: the issue's rows, then further paths and formats; anchors marked
    ``*``; the copy of ``input`` is the row's memory-speed reference."""
    x64 = x.astype(np.float64)
    x16 = x.astype(np.float16)
    xbf = x.astype(ml_dtypes.bfloat16)
    out = np.empty_like(x)
    codes = qa.encode(x, E4)
    sr = {"rounding": R.STOCHASTIC, "seed": 1}
    s = np.float32(0.05)
    r = [
        ("E4M3 nearest-even, float32", lambda: qa.quantize(x, E4), x),
        ("same with out=", lambda: qa.quantize(x, E4, out=out), x),
        ("E4M3 stochastic", lambda: qa.quantize(x, E4, **sr), x),
        ("E4M3 stochastic, out=", lambda: qa.quantize(x, E4, out=out, **sr), x),
        ("E4M3 toward zero", lambda: qa.quantize(x, E4, rounding=R.TOWARD_ZERO), x),
        ("E4M3 up", lambda: qa.quantize(x, E4, rounding=R.UP), x),
        ("E4M3 down", lambda: qa.quantize(x, E4, rounding=R.DOWN), x),
        ("E4M3 nearest-even, float64 input", lambda: qa.quantize(x64, E4), x64),
        ("E4M3 stochastic, float64 input", lambda: qa.quantize(x64, E4, **sr), x64),
        ("E4M3 nearest-even, float16 input", lambda: qa.quantize(x16, E4), x16),
        ("E4M3 nearest-even, bfloat16 input", lambda: qa.quantize(xbf, E4), xbf),
        ("E4M3 stochastic, float16 input", lambda: qa.quantize(x16, E4, **sr), x16),
        ("E4M3 stochastic, bfloat16 input", lambda: qa.quantize(xbf, E4, **sr), xbf),
        ("encode E4M3 (codes)", lambda: qa.encode(x, E4), x),
        ("encode E4M3 stochastic", lambda: qa.encode(x, E4, **sr), x),
        ("decode E4M3 (codes to float32)", lambda: qa.decode(codes, E4), x),
        ("E5M2 nearest-even", lambda: qa.quantize(x, "float8_e5m2"), x),
        ("E2M1 nearest-even", lambda: qa.quantize(x, "float4_e2m1fn"), x),
        ("E2M1 nearest-even, out= (NaN pre-scan)", lambda: qa.quantize(x, "float4_e2m1fn", out=out), x),
        ("bfloat16 nearest-even", lambda: qa.quantize(x, "bfloat16"), x),
        ("int8 scale=0.05 nearest-even", lambda: qa.quantize(x, "int8", scale=0.05), x),
        ("* ml_dtypes E4M3 round trip", lambda: x.astype(ml_dtypes.float8_e4m3fn).astype(np.float32), x),
        ("* ml_dtypes E4M3, float64 input", lambda: x64.astype(ml_dtypes.float8_e4m3fn).astype(np.float64), x64),
        ("* ml_dtypes astype to codes", lambda: x.astype(ml_dtypes.float8_e4m3fn), x),
        ("* ml_dtypes E5M2 round trip", lambda: x.astype(ml_dtypes.float8_e5m2).astype(np.float32), x),
        ("* ml_dtypes E2M1 round trip", lambda: x.astype(ml_dtypes.float4_e2m1fn).astype(np.float32), x),
        ("* ml_dtypes bfloat16 round trip", lambda: x.astype(ml_dtypes.bfloat16).astype(np.float32), x),
        ("* numpy int8 clip(round(x/s))*s", lambda: np.clip(np.round(x / s), -128, 127) * s, x),
    ]  # fmt: skip
    torch = _torch()
    if torch is not None:
        xt = torch.from_numpy(x)
        r.append(
            ("* torch fp8 cast round trip", lambda: xt.to(torch.float8_e4m3fn).to(torch.float32), x)
        )
    return r


def gfloat_time(x, n):
    """Seconds for gfloat's stochastic E4M3 rounding of ``n`` values (23 random bits), or None."""
    try:
        import gfloat
        from gfloat.formats import format_info_ocp_e4m3
    except ImportError:
        return None
    m = min(n, 1 << 20)
    xs = x[:m].astype(np.float64)
    rng = np.random.default_rng(1)

    def gf():
        bits = rng.integers(0, 1 << 23, size=m, dtype=np.int64)
        return gfloat.round_ndarray(
            format_info_ocp_e4m3, xs, gfloat.RoundMode.Stochastic, srbits=bits, srnumbits=23
        )

    gf()
    best = min(_timed(gf) for _ in range(2))
    return best * n / m


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(x, repeat, threads):
    """``{label: [(x ml_dtypes, /copy) per round]}`` with ``threads`` threads."""
    qa.set_num_threads(threads)
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(threads)
    table = rows(x)
    ml = table[[row[0] for row in table].index("* ml_dtypes E4M3 round trip")][1]
    dst = np.empty_like(x)
    copies = {}
    for _, fn, src in table:  # warm-up: compiles, first page faults
        fn()
        copies[src.dtype] = (np.empty_like(src), src)
    res: dict[str, list[tuple[float, float]]] = {row[0]: [] for row in table}
    res["* np.copyto (float32)"] = []
    t_gf = gfloat_time(x, x.size)
    if t_gf is not None:
        res["* gfloat SR round_ndarray (2**20 slice, scaled)"] = []
    for _ in range(repeat):
        for lab, fn, src in table:
            d, a = copies[src.dtype]
            t_copy = min(_timed(lambda d=d, a=a: np.copyto(d, a)) for _ in range(2))
            t_ml = _timed(ml)
            t = _timed(fn)
            res[lab].append((t_ml / t, t / t_copy))
        t_copy = min(_timed(lambda: np.copyto(dst, x)) for _ in range(2))
        t_ml = _timed(ml)
        res["* np.copyto (float32)"].append((t_ml / t_copy, 1.0))
        if t_gf is not None:
            res["* gfloat SR round_ndarray (2**20 slice, scaled)"].append(
                (t_ml / t_gf, t_gf / t_copy)
            )
    return res


def _cell(vals):
    v = sorted(vals)
    return f"{v[0]:6.2f}-{v[-1]:<6.2f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log2n", type=int, default=24)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="2**20 elements, 2 rounds")
    a = p.parse_args(argv)
    if a.quick:
        a.log2n, a.repeat = 20, 2
    x = np.random.default_rng(0).standard_normal(1 << a.log2n).astype(np.float32)
    nmax = numba.config.NUMBA_NUM_THREADS
    torch = _torch()
    print(
        f"n = 2**{a.log2n} float32, {a.repeat} interleaved rounds (min-max over rounds); numpy "
        f"{np.__version__}, numba {numba.__version__}, ml_dtypes {ml_dtypes.__version__}"
        + (f", torch {torch.__version__}" if torch is not None else "")
        + f"; threads: 1 and all = {nmax}"
    )
    res = {t: measure(x, a.repeat, t) for t in sorted({1, nmax})}
    head = "".join(f" | {t}T: x ml_dtypes   {t}T: /copy     " for t in res)
    print(f"{'path':50s}{head}")
    for lab in res[1]:
        cells = "".join(
            f" | {_cell([v[0] for v in res[t][lab]])}  {_cell([v[1] for v in res[t][lab]])}"
            for t in res
        )
        print(f"{lab:50s}{cells}")


if __name__ == "__main__":
    main()
