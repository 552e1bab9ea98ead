"""The exact risk recursion of quantized SGD on Gaussian linear regression (paper 002)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qemu_arrays.theory import (
    approximation_error,
    effective_dimension,
    eps_fp,
    eps_int,
    fp_beats_int,
    fp_beats_int_exact,
    fp_mantissa_threshold,
    int_fp_data_risks,
    optimal_quantized_weights,
    quantized_spectrum,
    risk_recursion,
)
from qemu_arrays.training import (
    SITE_NAMES,
    AdditiveNoise,
    Identity,
    LinearRegression,
    MultiplicativeNoise,
    UniformQuantizer,
    run_sgd,
)

NOISES = {
    "add": AdditiveNoise(0.3),
    "mul_shared": MultiplicativeNoise(0.5),
    "mul_elem": MultiplicativeNoise(0.5, shared=False),
}


def _textbook_fp(lam, w_star, sigma, lr, steps, w0):
    """Full-matrix textbook recursion of batch-1 SGD on Gaussian data, no quantization:
    A' = A − γ(HA + AH) + γ²(2HAH + tr(HA)H + σ²H), A = E[(w − w*)(w − w*)ᵀ]."""
    H = np.diag(lam)
    d0 = w0 - w_star
    A = np.outer(d0, d0)
    out = [np.trace(H @ A)]
    for _ in range(steps):
        HA = H @ A
        A = A - lr * (HA + HA.T) + lr**2 * (2 * H @ A @ H + np.trace(HA) * H + sigma**2 * H)
        out.append(np.trace(H @ A))
    return np.array(out)


def test_reduces_to_textbook_full_precision():
    lam = 1.0 / np.arange(1, 11) ** 1.5
    ws = np.linspace(1, -0.5, 10)
    got = risk_recursion(lam, ws, 0.7, 0.2, 60, w0=0.3)
    ref = _textbook_fp(lam, ws, 0.7, 0.2, 60, np.full(10, 0.3))
    np.testing.assert_allclose(got["risk"], ref, rtol=1e-12)
    # the identity and zero-ε noise models change nothing
    for q in (Identity(), AdditiveNoise(0.0), MultiplicativeNoise(0.0), (0.0, 0.0, 0.0)):
        again = risk_recursion(lam, ws, 0.7, 0.2, 60, w0=0.3, **dict.fromkeys(SITE_NAMES, q))
        np.testing.assert_allclose(again["risk"], ref, rtol=1e-12)


def test_average_of_deterministic_gd_limit():
    # σ = 0, γ small: the averaged-iterate risk equals the risk of the average of the mean
    # trajectory plus the (tiny) variance, bounded by the average of the iterate risks
    lam = np.array([1.0, 0.5, 0.1])
    r = risk_recursion(lam, 1.0, 0.0, 0.1, 200)
    assert np.all(r["risk_avg"][1:] <= np.maximum.accumulate(r["risk"])[1:] + 1e-12)
    assert r["risk_avg"][1] == pytest.approx(r["risk"][0])  # w̄_1 = w_0


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("kind", sorted(NOISES))
def test_recursion_matches_monte_carlo_every_site(kind, batch):
    """Monte Carlo mean risk (last and averaged iterate) within 3 standard errors."""
    model = LinearRegression(8, 1.0, np.linspace(1, -1, 8), 0.3)
    rec = [5, 40]
    for k, site in enumerate(SITE_NAMES):
        sites = {site: NOISES[kind]}
        res = run_sgd(
            model, steps=40, lr=0.1, batch=batch, replicas=6000, sites=sites,
            average=True, seed=10 + k, record_steps=rec,
        )  # fmt: skip
        th = risk_recursion(
            model.eigenvalues,
            model.w_star,
            model.noise,
            0.1,
            40,
            batch=batch,
            sites=sites,
            record_steps=rec,
        )
        for key in ("risk", "risk_avg"):
            z = (res.mean(key) - th[key]) / res.sem(key)
            assert np.all(np.abs(z) < 3), (site, key, z)


def test_recursion_matches_monte_carlo_all_sites_at_once():
    model = LinearRegression(12, 2.0, 1.0, 0.5)
    for q in (
        AdditiveNoise(0.05),
        MultiplicativeNoise(0.1),
        MultiplicativeNoise(0.1, shared=False),
    ):
        sites = dict.fromkeys(SITE_NAMES, q)
        res = run_sgd(
            model, steps=150, lr=0.2, batch=2, replicas=3000, sites=sites, average=True,
            seed=3, record_steps=[20, 150],
        )  # fmt: skip
        th = risk_recursion(
            model.eigenvalues,
            model.w_star,
            0.5,
            0.2,
            150,
            batch=2,
            sites=sites,
            record_steps=[20, 150],
        )
        for key in ("risk", "risk_avg"):
            z = (res.mean(key) - th[key]) / res.sem(key)
            assert np.all(np.abs(z) < 3), (q.name, key, z)


def test_schedule_and_tail_average_match_monte_carlo():
    model = LinearRegression(6, 1.0, 1.0, 0.5)

    def sched(t):
        return 0.3 / (1 + t / 20)

    sites = {"data": AdditiveNoise(0.05)}
    res = run_sgd(
        model, steps=80, lr=sched, replicas=6000, sites=sites, average=True, average_start=30,
        seed=4, record_steps=[40, 80],
    )  # fmt: skip
    th = risk_recursion(
        model.eigenvalues, 1.0, 0.5, sched, 80, sites=sites, record_steps=[40, 80],
        average_start=30,
    )  # fmt: skip
    for key in ("risk", "risk_avg"):
        z = (res.mean(key) - th[key]) / res.sem(key)
        assert np.all(np.abs(z) < 3), (key, z)


def test_quantized_spectrum_and_approximation_error_notes_table():
    # NOTES A.7: λ_i = i^-2, w* = 1
    for d, eps, add, mul, tr_add, tr_mul in [
        (50, 1e-2, 0.133, 0.016, 2.125, 1.641),
        (200, 1e-3, 0.044, 0.0016, 1.840, 1.642),
        (400, 1e-2, 0.150, 0.016, 5.642, 1.659),
    ]:
        lam = 1.0 / np.arange(1, d + 1) ** 2
        assert approximation_error(lam, 1.0, AdditiveNoise(eps)) == pytest.approx(add, abs=6e-4)
        mul_err = approximation_error(lam, 1.0, MultiplicativeNoise(eps))
        assert mul_err == pytest.approx(eps / (1 + eps) * np.sum(lam), rel=1e-12)
        assert mul_err == pytest.approx(mul, rel=0.03)
        assert quantized_spectrum(lam, AdditiveNoise(eps)).sum() == pytest.approx(tr_add, abs=6e-4)
        assert quantized_spectrum(lam, MultiplicativeNoise(eps)).sum() == pytest.approx(
            tr_mul, abs=6e-4
        )
    lam = 1.0 / np.arange(1, 101) ** 2
    signal = float(np.sum(lam))
    assert approximation_error(lam, 1.0, MultiplicativeNoise(0.1, shared=False)) == pytest.approx(
        0.1 / 1.1 * signal
    )
    assert approximation_error(lam, 1.0, None) == 0.0
    np.testing.assert_allclose(
        optimal_quantized_weights(lam, 1.0, MultiplicativeNoise(0.25)), np.full(100, 0.8)
    )


def test_mean_converges_to_quantized_optimum():
    lam = np.array([1.0, 0.3, 0.05])
    q = AdditiveNoise(0.1)
    r = risk_recursion(lam, 1.0, 0.5, 0.2, 3000, data=q, record_steps=[3000])
    np.testing.assert_allclose(r["mean"], optimal_quantized_weights(lam, 1.0, q), rtol=1e-6)


def test_effective_dimension_and_int_vs_fp():
    lam = 1.0 / np.arange(1, 201) ** 2
    assert effective_dimension(lam, 100, 0.1) == 3  # λ_k >= 0.1  <=>  k <= 3
    assert effective_dimension(quantized_spectrum(lam, AdditiveNoise(0.01)), 1000, 0.1) == 200
    assert eps_int(8) == 2.0**-16
    assert eps_fp(3) == 2.0**-6
    # Corollary 4.3 as read: deprecated (a comparison of upper bounds), still working
    with pytest.warns(DeprecationWarning, match="exact risk recursion"):
        thr = fp_mantissa_threshold(8, 2.0, 256)
    assert thr == pytest.approx(0.0)
    with pytest.warns(DeprecationWarning, match="fp_beats_int_exact"):
        assert fp_beats_int(0, 8, 2.0, 256)
    with (
        pytest.warns(DeprecationWarning, match="deprecated"),
        pytest.raises(ValueError, match="d must be"),
    ):
        fp_mantissa_threshold(8, 2.0, 0)


def test_fp_vs_int_by_the_exact_recursion_contradicts_the_corollary_reading():
    """The example docs/training.md used to give (m=3 vs INT8 at d=200) loses by the recursion:
    INT8's additive 2^-16 costs almost nothing, FP's 2^-6 relative noise costs more."""
    lam = 1.0 / np.arange(1, 201) ** 2
    r_int, r_fp = int_fp_data_risks(8, 3, lam, 1.0, 1.0, 0.05, 2000)
    fp_only = risk_recursion(lam, 1.0, 1.0, 0.05, 2000, record_steps=[2000])["risk_avg"][-1]
    assert fp_only < r_int < r_fp  # both cost risk; INT8 costs less
    assert not fp_beats_int_exact(3, 8, lam, 1.0, 1.0, 0.05, 2000)
    with pytest.warns(DeprecationWarning, match="deprecated"):
        assert fp_beats_int(3, 8, 2.0, 200)  # the reading says FP wins: it disagrees
    # with a coarse INT (2 bits, eps = 1/16) FP-3 wins, as the recursion says
    assert fp_beats_int_exact(3, 2, lam, 1.0, 1.0, 0.05, 2000)
    with pytest.raises(ValueError, match="int_bits"):
        int_fp_data_risks(-1, 3, lam, 1.0, 1.0, 0.05, 10)


def test_additive_vs_multiplicative_paper_claims():
    """d-dependence (additive grows with d, multiplicative does not) and batch suppression."""
    n, lr = 800, 0.2

    def final(d, q, batch=1, site="data"):
        lam = 1.0 / np.arange(1, d + 1) ** 2
        r = risk_recursion(lam, 1.0, 1.0, lr, n, batch=batch, record_steps=[n], **{site: q})
        return r["risk_avg"][-1]

    dims = (50, 100, 200)
    add = np.array([final(d, AdditiveNoise(0.01)) for d in dims])
    mul = np.array([final(d, MultiplicativeNoise(0.01)) for d in dims])
    fp = np.array([final(d, None) for d in dims])
    assert np.all(np.diff(add - fp) > 0)  # the additive penalty grows with d
    assert np.all(mul - fp < 0.1 * (add - fp))  # multiplicative stays on the FP curve
    assert np.ptp(mul - fp) < 1e-4  # ... whatever d is
    # activation noise: additive is suppressed like 1/B, shared multiplicative hits a floor
    ex = {
        kind: [final(50, q, b, "activations") - final(50, None, b) for b in (8, 64)]
        for kind, q in (("add", AdditiveNoise(0.5)), ("mul", MultiplicativeNoise(0.5)))
    }
    assert ex["add"][1] < 0.2 * ex["add"][0]
    assert ex["mul"][1] > 0.4 * ex["mul"][0]


def test_rejects_non_noise_quantizers():
    with pytest.raises(ValueError, match="not an unbiased noise model"):
        risk_recursion([1.0], 1.0, 0.0, 0.1, 5, data=UniformQuantizer(2, 1.0))
    with pytest.raises(ValueError, match="unknown site"):
        risk_recursion([1.0], 1.0, 0.0, 0.1, 5, weight=AdditiveNoise(0.1))
    with pytest.raises(ValueError, match="eigenvalues"):
        risk_recursion([0.0], 1.0, 0.0, 0.1, 5)
    assert math.isfinite(risk_recursion([1.0], 1.0, 0.0, 0.1, 0)["risk"][0])
