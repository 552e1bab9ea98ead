"""The SGD harness: sites, reproducibility, replicas, optimizers, models, backends."""

from __future__ import annotations

import numpy as np
import pytest

from qemu_arrays.theory.kinds import GridKind, SteVariant
from qemu_arrays.training import (
    SGD,
    SITE_NAMES,
    Adam,
    AdditiveNoise,
    FormatQuantizer,
    Identity,
    LinearRegression,
    Sites,
    TeacherStudent,
    UniformQuantizer,
    log_grid,
    run_sgd,
)

MODEL = LinearRegression(16, 1.5, 1.0, 0.5)
KW = {"steps": 60, "lr": 0.2, "batch": 2, "replicas": 8, "seed": 5, "average": True}

SITE_QUANTIZERS = {
    "data": AdditiveNoise(0.1),
    "labels": UniformQuantizer(4, 4.0, grid=GridKind.D),
    "weights": UniformQuantizer(3, 2.0),
    "activations": FormatQuantizer("float4_e2m1fn"),
    "output_grad": AdditiveNoise(0.1, dither=True),
    "param_grad": FormatQuantizer("int8", scale=2.0**-6),
}


def test_log_grid():
    g = log_grid(1000, 20)
    assert g[0] == 0
    assert g[-1] == 1000
    assert np.all(np.diff(g) > 0)
    assert log_grid(0).tolist() == [0]


@pytest.mark.parametrize("site", SITE_NAMES)
def test_each_site_changes_result_and_identity_changes_nothing(site):
    base = run_sgd(MODEL, **KW)
    ident = run_sgd(MODEL, sites={site: Identity()}, **KW)
    np.testing.assert_array_equal(base.w, ident.w)
    np.testing.assert_array_equal(base.risk, ident.risk)
    quant = run_sgd(MODEL, sites={site: SITE_QUANTIZERS[site]}, **KW)
    assert not np.allclose(base.w, quant.w)
    assert quant.sites[site] == SITE_QUANTIZERS[site].name


def test_site_streams_are_separate():
    # quantizing the weights does not change the data drawn for the other sites
    only_data = run_sgd(MODEL, sites={"data": AdditiveNoise(0.1)}, **KW)
    both = run_sgd(MODEL, sites={"data": AdditiveNoise(0.1), "labels": AdditiveNoise(0.0)}, **KW)
    np.testing.assert_array_equal(only_data.w, both.w)


def test_reproducible_from_seed():
    sites = Sites(**SITE_QUANTIZERS)
    a = run_sgd(MODEL, sites=sites, **KW)
    b = run_sgd(MODEL, sites=sites, **KW)
    np.testing.assert_array_equal(a.w, b.w)
    np.testing.assert_array_equal(a.risk_avg, b.risk_avg)
    c = run_sgd(MODEL, sites=sites, **{**KW, "seed": 6})
    assert not np.allclose(a.w, c.w)


def test_replicas_are_independent():
    res = run_sgd(
        MODEL, steps=30, lr=0.2, replicas=4000, seed=1, sites={"data": AdditiveNoise(0.1)}
    )
    w = res.w
    assert len({tuple(r) for r in np.round(w, 12)}) == 4000  # all distinct
    # replica pairs are uncorrelated (first coordinate, even vs odd replicas)
    c = np.corrcoef(w[0::2, 0], w[1::2, 0])[0, 1]
    assert abs(c) < 4 / np.sqrt(2000)
    risk = res.risk[-1]
    c2 = np.corrcoef(risk[0::2], risk[1::2])[0, 1]
    assert abs(c2) < 4 / np.sqrt(2000)


def test_weight_master_copy_and_estimator():
    # Q_p at the weights with a clipped estimator: weights outside the range get no gradient
    model = LinearRegression(4, 0.0, 3.0, 0.0, w0=np.array([5.0, 0.0, 0.0, 0.0]))
    q = UniformQuantizer(4, 1.0, estimator=SteVariant.CLIPPED)
    res = run_sgd(model, steps=20, lr=0.1, replicas=2, seed=0, sites={"weights": q})
    np.testing.assert_array_equal(res.w[:, 0], 5.0)  # frozen: derivative is zero there
    assert np.all(res.w[:, 1:] != 0.0)  # the master copy moves by sub-step amounts
    levels = set(np.round(q.levels, 12))
    assert not set(np.round(res.w[0, 1:], 12)).issubset(levels)


def test_textbook_full_precision_and_convergence():
    model = LinearRegression(10, 1.0, 1.0, 0.0)
    res = run_sgd(model, steps=3000, lr=0.3, replicas=4, seed=2)
    assert res.risk[-1].max() < 1e-3 * res.risk[0].max()  # noiseless: converges to w*


def test_optimizers():
    plain = run_sgd(MODEL, **KW)
    mom0 = run_sgd(MODEL, optimizer=SGD(0.0), **KW)
    np.testing.assert_array_equal(plain.w, mom0.w)
    mom = run_sgd(MODEL, optimizer=SGD(0.5), **{**KW, "lr": 0.1})
    adam = run_sgd(MODEL, optimizer=Adam(), **{**KW, "lr": 0.05})
    nest = run_sgd(MODEL, optimizer=SGD(0.5, nesterov=True), **{**KW, "lr": 0.1})
    for r in (mom, adam, nest):
        assert r.mean()[-1] < 0.5 * r.mean()[0]
        assert not np.allclose(r.w, plain.w)
    const = run_sgd(MODEL, **{**KW, "lr": lambda t: 0.2})
    np.testing.assert_array_equal(const.w, plain.w)
    with pytest.raises(ValueError, match="optimizer"):
        run_sgd(MODEL, optimizer="lbfgs", **KW)


def test_averaged_iterate_is_the_running_mean():
    traj = []
    res = run_sgd(
        MODEL, steps=10, lr=0.2, replicas=3, seed=0, average=True,
        record_steps=range(11), metrics={"w0": lambda w, m: w[:, 0]},
    )  # fmt: skip
    traj = res.metrics["w0"]  # (11, 3): w_0 .. w_10, first coordinate
    np.testing.assert_allclose(res.w_avg[:, 0], traj[:10].mean(axis=0), rtol=1e-12)


def test_teacher_student_fp_textbook_decay():
    """Unquantized, σ = λ = 0: E‖δ_t‖² = ‖δ_0‖²(1 − 2η/d + η²(d+2)/d²)^t exactly."""
    d, eta, steps = 50, 0.5, 200
    model = TeacherStudent(d)
    res = run_sgd(model, steps=steps, lr=eta, replicas=2000, seed=3, record_steps=[0, 100, 200])
    factor = 1 - 2 * eta / d + eta**2 * (d + 2) / d**2
    pred = res.mean()[0] * factor ** np.array([0, 100, 200])
    z = (res.mean() - pred) / np.maximum(res.sem(), 1e-12)
    assert np.all(np.abs(z[1:]) < 3)
    np.testing.assert_allclose(res.time, [0, 2, 4])  # τ = t/d


def test_teacher_student_eps_g_formula_matches_test_set():
    rng = np.random.default_rng(4)
    d = 40
    qw, qx = UniformQuantizer(2, 2.0), UniformQuantizer(2, 2.0)
    model = TeacherStudent(d, weight_quantizer=qw, input_quantizer=qx)
    w = rng.standard_normal((3, d))
    eps = model.risk(w)
    X = rng.standard_normal((60_000, d))
    for r in range(3):
        err = (X @ model.w_star - qx(X) @ qw(w[r])) / np.sqrt(d)
        mc = 0.5 * np.mean(err**2)
        assert eps[r] == pytest.approx(mc, rel=0.04)


def test_teacher_student_quantized_run_uses_default_sites():
    model = TeacherStudent(
        100, reg=0.1, noise=0.2, weight_quantizer=UniformQuantizer(2, 2.0),
        input_quantizer=UniformQuantizer(2, 2.0),
    )  # fmt: skip
    res = run_sgd(model, steps=1000, lr=0.1, replicas=4, seed=0)
    assert res.sites["weights"].startswith("Q(b=2")
    assert res.sites["data"].startswith("Q(b=2")
    assert res.mean()[-1] < res.mean()[0]
    override = run_sgd(model, steps=1000, lr=0.1, replicas=4, seed=0, sites={"data": None})
    assert override.sites["data"] == "identity"


def test_torch_backend_matches_numpy():
    torch = pytest.importorskip("torch")
    sites = {"data": AdditiveNoise(0.05), "weights": UniformQuantizer(4, 2.0)}
    a = run_sgd(MODEL, sites=sites, **KW)
    b = run_sgd(MODEL, sites=sites, backend="torch", **KW)
    assert isinstance(b.w, torch.Tensor)
    np.testing.assert_allclose(b.w.numpy(), a.w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.risk_avg, a.risk_avg, rtol=1e-10)


def test_float32_run():
    res = run_sgd(MODEL, dtype="float32", sites={"data": AdditiveNoise(0.1)}, **KW)
    assert res.w.dtype == np.float32
    assert res.mean()[-1] < res.mean()[0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="steps"):
        run_sgd(MODEL, steps=-1, lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        run_sgd(MODEL, steps=1, lr=-0.1)
    with pytest.raises(ValueError, match="unknown site"):
        run_sgd(MODEL, steps=1, lr=0.1, sites={"weight": None})
    with pytest.raises(ValueError, match="dtype"):
        run_sgd(MODEL, steps=1, lr=0.1, dtype="float16")
    with pytest.raises(ValueError, match="shape"):
        run_sgd(MODEL, steps=1, lr=0.1, w0=np.zeros(3))
    with pytest.raises(ValueError, match="d must"):
        LinearRegression(0)


def test_prefetch_same_distribution_and_reproducible():
    sites = {"data": AdditiveNoise(0.1), "weights": UniformQuantizer(4, 2.0)}
    a = run_sgd(MODEL, sites=sites, prefetch=7, **KW)
    b = run_sgd(MODEL, sites=sites, prefetch=7, **KW)
    np.testing.assert_array_equal(a.w, b.w)
    # with the data site at identity, the batch sequence is the same as drawn one by one only
    # in distribution; check the mean risk agrees with the unprefetched run statistically
    kw = {**KW, "replicas": 3000, "steps": 30}
    p1 = run_sgd(MODEL, sites=sites, **kw)
    p9 = run_sgd(MODEL, sites=sites, prefetch=9, **{**kw, "seed": 99})
    diff = p1.mean("risk_avg")[-1] - p9.mean("risk_avg")[-1]
    se = np.hypot(p1.sem("risk_avg")[-1], p9.sem("risk_avg")[-1])
    assert abs(diff) < 4 * se


def test_jax_backend_float32_matches_numpy():
    pytest.importorskip("jax")
    sites = {"data": UniformQuantizer(3, 1.0, grid=GridKind.M), "weights": UniformQuantizer(4, 2.0)}
    kw = {**KW, "dtype": "float32"}
    a = run_sgd(MODEL, sites=sites, **kw)
    b = run_sgd(MODEL, sites=sites, backend="jax", **kw)
    np.testing.assert_allclose(np.asarray(b.w), a.w, rtol=1e-4, atol=1e-5)
    import jax

    if not jax.config.jax_enable_x64:
        with pytest.raises(ValueError, match="jax_enable_x64"):
            run_sgd(MODEL, backend="jax", **KW)
