"""Two checkouts of qemu_arrays on the same calls, in one run: per-call times and their ratio.

Each round runs one child process per checkout (``PYTHONPATH`` set to it), alternating, so that
a loaded machine affects both alike; a child warms every call (compiles or loads its kernels),
then times each call ``--repeat`` times. The table gives, per call, the best and the median
over all rounds for each checkout and ``after / before`` (on a loaded machine the best favours
a layer whose threads spin, GNU OpenMP; the median shows the typical call). Calls: large
arrays (``--log2n``, the thread pool) and small ones (4096 elements, the calling thread), for
every CPU kernel family.

    python benchmarks/ab_checkouts.py --before /tmp/main-copy --after . [--rounds 3]

``--cache`` gives each checkout its own empty ``NUMBA_CACHE_DIR`` (else numba caches beside
each checkout's sources, or in the ``NUMBA_CACHE_DIR`` of the environment). Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
import numpy as np
import qemu_arrays as qa

n, repeat = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
big = rng.standard_normal((n // 1024, 1024)).astype(np.float32)
small = big.reshape(-1)[:4096].reshape(64, 64).copy()
sr = {"rounding": qa.Rounding.STOCHASTIC, "seed": 0}
codes32 = np.arange(big.size, dtype=np.uint32)
calls = {}
for tag, x in (("large", big), ("4096", small)):
    x64 = x.astype(np.float64)
    c = qa.encode(x, "float8_e4m3fn")
    calls.update({
        f"e4m3 nearest-even {tag}": lambda x=x: qa.quantize(x, "float8_e4m3fn"),
        f"e4m3 stochastic {tag}": lambda x=x: qa.quantize(x, "float8_e4m3fn", **sr),
        f"e4m3 float64 {tag}": lambda x64=x64: qa.quantize(x64, "float8_e4m3fn"),
        f"e4m3 encode {tag}": lambda x=x: qa.encode(x, "float8_e4m3fn"),
        f"e4m3 decode {tag}": lambda c=c: qa.decode(c, "float8_e4m3fn"),
        f"int8 scale=0.05 {tag}": lambda x=x: qa.quantize(x, "int8", scale=0.05),
        f"int8 absmax axis=0 {tag}": lambda x=x: qa.quantize(x, "int8", scale="absmax", axis=0),
        f"int4 absmax groups {tag}": lambda x=x: qa.quantize(x, "int4", scale="absmax", block_size=32),
        f"mxfp8_e4m3 {tag}": lambda x=x: qa.quantize(x, "mxfp8_e4m3"),
        f"mxfp8_e4m3 stochastic {tag}": lambda x=x: qa.quantize(x, "mxfp8_e4m3", **sr),
        f"nvfp4 {tag}": lambda x=x: qa.quantize(x, "nvfp4"),
        f"nvfp4 encode {tag}": lambda x=x: qa.encode(x, "nvfp4"),
        f"float32 decode {tag}": lambda k=codes32[: x.size]: qa.decode(k, "float32"),
    })
times = {}
for name, fn in calls.items():
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    times[name] = ts
print(json.dumps(times))
"""


def _child(tree, cache, n, repeat):
    env = {**os.environ, "PYTHONPATH": tree}
    if cache:
        env["NUMBA_CACHE_DIR"] = cache
    env["QEMU_ARRAYS_COMPILE_NOTICE"] = "0"
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    res = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(repeat)],
        capture_output=True, text=True, env=env, cwd=tree, check=True,
    )  # fmt: skip
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="the checkout to compare against")
    ap.add_argument("--after", default=".", help="the checkout measured (default .)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--log2n", type=int, default=22, help="large arrays of 2^log2n elements")
    ap.add_argument("--cache", action="store_true", help="a fresh NUMBA_CACHE_DIR per checkout")
    args = ap.parse_args(argv)
    trees = {"before": os.path.abspath(args.before), "after": os.path.abspath(args.after)}
    caches = {k: tempfile.mkdtemp(prefix=f"numba-{k}-") if args.cache else None for k in trees}
    times: dict = {"before": {}, "after": {}}
    for r in range(args.rounds):
        for k, tree in trees.items():
            got = _child(tree, caches[k], 1 << args.log2n, args.repeat)
            for name, ts in got.items():
                times[k].setdefault(name, []).extend(ts)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    n = args.rounds * args.repeat
    print(f"{n} calls each ({args.rounds} interleaved rounds); large = 2^{args.log2n} elements; ms")
    print(f"{'call':30s} {'best before':>11s} {'after':>9s} {'ratio':>6s}"
          f" {'median before':>13s} {'after':>9s} {'ratio':>6s}")  # fmt: skip
    for name, tb in times["before"].items():
        ta = times["after"][name]
        b0, a0 = min(tb), min(ta)
        b1, a1 = statistics.median(tb), statistics.median(ta)
        print(f"{name:30s} {b0 * 1e3:11.3f} {a0 * 1e3:9.3f} {a0 / b0:6.2f}"
              f" {b1 * 1e3:13.3f} {a1 * 1e3:9.3f} {a1 / b1:6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
