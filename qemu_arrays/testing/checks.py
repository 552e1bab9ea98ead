"""The property battery: :func:`check_format` and :func:`check_estimator`.

``check_format`` runs a quantizer (``qemu_arrays.quantize`` or the user's own) over the deciding
inputs of a format (:func:`~qemu_arrays.testing.strategies.probe_points`: every value, every
midpoint and their float64 neighbours for formats of at most 16 bits; a seeded sample beyond)
under every rounding mode and overflow policy, and compares with an independent NumPy model of
``docs/formats.md``. Each property that fails is reported once per (property, mode, policy) with
its *minimal* example: the failing input with the fewest significant bits and the smallest
exponent, so that the example is the simplest number that shows the bug.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import numpy as np

from qemu_arrays.formats.catalog import ML_DTYPES_NAMES
from qemu_arrays.formats.spec import IntFormat, Overflow, Rounding
from qemu_arrays.testing.strategies import (
    ENUMERABLE_BITS,
    _check_fits_float64,
    _complexity,
    _element_format,
    decode_model,
    probe_points,
)

__all__ = [
    "PROPERTIES",
    "EstimatorReport",
    "Failure",
    "FormatReport",
    "check_estimator",
    "check_format",
]

PROPERTIES = {
    "value_set": "every output is a value of the format (sign of zero, inf and NaN included)",
    "fixed_points": "every representable value rounds to itself, in every mode",
    "idempotence": "quantizing an output again changes nothing",
    "monotonicity": "x <= y implies Q(x) <= Q(y) (deterministic modes)",
    "directed_bracket": "UP gives the value above x, DOWN the value below, TOWARD_ZERO the one "
    "toward zero",
    "nearest_neighbour": "nearest modes give a nearest value (inputs that are not ties)",
    "tie_rule": "ties go to the even significand (NEAREST_EVEN) or away from zero (NEAREST_AWAY)",
    "to_odd": "TO_ODD truncates and sets the last bit when anything was discarded",
    "sign_symmetry": "Q(-x) = -Q(x) for symmetric modes, Q_UP(-x) = -Q_DOWN(x)",
    "special_inputs": "zeros, negative input to unsigned formats, underflow in formats without zero",
    "overflow_policy": "overflow and ±inf follow the Overflow policy",
    "nan_policy": "NaN input gives NaN, ValueError, or (ML_DTYPES) the opposite-signed zero",
    "encode_decode_roundtrip": "decode matches the spec table and encode(decode(c)) = c for every "
    "canonical code",
    "stochastic_neighbours": "stochastic rounding returns one of the two neighbours of x",
    "stochastic_reproducible": "the same seed gives the same result; another seed another one",
    "stochastic_unbiased": "stochastic rounding rounds up with probability (x - lo) / (hi - lo)",
    "ml_dtypes_agreement": "round-to-nearest agrees with ml_dtypes' cast where it has the format",
    "matches_qemu_arrays": "the user's quantize gives qemu_arrays.quantize's result",
    "no_unexpected_error": "quantize raises only where the spec says so",
}

# the model covers the first seven modes; the modes of issue 16 are tested against the exact
# reference in tests/oracle/test_rounding_modes.py
DETERMINISTIC = tuple(r for r in Rounding if r < Rounding.STOCHASTIC)


# ---- the report ------------------------------------------------------------------------------


def _fmt_value(v) -> str:
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt_value(x) for x in v) + ")"
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v == 0:
            return "-0.0" if math.copysign(1.0, v) < 0 else "0.0"
        if not math.isfinite(v):
            return repr(v)
        return f"{v!r} ({v.hex()})"
    return str(v)


@dataclass(frozen=True)
class Failure:
    """One failed property: the simplest input that shows it, what the spec expects, what came
    back, and how many inputs failed the same way."""

    property: str
    context: str
    x: object
    expected: object
    got: object
    count: int = 1

    def __str__(self):
        where = f" [{self.context}]" if self.context else ""
        return (
            f"{self.property}{where}: x = {_fmt_value(self.x)}, expected "
            f"{_fmt_value(self.expected)}, got {_fmt_value(self.got)} "
            f"({self.count} failing input{'s' if self.count != 1 else ''})"
        )


@dataclass
class FormatReport:
    """The result of :func:`check_format`: ``failures`` (one :class:`Failure` per failing
    property and context), ``passed`` and ``skipped`` (property -> reason) properties."""

    format: object
    failures: list[Failure] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    n_inputs: int = 0
    kind: str = "check_format"

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failed_properties(self) -> set[str]:
        return {f.property for f in self.failures}

    def failures_of(self, prop: str) -> list[Failure]:
        return [f for f in self.failures if f.property == prop]

    def summary(self) -> str:
        name = getattr(self.format, "name", str(self.format))
        head = (
            f"{self.kind}({name}): {len(self.passed)} properties passed, "
            f"{len(self.failed_properties)} failed, {len(self.skipped)} skipped "
            f"({self.n_inputs} probe inputs)"
        )
        lines = [head]
        lines += [f"  FAIL {f}" for f in self.failures]
        lines += [f"  skip {p}: {why}" for p, why in self.skipped.items()]
        return "\n".join(lines)

    __str__ = summary

    def raise_if_failed(self) -> None:
        """Raise ``AssertionError`` listing every failure (with its minimal example)."""
        if self.failures:
            raise AssertionError(self.summary())


class _Collector:
    def __init__(self, report: FormatReport):
        self.report = report
        self.ran: set[str] = set()

    def check(self, prop, context, bad, x, expected, got):
        """Record the simplest failing input of boolean mask ``bad`` (arrays aligned)."""
        self.ran.add(prop)
        bad = np.asarray(bad, dtype=bool)
        if not bad.any():
            return
        idx = np.flatnonzero(bad)
        i = idx[_simplest_first(np.asarray(x, dtype=np.float64)[idx])[0]]
        self.fail(prop, context, float(x[i]), _pick(expected, i), _pick(got, i), int(idx.size))

    def fail(self, prop, context, x, expected, got, count=1):
        self.ran.add(prop)
        self.report.failures.append(Failure(prop, context, x, expected, got, count))

    def finish(self):
        merged: dict = {}
        for f in self.report.failures:
            key = (f.property, _fmt_value(f.x), _fmt_value(f.expected), _fmt_value(f.got))
            merged.setdefault(key, []).append(f)
        self.report.failures = [
            Failure(
                fs[0].property,
                _merge_contexts([f.context for f in fs]),
                fs[0].x,
                fs[0].expected,
                fs[0].got,
                sum(f.count for f in fs),
            )
            for fs in merged.values()
        ]
        failed = self.report.failed_properties
        self.report.passed = sorted(p for p in self.ran if p not in failed)


def _merge_contexts(contexts: list[str]) -> str:
    """['UP, overflow=OWN', 'DOWN, overflow=SATURATE'] -> 'UP/DOWN, overflow=OWN/SATURATE'."""
    if len(contexts) == 1:
        return contexts[0]
    modes: list[str] = []
    policies: list[str] = []
    for c in contexts:
        mode, sep, policy = c.partition(", overflow=")
        if not sep or "," in policy or " " in mode:
            return " | ".join(dict.fromkeys(contexts))
        modes += [mode] if mode not in modes else []
        policies += [policy] if policy not in policies else []
    return f"{'/'.join(modes)}, overflow={'/'.join(policies)}"


def _simplest_first(x) -> np.ndarray:
    """Indices of ``x`` ordered simplest first: fewest significant bits, smallest exponent,
    smallest magnitude, positive before negative."""
    x = np.asarray(x, dtype=np.float64)
    return np.lexsort((np.signbit(x), np.abs(x), _complexity(x)))


def _pick(v, i):
    if isinstance(v, str):
        return v
    if isinstance(v, tuple):
        return tuple(_pick(a, i) for a in v)
    item = np.asarray(v)[i]
    return item if isinstance(item, str) else float(item)


# ---- the NumPy model of docs/formats.md ------------------------------------------------------


def _round_k(k, f, neg, rounding, u=None, r=None):
    """K' of the rounding table (float64 arrays K, f; boolean neg)."""
    if rounding is Rounding.NEAREST_EVEN:
        odd = np.mod(k, 2) == 1
        return np.where((f > 0.5) | ((f == 0.5) & odd), k + 1, k)
    if rounding is Rounding.NEAREST_AWAY:
        return np.where(f >= 0.5, k + 1, k)
    if rounding is Rounding.TOWARD_ZERO:
        return k
    if rounding is Rounding.UP:
        return np.where((f > 0) & ~neg, k + 1, k)
    if rounding is Rounding.DOWN:
        return np.where((f > 0) & neg, k + 1, k)
    if rounding is Rounding.TO_ODD:
        return np.where((f > 0) & (np.mod(k, 2) == 0), k + 1, k)
    return np.where(u, k + 1, k)  # STOCHASTIC: u is the boolean "round away" here


def _away_at_max(rounding, neg):
    if rounding in (Rounding.NEAREST_EVEN, Rounding.NEAREST_AWAY, Rounding.STOCHASTIC):
        return np.ones_like(neg)
    if rounding is Rounding.UP:
        return ~neg
    if rounding is Rounding.DOWN:
        return neg
    return np.zeros_like(neg)


@dataclass
class _Model:
    expected: np.ndarray  # float64 results (nan where NaN)
    error: np.ndarray  # bool: the spec raises ValueError
    category: np.ndarray  # object/str per input: which property decides it
    tie: np.ndarray  # bool: an exact midpoint


def _model(fmt, x, rounding, overflow, scale, away=None) -> _Model:
    """Expected results of ``quantize(x, fmt, rounding, overflow)``; ``away`` (bool array)
    replaces the stochastic decision."""
    x = np.asarray(x, dtype=np.float64)
    if isinstance(fmt, IntFormat):
        return _int_model(fmt, x, rounding, scale, away)
    cat = np.full(x.shape, "", dtype=object)
    res, tie = _float_model_finite(fmt, x, rounding, overflow, away, cat)
    res, err = _float_model_specials(fmt, x, overflow, res, cat)
    return _Model(res, err, cat, tie)


def _int_model(fmt, x, rounding, scale, away) -> _Model:
    """Integer formats: ``clamp(round(x / scale)) * scale``."""
    neg = np.signbit(x)
    nan = np.isnan(x)
    cat = np.full(x.shape, "", dtype=object)
    err = nan.copy()
    s = float(scale)
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.abs(x / s)
    finite = np.isfinite(t)
    ts = np.where(finite, t, 0.0)
    k = np.floor(ts)
    f = ts - k
    kk = _round_k(k, f, neg, rounding, away)
    signed_k = np.where(neg, -kk, kk)
    signed_k = np.where(finite, signed_k, np.where(neg, -np.inf, np.inf))
    clamped = np.clip(signed_k, fmt.min, fmt.max)
    expected = clamped * s + 0.0
    over = (signed_k != clamped) & ~nan
    tie = finite & (f == 0.5)
    expected = np.where(nan, np.nan, expected)
    cat[:] = _mode_category(rounding)
    cat[tie & (cat == "nearest_neighbour")] = "tie_rule"
    cat[over] = "overflow_policy"
    cat[nan] = "nan_policy"
    return _Model(expected, err, cat, tie)


def _float_model_finite(fmt, x, rounding, overflow, away, cat):
    """Float formats, finite and infinite inputs: ``(values, ties)``; fills ``cat``."""
    neg = np.signbit(x)
    inf = np.isinf(x)
    a = np.abs(x)
    m, emin, fmax = fmt.mantissa_bits, fmt.emin, fmt.max
    smallest = fmt.smallest_subnormal if fmt.has_zero else fmt.smallest_normal
    finite_nz = np.isfinite(x) & (a != 0)
    a_safe = np.where(finite_nz, a, 1.0)
    _, ex = np.frexp(a_safe)
    e = ex.astype(np.int64) - 1
    qe = np.maximum(e, emin) - m
    if not fmt.subnormals:
        qe = np.where(e < emin, emin, qe)
    t = np.ldexp(a_safe, -qe)
    k = np.floor(t)
    f = t - k
    # a float64 subnormal x scaled down can underflow to 0: it is still a non-zero fraction
    f = np.where((t == 0) & finite_nz, np.nextafter(0.0, 1.0), f)
    kk = _round_k(k, f, neg, rounding, away)
    with np.errstate(over="ignore"):
        mag = np.ldexp(kk, qe)
    tie = finite_nz & (f == 0.5)

    zero_neg = neg & fmt.has_negative_zero
    zero = np.where(zero_neg, -0.0, 0.0)
    small = np.where(neg & fmt.signed, -smallest, smallest)
    res = np.where(neg, -mag, mag)
    cat[:] = _mode_category(rounding)
    cat[tie & (cat == "nearest_neighbour")] = "tie_rule"
    # a non-zero magnitude that rounded to 0
    to_zero = finite_nz & (mag == 0)
    res = np.where(to_zero, zero if fmt.has_zero else small, res)
    if not fmt.has_zero:
        cat[to_zero] = "special_inputs"
    # overflow and infinities
    away_max = _away_at_max(rounding, neg)
    over = (finite_nz & (mag > fmax)) | inf
    away_max = away_max | inf
    sat = np.where(neg, -fmax, fmax)
    if overflow is Overflow.SATURATE:
        over_val = sat
    elif fmt.has_inf:
        over_val = np.where(away_max, np.where(neg, -np.inf, np.inf), sat)
    elif fmt.has_nan:
        over_val = np.where(away_max, np.nan, sat)
    else:
        over_val = sat
    res = np.where(over, over_val, res)
    cat[over] = "overflow_policy"
    return res, tie


def _float_model_specials(fmt, x, overflow, res, cat):
    """Float formats: exact zeros, negative input to unsigned formats and NaN over ``res``:
    ``(values, error flags)``; fills ``cat``."""
    neg = np.signbit(x)
    nan = np.isnan(x)
    a = np.abs(x)
    err = np.zeros(x.shape, dtype=bool)
    smallest = fmt.smallest_subnormal if fmt.has_zero else fmt.smallest_normal
    zero = np.where(neg & fmt.has_negative_zero, -0.0, 0.0)
    small = np.where(neg & fmt.signed, -smallest, smallest)
    # exact zeros
    zin = ~nan & (a == 0)
    if fmt.has_zero:
        res = np.where(zin, zero, res)
    elif overflow is Overflow.SATURATE:
        res = np.where(zin, small, res)
    else:
        res = np.where(zin, np.nan, res)
        err |= zin & (not fmt.has_nan)
    cat[zin] = "special_inputs"
    # negative input to an unsigned format
    if not fmt.signed:
        negin = neg & ~nan & ~(zin & fmt.has_zero)
        if overflow is not Overflow.SATURATE and fmt.has_nan:
            nval = np.nan
        else:
            nval = 0.0 if fmt.has_zero else fmt.smallest_normal
        res = np.where(negin, nval, res)
        err &= ~negin
        cat[negin] = "special_inputs"
    # NaN input
    if fmt.has_nan:
        res = np.where(nan, np.nan, res)
    elif overflow is Overflow.ML_DTYPES and fmt.has_zero:
        opp = np.where(~neg & fmt.has_negative_zero, -0.0, 0.0)
        res = np.where(nan, opp, res)
    else:
        res = np.where(nan, np.nan, res)
        err |= nan
    cat[nan] = "nan_policy"
    return res, err


def _mode_category(rounding):
    if rounding in (Rounding.NEAREST_EVEN, Rounding.NEAREST_AWAY):
        return "nearest_neighbour"
    if rounding is Rounding.TO_ODD:
        return "to_odd"
    if rounding is Rounding.STOCHASTIC:
        return "stochastic_neighbours"
    return "directed_bracket"


def _same(got, expected, zero_sign=True):
    """Element-wise identity: NaN matches NaN, zeros match by sign when ``zero_sign``."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    both_nan = np.isnan(got) & np.isnan(expected)
    eq = got == expected
    if zero_sign:
        eq &= np.signbit(got) == np.signbit(expected)
    return both_nan | eq


def _in_value_set(fmt, q, scale):
    q = np.asarray(q, dtype=np.float64)
    if isinstance(fmt, IntFormat):
        with np.errstate(invalid="ignore", over="ignore"):
            k = q / float(scale)
        return np.isfinite(k) & (k == np.round(k)) & (k >= fmt.min) & (k <= fmt.max)
    a = np.abs(q)
    ok = np.isfinite(q) & (a <= fmt.max)
    nz = ok & (a != 0)
    a_safe = np.where(nz, a, 1.0)
    _, ex = np.frexp(a_safe)
    e = ex.astype(np.int64) - 1
    qe = np.maximum(e, fmt.emin) - fmt.mantissa_bits
    t = np.ldexp(a_safe, -qe)
    smallest = fmt.smallest_subnormal if fmt.has_zero else fmt.smallest_normal
    on_grid = (t == np.floor(t)) & (a_safe >= smallest)
    if not fmt.subnormals:
        on_grid &= e >= fmt.emin
    ok &= ~nz | on_grid
    ok &= (a != 0) | fmt.has_zero
    if not fmt.has_negative_zero:
        ok &= ~((a == 0) & np.signbit(q))
    if not fmt.signed:
        ok &= ~np.signbit(q)
    if fmt.has_inf:
        ok |= np.isinf(q) & (fmt.signed | (q > 0))
    if fmt.has_nan:
        ok |= np.isnan(q)
    return ok


# ---- calling a user's function -------------------------------------------------------------------


class _Quantizer:
    def __init__(self, fn, fmt, scale, dtype):
        self.fn = fn
        self.fmt = fmt
        self.scale = scale
        self.dtype = np.dtype(dtype)
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):  # builtins without a signature: assume everything
            params = {}
        var_kw = not params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        self.accepts = {
            name: var_kw or name in params for name in ("overflow", "seed", "scale", "rounding")
        }

    def __call__(self, x, rounding, overflow=Overflow.OWN, seed=None):
        kw = {}
        if self.accepts["rounding"]:
            kw["rounding"] = rounding
        if overflow is not Overflow.OWN or self.accepts["overflow"]:
            kw["overflow"] = overflow
        if seed is not None:
            kw["seed"] = seed
        if isinstance(self.fmt, IntFormat):
            kw["scale"] = self.scale
        arr = np.asarray(x, dtype=np.float64).astype(self.dtype)
        out = self.fn(arr, self.fmt, **kw)
        return np.asarray(out).astype(np.float64)


def _find_raiser(call, x):
    """The simplest element of ``x`` on which ``call`` raises, and the exception.

    Orders ``x`` simplest first and bisects for the shortest prefix that raises (a few calls).
    """
    xs = np.asarray(x)[_simplest_first(x)]

    def raises(n):
        try:
            call(xs[:n])
        except Exception as exc:  # noqa: BLE001 - any exception is the finding
            return exc
        return None

    if xs.size == 0 or raises(xs.size) is None:
        return None, None
    lo, hi = 0, xs.size  # raises(hi) is true, raises(lo) false
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if raises(mid) is None:
            lo = mid
        else:
            hi = mid
    exc = raises(hi)
    try:
        call(xs[hi - 1 : hi])
    except Exception as single:  # noqa: BLE001
        exc = single
    return float(xs[hi - 1]), exc


# ---- check_format ------------------------------------------------------------------------------


def _ml_dtype_for(fmt):
    from qemu_arrays.formats.catalog import get_format

    for name in ML_DTYPES_NAMES:
        if get_format(name) == fmt:
            import ml_dtypes

            return getattr(ml_dtypes, name)
    return None


def _battery_args(fmt, quantize, roundings, overflows, scale, dtype):
    """check_format's arguments, checked: (format, scale, roundings, overflows, dtype)."""
    fmt = _element_format(fmt)
    _check_fits_float64(fmt)
    if isinstance(fmt, IntFormat):
        scale = 1.0 if scale is None else float(scale)
        if not (math.isfinite(scale) and scale > 0):
            msg = f"scale must be a positive finite number, got {scale!r}; hint: scale=1.0"
            raise ValueError(msg)
    elif scale is not None:
        msg = f"scale applies to integer formats, got scale={scale!r} with {fmt.name!r}"
        raise ValueError(msg)
    if quantize is not None and not callable(quantize):
        msg = f"quantize must be callable as quantize(x, fmt, rounding=...), got {quantize!r}"
        raise TypeError(msg)
    # the model covers the first seven modes by default (the issue-16 modes: test_rounding_modes)
    roundings = (
        tuple(r for r in Rounding if r <= Rounding.STOCHASTIC)
        if roundings is None
        else tuple(Rounding(r) for r in roundings)
    )
    beyond = [r.name for r in roundings if r > Rounding.STOCHASTIC]
    if beyond:
        msg = (
            f"roundings: the battery's model has no {', '.join(beyond)}; it checks "
            f"{', '.join(r.name for r in Rounding if r <= Rounding.STOCHASTIC)}; hint: test the "
            "newer modes against qemu_arrays.formats.reference.quantize_value"
        )
        raise ValueError(msg)
    overflows = tuple(Overflow) if overflows is None else tuple(Overflow(o) for o in overflows)
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)):
        msg = f"dtype must be float16, float32 or float64, got {dtype}; hint: np.float64"
        raise TypeError(msg)
    return fmt, scale, roundings, overflows, dtype


def _battery_inputs(fmt, scale, max_values, seed, dtype):
    """The probe points, cast to ``dtype``, ascending with -0 just before +0."""
    pts = probe_points(fmt, scale=scale, max_values=max_values, seed=seed)
    if dtype != np.float64:
        from qemu_arrays.testing.strategies import _points_for_dtype

        pts = _points_for_dtype(pts, dtype)
    # sorted ascending, -0 just before +0
    pts = pts[np.lexsort((~np.signbit(pts), pts))]
    return pts


def _check_modes(col, q, fmt, pts, roundings, overflows, scale, seed, trials, inputs):
    """The deterministic modes under every overflow policy, their symmetry, and stochastic
    rounding's unbiasedness."""
    results = {}
    for overflow in overflows:
        for rounding in (r for r in roundings if r is not Rounding.STOCHASTIC):
            got = _check_mode(col, q, fmt, pts, rounding, overflow, scale)
            if got is not None:
                results[(rounding, overflow)] = got
    _check_symmetry(col, fmt, pts, results, scale)
    if Rounding.STOCHASTIC in roundings:
        if q.accepts["seed"]:
            _check_stochastic(col, q, fmt, pts, scale, seed, trials, inputs)
        else:
            col.report.skipped["stochastic_*"] = "quantize takes no seed= keyword"


def check_format(
    fmt,
    quantize=None,
    *,
    encode=None,
    decode=None,
    roundings=None,
    overflows=None,
    scale=None,
    dtype=np.float64,
    max_values: int = 1 << 16,
    stochastic_trials: int = 20_000,
    stochastic_inputs: int = 12,
    seed: int = 0,
) -> FormatReport:
    """Run the property battery on ``fmt`` and return a :class:`FormatReport`.

    Parameters
    ----------
    fmt : str or FloatFormat or IntFormat
        The format (a catalogue name or any descriptor whose values fit in float64).
    quantize : callable, optional
        ``quantize(x, fmt, rounding=..., **kw)`` on float arrays, where ``kw`` may hold
        ``overflow=``, ``seed=`` (stochastic rounding) and ``scale=`` (integer formats); default
        ``qemu_arrays.quantize``. Keywords the function does not accept are not passed, and the
        properties that need them are reported as skipped.
    encode, decode : callable, optional
        The codec checked by the round trip (default ``qemu_arrays.encode``/``decode`` when
        ``quantize`` is None; skipped when a user ``quantize`` comes without them).
    roundings, overflows : sequences, optional
        Restrict the modes and policies checked (default all).
    scale : float, optional
        The step of an integer format (default 1.0).
    dtype : numpy float dtype
        What the quantizer is fed; the probe inputs are cast to it (exactly representable
        inputs only).
    max_values : int
        Formats with more values are sampled (seeded by ``seed``) instead of enumerated.
    stochastic_trials, stochastic_inputs : int
        The unbiasedness test draws ``stochastic_trials`` roundings of each of
        ``stochastic_inputs`` inputs and flags a rate more than 6 standard deviations away.
    """
    import qemu_arrays as qa

    user = quantize is not None
    fmt, scale, roundings, overflows, dtype = _battery_args(
        fmt, quantize, roundings, overflows, scale, dtype
    )
    q = _Quantizer(quantize if user else qa.quantize, fmt, scale, dtype)
    report = FormatReport(format=fmt)
    col = _Collector(report)
    pts = _battery_inputs(fmt, scale, max_values, seed, dtype)
    report.n_inputs = int(pts.size)

    if not q.accepts["overflow"]:
        report.skipped["overflow policies SATURATE and ML_DTYPES"] = (
            "quantize takes no overflow= keyword: only the default (OWN) is checked"
        )
        overflows = tuple(o for o in overflows if o is Overflow.OWN)
    if not q.accepts["rounding"]:
        report.skipped["rounding modes"] = "quantize takes no rounding=: only NEAREST_EVEN"
        roundings = (Rounding.NEAREST_EVEN,)

    _check_modes(
        col, q, fmt, pts, roundings, overflows, scale, seed, stochastic_trials, stochastic_inputs
    )
    if user:
        _check_against_ours(col, q, fmt, pts, roundings, overflows, scale, dtype)
    if Rounding.NEAREST_EVEN in roundings and dtype != np.float16:
        mld = _ml_dtype_for(fmt)
        if mld is None:
            report.skipped["ml_dtypes_agreement"] = "ml_dtypes has no type with this format"
        else:
            _check_ml_dtypes(col, q, pts, mld)
    if encode is None and decode is None and not user:
        encode, decode = qa.encode, qa.decode
    if encode is None or decode is None:
        report.skipped["encode_decode_roundtrip"] = "no encode/decode functions given"
    else:
        _check_roundtrip(col, fmt, encode, decode, scale, seed, max_values)
    col.finish()
    return report


def _call_checked(col, q, x, rounding, overflow, context, seed=None):
    try:
        return q(x, rounding, overflow, seed)
    except Exception as exc:  # noqa: BLE001 - reported as a finding
        bad_x, bad_exc = _find_raiser(lambda v: q(v, rounding, overflow, seed), x)
        shown = bad_exc if bad_exc is not None else exc
        col.fail(
            "no_unexpected_error",
            context,
            bad_x if bad_x is not None else float("nan"),
            "a value",
            f"{type(shown).__name__}: {str(shown)[:120]}",
        )
        return None


def _check_mode(col, q, fmt, pts, rounding, overflow, scale):
    context = f"{rounding.name}, overflow={overflow.name}"
    mdl = _model(fmt, pts, rounding, overflow, scale)
    ok_in = ~mdl.error
    x = pts[ok_in]
    got = _call_checked(col, q, x, rounding, overflow, context)
    # inputs where the spec raises ValueError: one call each (there are few: NaN and zero)
    for xe in np.unique(pts[mdl.error])[:4]:
        prop = "nan_policy" if np.isnan(xe) else "special_inputs"
        try:
            val = q(np.array([xe]), rounding, overflow)
        except ValueError:
            col.ran.add(prop)
        else:
            col.fail(prop, context, float(xe), "ValueError", float(val[0]))
    # NaN input (never in the probe points)
    _check_nan(col, q, fmt, rounding, overflow, scale, context)
    if got is None:
        return None
    if got.shape != x.shape:
        col.fail("value_set", context, float("nan"), f"shape {x.shape}", f"shape {got.shape}")
        return None
    exp = mdl.expected[ok_in]
    cat = mdl.category[ok_in]
    int_fmt = isinstance(fmt, IntFormat)
    same = _same(got, exp, zero_sign=not int_fmt)
    for prop in np.unique(cat):
        sel = cat == prop
        col.check(prop, context, sel & ~same, x, exp, got)
    col.check("value_set", context, ~_in_value_set(fmt, got, scale), x, exp, got)
    fixed = np.isfinite(x) & (x != 0) & _in_value_set(fmt, x, scale)
    col.check("fixed_points", context, fixed & ~_same(got, x), x, x, got)
    # idempotence: quantize the finite outputs again
    fin = np.isfinite(got) & ~(np.isnan(got))
    if fin.any():
        again = _call_checked(col, q, got[fin], rounding, overflow, context + " (idempotence)")
        if again is not None:
            bad = np.zeros(x.shape, dtype=bool)
            bad[fin] = ~_same(again, got[fin], zero_sign=not int_fmt)
            full_again = np.full(x.shape, np.nan)
            full_again[fin] = again
            col.check("idempotence", context, bad, x, got, full_again)
    # monotonicity over the sorted inputs
    valid = ~np.isnan(got)
    xv, gv = x[valid], got[valid]
    if gv.size > 1:
        dec = np.zeros(gv.size, dtype=bool)
        dec[1:] = gv[1:] < gv[:-1]
        prev_x = np.concatenate([[np.nan], xv[:-1]])
        prev_g = np.concatenate([[np.nan], gv[:-1]])
        _check_monotone(col, context, dec, xv, prev_x, prev_g, gv)
    else:
        col.ran.add("monotonicity")
    full = np.full(pts.shape, np.nan)
    full[ok_in] = got
    return full


def _check_monotone(col, context, dec, xv, prev_x, prev_g, gv):
    col.ran.add("monotonicity")
    if not dec.any():
        return
    idx = np.flatnonzero(dec)
    i = idx[_simplest_first(xv[idx])[0]]
    col.fail(
        "monotonicity",
        context,
        (float(prev_x[i]), float(xv[i])),
        f">= Q({prev_x[i]!r}) = {prev_g[i]!r}",
        float(gv[i]),
        int(idx.size),
    )


def _check_nan(col, q, fmt, rounding, overflow, scale, context):
    for sign in (1.0, -1.0):
        xn = np.array([math.copysign(math.nan, sign)])
        mdl = _model(fmt, xn, rounding, overflow, scale)
        try:
            val = q(xn, rounding, overflow)
        except ValueError:
            if mdl.error[0]:
                col.ran.add("nan_policy")
            else:
                col.fail("nan_policy", context, float(xn[0]), float(mdl.expected[0]), "ValueError")
            continue
        except Exception as exc:  # noqa: BLE001 - reported
            col.fail("nan_policy", context, float(xn[0]), "ValueError", type(exc).__name__)
            continue
        if mdl.error[0]:
            col.fail("nan_policy", context, float(xn[0]), "ValueError", float(val[0]))
        else:
            col.check("nan_policy", context, ~_same(val, mdl.expected), xn, mdl.expected, val)


def _check_symmetry(col, fmt, pts, results, scale):
    if not fmt.signed:
        return
    order = np.argsort(pts, kind="stable")
    neg_idx = np.searchsorted(pts[order], -pts)
    neg_idx = np.clip(neg_idx, 0, pts.size - 1)
    partner = order[neg_idx]
    has_partner = (pts[partner] == -pts) & ~np.isnan(pts) & (pts > 0)
    # -0 partners +0 and the other way around: handled by the zero inputs (pts > 0 here)
    pairs = {
        Rounding.NEAREST_EVEN: Rounding.NEAREST_EVEN,
        Rounding.NEAREST_AWAY: Rounding.NEAREST_AWAY,
        Rounding.TOWARD_ZERO: Rounding.TOWARD_ZERO,
        Rounding.TO_ODD: Rounding.TO_ODD,
        Rounding.UP: Rounding.DOWN,
        Rounding.DOWN: Rounding.UP,
    }
    for (rounding, overflow), got in results.items():
        other = results.get((pairs[rounding], overflow))
        if other is None:
            continue
        context = f"{rounding.name} vs {pairs[rounding].name}, overflow={overflow.name}"
        gp = got
        gn = other[partner]
        sel = has_partner & ~np.isnan(gp) & ~np.isnan(gn)
        if isinstance(fmt, IntFormat):
            kmax = fmt.max if fmt.narrow_range else fmt.max - 1  # -min differs from max
            sel &= (np.abs(gp) <= kmax * scale) & (np.abs(gn) <= kmax * scale)
            bad = sel & (gn != -gp)
        else:
            bad = sel & ~_same(gn, -gp, zero_sign=fmt.has_negative_zero)
        col.ran.add("sign_symmetry")
        if bad.any():
            idx = np.flatnonzero(bad)
            i = idx[_simplest_first(pts[idx])[0]]
            col.fail(
                "sign_symmetry",
                context,
                float(-pts[i]),
                float(-gp[i]),
                float(gn[i]),
                int(idx.size),
            )


def _neighbours(fmt, x, scale, overflow=Overflow.OWN):
    """(down, up, p_up): the two stochastic-rounding outcomes and the probability of ``up``."""
    r = Rounding.STOCHASTIC
    lo = _model(fmt, x, r, overflow, scale, away=np.zeros(x.shape, dtype=bool))
    hi = _model(fmt, x, r, overflow, scale, away=np.ones(x.shape, dtype=bool))
    with np.errstate(invalid="ignore", over="ignore"):
        return lo, hi, _fraction(fmt, x, scale)


def _fraction(fmt, x, scale):
    if isinstance(fmt, IntFormat):
        t = np.abs(x / float(scale))
    else:
        a = np.abs(x)
        _, ex = np.frexp(np.where(a > 0, a, 1.0))
        e = ex.astype(np.int64) - 1
        qe = np.maximum(e, fmt.emin) - fmt.mantissa_bits
        if not fmt.subnormals:
            qe = np.where(e < fmt.emin, fmt.emin, qe)
        t = np.ldexp(a, -qe)
    return np.where(np.isfinite(t), t - np.floor(t), 0.0)


def _check_stochastic(col, q, fmt, pts, scale, seed, trials, n_inputs):
    r = Rounding.STOCHASTIC
    mdl = _model(fmt, pts, r, Overflow.OWN, scale, away=np.zeros(pts.shape, dtype=bool))
    x = pts[~mdl.error]
    lo, hi, p = _neighbours(fmt, x, scale)
    context = "STOCHASTIC, overflow=OWN"
    s1 = _call_checked(col, q, x, r, Overflow.OWN, context, seed=seed + 1)
    if s1 is None:
        return
    zs = not isinstance(fmt, IntFormat)
    ok = _same(s1, lo.expected, zs) | _same(s1, hi.expected, zs)
    col.check(
        "stochastic_neighbours", context, ~ok, x, ("down", lo.expected, "up", hi.expected), s1
    )
    col.check("value_set", context, ~_in_value_set(fmt, s1, scale), x, "a value", s1)
    s1b = _call_checked(col, q, x, r, Overflow.OWN, context, seed=seed + 1)
    s2 = _call_checked(col, q, x, r, Overflow.OWN, context, seed=seed + 2)
    if s1b is not None:
        col.check(
            "stochastic_reproducible", context + ", same seed", ~_same(s1, s1b, zs), x, s1, s1b
        )
    undecided = (p > 0) & np.isfinite(x) & ~_same(lo.expected, hi.expected, zs)
    if s2 is not None and undecided.sum() >= 64 and np.all(_same(s1, s2, zs)):
        col.fail(
            "stochastic_reproducible",
            context + ", another seed",
            float("nan"),
            "a different rounding of some input",
            f"identical results on all {int(undecided.sum())} inputs that are not values",
        )
    # unbiasedness: inputs strictly inside a cell, spread over the range of fractions
    cand = np.flatnonzero(
        undecided
        & np.isfinite(lo.expected)
        & np.isfinite(hi.expected)
        & (p > 2.0**-16)
        & (p < 1 - 2.0**-16)
        & (lo.category == "stochastic_neighbours")
        & (hi.category == "stochastic_neighbours")
    )
    col.ran.add("stochastic_unbiased")
    if cand.size == 0:
        return
    rng = np.random.default_rng(seed)
    pick = np.unique(
        np.concatenate(
            [
                cand[np.argsort(np.abs(p[cand] - 0.5), kind="stable")[: max(1, n_inputs // 3)]],
                rng.choice(cand, size=min(n_inputs, cand.size), replace=False),
            ]
        )
    )
    xs = np.repeat(x[pick], trials)
    out = _call_checked(col, q, xs, r, Overflow.OWN, context + " (bias)", seed=seed + 3)
    if out is None:
        return
    out = out.reshape(pick.size, trials)
    up = _same(out, np.repeat(hi.expected[pick], trials).reshape(pick.size, trials), zs)
    rate = up.mean(axis=1)
    pp = p[pick]
    sd = np.sqrt(trials * pp * (1 - pp))
    bad = np.abs(up.sum(axis=1) - trials * pp) > 6 * sd + 2
    col.check(
        "stochastic_unbiased",
        context,
        bad,
        x[pick],
        np.array([f"P(up) = {v:.4f}" for v in pp], dtype=object),
        np.array([f"P(up) = {v:.4f} over {trials} draws" for v in rate], dtype=object),
    )


def _check_against_ours(col, q, fmt, pts, roundings, overflows, scale, dtype):
    import qemu_arrays as qa

    ours = _Quantizer(qa.quantize, fmt, scale, dtype)
    for overflow in overflows:
        for rounding in (r for r in roundings if r is not Rounding.STOCHASTIC):
            mdl = _model(fmt, pts, rounding, overflow, scale)
            x = pts[~mdl.error]
            context = f"{rounding.name}, overflow={overflow.name}"
            try:
                mine = ours(x, rounding, overflow)
                theirs = q(x, rounding, overflow)
            except Exception:  # noqa: BLE001 - the other properties report the exception
                continue
            if theirs.shape != mine.shape:
                continue
            zs = not isinstance(fmt, IntFormat)
            col.check("matches_qemu_arrays", context, ~_same(theirs, mine, zs), x, mine, theirs)


def _check_ml_dtypes(col, q, pts, mld):
    with np.errstate(over="ignore"):
        x32 = pts.astype(np.float32)
        exact = (x32.astype(np.float64) == pts) | np.isinf(pts)
    x32 = np.unique(x32[exact])
    policy = Overflow.ML_DTYPES if q.accepts["overflow"] else Overflow.OWN  # same for finite x
    context = f"NEAREST_EVEN, overflow={policy.name}, float32 inputs"
    got = _call_checked(col, q, x32.astype(np.float64), Rounding.NEAREST_EVEN, policy, context)
    if got is None:
        return
    with np.errstate(over="ignore", invalid="ignore"):
        exp = x32.astype(mld).astype(np.float64)
    col.check("ml_dtypes_agreement", context, ~_same(got, exp), x32.astype(np.float64), exp, got)


def _check_roundtrip(col, fmt, encode, decode, scale, seed, max_values):
    prop = "encode_decode_roundtrip"
    col.ran.add(prop)
    if isinstance(fmt, IntFormat):
        n = 1 << fmt.bits
        codes = (
            np.arange(n, dtype=np.int64)
            if n <= max_values
            else np.random.default_rng(seed).integers(0, n, max_values, dtype=np.int64)
        )
        k = np.where(fmt.signed & (codes >> (fmt.bits - 1) == 1), codes - n, codes)
        keep = k >= fmt.min
        codes, k = codes[keep], k[keep]
        vals = k.astype(np.float64) * scale
        kw = {"scale": scale}
    else:
        n = 1 << fmt.bits
        if fmt.bits <= ENUMERABLE_BITS and n <= 2 * max_values:
            codes = np.arange(n, dtype=np.uint64)
        else:
            rng = np.random.default_rng(seed)
            hi = min(fmt.bits, 63)
            codes = rng.integers(0, 1 << hi, max_values, dtype=np.uint64)
            if fmt.bits == 64:
                codes |= rng.integers(0, 2, max_values, dtype=np.uint64) << np.uint64(63)
        vals = decode_model(fmt, codes)
        kw = {}
    width = 8 if fmt.bits <= 8 else 16 if fmt.bits <= 16 else 32 if fmt.bits <= 32 else 64
    udt = np.dtype(f"uint{width}")
    codes_u = codes.astype(udt)
    ctx = "decode"
    try:
        dec = np.asarray(decode(codes_u, fmt, dtype=np.float64, **kw), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001
        col.fail(prop, ctx, float("nan"), "decoded values", f"{type(exc).__name__}: {exc}")
        return
    zs = not isinstance(fmt, IntFormat)
    codes_f = codes.astype(np.float64)
    col.check(
        prop,
        "decode(code) vs the spec table; x is the code",
        ~_same(dec, vals, zs),
        codes_f,
        vals,
        dec,
    )
    fin = np.isfinite(vals) | np.isinf(vals)
    try:
        enc = np.asarray(encode(vals[fin], fmt, **kw)).astype(np.uint64)
    except Exception as exc:  # noqa: BLE001
        col.fail(prop, "encode", float("nan"), "codes", f"{type(exc).__name__}: {exc}")
        return
    back = np.asarray(decode(enc.astype(udt), fmt, dtype=np.float64, **kw), dtype=np.float64)
    col.check(
        prop,
        "decode(encode(v)) == v",
        ~_same(back, vals[fin], zs),
        vals[fin],
        vals[fin],
        back,
    )
    unique = vals[fin] != 0
    col.check(
        prop,
        "encode(value of code) == code; x is the value",
        unique & (enc != codes[fin].astype(np.uint64)),
        vals[fin],
        codes[fin].astype(np.float64),
        enc.astype(np.float64),
    )


# ---- check_estimator -----------------------------------------------------------------------------


@dataclass
class EstimatorReport(FormatReport):
    """The result of :func:`check_estimator` (same interface as :class:`FormatReport`)."""

    alpha: float = float("nan")


def check_estimator(estimator, format=None, *, scale=None, n_points: int = 257, seed: int = 0):  # noqa: A002
    """Check the invariants of a gradient estimator on a format's grid.

    * ``Q̂'`` is positive and finite on the range, and ``backward(x, g) = g · Q̂'(x)``;
    * α exists (one value for every cell: the estimator is cyclical), is positive, and the
      closed form agrees with the numerical integral;
    * the remap ``M`` fixes every threshold, maps every quantization bin onto itself
      (``Q(M(w)) = Q(w)``), is increasing, is the identity outside the range, and
      ``M' = α / Q̂'``;
    * one-step alignment: a gradient step of size ``η`` on the Q̂-net moved through ``M`` is a
      step of size ``α η`` with the STE: ``M(w − η g Q̂'(w)) = M(w) − α η g + O(η²)``.
    """
    from qemu_arrays import estimators as E

    if not isinstance(estimator, E.Estimator):
        msg = f"estimator must be a qemu_arrays.estimators.Estimator, got {estimator!r}"
        raise TypeError(msg)
    est = estimator if format is None else estimator.on(format, scale)
    grid = est.grid
    report = EstimatorReport(format=grid, kind=f"check_estimator[{type(est).__name__}]")
    col = _Collector(report)
    name = type(est).__name__
    lo, hi = grid.lower, grid.upper
    rng = np.random.default_rng(seed)
    w = np.sort(
        np.concatenate([np.linspace(lo, hi, n_points), rng.uniform(lo, hi, n_points), grid.levels])
    )
    report.n_inputs = int(w.size)

    d = np.asarray(est.derivative(w), dtype=np.float64)
    col.check("derivative_positive", name, ~(np.isfinite(d) & (d > 0)), w, "> 0", d)
    g = rng.standard_normal(w.size)
    back = np.asarray(est.backward(w, g), dtype=np.float64)
    col.check("backward", name, ~np.isclose(back, g * d, rtol=1e-12, atol=0), w, g * d, back)
    if not (np.all(np.isfinite(d)) and np.all(d > 0)):
        report.skipped["alpha, remap"] = "Q̂' is not positive on the range"
        col.finish()
        return report

    a_num = _check_alpha(col, est, name)
    if a_num is None:
        col.finish()
        return report
    report.alpha = a_num
    _check_remap(col, est, name, w, a_num, rng)
    col.finish()
    return report


def _check_alpha(col, est, name):
    """α exists (one value for every cell), is positive, and its closed form agrees with the
    numerical integral; returns α, or None when it does not exist."""
    from qemu_arrays import estimators as E

    try:
        cells, bins = E.cell_alphas(est)
        a_num = E.alpha(est, method="numeric")
    except ValueError as exc:
        col.fail("alpha_exists", name, float("nan"), "one α for every cell", str(exc)[:160])
        return None
    col.ran.add("alpha_exists")
    spread = np.concatenate([cells, bins])
    col.check(
        "alpha_exists",
        name + ": per-cell α",
        ~np.isclose(spread, a_num, rtol=1e-9),
        np.arange(spread.size, dtype=np.float64),
        np.full(spread.size, a_num),
        spread,
    )
    col.check(
        "alpha_positive", name, np.array([not a_num > 0]), np.array([0.0]), "> 0", np.array([a_num])
    )
    if est.has_closed_form:
        a_closed = E.alpha(est, method="closed")
        col.check(
            "alpha_closed_form",
            name,
            np.array([not math.isclose(a_closed, a_num, rel_tol=1e-9)]),
            np.array([0.0]),
            np.array([a_num]),
            np.array([a_closed]),
        )
    return a_num


def _check_remap(col, est, name, w, a_num, rng):
    """The remap M: fixes the thresholds, keeps every bin, increases, is the identity outside
    the range, has derivative α / Q̂', and aligns one gradient step with the STE's."""
    from qemu_arrays import estimators as E

    grid = est.grid
    lo, hi = grid.lower, grid.upper
    m = E.remap(est)
    tau = grid.thresholds
    mt = np.asarray(m(tau), dtype=np.float64)
    width = np.min(grid.widths)
    col.check(
        "remap_fixes_thresholds",
        name,
        ~np.isclose(mt, tau, rtol=0, atol=1e-9 * width),
        tau,
        tau,
        mt,
    )
    mw = np.asarray(m(w), dtype=np.float64)
    q_w = np.asarray(grid.round(w), dtype=np.float64)
    q_mw = np.asarray(grid.round(mw), dtype=np.float64)
    # points within a hair of a threshold may round either way under float error
    near_t = np.min(np.abs(w[:, None] - tau[None, :]), axis=1) < 1e-9 * width
    col.check("remap_preserves_bins", name, ~near_t & (q_mw != q_w), w, q_w, q_mw)
    col.check(
        "remap_increasing",
        name,
        np.concatenate([[False], np.diff(mw) < -1e-12 * width]),
        w,
        "increasing",
        mw,
    )
    outside = np.array([lo - 1.5 * width, hi + 1.5 * width])
    mo = np.asarray(m(outside), dtype=np.float64)
    col.check("remap_identity_outside", name, mo != outside, outside, outside, mo)
    # M' = α / Q̂' (finite differences away from the cell edges)
    inner = w[(w > lo + 0.01 * width) & (w < hi - 0.01 * width)]
    h = 1e-6 * width
    fd = (np.asarray(m(inner + h)) - np.asarray(m(inner - h))) / (2 * h)
    dm = np.asarray(m.derivative(inner), dtype=np.float64)
    col.check("remap_derivative", name, ~np.isclose(fd, dm, rtol=1e-4, atol=0), inner, dm, fd)
    # one-step alignment
    eta = 1e-4 * width
    gg = rng.standard_normal(inner.size)
    dq = np.asarray(est.derivative(inner), dtype=np.float64)
    stepped = inner - eta * gg * dq
    keep = (stepped > lo) & (stepped < hi)
    lhs = np.asarray(m(stepped[keep]), dtype=np.float64)
    rhs = np.asarray(m(inner[keep]), dtype=np.float64) - a_num * eta * gg[keep]
    err = np.abs(lhs - rhs)
    step = np.abs(a_num * eta * gg[keep])
    col.check(
        "one_step_alignment",
        name + f", eta={eta:.3g}",
        err > 1e-2 * step + 1e-12 * width,
        inner[keep],
        rhs,
        lhs,
    )
