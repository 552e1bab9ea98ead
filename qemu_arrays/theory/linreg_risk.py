"""Exact expected risk of quantized SGD for Gaussian linear regression (paper 002's setting).

Setting: ``x ~ N(0, diag(λ))``, ``y = ⟨w*, x⟩ + σξ``; one-pass minibatch SGD (batch ``B``, step
sizes ``γ_t``) with quantizers at the sites of :mod:`qemu_arrays.training.sites`::

    w_{t+1} = w_t − γ_t · Q_g( (1/B) Σ_b Q_d(x_b) · Q_o( Q_a(Q_d(x_b)ᵀ Q_p(w_t)) − Q_l(y_b) )_b )

Every quantizer is an unbiased *noise model* with Gaussian randomness: on a vector ``v`` (the
last axis: a sample's features, the weights, the batch of activations or residuals, the
gradient) ``Q(v)_j = v_j(1 + √s·ζ + √m·ζ_j) + √a·n_j`` with independent standard normals, i.e.
``E[e_j e_k | v] = (s + m·δ_jk) v_j v_k + a·δ_jk``. :class:`~qemu_arrays.training.AdditiveNoise`
is ``(a, 0, 0)``, shared :class:`~qemu_arrays.training.MultiplicativeNoise` ``(0, s, 0)``, the
elementwise one ``(0, 0, m)``. (Subtractive dither has the same second moments; only the data
site uses fourth moments, where the recursion assumes Gaussian noise.)

Because ``H`` is diagonal and the data Gaussian, the recursion for the mean ``μ_t = E w_t`` and
the diagonal ``S_t = E[w_t ⊙ w_t]`` closes exactly (Isserlis' theorem); the derivation is in
``docs/training.md``. The excess risk ``E‖w − w*‖²_H = Σ_i λ_i (S_i − 2μ_i w*_i + w*_i²)``
follows, and so does the risk of the iterate average ``w̄_N = (1/(N−s)) Σ_{t=s}^{N−1} w_t``,
because ``E[w_{t+1} − w^q | F_t] = (I − γ_t H^q)(w_t − w^q)`` with ``w^q = (H^q)^{-1} H w*``.

No ½ in the risk: ``L(w) = E(y − ⟨w, x⟩)²`` (as in the paper); the harness's
:class:`~qemu_arrays.training.LinearRegression` uses the same convention.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SiteNoise",
    "approximation_error",
    "effective_dimension",
    "eps_fp",
    "eps_int",
    "fp_beats_int",
    "fp_beats_int_exact",
    "fp_mantissa_threshold",
    "int_fp_data_risks",
    "optimal_quantized_weights",
    "quantized_spectrum",
    "risk_recursion",
    "site_noise",
]

_SITES = ("data", "labels", "weights", "activations", "output_grad", "param_grad")


@dataclass(frozen=True)
class SiteNoise:
    """Second-moment parameters ``(a, s, m)`` of an unbiased noise model (see module doc)."""

    additive: float = 0.0
    shared: float = 0.0
    elementwise: float = 0.0

    @property
    def total_mult(self) -> float:
        return self.shared + self.elementwise


def _as_noise(name: str, q) -> SiteNoise:
    if q is None:
        return SiteNoise()
    if isinstance(q, SiteNoise):
        return q
    if isinstance(q, tuple) and len(q) == 3:
        return SiteNoise(*map(float, q))
    mom = getattr(q, "moments", None)
    val = mom() if callable(mom) else None
    if val is None:
        msg = (
            f"site {name!r}: {q!r} is not an unbiased noise model with known second moments; "
            "the exact recursion covers Identity, AdditiveNoise and MultiplicativeNoise (or an "
            "(additive, shared, elementwise) tuple); hint: simulate other quantizers with "
            "qemu_arrays.training.run_sgd"
        )
        raise ValueError(msg)
    return SiteNoise(*map(float, val))


def site_noise(sites=None, **kw) -> dict[str, SiteNoise]:
    """Noise parameters for every site from a ``Sites``, a dict, or keyword arguments."""
    src = {}
    if sites is not None:
        if isinstance(sites, dict):
            src.update(sites)
        else:
            src.update({n: getattr(sites, n) for n in _SITES})
    src.update(kw)
    bad = sorted(set(src) - set(_SITES))
    if bad:
        msg = f"unknown site(s) {bad}; allowed: {_SITES}"
        raise ValueError(msg)
    return {n: _as_noise(n, src.get(n)) for n in _SITES}


def _lam(eigenvalues) -> np.ndarray:
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if lam.ndim != 1 or lam.size == 0 or not np.all(lam > 0):
        msg = "eigenvalues must be a non-empty 1-D array of positive numbers"
        raise ValueError(msg)
    return lam


def quantized_spectrum(eigenvalues, data=None) -> np.ndarray:
    """Eigenvalues of ``H^(q) = E[Q_d(x) Q_d(x)ᵀ]`` (diagonal ``H``).

    Additive ``ε``: ``λ + ε``; multiplicative (shared or elementwise) ``ε``: ``(1 + ε)λ``.
    """
    lam = _lam(eigenvalues)
    n = _as_noise("data", data)
    return (1.0 + n.total_mult) * lam + n.additive


def optimal_quantized_weights(eigenvalues, w_star, data=None) -> np.ndarray:
    """``w^(q)* = (H^q)^{-1} H w*``, the best predictor on quantized features (and the fixed
    point of the mean SGD dynamics)."""
    lam = _lam(eigenvalues)
    ws = np.broadcast_to(np.asarray(w_star, dtype=np.float64), lam.shape)
    return lam * ws / quantized_spectrum(lam, data)


def approximation_error(eigenvalues, w_star, data=None) -> float:
    """``min_w E(y − Q_d(x)ᵀw)² − min_w E(y − xᵀw)² = Σ λ_i w*_i² (1 − λ_i/λ^q_i)``.

    Multiplicative: ``ε/(1+ε)·‖w*‖²_H``; additive: ``Σ λ_i w*_i² ε/(λ_i + ε)``.
    """
    lam = _lam(eigenvalues)
    ws = np.broadcast_to(np.asarray(w_star, dtype=np.float64), lam.shape)
    lq = quantized_spectrum(lam, data)
    return float(np.sum(lam * ws**2 * (1.0 - lam / lq)))


def effective_dimension(eigenvalues, n_steps: int, lr: float) -> int:
    """``k* = #{k : λ_k ≥ 1/(N γ)}`` (pass the quantized spectrum for the quantized k*)."""
    lam = _lam(eigenvalues)
    if n_steps < 1 or lr <= 0:
        msg = f"n_steps must be >= 1 and lr > 0, got n_steps={n_steps}, lr={lr}"
        raise ValueError(msg)
    return int(np.sum(lam >= 1.0 / (n_steps * lr)))


def eps_int(bits: int) -> float:
    """The paper's rough map from INT bits to additive noise: ``ε_add ≈ 2^(−2b)``."""
    return 2.0 ** (-2 * bits)


def eps_fp(mantissa_bits: int) -> float:
    """The paper's rough map from FP mantissa bits to multiplicative noise: ``2^(−2m)``."""
    return 2.0 ** (-2 * mantissa_bits)


_COR43_WARNING = (
    "{name} is deprecated: it is one reading of paper 002's Corollary 4.3, which compares two "
    "upper bounds with unknown constants, and it contradicts the exact risk recursion for most "
    "(b, m) pairs (docs/reproductions.md); use int_fp_data_risks / fp_beats_int_exact, which "
    "decide by the exact recursion"
)


def _cor43_threshold(int_bits: float, a: float, d: int) -> float:
    if d < 1 or a <= 0:
        msg = f"d must be >= 1 and a > 0, got d={d}, a={a}; hint: a = 2 for λ_i = i^(−2)"
        raise ValueError(msg)
    return float(int_bits) - 0.5 * float(a) * math.log2(d)


def fp_mantissa_threshold(int_bits: float, a: float, d: int) -> float:
    """Deprecated. Corollary 4.3 as read: FP with ``m`` mantissa bits beats INT with ``b`` bits
    in dimension ``d`` under ``λ_i ≍ i^(−a)`` when ``m ≥ b − (a/2)·log₂ d``; returns the
    right-hand side. A comparison of upper bounds, not of risks: see :func:`fp_beats_int_exact`.
    """
    import warnings

    warnings.warn(
        _COR43_WARNING.format(name="fp_mantissa_threshold"), DeprecationWarning, stacklevel=2
    )
    return _cor43_threshold(int_bits, a, d)


def fp_beats_int(mantissa_bits: float, int_bits: float, a: float, d: int) -> bool:
    """Deprecated: whether Corollary 4.3's condition ``m ≥ b − (a/2)·log₂ d`` holds (see
    :func:`fp_mantissa_threshold`); :func:`fp_beats_int_exact` decides by the exact risks."""
    import warnings

    warnings.warn(_COR43_WARNING.format(name="fp_beats_int"), DeprecationWarning, stacklevel=2)
    return float(mantissa_bits) >= _cor43_threshold(int_bits, a, d)


def int_fp_data_risks(
    int_bits: int,
    mantissa_bits: int,
    eigenvalues,
    w_star,
    noise: float,
    lr: float,
    steps: int,
    *,
    batch: int = 1,
    elementwise: bool = False,
) -> tuple[float, float]:
    """Exact final risks ``(INT, FP)`` of the averaged iterate with the *data* quantized.

    INT with ``b`` bits: additive noise ``ε = 2^(−2b)``; FP with ``m`` mantissa bits:
    multiplicative noise ``ε = 2^(−2m)`` (shared, the paper's model; ``elementwise=True`` for
    the per-element FP-like one). These are the paper's rough ε maps (:func:`eps_int`,
    :func:`eps_fp`); the risks come from :func:`risk_recursion` (no bound, no constant).
    """
    for pname, val in (("int_bits", int_bits), ("mantissa_bits", mantissa_bits)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 0:
            msg = f"{pname} must be an int >= 0, got {val!r}; hint: int_bits=8, mantissa_bits=3"
            raise ValueError(msg)
    e_add, e_mul = eps_int(int_bits), eps_fp(mantissa_bits)
    mul = SiteNoise(elementwise=e_mul) if elementwise else SiteNoise(shared=e_mul)
    kw = {"batch": batch, "record_steps": [steps]}
    r_int = risk_recursion(eigenvalues, w_star, noise, lr, steps, data=SiteNoise(additive=e_add),
                           **kw)["risk_avg"][-1]  # fmt: skip
    r_fp = risk_recursion(eigenvalues, w_star, noise, lr, steps, data=mul, **kw)["risk_avg"][-1]
    return float(r_int), float(r_fp)


def fp_beats_int_exact(mantissa_bits: int, int_bits: int, eigenvalues, w_star, noise: float,
                       lr: float, steps: int, **kw) -> bool:  # fmt: skip
    """Whether FP-``m`` data quantization has a risk no larger than INT-``b`` by the exact
    recursion (:func:`int_fp_data_risks`; keywords ``batch``, ``elementwise``)."""
    r_int, r_fp = int_fp_data_risks(int_bits, mantissa_bits, eigenvalues, w_star, noise, lr,
                                    steps, **kw)  # fmt: skip
    return r_fp <= r_int


def _moments_step(lam, ws, sig2, mu, S, B, nz):
    """Return (λ^q, E[g ⊙ g]) for the current (μ, S)."""
    d_, l_, p_, a_, o_, g_ = (nz[n] for n in _SITES)
    ad, sd, ed = d_.additive, d_.shared, d_.elementwise
    lq = (1.0 + sd + ed) * lam + ad
    V = (1.0 + p_.total_mult) * S + p_.additive  # E[v_i²], v = Q_p(w)
    Qv = float(np.dot(lam, V))
    Nv = float(np.sum(V))
    Cw = float(np.dot(lam, mu * ws))
    Yw = float(np.dot(lam, ws * ws))
    lmw = lam * mu * ws
    # single-sample expectations E[x̃_i² y²], E[x̃_i² y a], E[x̃_i² a²]
    ey2 = (1 + sd + ed) * (lam * (Yw + sig2) + 2 * lam**2 * ws**2) + ad * (Yw + sig2)
    eya = (
        (1 + 3 * sd + ed) * (lam * Cw + 2 * lam * lmw) + ad * Cw + 6 * ed * lam * lmw + 2 * ad * lmw
    )
    FV = lam * Qv + 2 * lam**2 * V
    ea2 = (
        (1 + 6 * sd + 3 * sd**2) * FV
        + (1 + sd) * (ed * FV + ad * lam * Nv)
        + 4 * (1 + sd) * V * lam * (3 * ed * lam + ad)
        + (1 + sd) * (ed * FV + ad * Qv)
        + ed**2 * FV
        + ad * ed * lam * Nv
        + ad * ed * Qv
        + ad**2 * Nv
        + 2 * V * (3 * ed**2 * lam**2 + 2 * ad * ed * lam + ad**2)
    )
    t2 = (
        (1 + l_.total_mult) * ey2
        - 2 * eya
        + (1 + a_.total_mult) * ea2
        + (l_.additive + a_.additive) * lq
    )
    lw = lam * ws
    t1 = (1 + l_.shared) * lw**2 - 2 * lw * lq * mu + (1 + a_.shared) * lq**2 * V
    eg2 = ((B - 1) * (1 + o_.shared) * t1 + (1 + o_.total_mult) * t2 + o_.additive * lq) / B
    eg2 = (1 + g_.total_mult) * eg2 + g_.additive
    return lq, eg2


def risk_recursion(
    eigenvalues,
    w_star,
    noise: float,
    lr: float | Callable[[int], float],
    steps: int,
    *,
    batch: int = 1,
    sites=None,
    w0=0.0,
    record_steps=None,
    average_start: int = 0,
    **site_kw,
) -> dict[str, np.ndarray]:
    """Exact ``E[𝓔(w_t)]`` and ``E[𝓔(w̄_t)]`` of quantized SGD, by the moment recursion.

    Parameters
    ----------
    eigenvalues, w_star, noise
        ``λ`` (the diagonal of ``H``), ``w*`` (number or array) and the label-noise standard
        deviation ``σ``, as in :class:`~qemu_arrays.training.LinearRegression`.
    lr
        Constant step size ``γ`` or a schedule ``t -> γ_t``.
    steps, batch
        Number of SGD steps ``N`` and batch size ``B``.
    sites, **site_kw
        Quantizers per site (``Sites``, a dict, or keywords ``data=...``): ``None``/
        :class:`Identity`, :class:`AdditiveNoise`, :class:`MultiplicativeNoise`, or
        ``(additive, shared, elementwise)`` tuples.
    w0
        Deterministic initial weights (number or array).
    record_steps
        Step counts at which to report (default: every step ``0..steps``).
    average_start
        First iterate included in the average (tail averaging).

    Returns
    -------
    dict with ``steps``, ``risk`` (last iterate), ``risk_avg`` (iterate average; at ``N`` it
    averages ``w_s .. w_{N−1}``, and equals ``risk`` while ``N <= s``), ``mean`` (final ``μ``),
    ``second`` (final ``E[w ⊙ w]``).
    """
    lam = _lam(eigenvalues)
    ws = np.broadcast_to(np.asarray(w_star, dtype=np.float64), lam.shape).copy()
    mu = np.broadcast_to(np.asarray(w0, dtype=np.float64), lam.shape).copy()
    S = mu * mu
    sig2 = float(noise) ** 2
    nz = site_noise(sites, **site_kw)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        msg = f"batch must be an int >= 1, got {batch!r}"
        raise ValueError(msg)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        msg = f"steps must be an int >= 0, got {steps!r}"
        raise ValueError(msg)
    sched = lr if callable(lr) else (lambda t, _g=float(lr): _g)
    rec = np.arange(steps + 1) if record_steps is None else np.unique(record_steps)
    lq = quantized_spectrum(lam, nz["data"])
    wq = lam * ws / lq
    U = np.zeros_like(lam)  # Σ_{s,t in window} E[η_s η_t]
    C = np.zeros_like(lam)
    Dsum = np.zeros_like(lam)
    n_avg = 0
    out_r, out_a = [], []
    ri = 0
    for t in range(steps + 1):
        P = S - 2 * mu * ws + ws * ws  # E[η_t²]
        risk = float(np.dot(lam, P))
        while ri < len(rec) and rec[ri] == t:
            out_r.append(risk)
            out_a.append(float(np.dot(lam, U)) / n_avg**2 if n_avg else risk)
            ri += 1
        if t == steps:
            break
        gamma = float(sched(t))
        a = 1.0 - gamma * lq
        if t >= average_start:
            X = S - mu * ws - wq * mu + wq * ws
            D = mu - ws
            U = U + P + 2 * (C + (wq - ws) * Dsum)
            C = a * (C + X)
            Dsum = Dsum + D
            n_avg += 1
        lq_, eg2 = _moments_step(lam, ws, sig2, mu, S, batch, nz)
        S = S - 2 * gamma * (lq_ * S - lam * ws * mu) + gamma**2 * eg2
        mu = mu - gamma * (lq_ * mu - lam * ws)
    return {
        "steps": rec.astype(np.int64),
        "risk": np.asarray(out_r),
        "risk_avg": np.asarray(out_a),
        "mean": mu,
        "second": S,
    }
