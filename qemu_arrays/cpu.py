"""numba CPU kernels: ``prange`` loops over the scalar cores of :mod:`formats.cores`.

One compiled kernel per input bit width (float32 bits, float64 bits); formats, rounding modes and
policies are run-time integer parameters, so adding a format never compiles anything new.
Compilation is lazy (first call) and cached on disk (``cache=True``).
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

import formats.cores
from formats.cores import (
    NAN_ERROR,
    RNE,
    SR,
    decode_code,
    format_code,
    ieee_bits,
    random_u,
    round_bits_fast,
    round_ieee_bits,
    round_int_value,
    round_subnormal_fast,
)

_PAR = {"parallel": True, "cache": True, "nogil": True}


def purge_stale_cache(module_file: str) -> None:
    """Drop numba's on-disk cache of ``module_file`` when ``formats/cores.py`` changed.

    numba keys a cached kernel on the stamp of the kernel's own file only, so an edit of the
    scalar cores it inlines would otherwise keep running stale machine code.
    """
    src = Path(module_file)
    cache_dir = src.parent / "__pycache__"
    st = os.stat(formats.cores.__file__)
    stamp = f"{st.st_mtime_ns}:{st.st_size}"
    marker = cache_dir / f"{src.stem}.cores-stamp"
    try:
        if marker.read_text() == stamp:
            return
    except OSError:
        pass
    try:
        cache_dir.mkdir(exist_ok=True)
        for f in cache_dir.glob(f"{src.stem}.*.nb[ic]"):
            f.unlink()
        marker.write_text(stamp)
    except OSError:
        pass  # read-only install: numba falls back to its user cache directory


purge_stale_cache(__file__)

SMALL = 1 << 15  # below this many elements a kernel runs on the calling thread alone


@contextmanager
def threads_for(n: int):
    """Run small arrays on one thread: waking the pool costs more than the work (and, on a
    loaded machine, can cost milliseconds). Results do not depend on the thread count."""
    if n >= SMALL:
        yield
        return
    prev = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(prev)


CHUNK = 4096  # elements per parallel task; the inner loop is a plain range the compiler keeps tight


@njit(cache=True, nogil=True, inline="always")
def _quantize_span(xb, outb, outf, lo, hi, in_e, in_m, p, rnd, ovf, k0, k1, k2, offset, r):
    """Elements ``lo:hi`` of :func:`quantize_float_bits`; returns the NaN-error count.

    Inlined with ``rnd`` a literal for the common modes, so the compiler drops the branches
    on the mode from the element loop.
    """
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    sign_mask = 1 << (in_e + in_m)
    sub_scale = math.ldexp(1.0, emin - m)
    err = 0
    for i in range(lo, hi):
        b = np.int64(xb[i])
        u = random_u(k0, k1, k2, offset + i, r) if rnd == SR else 0
        ok, mag = round_bits_fast(b, in_e, in_m, m, emin, emax, sigmax, sg, rnd, u, r)
        if ok:
            outb[i] = (b & sign_mask) | mag
            continue
        ok, s, kept = round_subnormal_fast(b, in_e, in_m, m, emin, sub, hz, sg, sp, rnd, u, r)
        if ok:  # sign applied arithmetically: a branch on a random sign mispredicts
            outf[i] = np.float64(kept) * sub_scale * np.float64(1 - 2 * s)
            continue
        st, s, kept, q = round_ieee_bits(
            b, in_e, in_m, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r
        )
        if st == NAN_ERROR:
            err += 1
        outb[i] = ieee_bits(st, s, kept, q, in_e, in_m)
    return err


@njit(**_PAR)
def quantize_float_bits(xb, outb, outf, in_e, in_m, p, rnd, ovf, k0, k1, k2, offset, r):
    """Round IEEE bit patterns ``xb`` into the format ``p``; write the values.

    ``outb`` and ``outf`` are the same output buffer viewed as bits and as floats. Each element
    takes the first path that applies: the in-range fast path on its own bits, the subnormal
    fast path, or the general core; all three give the general core's result.
    """
    n = xb.size
    err = 0
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        if rnd == RNE:
            err += _quantize_span(
                xb, outb, outf, lo, hi, in_e, in_m, p, RNE, ovf, k0, k1, k2, offset, r
            )
        elif rnd == SR:
            err += _quantize_span(
                xb, outb, outf, lo, hi, in_e, in_m, p, SR, ovf, k0, k1, k2, offset, r
            )
        else:
            err += _quantize_span(
                xb, outb, outf, lo, hi, in_e, in_m, p, rnd, ovf, k0, k1, k2, offset, r
            )
    return err


@njit(**_PAR)
def encode_float_bits(xb, codes, in_e, in_m, p, rnd, ovf, k0, k1, k2, offset, r):
    """Round IEEE bit patterns ``xb`` into the format ``p``; write the format's codes."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    in_bias = (1 << (in_e - 1)) - 1
    in_mmask = (1 << in_m) - 1
    n = xb.size
    err = 0
    for c in prange((n + CHUNK - 1) // CHUNK):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            b = np.int64(xb[i])
            u = random_u(k0, k1, k2, offset + i, r) if rnd == SR else 0
            ok, mag = round_bits_fast(b, in_e, in_m, m, emin, emax, sigmax, sg, rnd, u, r)
            if ok:
                ef = (mag >> in_m) - in_bias + bias
                mf = (mag & in_mmask) >> (in_m - m)
                codes[i] = (((b >> (in_e + in_m)) & sg) << (eb + m)) | (ef << m) | mf
                continue
            ok, s, kept = round_subnormal_fast(b, in_e, in_m, m, emin, sub, hz, sg, sp, rnd, u, r)
            if ok:
                codes[i] = ((s & sg) << (eb + m)) | kept
                continue
            st, s, kept, q = round_ieee_bits(
                b, in_e, in_m, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r
            )
            if st == NAN_ERROR:
                err += 1
            codes[i] = format_code(st, s, kept, q, m, emin, eb, bias, sg, sp)
    return err


@njit(**_PAR)
def decode_codes(codes, out, p):
    """Values (float64) of the format's codes."""
    m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias = p
    for i in prange(codes.size):
        out[i] = decode_code(np.int64(codes[i]), m, emin, eb, bias, sub, hz, sg, sp)


@njit(**_PAR)
def quantize_int(x, out, codes, scale, zero_point, qmin, qmax, rnd, k0, k1, k2, offset, r, want):
    """Integer (additive) quantization: ``k = clamp(round(x / s) + z)``.

    ``scale`` and ``zero_point`` hold one value or one per element. ``want`` 1 writes the
    dequantized value ``(k - z) * s`` to ``out``, 2 writes the code ``k`` (two's complement,
    masked to the storage width by the caller) to ``codes``.
    """
    err = 0
    ns = scale.size
    nz = zero_point.size
    for i in prange(x.size):
        s = scale[i] if ns > 1 else scale[0]
        z = zero_point[i] if nz > 1 else zero_point[0]
        u = random_u(k0, k1, k2, offset + i, r) if rnd == SR else 0
        st, k = round_int_value(np.float64(x[i]) / s, qmin - z, qmax - z, rnd, u, r)
        if st == NAN_ERROR:
            err += 1
        if want == 1:
            out[i] = np.float64(k) * s
        else:
            codes[i] = k + z
    return err
