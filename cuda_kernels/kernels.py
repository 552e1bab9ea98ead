"""numba-CUDA kernels: grid-stride loops over the scalar cores of :mod:`qemu_arrays.formats.cores`.

The kernels call the very ``@numba.njit`` functions the CPU kernels call (numba compiles them
again for the CUDA target), so the GPU computes the same bits as the CPU: there is one scalar
truth. One thread per element with a grid-stride loop; 1-D contiguous arrays, so loads and
stores are coalesced; the format, the rounding mode and the policy are scalar arguments, so one
compiled kernel per array dtype serves every format and mode. Compilation happens on first launch.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from qemu_arrays.cuda_kernels import simulated
from qemu_arrays.formats.cores import (
    NAN_ERROR,
    OWN,
    RNE,
    SR,
    SRE,
    decode_code,
    format_code,
    ieee_bits,
    round_bits_fast,
    round_ieee_bits,
    round_int_value,
    stochastic_u,
)
from qemu_arrays.formats.rne32 import rne32, rne32_cpu


@cuda.jit(device=True)
def element_u(rnd, k0, k1, k2, index, r, rb, i, has_rb):
    """The random integer of element ``i`` for the shared cores: the caller's word ``rb[i]``
    (``rbits=``, broadcast to ``x`` and flattened in C order on the host) when ``has_rb == 1``,
    else the counter-based bits of ``index``; the rule is the core's
    (:func:`qemu_arrays.formats.cores.stochastic_u`). Without ``rbits`` the kernels take a
    1-element ``rb`` they never read; the flag is a run-time argument (one compile per dtype of
    ``rb``, not per presence)."""
    b = np.int64(rb[i]) if has_rb == 1 else np.int64(0)
    return stochastic_u(rnd, k0, k1, k2, index, r, b, has_rb)


@cuda.jit
def quantize_float(
    xb, outb, bmask, in_e, in_m, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf,
    k0, k1, k2, offset, r, rb, has_rb, narrow, n_m, n_emin, n_emax, n_sigmax, err,
):  # fmt: skip
    """Round the IEEE bit patterns ``xb`` (``in_e``/``in_m`` layout) into the format; write the
    IEEE bits of the values to ``outb``. 16-bit input (``narrow=1``) is rounded from its own bits
    and, off the fast path, written as float32 bits first and then rounded to nearest-even into
    the 16-bit layout (the value the CPU's float32 result cast back gives)."""
    sign_mask = np.int64(1) << (in_e + in_m)
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, xb.size, stride):
        b = np.int64(xb[i]) & bmask
        u = element_u(rnd, k0, k1, k2, offset + i, r, rb, i, has_rb)
        ok, mag = round_bits_fast(b, in_e, in_m, m, emin, emax, sigmax, sg, rnd, u, r)
        if ok:
            outb[i] = (b & sign_mask) | mag
            continue
        st, s, kept, q = round_ieee_bits(
            b, in_e, in_m, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r
        )
        if st == NAN_ERROR:
            cuda.atomic.add(err, 0, 1)
        if narrow == 1:
            b32 = ieee_bits(st, s, kept, q, 8, 23)
            st, s, kept, q = round_ieee_bits(
                b32, 8, 23, n_m, n_emin, n_emax, n_sigmax, 1, 1, 1, 0, RNE, OWN, 0, 32
            )
        outb[i] = ieee_bits(st, s, kept, q, in_e, in_m)


@cuda.jit
def encode_float(
    xb, codes, bmask, in_e, in_m, m, emin, emax, sigmax, sub, hz, sg, sp, eb, bias, rnd, ovf,
    k0, k1, k2, offset, r, rb, has_rb, err,
):  # fmt: skip
    """Round the IEEE bit patterns ``xb`` into the format; write the format's codes."""
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, xb.size, stride):
        b = np.int64(xb[i]) & bmask
        u = element_u(rnd, k0, k1, k2, offset + i, r, rb, i, has_rb)
        st, s, kept, q = round_ieee_bits(
            b, in_e, in_m, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r
        )
        if st == NAN_ERROR:
            cuda.atomic.add(err, 0, 1)
        codes[i] = format_code(st, s, kept, q, m, emin, eb, bias, sg, sp)


@cuda.jit
def quantize_int(
    x, out, codes, scale, zp, qmin, qmax, rnd, k0, k1, k2, offset, r, rb, has_rb, want, cmask, err
):
    """Integer formats: ``k = clamp(round(x / scale) + zp)``; ``want`` 1 writes ``(k - zp) *
    scale`` to ``out``, 2 writes the code ``(k) & cmask`` to ``codes``."""
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, x.size, stride):
        u = element_u(rnd, k0, k1, k2, offset + i, r, rb, i, has_rb)
        st, k = round_int_value(np.float64(x[i]) / scale, qmin - zp, qmax - zp, rnd, u, r)
        if st == NAN_ERROR:
            cuda.atomic.add(err, 0, 1)
        if want == 1:
            out[i] = np.float64(k) * scale
        else:
            codes[i] = (k + zp) & cmask


@cuda.jit
def decode_table(codes, out, table, bmask):
    """Values of codes through a table of every code's value (formats of at most 16 bits)."""
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, codes.size, stride):
        out[i] = table[np.int64(codes[i]) & bmask]


@cuda.jit
def decode_bits(codes, out, m, emin, eb, bias, sub, hz, sg, sp, bmask):
    """Values (float64) of the codes of a wide format, through the scalar core."""
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, codes.size, stride):
        out[i] = decode_code(np.int64(codes[i]) & bmask, m, emin, eb, bias, sub, hz, sg, sp)


# ---- specialised kernels: the same cores, with the format and mode as compile-time constants --

_SPECIALISED: dict = {}


def specialised_quantize(in_e, in_m, p, rnd, ovf, narrow, nparams, max_registers=None):
    """A ``quantize_float`` kernel whose format, mode and policy are closure constants.

    numba folds the constants into the scalar cores, which removes the branches on the mode and
    the variable-width shifts: the kernel runs at memory speed. Same cores, same bits as the
    generic kernel above; compiled once per (input dtype, format, mode, policy) on first use.
    """
    key = (in_e, in_m, p, rnd, ovf, narrow, nparams, max_registers)
    kern = _SPECIALISED.get(key)
    if kern is not None:
        return kern
    m, emin, emax, sigmax, sub, hz, sg, sp, _eb, _bias = p
    n_m, n_emin, n_emax, n_sigmax = nparams
    sign_mask = 1 << (in_e + in_m)
    is_sr = rnd == SR or rnd == SRE
    is_narrow = narrow == 1

    opts = {} if max_registers is None else {"max_registers": max_registers}

    @cuda.jit(**opts)
    def kern(xb, outb, bmask, k0, k1, k2, offset, r, rb, has_rb, err):
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(start, xb.size, stride):
            b = np.int64(xb[i]) & bmask
            u = element_u(rnd, k0, k1, k2, offset + i, r, rb, i, has_rb) if is_sr else 0
            ok, mag = round_bits_fast(b, in_e, in_m, m, emin, emax, sigmax, sg, rnd, u, r)
            if ok:
                outb[i] = (b & sign_mask) | mag
                continue
            st, s, kept, q = round_ieee_bits(
                b, in_e, in_m, m, emin, emax, sigmax, sub, hz, sg, sp, rnd, ovf, u, r
            )
            if st == NAN_ERROR:
                cuda.atomic.add(err, 0, 1)
            if is_narrow:
                b32 = ieee_bits(st, s, kept, q, 8, 23)
                st, s, kept, q = round_ieee_bits(
                    b32, 8, 23, n_m, n_emin, n_emax, n_sigmax, 1, 1, 1, 0, RNE, OWN, 0, 32
                )
            outb[i] = ieee_bits(st, s, kept, q, in_e, in_m)

    _SPECIALISED[key] = kern
    return kern


# ---- float32 nearest-even on 32-bit words ------------------------------------------------------

# the intrinsic emits LLVM IR; kernels running in the simulator execute as Python and call the
# same IR compiled for the CPU instead
_rne32 = rne32_cpu if simulated() else rne32
_QNAN = np.uint32(0x7FC00000)


def rne32_quantize(plan, p, ovf):
    """Nearest-even quantization of float32 bits with the select-only 32-bit step
    :func:`qemu_arrays.cuda_kernels.rne32.rne32` (``plan`` from ``qemu_arrays.cpu.rne_f32_plan``).

    The plan is a closure constant, so the loop body is about twenty 32-bit instructions; the
    index is unsigned (no negative-index wraparound) and advanced with a ``while`` loop (no trip
    count division). A NaN into a format without NaN takes the general core, which applies the
    policy and flags the error, exactly as the CPU's ``quantize_f32_rne``.
    """
    key = ("rne32", plan, p, ovf)
    kern = _SPECIALISED.get(key)
    if kern is not None:
        return kern
    m, emin, emax, sigmax, sub, hz, sg, sp, _eb, _bias = p
    nan_ok = plan[8] == 1

    @cuda.jit
    def kern(xb, outb, err):
        i = np.uint64(cuda.grid(1))
        stride = np.uint64(cuda.gridsize(1))
        n = np.uint64(xb.size)
        while i < n:
            b = xb[i]
            res = _rne32(b, plan)
            # without NaN in the format, the quiet NaN out of the step means a NaN input
            if not nan_ok and res == _QNAN:
                st, s, kept, q = round_ieee_bits(
                    np.int64(b), 8, 23, m, emin, emax, sigmax, sub, hz, sg, sp, RNE, ovf, 0, 32
                )
                if st == NAN_ERROR:
                    cuda.atomic.add(err, 0, 1)
                res = np.uint32(ieee_bits(st, s, kept, q, 8, 23))
            outb[i] = res
            i += stride

    _SPECIALISED[key] = kern
    return kern
