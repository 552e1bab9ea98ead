"""STE dynamics of the quantized teacher-student model (paper 000): theory vs simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qemu_arrays.experiments.ste import simulate
from qemu_arrays.theory import ste_dynamics as sd
from qemu_arrays.theory.kinds import ErrorConvention, GridKind, LrConvention, SteVariant


def _both(bits=2, omega=2.0, grid=GridKind.A, **kw):
    q = sd.uniform_quantizer(bits, omega, grid)
    return sd.STESetting(weight_quantizer=q, input_quantizer=q, **kw)


# ---------------------------------------------------------------------------------------------
# quantizers, kappa, eps_g(0)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grid", "levels"),
    [
        (GridKind.A, [-2, -2 / 3, 2 / 3, 2]),
        (GridKind.M, [-1.5, -0.5, 0.5, 1.5]),
        (GridKind.D, [-2, -1, 0, 1, 2]),
        (GridKind.C, [-2, 0, 2]),
    ],
)
def test_grid_levels_b2_omega2(grid, levels):
    q = sd.uniform_quantizer(2, 2.0, grid)
    np.testing.assert_allclose(q.levels, levels, atol=1e-15)
    x = np.linspace(-5, 5, 1001)
    y = q(x)
    # nearest level, odd, and clipped to the range
    np.testing.assert_allclose(np.abs(y[:, None] - q.level_array).min(axis=1), 0)
    dist = np.abs(x[:, None] - q.level_array)
    np.testing.assert_allclose(np.abs(x - y), dist.min(axis=1), atol=1e-12)
    np.testing.assert_allclose(q(-x[::2] + 1e-9), -q(x[::2] - 1e-9), atol=1e-12)


@pytest.mark.parametrize(
    ("grid", "bits", "omega", "k1", "k2"),
    [
        (GridKind.A, 2, 2.0, 0.9693, 1.0931),
        (GridKind.A, 3, 1.0, 0.6843, 0.5240),
        (GridKind.M, 2, 2.0, 0.8829, 0.8846),
        (GridKind.D, 2, 2.0, 0.9632, 1.0179),
        (GridKind.D, 5, 1.0, 0.6828, 0.5164),
        (GridKind.A, 1, 1.0, 0.7979, 1.0000),
    ],
)
def test_kappa_table(grid, bits, omega, k1, k2):
    got = sd.input_constants(sd.uniform_quantizer(bits, omega, grid))
    np.testing.assert_allclose(got, (k1, k2), atol=6e-5)


def test_kappa_matches_monte_carlo_and_cauchy_schwarz():
    rng = np.random.default_rng(1)
    z = rng.standard_normal(400_000)
    q = sd.uniform_quantizer(3, 1.5, GridKind.M)
    k1, k2 = sd.input_constants(q)
    assert abs(k1 - np.mean(z * q(z))) < 4e-3
    assert abs(k2 - np.mean(q(z) ** 2)) < 4e-3
    assert k1**2 < k2
    assert sd.input_constants(None) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (_both(grid=GridKind.A, eta=0.1), 1.097),
        (_both(grid=GridKind.M, eta=0.1), 0.891),
        (_both(grid=GridKind.D, eta=0.1), 1.018),
        (_both(grid=GridKind.C, eta=0.1), 1.305),
        (sd.STESetting(eta=0.1, weight_quantizer=sd.uniform_quantizer(2, 2.0)), 1.047),
        (sd.STESetting(eta=0.1), 1.0),
    ],
)
def test_initial_eps_g(setting, expected):
    assert abs(setting.initial_eps_g() - expected) < 1e-3


def test_harness_quantizer_and_kappa_agree():
    from qemu_arrays.training import TeacherStudent, UniformQuantizer

    for grid in (GridKind.A, GridKind.M, GridKind.D, GridKind.C):
        theirs = UniformQuantizer(3, 1.25, grid=grid)
        mine = sd.uniform_quantizer(3, 1.25, grid)
        np.testing.assert_allclose(sd.as_step_quantizer(theirs).levels, mine.levels, atol=1e-12)
        model = TeacherStudent(10, input_quantizer=theirs)
        np.testing.assert_allclose(model.kappa(), sd.input_constants(mine), rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# quantization off: textbook online SGD of a linear teacher-student model
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("eta", "sigma"), [(0.3, 0.5), (1.2, 0.0), (1.9, 1.0)])
def test_unquantized_reduces_to_textbook(eta, sigma):
    s = sd.STESetting(eta=eta, sigma=sigma)
    tau = np.linspace(0, 20, 41)
    res = sd.closed_ode(s, tau)
    # textbook: d eps/dtau = -eta (2 - eta) eps + eta^2 sigma^2 / 2, eps(0) = (rho + q0) / 2
    e_inf = eta * sigma**2 / (2 * (2 - eta))
    e0 = 0.5 * (1 + 1)
    textbook = e_inf + (e0 - e_inf) * np.exp(-eta * (2 - eta) * tau)
    np.testing.assert_allclose(res.eps_g, textbook, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(res.m, 1 - np.exp(-eta * tau), atol=1e-13)
    assert sd.stability_boundary(s) == 2.0
    assert math.isclose(sd.steady_state_eps_g(s), e_inf, rel_tol=1e-12, abs_tol=1e-15)
    assert sd.steady_state_eps_g(sd.STESetting(eta=2.01, sigma=sigma)) == math.inf
    # the Gibbs stationary law, the PDE and the particle method agree with it too
    assert math.isclose(sd.gibbs_steady_state(s).eps_g, e_inf, abs_tol=1e-9)


def test_pde_without_weight_quantization_matches_closed_ode():
    s = sd.STESetting(eta=0.5, sigma=0.3, lam=0.2, input_quantizer=sd.uniform_quantizer(3, 1.0))
    pde = sd.solve_fokker_planck(s, 10.0, n_out=11, max_dx=0.05, half_width=7.0)
    ode = sd.closed_ode(s, pde.tau)
    np.testing.assert_allclose(pde.eps_g, ode.eps_g, atol=2e-3)


def test_fixed_point_formula_lam0():
    s = sd.STESetting(eta=0.7, sigma=0.4, input_quantizer=sd.uniform_quantizer(2, 1.0, GridKind.D))
    k1, k2 = s.kappa1, s.kappa2
    expect = (2 * (1 - k1**2 / k2) + 0.7 * k2 * 0.16) / (2 * (2 - 0.7 * k2))
    assert math.isclose(sd.steady_state_eps_g(s), expect, rel_tol=1e-12)
    assert math.isclose(sd.stability_boundary(s), 2 / k2, rel_tol=1e-12)
    # the long-time limit of the closed ODE is the fixed point
    assert math.isclose(sd.closed_ode(s, [400.0]).eps_g[0], expect, rel_tol=1e-9)
    assert math.isclose(sd.gibbs_steady_state(s).eps_g, expect, rel_tol=1e-6)


# ---------------------------------------------------------------------------------------------
# simulation vs theory
# ---------------------------------------------------------------------------------------------


def _agree(sim, theory_at, allowance, rel=0.03):
    """Replica mean within 3 standard errors plus a finite-d allowance of the theory.

    A replica's eps_g fluctuates by O(eps_g / sqrt(d)) and the deviation persists in time, so the
    allowance has an absolute part and a part relative to eps_g.
    """
    mean = sim["eps_g"].mean(axis=0)
    err = sim["eps_g"].std(axis=0, ddof=1) / math.sqrt(sim["eps_g"].shape[0])
    bad = np.abs(mean - theory_at) > 3 * err + allowance + rel * theory_at
    assert not bad.any(), (sim["tau"][bad], mean[bad], theory_at[bad], err[bad])


def test_closed_ode_matches_simulation_input_only():
    s = sd.STESetting(eta=1.0, sigma=0.3, input_quantizer=sd.uniform_quantizer(2, 1.0))
    sim = simulate(s, 200, 10.0, replicas=6, n_out=11, seed=3)
    _agree(sim, sd.closed_ode(s, sim["tau"]).eps_g, 0.01)


def test_fixed_point_and_stability_boundary_match_long_simulations():
    q = sd.uniform_quantizer(3, 1.0)
    base = sd.STESetting(eta=1.0, input_quantizer=q)
    eta_c = sd.stability_boundary(base)
    assert math.isclose(eta_c, 2 / base.kappa2)
    below = sd.STESetting(eta=0.85 * eta_c, input_quantizer=q)
    above = sd.STESetting(eta=1.15 * eta_c, input_quantizer=q)
    sb = simulate(below, 200, 25.0, replicas=4, n_out=26, seed=5)
    tail = sb["eps_g"][:, 13:].mean(axis=1)
    theory = sd.steady_state_eps_g(below)
    assert math.isfinite(theory)
    assert abs(tail.mean() - theory) < 3 * tail.std(ddof=1) / 2 + 0.05 * theory
    sa = simulate(above, 200, 15.0, replicas=4, n_out=16, seed=6)
    assert sd.steady_state_eps_g(above) == math.inf
    assert np.all(sa["eps_g"][:, -1] > 100 * theory)
    assert np.all(sa["eps_g"][:, -1] > sa["eps_g"][:, -6])  # still growing


def test_pde_matches_simulation_fig1_reduced():
    s = _both(eta=0.1)
    pde = sd.solve_fokker_planck(s, 25.0, n_out=26)
    sim = simulate(s, 300, 25.0, replicas=6, n_out=11, seed=11)
    _agree(sim, np.interp(sim["tau"], pde.tau, pde.eps_g), 0.01)


def test_pde_matches_simulation_fig2_reduced():
    s = sd.STESetting(eta=0.04, lam=1.0, weight_quantizer=sd.uniform_quantizer(3, 1.0))
    pde = sd.solve_fokker_planck(s, 25.0, n_out=26)
    sim = simulate(s, 300, 25.0, replicas=5, n_out=11, seed=12)
    _agree(sim, np.interp(sim["tau"], pde.tau, pde.eps_g), 0.01)


# ---------------------------------------------------------------------------------------------
# PDE, particles and stationary laws against the notes' reference numbers
# ---------------------------------------------------------------------------------------------


def test_pde_reference_curve_and_bin_masses():
    s = _both(eta=0.1)
    pde = sd.solve_fokker_planck(s, 100.0, n_out=11, density_taus=(50.0,))
    # notes 9.2 (PDE): 0.184 (10), 0.123 (20), 0.171 (50), 0.203 (100)
    np.testing.assert_allclose(pde.eps_g[[1, 2, 5, 10]], [0.184, 0.123, 0.171, 0.203], atol=2e-3)
    assert pde.eps_g[2] < pde.eps_g[1]
    assert pde.eps_g[10] > pde.eps_g[3]  # non-monotone
    np.testing.assert_allclose(pde.bin_mass[5], [0.0, 0.0, 0.886, 0.114], atol=6e-3)
    # mass is conserved, the density is non-negative and peaks at the threshold 4/3
    dens = pde.density[0, 0]
    assert abs(dens.sum() * pde.dx - 1) < 1e-9
    assert dens.min() > -1e-9
    assert abs(pde.x[np.argmax(dens)] - 4 / 3) < 2 * pde.dx


def test_particle_method_matches_pde():
    s = _both(eta=0.1)
    pde = sd.solve_fokker_planck(s, 16.0, n_out=9)
    part = sd.particle_method(s, 16.0, n_particles=10_000, dt=0.01, n_out=9, seed=2)
    np.testing.assert_allclose(part.eps_g, pde.eps_g, rtol=0.02, atol=6e-3)


def test_clipped_ste_freezes_mass_outside_range():
    s = _both(eta=0.1, ste=SteVariant.CLIPPED)
    part = sd.particle_method(s, 10.0, n_particles=20_000, dt=0.01, n_out=3, seed=4)
    rng = np.random.default_rng(4)
    w0 = rng.standard_normal(20_000)
    outside = np.abs(w0) > 2.0
    np.testing.assert_array_equal(part.w[outside], w0[outside])
    assert 0.035 < outside.mean() < 0.06
    with pytest.raises(ValueError, match="particle_method"):
        sd.solve_fokker_planck(s, 1.0)


@pytest.mark.parametrize(
    ("grid", "eta", "expected"),
    [
        (GridKind.A, 0.1, 0.2041),
        (GridKind.A, 0.5, 0.2212),
        (GridKind.A, 1.0, 0.3468),
        (GridKind.M, 0.5, 0.1704),
        (GridKind.D, 0.1, 0.0702),
        (GridKind.D, 1.0, 0.1796),
    ],
)
def test_gibbs_steady_state_table(grid, eta, expected):
    assert abs(sd.gibbs_steady_state(_both(grid=grid, eta=eta)).eps_g - expected) < 2e-4


def test_gibbs_weights_only_and_two_roots():
    def w_only(grid, eta):
        return sd.STESetting(eta=eta, weight_quantizer=sd.uniform_quantizer(2, 2.0, grid))

    assert abs(sd.gibbs_steady_state(w_only(GridKind.A, 0.1)).eps_g - 1 / 6) < 1e-6
    assert abs(sd.gibbs_steady_state(w_only(GridKind.C, 0.1)).eps_g - 0.5) < 1e-6
    assert sd.gibbs_steady_state(w_only(GridKind.D, 0.1)).eps_g == 0.0
    res = sd.gibbs_steady_state(w_only(GridKind.D, 1.5))
    assert res.roots[0] == 0.0
    assert abs(res.roots[-1] - 0.346) < 2e-3
    assert sd.gibbs_steady_state(w_only(GridKind.D, 1.5), root="cold").eps_g == 0.0


def test_pde_relaxes_to_gibbs_law():
    s = sd.STESetting(eta=0.5, lam=1.0, weight_quantizer=sd.uniform_quantizer(2, 1.0, GridKind.M))
    pde = sd.solve_fokker_planck(s, 20.0, n_out=5, max_dx=0.05, half_width=4.0)
    assert abs(pde.eps_g[-1] - sd.gibbs_steady_state(s).eps_g) < 1e-3


def test_small_eta_limit_and_plateau_length():
    s = _both(eta=0.1)
    small = sd.small_eta_steady_state(s)
    assert abs(small - 0.2041) < 1e-4
    assert abs(sd.gibbs_steady_state(_both(eta=0.002)).eps_g - small) < 1e-4
    # bin (0, 4/3) has speed kappa1 - kappa2 * 2/3 = 0.2406: crossing it takes (4/3)/(0.1 v)
    v = s.kappa1 - s.kappa2 * 2 / 3
    out = sd.plateau_lengths(s, 0.0)
    assert abs(out["arrival"] - (4 / 3) / (0.1 * v)) < 1e-9
    assert abs(out["end"] - 4 / 3) < 1e-12
    assert abs(out["arrival"] - 55.4) < 0.1
    # the plateau length scales with omega (mid-tread grid started at 0: T = Delta/(2 eta kappa1))
    for om in (2.0, 3.0, 4.0):
        sw = sd.STESetting(eta=0.1, weight_quantizer=sd.uniform_quantizer(2, om, GridKind.D))
        first = sd.plateau_lengths(sw, 0.0)["bins"][0]
        assert abs(first[3] - (om / 2) / 2 / 0.1) < 1e-9


def test_isotropic_closure_reduces_to_closed_ode():
    s = sd.STESetting(eta=0.3, sigma=0.2, input_quantizer=sd.uniform_quantizer(4, 1.0))
    tau = np.linspace(0, 30, 7)
    np.testing.assert_allclose(
        sd.isotropic_closure_ode(s, tau, delta2=0.0).eps_g, sd.closed_ode(s, tau).eps_g
    )
    fine = sd.STESetting(eta=0.04, lam=1.0, weight_quantizer=sd.uniform_quantizer(6, 1.0))
    pde = sd.solve_fokker_planck(fine, 30.0, n_out=4)
    iso = sd.isotropic_closure_ode(fine, pde.tau)
    # clipping makes the closure wrong at tau = 0; once the weights are inside the range it holds
    np.testing.assert_allclose(iso.eps_g[1:], pde.eps_g[1:], atol=5e-3)


# ---------------------------------------------------------------------------------------------
# conventions, reproducibility and input checking
# ---------------------------------------------------------------------------------------------


def test_conventions():
    s = sd.STESetting(eta=0.2, sigma=0.5, error_convention=ErrorConvention.TEST_MSE)
    assert math.isclose(float(s.report(0.1)), 0.45)
    assert math.isclose(float(sd.report_error(0.1, convention=ErrorConvention.FULL)), 0.2)
    half = sd.STESetting(eta=0.2, lr_convention=LrConvention.HALF)
    assert half.eta_eff == 0.1
    assert sd.stability_boundary(half) == 4.0
    np.testing.assert_allclose(
        sd.closed_ode(half, [3.0]).eps_g, sd.closed_ode(sd.STESetting(eta=0.1), [3.0]).eps_g
    )


def test_simulation_reproducible_and_teacher_law():
    s = sd.STESetting(
        eta=0.2, teacher=([1.0, -0.5], [0.5, 0.5]), weight_quantizer=sd.uniform_quantizer(2, 1.0)
    )
    a = simulate(s, 64, 1.0, replicas=2, n_out=3, seed=9)
    b = simulate(s, 64, 1.0, replicas=2, n_out=3, seed=9)
    np.testing.assert_array_equal(a["eps_g"], b["eps_g"])
    assert math.isclose(s.rho, 0.625)
    np.testing.assert_allclose(a["eps_g"][:, 0].mean(), s.initial_eps_g(), atol=0.15)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: sd.uniform_quantizer(2, 1.0, "Z"), ValueError, "grid"),
        (lambda: sd.uniform_quantizer(0, 1.0), ValueError, "bits"),
        (lambda: sd.uniform_quantizer(2, -1.0), ValueError, "omega"),
        (lambda: sd.STESetting(eta=0.0), ValueError, "eta"),
        (lambda: sd.STESetting(eta="1"), TypeError, "eta"),
        (lambda: sd.STESetting(eta=0.1, ste="foo"), ValueError, "ste"),
        (lambda: sd.STESetting(eta=0.1, ste=1), TypeError, "SteVariant"),
        (lambda: sd.STESetting(eta=0.1, teacher=([1, 2], [0.3, 0.3])), ValueError, "teacher"),
        (lambda: sd.STESetting(eta=0.1, weight_quantizer=3), TypeError, "weight_quantizer"),
        (lambda: sd.closed_ode(_both(eta=0.1), [1.0]), ValueError, "full-precision"),
        (lambda: simulate(sd.STESetting(eta=0.1), 1, 1.0), ValueError, "d must"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
