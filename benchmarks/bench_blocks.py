"""Block formats (MX, NVFP4) on the CPU: every rounding mode, ``out=``, encode, asarray, decode.

Times, on one 4096x4096 float32 standard-normal matrix (blocks along the last axis), against two
anchors measured in the same rounds:

* ``copy``: ``np.copyto`` of the array into an existing buffer, the memory-bandwidth limit
  (issue 15's target: every block path within 2.5x of it);
* ``to_mx``: torchao's pure-PyTorch ``to_mx`` (scales and element codes, FLOOR rule) of the same
  array as a torch tensor, for the MX ``encode`` rows (target: at least 3x faster); skipped, and
  said so, when torchao is not installed.

Rounds are interleaved: each round times every row once (best of ``--repeat`` calls) next to a
fresh copy time, so that a loaded machine weighs on all rows alike; the printed ratios are the
range over ``--rounds`` rounds (time / copy time of the same round). Runs on one thread and on
all of numba's threads (PyTorch gets the same count). The element round trip and the integer
per-channel and per-group rows give the older targets' anchors (block formats at most 1.5x
their element format).

Run: python benchmarks/bench_blocks.py [--n 4096] [--rounds 3] [--repeat 3] [--threads 1,all]
[--only mxfp8] [--quick]
"""

from __future__ import annotations

import argparse
import time

import ml_dtypes
import numba
import numpy as np

import qemu_arrays as qa

R = qa.Rounding
_SR = {"rounding": R.STOCHASTIC, "seed": 0}
_RTZ = {"rounding": R.TOWARD_ZERO}


def _best(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _to_mx(x):
    """torchao's ``to_mx`` of ``x`` into MXFP8 E4M3 (a closure), or None without torchao."""
    try:
        import torch
        from torchao.prototype.mx_formats.mx_tensor import to_mx
    except ImportError:
        return None, "torchao not installed: to_mx rows skipped"
    import torchao

    xt = torch.from_numpy(x)
    return (lambda: to_mx(xt, torch.float8_e4m3fn, 32)), f"torchao {torchao.__version__}"


def _rows(x, only):
    """``(label, fn, anchor)``: ``anchor`` names the row's reference besides the copy."""
    out = np.empty_like(x)
    rows = []
    for fmt, elem in (("mxfp8_e4m3", "float8_e4m3fn"), ("mxfp4_e2m1", "float4_e2m1fn"),
                      ("nvfp4", "float4_e2m1fn")):  # fmt: skip
        short = {"mxfp8_e4m3": "mxfp8", "mxfp4_e2m1": "mxfp4", "nvfp4": "nvfp4"}[fmt]
        if only and only not in fmt:
            continue
        enc = qa.encode(x, fmt)
        anchor = "to_mx" if fmt == "mxfp8_e4m3" else ""
        rows += [
            (f"{short} nearest-even", lambda f=fmt: qa.quantize(x, f), ""),
            (f"{short} stochastic", lambda f=fmt: qa.quantize(x, f, **_SR), ""),
            (f"{short} toward zero", lambda f=fmt: qa.quantize(x, f, **_RTZ), ""),
            (f"{short} nearest-even, out=", lambda f=fmt: qa.quantize(x, f, out=out), ""),
            (f"encode {short}", lambda f=fmt: qa.encode(x, f), anchor),
            (f"encode {short} stochastic", lambda f=fmt: qa.encode(x, f, **_SR), anchor),
            (f"asarray {short}", lambda f=fmt: qa.asarray(x, f), anchor),
            (f"decode {short}", lambda f=fmt, e=enc: qa.decode(e, f), ""),
        ]
        if fmt != "nvfp4":  # its element format is mxfp4's
            rows.append((f"  element {elem} nearest-even", lambda e=elem: qa.quantize(x, e), ""))
    if not only:
        rows += [
            ("  int8 per-tensor scale=0.05", lambda: qa.quantize(x, "int8", scale=0.05), ""),
            ("  int8 per-channel absmax",
             lambda: qa.quantize(x, "int8", scale="absmax", axis=0), ""),
            ("  int8 per-group of 32",
             lambda: qa.quantize(x, "int8", scale="absmax", axis=1, block_size=32), ""),
        ]  # fmt: skip
    return rows


def _table(x, rows, to_mx, rounds, repeat, threads):
    dst = np.empty_like(x)
    try:
        import torch
    except ImportError:
        torch = None
    old = torch.get_num_threads() if torch is not None else 0
    if torch is not None:
        torch.set_num_threads(threads)
    qa.set_num_threads(threads)
    for _, fn, _ in rows:
        fn()  # compile and warm up
    if to_mx is not None:
        to_mx()
    ratios = {label: [] for label, _, _ in rows}
    times = {label: [] for label, _, _ in rows}
    mx_ratio, t_mx = [], []
    for _ in range(rounds):
        for label, fn, _ in rows:
            tc = _best(lambda: np.copyto(dst, x), repeat)
            t = _best(fn, repeat)
            ratios[label].append(t / tc)
            times[label].append(t)
        if to_mx is not None:
            tc = _best(lambda: np.copyto(dst, x), repeat)
            t = _best(to_mx, repeat)
            mx_ratio.append(t / tc)
            t_mx.append(t)
    qa.set_num_threads(None)
    if torch is not None:
        torch.set_num_threads(old)
    return ratios, times, mx_ratio, t_mx


def _rng(v, fmt="{:.2f}"):
    lo, hi = min(v), max(v)
    return fmt.format(lo) if f"{lo:.2f}" == f"{hi:.2f}" else f"{fmt.format(lo)}-{fmt.format(hi)}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", default="1,all", help="comma-separated counts, 'all' = numba's")
    ap.add_argument("--only", default="", help="only the formats whose name holds this")
    ap.add_argument("--quick", action="store_true", help="a 1024x1024 matrix, 2 rounds of 2")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.rounds, args.repeat = 1024, 2, 2
    n = args.n
    x = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    nall = numba.config.NUMBA_NUM_THREADS
    to_mx, mx_note = _to_mx(x)
    print(f"{n}x{n} float32 (2^{int(np.log2(x.size))} values), blocks along the last axis; "
          f"numpy {np.__version__}, numba {numba.__version__}, ml_dtypes {ml_dtypes.__version__}, "
          f"{mx_note}; all threads = {nall}")  # fmt: skip
    print(f"best of {args.repeat} per round, {args.rounds} interleaved rounds; '/copy': time over "
          "np.copyto's in the same round (target <= 2.5); 'to_mx/': torchao's time over ours "
          "(target >= 3)")  # fmt: skip
    rows = _rows(x, args.only)
    for spec in args.threads.split(","):
        threads = nall if spec == "all" else int(spec)
        ratios, times, mx_ratio, t_mx = _table(x, rows, to_mx, args.rounds, args.repeat, threads)
        print(f"\n-- {threads} thread{'s' if threads > 1 else ''} --")
        print(f"{'path':34s} {'ms (best)':>10s} {'/copy':>11s} {'to_mx/':>11s}")
        if t_mx:
            print(f"{'torchao to_mx mxfp8 (anchor)':34s} {min(t_mx) * 1e3:10.1f} "
                  f"{_rng(mx_ratio):>11s} {'1.00':>11s}")  # fmt: skip
        for label, _, anchor in rows:
            vs = ""
            if anchor == "to_mx" and t_mx:
                vs = _rng([a / b for a, b in zip(t_mx, times[label], strict=True)], "{:.1f}")
            print(f"{label:34s} {min(times[label]) * 1e3:10.1f} {_rng(ratios[label]):>11s} "
                  f"{vs:>11s}")  # fmt: skip


if __name__ == "__main__":
    main()
