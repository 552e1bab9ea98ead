"""Compile, and cache on disk, the CPU kernels that formats need: ``qemu-arrays warmup``.

numba compiles a kernel on its first use and caches it on disk (``cache=True``); a fresh
environment therefore spends seconds on the first call of each kind of operation. :func:`warmup`
runs, for each named format and input dtype, the operations that use distinct kernels (nearest
even, stochastic and the other rounding modes, encode, decode; for integer formats also
per-channel and per-group scales) on tiny arrays, once with each kernel's serial variant (small arrays) and
once with its parallel one (large arrays), so that later processes load them from the cache.

Formats, rounding modes and policies are run-time arguments of the kernels: warming one format
warms every format of its kind (element float, integer, MX, NVFP4) and code width.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["COMMON_FORMATS", "DTYPES", "cache_dir", "warmup"]

#: what ``qemu-arrays warmup`` compiles by default (the kernels of the common operations)
COMMON_FORMATS = ("float8_e4m3fn", "int8", "mxfp8_e4m3", "nvfp4")
DTYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64}


def _operations(fmt, x):
    """(name, callable) of the operations of ``fmt`` on ``x`` that take distinct kernels."""
    import qemu_arrays as qa

    sr = {"rounding": qa.Rounding.STOCHASTIC, "seed": 0}
    if getattr(fmt, "kind", "") == "block":
        enc = qa.encode(x, fmt)
        return [
            ("quantize", lambda: qa.quantize(x, fmt)),
            ("quantize stochastic", lambda: qa.quantize(x, fmt, **sr)),
            ("encode", lambda: qa.encode(x, fmt)),
            ("decode", lambda: qa.decode(enc, fmt)),
        ]
    if isinstance(fmt, qa.IntFormat):
        sc = {"scale": 0.05}
        enc = qa.encode(x, fmt, **sc)
        return [
            ("quantize", lambda: qa.quantize(x, fmt, **sc)),
            ("quantize stochastic", lambda: qa.quantize(x, fmt, **sc, **sr)),
            ("encode", lambda: qa.encode(x, fmt, **sc)),
            ("decode", lambda: qa.decode(enc, fmt, **sc)),
            ("absmax per tensor", lambda: qa.quantize(x, fmt, scale="absmax")),
            ("absmax per row", lambda: qa.quantize(x, fmt, scale="absmax", axis=0)),
            ("absmax per column", lambda: qa.quantize(x, fmt, scale="absmax", axis=1)),
            ("absmax per group", lambda: qa.quantize(x, fmt, scale="absmax", block_size=32)),
            ("absmax per group, axis 0",
             lambda: qa.quantize(x, fmt, scale="absmax", block_size=32, axis=0)),
            ("encode absmax per row", lambda: qa.encode(x, fmt, scale="absmax", axis=0)),
        ]  # fmt: skip
    codes = qa.encode(x, fmt)
    return [
        ("quantize", lambda: qa.quantize(x, fmt)),
        ("quantize stochastic", lambda: qa.quantize(x, fmt, **sr)),
        ("quantize toward zero", lambda: qa.quantize(x, fmt, rounding=qa.Rounding.TOWARD_ZERO)),
        ("encode", lambda: qa.encode(x, fmt)),
        ("decode", lambda: qa.decode(codes, fmt)),
    ]


def cache_dir() -> str:
    """Where numba keeps the compiled kernels of this installation."""
    from qemu_arrays.kernels import elements as cpu

    try:
        return str(cpu._quantize_span_any._cache._cache_path)
    except AttributeError:  # numba internals moved: say what decides it
        return "numba's cache directory (NUMBA_CACHE_DIR, else __pycache__ beside the sources)"


def warmup(formats=COMMON_FORMATS, dtypes=("float32", "float64"), report=print) -> dict:
    """Compile (or load from the cache) every CPU kernel ``formats`` use on ``dtypes`` input.

    ``formats``: names or descriptors; ``dtypes``: ``"float16"``, ``"float32"``,
    ``"float64"`` (bfloat16 takes the float32 kernels). ``report(line)`` receives one line per
    format and dtype. Returns ``{(format name, dtype): seconds}``.
    """
    from qemu_arrays.formats.catalog import get_format
    from qemu_arrays.kernels import runtime

    fmts = [get_format(f) for f in formats]
    for d in dtypes:
        if d not in DTYPES:
            msg = f"dtypes has {d!r}; allowed: {', '.join(DTYPES)}; hint: --dtypes float32"
            raise ValueError(msg)
    runtime.init_threading()
    counter = _CompileCounter()
    times = {}
    prev = runtime.set_compile_notice(False)  # this reports its own progress
    try:
        with counter:
            for fmt in fmts:
                for d in dtypes:
                    x = np.linspace(-4, 4, 64 * 64).reshape(64, 64).astype(DTYPES[d])
                    start, n0 = time.perf_counter(), counter.count
                    for variant in ("serial", "parallel"):
                        with runtime.force(variant):
                            for _, op in _operations(fmt, x):
                                op()
                    dt = time.perf_counter() - start
                    times[(fmt.name, d)] = dt
                    done = counter.count - n0
                    what = f"{done} kernels compiled" if done else "all cached already"
                    report(f"{fmt.name:16s} {d:8s} {dt:6.1f} s  ({what})")
    finally:
        runtime.set_compile_notice(prev)
    return times


class _CompileCounter:
    """Counts the outermost compiles of qemu_arrays' numba functions while active."""

    def __init__(self):
        self.count = 0
        self.depth = 0

    def __enter__(self):
        from numba.core import event

        counter = self

        class Listener(event.Listener):
            def on_start(self, ev):
                counter.depth += 1
                disp = (ev.data or {}).get("dispatcher")
                mod = getattr(getattr(disp, "py_func", None), "__module__", "") or ""
                if counter.depth == 1 and mod.startswith("qemu_arrays."):
                    counter.count += 1

            def on_end(self, ev):
                counter.depth -= 1

        self._listener = Listener()
        event.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc):
        from numba.core import event

        event.unregister("numba:compile", self._listener)
