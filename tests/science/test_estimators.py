"""Gradient estimators, α and M (paper 001): closed forms, numerics and the one-step theorem."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qemu_arrays.estimators import (
    DSQ,
    EDE,
    HTGE,
    LSQ,
    MAD,
    PWL,
    STE,
    Custom,
    Grid,
    Positivity,
    alpha,
    cell_alphas,
    equivalent_ste,
    grid_of,
    remap,
)
from qemu_arrays.theory.kinds import OptimizerKind

GRIDS = [
    ("int2", 0.5),
    ("int4", 0.1),
    ("int8", 1.0 / 64),
    ("float8_e4m3fn", None),
    ("float4_e2m1fn", None),
    ("float6_e3m2fn", 0.25),
]
SHAPED = [DSQ(k=3.0), DSQ.from_alpha_char(0.2), HTGE(t=4.0), HTGE(t=2.5, normalized=True)]
SHAPED += [EDE(progress=0.3), EDE(t_min=1e-3, progress=0.9)]
POSITIVE_IN_RANGE = [STE(), PWL(), MAD(), LSQ(), *SHAPED]


def _ids(objs):
    return [repr(o)[:40] for o in objs]


def _sample(grid, n, seed, margin=0.0):
    rng = np.random.default_rng(seed)
    return rng.uniform(grid.lower + margin, grid.upper - margin, size=n)


# ---- closed forms ---------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "scale"), GRIDS)
def test_ste_alpha_one_and_identity_remap(fmt, scale):
    g = grid_of(fmt, scale)
    w = np.linspace(g.lower - 1, g.upper + 1, 2001)
    for method in ("closed", "numeric"):
        assert alpha(STE(), fmt, scale=scale, method=method) == 1.0
        np.testing.assert_array_equal(remap(STE(), fmt, scale=scale, method=method)(w), w)


def test_known_alpha_values():
    # notes C.2/B.5: DSQ k=3 (Δ=1) 0.764, HTGE t=4 0.511, alpha_char 0.2 -> 0.909, 0.1 -> 0.776
    assert alpha(DSQ(k=3.0), "int4") == pytest.approx(0.7638, abs=1e-4)
    assert alpha(HTGE(t=4.0), "int4") == pytest.approx(0.5113, abs=1e-4)
    assert alpha(DSQ.from_alpha_char(0.2), "int4") == pytest.approx(0.909, abs=1e-3)
    assert alpha(DSQ.from_alpha_char(0.1), "int4") == pytest.approx(0.776, abs=1e-3)
    for k in (0.5, 2.0, 4.33):  # α = z² / ((z + sinh z) tanh(z/2))
        want = k * k / ((k + math.sinh(k)) * math.tanh(k / 2))
        assert alpha(DSQ(k=k), "int2") == pytest.approx(want, rel=1e-14)
    assert alpha(DSQ(k=1e-4), "int2") == pytest.approx(1.0, abs=1e-8)  # DSQ -> STE


def test_dsq_alpha_char_round_trip():
    for a in (0.05, 0.11, 0.25, 0.5, 0.9):
        d = DSQ.from_alpha_char(a)
        assert d.alpha_char == pytest.approx(a, rel=1e-12)
        assert d.k == pytest.approx(math.log(2 / a - 1), rel=1e-15)
    with pytest.raises(ValueError, match="alpha_char"):
        DSQ.from_alpha_char(1.5)


@pytest.mark.parametrize("est", SHAPED + [PWL(), MAD(), LSQ()], ids=_ids(SHAPED) + ["P", "M", "L"])
@pytest.mark.parametrize(("fmt", "scale"), GRIDS)
def test_closed_form_equals_numeric(est, fmt, scale):
    a_c = alpha(est, fmt, scale=scale, method="closed")
    a_n = alpha(est, fmt, scale=scale, method="numeric")
    assert abs(a_c - a_n) <= 1e-10 * a_c
    g = grid_of(fmt, scale)
    w = np.concatenate([_sample(g, 400, 1), g.levels, g.thresholds])
    m_c = remap(est, fmt, scale=scale, method="closed")(w)
    m_n = remap(est, fmt, scale=scale, method="numeric")(w)
    np.testing.assert_allclose(m_c, m_n, rtol=1e-10, atol=1e-10 * g.widths.min())


# ---- properties of M ------------------------------------------------------------------------


@pytest.mark.parametrize("est", SHAPED, ids=_ids(SHAPED))
@pytest.mark.parametrize(("fmt", "scale"), GRIDS)
def test_remap_properties(est, fmt, scale):
    g = grid_of(fmt, scale)
    m = remap(est, fmt, scale=scale)
    # fixes every level (cell boundary) and every threshold (the paper's boundary points)
    np.testing.assert_allclose(m(g.levels), g.levels, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(m(g.thresholds), g.thresholds, rtol=1e-13, atol=1e-15)
    # strictly increasing, and every bin maps onto itself: Q(M(w)) == Q(w)
    w = np.sort(_sample(g, 5000, 2))
    mw = m(w)
    assert np.all(np.diff(mw) > 0)
    np.testing.assert_array_equal(g.round(mw), g.round(w))
    # M'(w) Q̂'(w) = α everywhere in range (central differences, away from cell ends)
    lo, width = g.locate(w, np)
    v = (w - lo) / width
    keep = (v > 0.01) & (v < 0.99)
    w = w[keep]
    h = 1e-5 * width[keep]
    fd = (m(w + h) - m(w - h)) / (2 * h)
    d = np.asarray(est.on(fmt, scale).derivative(w))
    np.testing.assert_allclose(fd * d, m.alpha, rtol=2e-6)
    np.testing.assert_allclose(m.derivative(w) * d, m.alpha, rtol=1e-12)
    # identity outside the range
    out = np.array([g.lower - 1.0, g.upper + 2.5])
    np.testing.assert_array_equal(m(out), out)


def test_constant_factor_scales_alpha_not_remap():
    base = DSQ(k=2.0, format="int4", scale=0.25)
    twice = Custom(derivative_fn=lambda x: 2.0 * base.derivative(x), format="int4", scale=0.25)
    assert alpha(twice) == pytest.approx(2 * alpha(base), rel=1e-12)
    w = _sample(base.grid, 300, 3)
    np.testing.assert_allclose(remap(twice)(w), remap(base)(w), rtol=1e-12)
    # normalised and 001-form HTGE differ by tanh(t/2): α too, M not
    t = 3.0
    a1, a2 = alpha(HTGE(t=t), "int4"), alpha(HTGE(t=t, normalized=True), "int4")
    assert a2 == pytest.approx(a1 / math.tanh(t / 2), rel=1e-13)
    np.testing.assert_allclose(
        remap(HTGE(t=t), "int4")(w), remap(HTGE(t=t, normalized=True), "int4")(w)
    )


def test_custom_not_cyclic_or_not_positive_raises():
    # a derivative in absolute x units on a float grid: one α per cell, no single α
    absolute = Custom(derivative_fn=lambda x: 1.0 + 0.5 * np.cos(2 * np.pi * x / 0.7))
    cells, _ = cell_alphas(absolute, "float4_e2m1fn")
    assert cells.max() - cells.min() > 1e-3
    with pytest.raises(ValueError, match="no single"):
        alpha(absolute, "float4_e2m1fn")
    # a period-1 derivative is cyclical on the integer grid: α = 1/∫_0^1 du/(1 + cos(2πu)/2)
    periodic = Custom(derivative_fn=lambda x: 1.0 + 0.5 * np.cos(2 * np.pi * x))
    assert alpha(periodic, "int4") == pytest.approx(math.sqrt(0.75), rel=1e-12)
    negative = Custom(derivative_fn=lambda x: np.cos(2 * np.pi * x))
    with pytest.raises(ValueError, match="not positive"):
        alpha(negative, "int4")
    with pytest.raises(ValueError, match="no closed form"):
        alpha(absolute, "int4", method="closed")


# ---- the estimators' formulas ---------------------------------------------------------------


def test_out_of_range_behaviour():
    g = grid_of("int4", 0.5)  # range [-4, 3.5]
    x = np.array([-10.0, -4.0, 0.3, 3.5, 7.0])
    np.testing.assert_array_equal(STE().derivative(x), np.ones(5))
    np.testing.assert_array_equal(PWL(format="int4", scale=0.5).derivative(x), [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(PWL(lower=-1.0, upper=1.0).forward(x), [-1, -1, 0.3, 1, 1])
    np.testing.assert_allclose(MAD(format=g).derivative(x), [0.4, 1, 1, 1, 0.5])
    np.testing.assert_allclose(
        MAD(format=g).forward(x), [-4 * (1 + math.log(2.5)), -4, 0.3, 3.5, 3.5 * (1 + math.log(2))]
    )
    assert MAD(format="int4", scale=0.5).positivity is Positivity.NO_LOWER_BOUND
    for est in (DSQ(k=3.0), HTGE(t=4.0), LSQ()):
        d = est.on("int4", 0.5).derivative(x)
        assert d[0] == 0
        assert d[-1] == 0
        assert np.all(d[1:-1] > 0)
        assert est.positivity is Positivity.IN_RANGE
    # unsigned grid: MAD below the zero end is 0
    np.testing.assert_array_equal(MAD(format="uint4").derivative(np.array([-2.0, 1.0])), [0, 1])


@pytest.mark.parametrize("est", [MAD(), *SHAPED], ids=["MAD", *_ids(SHAPED)])
@pytest.mark.parametrize(("fmt", "scale"), [("int4", 0.1), ("float6_e3m2fn", 0.25)])
def test_derivative_is_the_forward_slope(est, fmt, scale):
    est = est.on(fmt, scale)
    g = est.grid
    w = _sample(g, 500, 4)
    lo, width = g.locate(w, np)
    v = (w - lo) / width
    w = w[(v > 0.01) & (v < 0.99)]
    h = 1e-6 * g.widths.min()
    fd = (est.forward(w + h) - est.forward(w - h)) / (2 * h)
    np.testing.assert_allclose(fd, est.derivative(w), rtol=1e-5, atol=1e-8)


def test_dsq_surrogate_meets_the_levels():
    est = DSQ(k=5.0, format="float4_e2m1fn")
    lv = est.grid.levels
    np.testing.assert_allclose(est.forward(lv), lv, atol=1e-14)
    # HTGE (001 form) does not: at the cell ends it misses by (1 - tanh(t/2))/2 of a cell
    h = HTGE(t=2.0, format="int4")
    below = h.forward(np.array([1.0 - 1e-12]))[0]
    assert below == pytest.approx(1.0 - (1 - math.tanh(1.0)) / 2, abs=1e-9)
    assert h.forward(np.array([1.0]))[0] == pytest.approx(1.0 + (1 - math.tanh(1.0)) / 2)


def test_ede_schedule_and_binary_form():
    e = EDE(t_min=0.1, t_max=10.0)
    assert e.at(0.0).t == pytest.approx(0.1)
    assert e.at(0.0).k == pytest.approx(10.0)
    assert e.at(1.0).t == pytest.approx(10.0)
    assert e.at(1.0).k == 1.0
    assert e.at(0.5).t == pytest.approx(1.0)
    assert e.at(0.5).k == 1.0
    with pytest.raises(ValueError, match="progress"):
        e.at(1.5)
    binary = Grid([-1.0, 1.0], name="sign")
    x = np.linspace(-3, 3, 601)
    for p in (0.0, 0.4, 1.0):
        est = e.at(p).on(binary)
        t, k = est.t, est.k
        want = k * t * (1 - np.tanh(t * x) ** 2)
        np.testing.assert_allclose(est.derivative(x), want, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(est.forward(x), k * np.tanh(t * x), rtol=1e-12, atol=1e-15)


def test_lsq_step_gradient():
    est = LSQ(format="int4", grad_scale=1.0)  # levels -8..7 in units of s
    s = 0.5
    x = np.array([-5.0, -1.1, 0.2, 0.74, 3.3, 9.0])
    v = x / s
    want = np.array([-8.0, np.round(v[1]) - v[1], np.round(v[2]) - v[2], 1 - v[3], 7 - v[4], 7])
    g = np.array([1.0, 2.0, -1.0, 0.5, 1.0, 3.0])
    assert float(est.step_gradient(x, g, s)) == pytest.approx(float(np.sum(g * want)), rel=1e-14)
    default = LSQ(format="int4")
    assert float(default.step_gradient(x, g, s)) == pytest.approx(
        float(np.sum(g * want)) / math.sqrt(6 * 7), rel=1e-14
    )
    np.testing.assert_array_equal(est.derivative(v), [0, 1, 1, 1, 1, 0])


def test_grid_round_ties_even():
    g = grid_of("float4_e2m1fn")  # 0, .5, 1, 1.5, 2, 3, 4, 6
    x = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.25, -2.5, 100.0])
    np.testing.assert_array_equal(g.round(x), [0, 1, 1, 2, 2, 4, 4, 0, -2, 6])
    gi = grid_of("int4", 0.5)
    np.testing.assert_array_equal(gi.round(np.array([0.25, 0.75, 10.0])), [0.0, 1.0, 3.5])


def test_argument_errors():
    with pytest.raises(ValueError, match="needs a grid"):
        DSQ(k=2.0).derivative(np.zeros(3))
    with pytest.raises(ValueError, match="k must be"):
        DSQ(k=-1.0)
    with pytest.raises(ValueError, match="scale"):
        alpha(DSQ(), "int4", scale=-1.0)
    with pytest.raises(ValueError, match="method"):
        alpha(DSQ(), "int4", method="exact")
    with pytest.raises(TypeError, match="estimator"):
        alpha("dsq", "int4")
    with pytest.raises(ValueError, match="16 bits"):
        alpha(DSQ(), "float32")
    with pytest.raises(TypeError, match="derivative_fn"):
        Custom(derivative_fn=3)
    with pytest.raises(ValueError, match="optimizer"):
        equivalent_ste(DSQ(), "int4", optimizer="rmsprop")


def test_equivalent_ste():
    sgd = equivalent_ste(HTGE(t=4.0), "int2", scale=0.5)
    assert sgd.lr_factor == pytest.approx(alpha(HTGE(t=4.0), "int2"))
    assert isinstance(sgd.estimator, PWL)
    assert sgd.scope == "in range"
    assert (sgd.estimator.lower, sgd.estimator.upper) == pytest.approx((-1.0, 0.5))
    adam = equivalent_ste(HTGE(t=4.0), "int2", scale=0.5, optimizer=OptimizerKind.ADAM)
    assert adam.lr_factor == 1.0
    with pytest.warns(DeprecationWarning, match="OptimizerKind.ADAM"):
        old = equivalent_ste(HTGE(t=4.0), "int2", scale=0.5, optimizer="adam")
    assert old == adam
    momentum = equivalent_ste(HTGE(t=4.0), "int2", scale=0.5, optimizer=OptimizerKind.MOMENTUM)
    assert momentum.lr_factor == sgd.lr_factor
    assert adam.remap is None
    assert isinstance(adam.estimator, PWL)
    ste = equivalent_ste(STE(), "int2")
    assert isinstance(ste.estimator, STE)
    assert ste.scope == "everywhere"


def test_inputs_not_modified():
    x = np.linspace(-1, 1, 11)
    keep = x.copy()
    est = DSQ(k=3.0, format="int4", scale=0.1)
    est.backward(x, np.ones_like(x))
    remap(est)(x)
    remap(est, method="numeric")(x)
    np.testing.assert_array_equal(x, keep)


def test_float32_inputs_keep_dtype():
    est = HTGE(t=4.0, format="float8_e4m3fn")
    x = np.linspace(-3, 3, 50, dtype=np.float32)
    assert est.derivative(x).dtype == np.float32
    assert est.backward(x, np.ones_like(x)).dtype == np.float32
    np.testing.assert_allclose(est.derivative(x), est.derivative(x.astype(np.float64)), rtol=1e-5)


# ---- backends -------------------------------------------------------------------------------


@pytest.mark.parametrize("est", POSITIVE_IN_RANGE, ids=_ids(POSITIVE_IN_RANGE))
def test_backends_agree(est):
    torch = pytest.importorskip("torch", reason="torch is an optional extra")
    jnp = pytest.importorskip("jax.numpy", reason="jax is an optional extra")
    est = est.on("float6_e3m2fn", 0.5) if est.needs_grid else est
    x = np.linspace(-10, 10, 333)
    ref = est.derivative(x)
    np.testing.assert_allclose(est.derivative(torch.from_numpy(x)).numpy(), ref, rtol=1e-12)
    xs = x.astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(est.derivative(jnp.asarray(xs))), ref, rtol=2e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        est.derivative(torch.from_numpy(xs)).numpy(),
        np.asarray(est.derivative(jnp.asarray(xs))),
        rtol=1e-6,
        atol=1e-6,
    )


# ---- the theorem, one step -------------------------------------------------------------------


def _one_step_misalignment(est, fmt, scale, eta, seed=5):
    """Q̂-net and STE-net from aligned weights, one SGD step on f(q) = ½|q - target|²."""
    est = est.on(fmt, scale)
    g = est.grid
    eq = equivalent_ste(est)
    m = eq.remap
    w0 = _sample(g, 2000, seed, margin=0.1 * g.widths.min())
    # a linear loss f(q) = Σ c_i q_i, with c_i scaled to the cell width so that one step moves
    # every weight by a similar fraction of its cell on float grids too
    _, width = g.locate(w0, np)
    c = np.random.default_rng(seed + 1).normal(size=w0.size) * width
    v0 = m(w0)
    np.testing.assert_array_equal(g.round(v0), g.round(w0))  # so ∇f is the same in both nets
    w1 = w0 - eta * est.backward(w0, c)
    v1 = v0 - eq.lr_factor * eta * eq.estimator.backward(v0, c)
    return np.abs(m(w1) - v1) / (g.upper - g.lower)


@pytest.mark.parametrize(
    "est", [STE(), PWL(), MAD(), LSQ(), *SHAPED], ids=["STE", "PWL", "MAD", "LSQ", *_ids(SHAPED)]
)
@pytest.mark.parametrize(("fmt", "scale"), [("int4", 0.1), ("float8_e4m3fn", None)])
def test_one_step_misalignment_is_second_order(est, fmt, scale):
    eta = 1e-3
    e1 = _one_step_misalignment(est, fmt, scale, eta)
    e2 = _one_step_misalignment(est, fmt, scale, eta / 2)
    if est.has_closed_form and alpha(est.on(fmt, scale)) == 1.0:
        assert e1.max() <= 1e-15
        assert e2.max() <= 1e-15
        return
    assert e1.mean() > 0
    ratio = e1.mean() / e2.mean()
    assert 3.6 < ratio < 4.4, ratio  # halving η quarters the misalignment: O(η²)


def test_one_step_first_order_without_remap():
    # the "unadjusted" pair: without M the misalignment is first order in η
    est = HTGE(t=4.0, format="int4", scale=0.1)
    g = est.grid
    w0 = _sample(g, 2000, 7, margin=0.01)
    grad = np.random.default_rng(8).normal(size=w0.size)
    a = alpha(est)

    def err(eta):
        w1 = w0 - eta * est.backward(w0, grad)
        v1 = w0 - a * eta * grad
        return np.mean(np.abs(w1 - v1))

    assert err(1e-3) / err(5e-4) == pytest.approx(2.0, rel=1e-6)
