"""One parallel driver for every CPU kernel: a ``prange`` over chunks of a serial span.

Each CPU kernel is a serial ``@njit`` span ``span(lo, hi, *args)`` over units ``lo:hi`` of its
work (elements, blocks or tasks; it returns an int64, e.g. a NaN-error count). The calling thread
runs it alone on small arrays; :func:`run_parallel` runs it on the thread pool for large ones,
through :func:`par_spans`, which splits ``0:units`` into chunks of ``per`` units and calls the
span on each chunk from a ``prange``, summing the returns.

The driver calls the span through the address of its compiled code (:func:`call_span`), not as
a numba function call: a numba call would link the span's whole LLVM module into the driver and
optimize and generate its machine code a second time (2 to 5 s per kernel, measured), while the
call through the address leaves the driver a small loop that compiles in about a second, once
per argument signature, and shares the span's machine code with the serial path. The span's
numba calling convention is numba's own (``context.call_conv``); the argument types are the
span's compiled signature, taken from the same Python arguments (tests compare every kernel's
parallel results with its serial ones, bit for bit).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types  # noqa: F401  (prange: the generated drivers)
from numba.core.extending import intrinsic

from qemu_arrays.formats.jit_cache import purge_stale_cache

purge_stale_cache(__file__)

__all__ = ["call_span", "par_spans", "run_parallel", "span_address"]


@intrinsic
def call_span(typingctx, addr, lo, hi, args):
    """``span(lo, hi, *args)`` for the compiled span at address ``addr`` (an int64 returned;
    an exception the span raises propagates)."""
    if not (
        isinstance(addr, types.Integer)
        and isinstance(lo, types.Integer)
        and isinstance(hi, types.Integer)
        and isinstance(args, types.BaseTuple)
    ):
        return None
    sig = types.int64(addr, lo, hi, args)

    def codegen(context, builder, signature, llargs):
        addr_v, lo_v, hi_v, tup = llargs
        argtys = [types.int64, types.int64, *signature.args[3]]
        vals = [
            context.cast(builder, lo_v, signature.args[1], types.int64),
            context.cast(builder, hi_v, signature.args[2], types.int64),
            *(builder.extract_value(tup, i) for i in range(len(argtys) - 2)),
        ]
        cc = context.call_conv
        fnty = cc.get_function_type(types.int64, argtys)
        addr64 = context.cast(builder, addr_v, signature.args[0], types.int64)
        fnptr = builder.inttoptr(addr64, fnty.as_pointer())
        status, res = cc.call_function(builder, fnptr, types.int64, argtys, vals)
        with builder.if_then(status.is_error, likely=False):
            cc.return_status_propagate(builder, status)
        return res

    return sig, codegen


# The driver for spans of ``k`` arguments: a ``prange`` over the chunks whose body calls the span
# with the arguments gathered into a tuple there (a tuple holding arrays cannot cross into the
# body of a ``prange`` itself, single arrays and tuples of scalars can). The source is made per
# arity from this template and compiled under this file's name, so numba caches it on disk.
_DRIVER = """
def par_spans_{k}(addr, units, per, {params}):
    total = 0
    for t in prange((units + per - 1) // per):
        lo = np.int64(t) * per
        total += call_span(addr, lo, min(units, lo + per), ({params},))
    return total
"""
_drivers: dict = {}


def par_spans(k):
    """The parallel driver ``par_spans_k(addr, units, per, *args)`` for spans of ``k`` arguments
    (after ``lo, hi``): the sum of ``span(lo, min(units, lo + per), *args)`` over ``lo = 0,
    per, 2 per, ...``, the chunks spread over the thread pool (``span`` compiled at ``addr``)."""
    drv = _drivers.get(k)
    if drv is None:
        name = f"par_spans_{k}"
        src = _DRIVER.format(k=k, params=", ".join(f"a{i}" for i in range(k)))
        exec(compile(src, __file__, "exec"), globals())  # noqa: S102 - our own template
        drv = _drivers[k] = njit(parallel=True, cache=True, nogil=True)(globals()[name])
    return drv


_addresses: dict = {}


def span_address(span, args) -> int:
    """The address of ``span``'s compiled code for ``(int64, int64, *args)`` (compiled, or
    loaded from the on-disk cache, on first use)."""
    sig = (types.int64, types.int64, *(span.typeof_pyval(a) for a in args))
    key = (span, sig)
    addr = _addresses.get(key)
    if addr is None:
        span.compile(sig)
        cres = span.overloads[sig]
        addr = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
        _addresses[key] = addr
    return addr


def run_parallel(span, units, per, args) -> int:
    """``span`` over ``0:units`` in chunks of ``per`` units on numba's thread pool."""
    drv = par_spans(len(args))
    return int(drv(span_address(span, args), np.int64(units), np.int64(per), *args))
