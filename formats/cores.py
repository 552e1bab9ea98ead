"""Scalar cores shared by the CPU and CUDA kernels: rounding on the bits, and the random bits.

Every function here is a ``@numba.njit`` function of primitive integers (no Python objects, no
``log2``), so the same source compiles for the CPU (called from ``qemu_arrays.cpu``) and for CUDA
(called from ``cuda_kernels``). All integer arithmetic is on int64: numba turns a mix of uint64
and int64 into float64, so unsigned values are kept below 2**63 and masked explicitly.

A rounded result is a tuple ``(status, sign, kept, q)`` meaning ``(-1)**sign * kept * 2**q`` when
``status == FINITE``. The format parameters are the tuple of ``FloatFormat.params()``:
``(m, emin, emax, sigmax, subnormals, has_zero, signed, specials, ebits, bias)``.
The semantics are defined in ``docs/formats.md``.
"""

from __future__ import annotations

import math

from numba import njit

from qemu_arrays.formats.codes import (  # noqa: F401  (the kernels import them from here too)
    FINITE,
    FINITE_ONLY,
    FN,
    FNUZ,
    IEEE,
    INF,
    JAM,
    ML_DTYPES,
    ML_DTYPES_SUBNORMAL_UP,
    NAN,
    NAN_ERROR,
    ODD,
    OWN,
    P3109,
    RAZ,
    RDN,
    RNA,
    RND,
    RNE,
    RNO,
    RNU,
    RNZ,
    RTZ,
    RUP,
    SATURATE,
    SR,
    SRE,
)

M32 = 0xFFFFFFFF

_JIT = njit(cache=True, nogil=True)
# small functions on every element's path are inlined at numba IR level; the general path is
# left to LLVM, which keeps compile time of each kernel to seconds
_HOT = njit(cache=True, nogil=True, inline="always")


# ---- counter-based random bits ----------------------------------------------------------------


@_HOT
def mix32(x):
    """Wellons' lowbias32 hash: a bijection of 32-bit words (see docs/formats.md)."""
    x = x & M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    x ^= x >> 16
    return x


@_HOT
def random_word(k0, k1, k2, index, j):
    """Word ``j`` (0 or 1) of element ``index`` under the key ``(k0, k1, k2)``."""
    lo = index & M32
    hi = (index >> 32) & M32
    h = mix32(lo ^ k2)
    h = mix32(h ^ ((hi + j * 0x9E3779B9) & M32) ^ k1)
    return mix32((h + k0) & M32)


@_HOT
def random_u(k0, k1, k2, index, r):
    """The element's ``r``-bit random integer, ``1 <= r <= 62``."""
    w0 = random_word(k0, k1, k2, index, 0)
    if r <= 32:
        return w0 >> (32 - r)
    w1 = random_word(k0, k1, k2, index, 1)
    return (w0 << (r - 32)) | (w1 >> (64 - r))


@_HOT
def caller_u(b, r):
    """The ``u`` of the counter rule ``u < floor(f 2^r)`` for the caller's random bits ``b``
    (``rbits=``, an int64 holding the caller's word; its low ``r`` bits are used): an element
    rounds away from zero exactly when ``floor(f 2^r) + (b mod 2^r) >= 2^r`` (PTX ``cvt.rs``'s
    carry rule, gfloat's StochasticFastest), i.e. ``u = 2^r - 1 - (b mod 2^r)``; under
    ``STOCHASTIC_EQUAL`` (``u < 2^(r-1)``) exactly when bit ``r - 1`` of ``b`` is set."""
    mask = (1 << r) - 1
    return mask - (b & mask)


@_HOT
def stochastic_u(rnd, k0, k1, k2, index, r, b, caller):
    """The element's ``r``-bit integer ``u`` for the rounding cores: 0 for the deterministic
    modes; for the stochastic ones the caller's bits ``b`` through :func:`caller_u` when
    ``caller == 1``, else the counter-based bits of element ``index`` under the key."""
    if rnd != SR and rnd != SRE:
        return 0
    if caller == 1:
        return caller_u(b, r)
    return random_u(k0, k1, k2, index, r)


def random_key(seed: int, stream: int = 0) -> tuple[int, int, int]:
    """The key words ``(k0, k1, k2)`` for ``(seed, stream)`` (host-side, plain Python)."""
    s = int(seed) % (1 << 64)
    st = int(stream) % (1 << 32)
    k0 = int(mix32(s & M32 ^ 0x243F6A88))
    k1 = int(mix32((s >> 32) ^ k0 ^ 0x85A308D3))
    k2 = int(mix32(st ^ k1 ^ 0x13198A2E))
    return k0, k1, k2


# ---- helpers ---------------------------------------------------------------------------------


@_HOT
def bit_length(k):
    """Number of bits of a non-negative int64 (0 for 0), by binary search."""
    n = 0
    if k >= (1 << 32):
        k >>= 32
        n += 32
    if k >= (1 << 16):
        k >>= 16
        n += 16
    if k >= (1 << 8):
        k >>= 8
        n += 8
    if k >= (1 << 4):
        k >>= 4
        n += 4
    if k >= (1 << 2):
        k >>= 2
        n += 2
    if k >= (1 << 1):
        k >>= 1
        n += 1
    return n + k


@_HOT
def has_negative_zero(signed, has_zero, specials):
    return signed == 1 and has_zero == 1 and specials != FNUZ and specials != P3109


@_HOT
def format_has_nan(m, specials):
    if specials == IEEE:
        return m > 0
    return specials != FINITE_ONLY


@_HOT
def format_has_inf(specials):
    return specials == IEEE or specials == P3109


@_JIT
def _smallest(m, emin, subnormals, has_zero):
    """(kept, q) of the smallest value >= 0 of the format (0 when it has zero)."""
    if has_zero == 1:
        return 0, 0
    return 1 << m, emin - m


@_JIT
def _special_result(kind, sign, m, emin, emax, sigmax, subnormals, has_zero, signed, specials, ovf):
    """Result of an out-of-range magnitude: kind 0 = overflow rounding away, 1 = infinity input.

    Returns the (status, sign, kept, q) per the overflow policy.
    """
    if ovf != SATURATE:
        if format_has_inf(specials):
            return INF, sign, 0, 0
        if format_has_nan(m, specials):
            return NAN, sign, 0, 0
    return FINITE, sign, sigmax, emax - m


@_JIT
def _negative_unsigned(m, emin, subnormals, has_zero, specials, ovf):
    """A negative input to an unsigned format (see the table in docs/formats.md)."""
    if ovf != SATURATE and format_has_nan(m, specials):
        return NAN, 0, 0, 0
    kept, q = _smallest(m, emin, subnormals, has_zero)
    return FINITE, 0, kept, q


@_HOT
def _round_up_more(rnd, kept, above, tie, nonzero, sign, u, r):
    """Whether the modes added after the first seven round the magnitude up (JAM never does;
    its last bit is set by the caller): the table of docs/formats.md."""
    if rnd == RNZ:
        return above
    if rnd == RNO:
        return above or (tie and (kept & 1) == 0)
    if rnd == RNU:
        return above or (tie and sign == 0)
    if rnd == RND:
        return above or (tie and sign == 1)
    if rnd == RAZ:
        return nonzero
    if rnd == SRE:
        return nonzero and u < (1 << (r - 1))
    return False


@_HOT
def rounds_away_at_max(rnd, sign):
    """Whether the mode rounds away from zero at the overflow threshold (docs/formats.md):
    the nearest and stochastic modes, away-from-zero, and the directed modes on their side."""
    if rnd == RTZ or rnd == ODD or rnd == JAM:
        return False
    if rnd == RUP:
        return sign == 0
    if rnd == RDN:
        return sign == 1
    return True


@_JIT
def round_magnitude(
    sign,
    M,
    E,
    m,
    emin,
    emax,
    sigmax,
    subnormals,
    has_zero,
    signed,
    specials,
    rnd,
    ovf,
    u,
    r,
):
    """Round the finite non-zero value ``(-1)**sign * M * 2**E`` (``0 < M < 2**62``)."""
    if signed == 0 and sign == 1:
        return _negative_unsigned(m, emin, subnormals, has_zero, specials, ovf)
    e = E + bit_length(M) - 1
    flush = e < emin and subnormals == 0  # only 0 and 2**emin are candidates
    if flush:
        q = emin
    elif e < emin:
        q = emin - m
    else:
        q = e - m
    shift = q - E
    up = False
    if shift <= 0:
        kept = M << (-shift)
    else:
        if shift > 61:
            kept = 0
            rem = M
            above = False  # rem < M < 2**61 < half
            tie = False
            t = M >> (shift - r) if shift - r < 62 else 0
        else:
            kept = M >> shift
            rem = M & ((1 << shift) - 1)
            half = 1 << (shift - 1)
            above = rem > half
            tie = rem == half
            t = rem >> (shift - r) if shift >= r else rem << (r - shift)
        nonzero = rem != 0
        if rnd == RNE:
            up = above or (tie and (kept & 1) == 1)
        elif rnd == RNA:
            up = above or tie
        elif rnd == RUP:
            up = nonzero and sign == 0
        elif rnd == RDN:
            up = nonzero and sign == 1
        elif rnd == ODD:
            if nonzero:
                kept |= 1
        elif rnd == SR:
            up = u < t
        else:
            up = _round_up_more(rnd, kept, above, tie, nonzero, sign, u, r)
            if rnd == JAM:
                kept |= 1
    if up:
        kept += 1
    if kept == 0:
        if has_zero == 1:
            if has_negative_zero(signed, has_zero, specials):
                return FINITE, sign, 0, 0
            return FINITE, 0, 0, 0
        kept, q = _smallest(m, emin, subnormals, has_zero)
        return FINITE, sign, kept, q
    # normal form: kept in [2**m, 2**(m+1)) with exponent q + m, or a subnormal
    if kept == (1 << (m + 1)):
        kept = 1 << m
        q += 1
    elif flush and m > 0:  # kept == 1 means 2**emin
        kept = 1 << m
        q = emin - m
    if q + m > emax or (q + m == emax and kept > sigmax):
        away = rounds_away_at_max(rnd, sign)
        if away:
            return _special_result(
                0, sign, m, emin, emax, sigmax, subnormals, has_zero, signed, specials, ovf
            )
        return FINITE, sign, sigmax, emax - m
    return FINITE, sign, kept, q


@_JIT
def round_ieee_bits(
    b,
    in_e,
    in_m,
    m,
    emin,
    emax,
    sigmax,
    subnormals,
    has_zero,
    signed,
    specials,
    rnd,
    ovf,
    u,
    r,
):
    """Round the IEEE value with bit pattern ``b`` (``in_e`` exponent, ``in_m`` mantissa bits)."""
    in_bias = (1 << (in_e - 1)) - 1
    sign = (b >> (in_e + in_m)) & 1
    ef = (b >> in_m) & ((1 << in_e) - 1)
    mf = b & ((1 << in_m) - 1)
    if ef == (1 << in_e) - 1:
        if mf != 0:  # NaN
            if format_has_nan(m, specials):
                if specials == FNUZ or specials == P3109 or signed == 0:
                    return NAN, 0, 0, 0
                return NAN, sign, 0, 0
            if (ovf == ML_DTYPES or ovf == ML_DTYPES_SUBNORMAL_UP) and has_zero == 1:
                s = 1 - sign if has_negative_zero(signed, has_zero, specials) else 0
                return FINITE, s, 0, 0
            return NAN_ERROR, sign, 0, 0
        if signed == 0 and sign == 1:
            return _negative_unsigned(m, emin, subnormals, has_zero, specials, ovf)
        return _special_result(
            1, sign, m, emin, emax, sigmax, subnormals, has_zero, signed, specials, ovf
        )
    if ef == 0:
        if mf == 0:  # zero
            if has_zero == 1:
                if has_negative_zero(signed, has_zero, specials):
                    return FINITE, sign, 0, 0
                return FINITE, 0, 0, 0
            if signed == 0 and sign == 1:
                return _negative_unsigned(m, emin, subnormals, has_zero, specials, ovf)
            if ovf == SATURATE:
                kept, q = _smallest(m, emin, subnormals, has_zero)
                return FINITE, sign, kept, q
            if format_has_nan(m, specials):
                return NAN, 0, 0, 0
            return NAN_ERROR, 0, 0, 0
        M = mf
        E = 1 - in_bias - in_m
        if (
            ovf == ML_DTYPES_SUBNORMAL_UP
            and has_zero == 0
            and in_e == 8
            and (signed == 1 or sign == 0)
        ):
            # ml_dtypes < 0.7 rounds float32 subnormals up to a power of two in formats without zero
            bl = bit_length(M)
            k = E + bl - 1 if M == (1 << (bl - 1)) else E + bl
            k = max(k, emin)
            return FINITE, sign, 1 << m, k - m
    else:
        M = mf | (1 << in_m)
        E = ef - in_bias - in_m
    return round_magnitude(
        sign, M, E, m, emin, emax, sigmax, subnormals, has_zero, signed, specials, rnd, ovf, u, r
    )


@_JIT
def ieee_bits(status, sign, kept, q, out_e, out_m):
    """Bit pattern of ``(status, sign, kept, q)`` in the IEEE format (out_e, out_m).

    Values beyond the output's range become inf; values finer than the output's grid (formats
    with more mantissa bits than the output, or whose range reaches below its subnormals) round
    to nearest even, once.
    """
    sbit = sign << (out_e + out_m)
    all_ones = (1 << out_e) - 1
    if status == INF:
        return sbit | (all_ones << out_m)
    if status != FINITE:
        return (all_ones << out_m) | (1 << (out_m - 1))  # canonical quiet NaN
    if kept == 0:
        return sbit
    out_bias = (1 << (out_e - 1)) - 1
    bl = bit_length(kept)
    e_r = q + bl - 1
    if e_r > all_ones - 1 - out_bias:
        return sbit | (all_ones << out_m)
    if e_r >= 1 - out_bias:
        if bl <= out_m + 1:
            mant = kept << (out_m + 1 - bl)
        else:  # a format with more mantissa bits than the output: nearest even
            sh = bl - out_m - 1
            mant = kept >> sh
            rem = kept & ((1 << sh) - 1)
            half = 1 << (sh - 1)
            if rem > half or (rem == half and (mant & 1) == 1):
                mant += 1
                if mant == (1 << (out_m + 1)):  # carried into the next binade
                    mant >>= 1
                    e_r += 1
                    if e_r > all_ones - 1 - out_bias:
                        return sbit | (all_ones << out_m)
        return sbit | ((e_r + out_bias) << out_m) | (mant - (1 << out_m))
    sh = q - (1 - out_bias - out_m)
    if sh >= 0:
        return sbit | (kept << sh)
    sh = -sh
    if sh > 61:
        return sbit
    mant = kept >> sh
    rem = kept & ((1 << sh) - 1)
    half = 1 << (sh - 1)
    if rem > half or (rem == half and (mant & 1) == 1):
        mant += 1
    return sbit | mant


@_JIT
def format_code(status, sign, kept, q, m, emin, ebits, bias, signed, specials):
    """The format's bit pattern for a rounded result (canonical NaN, see docs/formats.md)."""
    mag_bits = ebits + m
    sbit = (sign << mag_bits) if signed == 1 else 0
    all_mag = (1 << mag_bits) - 1
    if status == NAN or status == NAN_ERROR:
        if specials == FNUZ or specials == P3109:
            return 1 << mag_bits
        if specials == IEEE:
            return sbit | (((1 << ebits) - 1) << m) | (1 << (m - 1))
        return sbit | all_mag
    if status == INF:
        if specials == P3109:
            return sbit | all_mag
        return sbit | (((1 << ebits) - 1) << m)
    if kept == 0:
        return sbit
    if kept >= (1 << m):
        return sbit | ((q + m + bias) << m) | (kept - (1 << m))
    return sbit | kept


@_JIT
def decode_code(code, m, emin, ebits, bias, subnormals, has_zero, signed, specials):
    """The value of a code as float64 (the inverse of format_code)."""
    mag_bits = ebits + m
    mag = code & ((1 << mag_bits) - 1)
    sign = (code >> mag_bits) & 1 if signed == 1 else 0
    ef = mag >> m
    mf = mag & ((1 << m) - 1)
    top = (1 << ebits) - 1
    if specials == IEEE and ef == top:
        if mf == 0:
            return -math.inf if sign == 1 else math.inf
        return math.nan
    if specials == FN and mag == (1 << mag_bits) - 1:
        return math.nan
    if (specials == FNUZ or specials == P3109) and sign == 1 and mag == 0:
        return math.nan
    if specials == P3109 and mag == (1 << mag_bits) - 1:
        return -math.inf if sign == 1 else math.inf
    if ef == 0 and has_zero == 1:
        if subnormals == 1 and mf != 0:
            v = math.ldexp(float(mf), emin - m)
        else:
            v = 0.0
            if not has_negative_zero(signed, has_zero, specials):
                return v
    else:
        v = math.ldexp(float(mf | (1 << m)), ef - bias - m)
    return -v if sign == 1 else v


@_JIT
def round_int_value(x, qmin, qmax, rnd, u, r):
    """Round the float64 quotient ``x`` to an integer in [qmin, qmax].

    Returns (status, k): status NAN_ERROR for NaN input.
    """
    if x != x:
        return NAN_ERROR, 0
    neg = x < 0
    a = -x if neg else x
    if a >= 4.0e18:  # beyond every supported grid: clamps (inf included)
        return FINITE, (qmin if neg else qmax)
    K = math.floor(a)
    f = a - K  # exact
    k = int(K)
    up = False
    if f > 0.0:
        if rnd == RNE:
            up = f > 0.5 or (f == 0.5 and (k & 1) == 1)
        elif rnd == RNA:
            up = f >= 0.5
        elif rnd == RUP:
            up = not neg
        elif rnd == RDN:
            up = neg
        elif rnd == ODD:
            k |= 1
        elif rnd == SR:
            t = int(math.floor(math.ldexp(f, r)))
            up = u < t
        else:
            up = _round_up_more(rnd, k, f > 0.5, f == 0.5, True, 1 if neg else 0, u, r)
    if rnd == JAM and 0.0 < a < 4503599627370496.0:  # the float64 grid is finer than 1 below 2**52
        k |= 1
    if up:
        k += 1
    if neg:
        k = -k
    k = min(max(k, qmin), qmax)
    return FINITE, k


@_HOT
def round_bits_fast(b, in_e, in_m, m, emin, emax, sigmax, signed, rnd, u, r):
    """Fast path of :func:`round_ieee_bits` for the common case, on the input's own bits.

    Applies when the input is finite and normal, its binade lies in the format's normal range,
    the format has at most the input's precision, and no overflow results (or a negative input
    meets an unsigned format). Returns ``(True, rounded magnitude bits in the input layout)``
    or ``(False, 0)`` when the general path must decide. Both paths give identical results.
    """
    sign_shift = in_e + in_m
    mag = b & ((1 << sign_shift) - 1)
    sign = (b >> sign_shift) & 1
    in_bias = (1 << (in_e - 1)) - 1
    ef = mag >> in_m
    e = ef - in_bias
    sh = in_m - m
    if (
        ef == 0
        or e < emin
        or e > emax
        or ef == (1 << in_e) - 1
        or sh < 0
        or (signed == 0 and sign == 1)
    ):
        return False, 0
    if sh > 0:
        low = (1 << sh) - 1
        rem = mag & low
        trunc = mag - rem
        half = 1 << (sh - 1)
        # parity of the significand; with no mantissa bits it is the implicit 1 (odd)
        odd = ((mag >> sh) & 1) if m > 0 else 1
        if rnd == RNE:
            mag = (mag + (half - 1) + odd) & ~low
        elif rnd == RNA:
            mag = (mag + half) & ~low
        elif rnd == RTZ:
            mag = trunc
        elif rnd == RUP:
            mag = trunc + ((rem != 0) & (sign == 0)) * (low + 1)
        elif rnd == RDN:
            mag = trunc + ((rem != 0) & (sign == 1)) * (low + 1)
        elif rnd == ODD:
            mag = trunc if m == 0 else trunc | ((rem != 0) * (low + 1))
        elif rnd == SR:
            t = rem << (r - sh) if r >= sh else rem >> (sh - r)
            mag = trunc + (u < t) * (low + 1)
        elif rnd == RNZ:
            mag = (mag + (half - 1)) & ~low
        elif rnd == RNO:
            mag = (mag + (half - 1) + (1 - odd)) & ~low
        elif rnd == RNU:
            mag = (mag + (half - 1) + (sign == 0)) & ~low
        elif rnd == RND:
            mag = (mag + (half - 1) + (sign == 1)) & ~low
        elif rnd == RAZ:
            mag = trunc + (rem != 0) * (low + 1)
        elif rnd == JAM:
            mag = trunc if m == 0 else trunc | (low + 1)
        elif rnd == SRE:
            mag = trunc + ((rem != 0) & (u < (1 << (r - 1)))) * (low + 1)
        else:
            return False, 0
    max_mag = ((emax + in_bias) << in_m) | ((sigmax - (1 << m)) << sh)
    if mag > max_mag:
        return False, 0
    return True, mag


@_HOT
def round_subnormal_fast(b, in_e, in_m, m, emin, subnormals, has_zero, signed, specials, rnd, u, r):
    """Fast path for a normal input below the format's smallest normal (format with subnormals).

    Returns ``(True, sign, kept)`` meaning ``(-1)**sign * kept * 2**(emin - m)`` (``kept`` may
    reach ``2**m``, the smallest normal), or ``(False, 0, 0)`` when the general path decides.
    Identical to :func:`round_ieee_bits` where it applies.
    """
    sign = (b >> (in_e + in_m)) & 1
    ef = (b >> in_m) & ((1 << in_e) - 1)
    e = ef - ((1 << (in_e - 1)) - 1)
    if ef == 0 or e >= emin or subnormals == 0 or m > in_m or (signed == 0 and sign == 1):
        return False, 0, 0
    s = in_m - m + (emin - e)
    if s > 61:
        return False, 0, 0
    big = (b & ((1 << in_m) - 1)) | (1 << in_m)
    kept = big >> s
    rem = big & ((1 << s) - 1)
    half = 1 << (s - 1)
    if rnd == RNE:
        kept += (rem > half) | ((rem == half) & ((kept & 1) == 1))
    elif rnd == RNA:
        kept += rem >= half
    elif rnd == RUP:
        kept += (rem != 0) & (sign == 0)
    elif rnd == RDN:
        kept += (rem != 0) & (sign == 1)
    elif rnd == ODD:
        kept |= rem != 0
    elif rnd == SR:
        t = rem >> (s - r) if s >= r else rem << (r - s)
        kept += u < t
    elif rnd == JAM:
        kept |= 1
    elif rnd != RTZ:
        kept += _round_up_more(rnd, kept, rem > half, rem == half, rem != 0, sign, u, r)
    # branch-free: a zero result keeps its sign only where the format has -0
    sign = sign & ((kept != 0) | has_negative_zero(signed, has_zero, specials))
    return True, sign, kept
