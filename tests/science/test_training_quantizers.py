"""Site quantizers: noise models, the uniform quantizer Q_{b,ω}, hardware formats, κ constants."""

from __future__ import annotations

import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.theory.kinds import GridKind, SteVariant
from qemu_arrays.training import (
    AdditiveNoise,
    FormatQuantizer,
    Identity,
    MultiplicativeNoise,
    Sites,
    UniformQuantizer,
    as_quantizer,
    gaussian_moments,
)


def test_identity_is_exact_and_ste():
    x = np.linspace(-3, 3, 7)
    q = Identity()
    assert q(x) is x
    assert q.derivative(x) == 1.0


@pytest.mark.parametrize("dither", [False, True])
def test_additive_noise_unbiased_with_variance_eps(dither):
    rng = np.random.default_rng(0)
    x = np.full((200_000,), 0.37)
    x0 = x.copy()
    y = AdditiveNoise(0.01, dither=dither)(x, rng)
    np.testing.assert_array_equal(x, x0)  # input untouched
    err = y - x
    assert abs(err.mean()) < 4 * 0.1 / np.sqrt(x.size)
    assert err.var() == pytest.approx(0.01, rel=0.02)
    if dither:  # error uniform on [-Δ/2, Δ/2]
        half = np.sqrt(12 * 0.01) / 2
        assert np.all(np.abs(err) <= half + 1e-12)


def test_dither_error_independent_of_input():
    rng = np.random.default_rng(1)
    q = AdditiveNoise(0.02, dither=True)
    for v in (0.0, 0.1, 0.2449 / 2, 5.3):
        err = q(np.full(100_000, v), rng) - v
        assert err.var() == pytest.approx(0.02, rel=0.03)


def test_multiplicative_shared_vs_elementwise():
    rng = np.random.default_rng(2)
    x = np.tile(np.array([1.0, -2.0, 3.0]), (100_000, 1))
    ys = MultiplicativeNoise(0.04, shared=True)(x, rng)
    ratio = ys / x
    # shared: one factor per vector (row)
    np.testing.assert_allclose(ratio[:, 0], ratio[:, 1])
    np.testing.assert_allclose(ratio[:, 0], ratio[:, 2])
    assert ratio[:, 0].var() == pytest.approx(0.04, rel=0.02)
    ye = MultiplicativeNoise(0.04, shared=False)(x, rng)
    r = ye / x
    assert np.corrcoef(r[:, 0], r[:, 1])[0, 1] == pytest.approx(0, abs=0.02)
    assert r[:, 2].var() == pytest.approx(0.04, rel=0.02)
    assert r.mean() == pytest.approx(1, abs=0.002)


def test_moments_declared():
    assert AdditiveNoise(0.1).moments() == (0.1, 0, 0)
    assert MultiplicativeNoise(0.2).moments() == (0, 0.2, 0)
    assert MultiplicativeNoise(0.2, shared=False).moments() == (0, 0, 0.2)
    assert UniformQuantizer(2, 1.0).moments() is None


@pytest.mark.parametrize(
    ("grid", "levels"),
    [
        (GridKind.A, [-2, -2 / 3, 2 / 3, 2]),
        (GridKind.M, [-1.5, -0.5, 0.5, 1.5]),
        (GridKind.D, [-2, -1, 0, 1, 2]),
        (GridKind.C, [-2, 0, 2]),
    ],
)
def test_uniform_grids_b2_omega2(grid, levels):
    q = UniformQuantizer(2, 2.0, grid=grid)
    np.testing.assert_allclose(q.levels, levels)
    x = np.linspace(-4, 4, 4001)
    y = q(x)
    # every output is a level, and the nearest one to clip(x)
    lv = np.asarray(levels)
    assert np.all(np.min(np.abs(y[:, None] - lv[None]), axis=1) < 1e-12)
    xc = np.clip(x, -2, 2)
    dist = np.abs(xc[:, None] - lv[None])
    np.testing.assert_allclose(np.abs(y - xc), dist.min(axis=1), atol=1e-12)
    # Q is odd except exactly on a threshold (where a tie is broken one way)
    nz = ~np.isin(np.round(x, 9), np.round(q.thresholds, 9))
    np.testing.assert_allclose(q(-x[nz]), -y[nz])


def test_uniform_estimators():
    x = np.array([-3.0, -1.0, 0.5, 2.0, 2.5])
    assert UniformQuantizer(2, 2.0).derivative(x) == 1.0
    np.testing.assert_array_equal(
        UniformQuantizer(2, 2.0, estimator=SteVariant.CLIPPED).derivative(x), [0, 1, 1, 1, 0]
    )
    q = UniformQuantizer(2, 2.0, estimator=lambda v: 2 * np.ones_like(v))
    np.testing.assert_array_equal(q.derivative(x), 2 * np.ones(5))


def test_uniform_stochastic_unbiased_inside_range():
    q = UniformQuantizer(3, 1.0, stochastic=True)
    rng = np.random.default_rng(3)
    x = np.full(200_000, 0.123)
    y = q(x, rng)
    assert set(np.unique(y)).issubset(set(np.round(q.levels, 12)) | set(q.levels))
    assert y.mean() == pytest.approx(0.123, abs=4 * q.step / np.sqrt(x.size))


@pytest.mark.parametrize(
    ("grid", "b", "omega", "k1", "k2"),
    [
        (GridKind.A, 2, 2.0, 0.9693, 1.0931),
        (GridKind.M, 2, 2.0, 0.8829, 0.8846),
        (GridKind.D, 2, 2.0, 0.9632, 1.0179),
        (GridKind.A, 3, 1.0, 0.6843, 0.5240),
        (GridKind.M, 5, 1.0, 0.6674, 0.4964),
    ],
)
def test_kappa_matches_notes_table(grid, b, omega, k1, k2):
    q = UniformQuantizer(b, omega, grid=grid)
    got = gaussian_moments(q)
    assert got == pytest.approx((k1, k2), abs=6e-5)
    rng = np.random.default_rng(4)
    z = rng.standard_normal(400_000)
    qz = q(z)
    assert np.mean(z * qz) == pytest.approx(k1, abs=0.01)
    assert np.mean(qz**2) == pytest.approx(k2, abs=0.01)


def test_kappa_identity_and_noise():
    assert gaussian_moments(None) == (1.0, 1.0)
    assert gaussian_moments(AdditiveNoise(0.1)) == (1.0, 1.1)


def test_format_quantizer_matches_quantize():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 16))
    q = FormatQuantizer("float8_e4m3fn")
    np.testing.assert_array_equal(q(x), qa.quantize(x, "float8_e4m3fn"))
    qi = FormatQuantizer("int8", scale=0.05)
    np.testing.assert_array_equal(qi(x), qa.quantize(x, "int8", scale=0.05))
    qs = FormatQuantizer("int8", scale="absmax")
    y = qs(x)
    s = np.abs(x).max(axis=-1, keepdims=True) / 127
    np.testing.assert_allclose(y, np.round(x / s) * s, rtol=0, atol=1e-12)
    assert q.derivative(x) == 1.0
    clipped = FormatQuantizer("int4", scale=0.5, estimator=SteVariant.CLIPPED)
    np.testing.assert_array_equal(clipped.derivative(np.array([-4.0, 3.4, 3.6])), [0.0, 1.0, 0.0])


def test_format_quantizer_stochastic_reproducible_and_unbiased():
    q = FormatQuantizer("float8_e4m3fn", rounding=qa.Rounding.STOCHASTIC)
    x = np.full(100_000, 0.3)
    a = q(x, np.random.default_rng(7))
    b = q(x, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.mean() == pytest.approx(0.3, abs=4 * 0.03125 / np.sqrt(x.size))


def test_bad_input_messages():
    with pytest.raises(ValueError, match="eps"):
        AdditiveNoise(-1.0)
    with pytest.raises(ValueError, match="grid"):
        UniformQuantizer(2, 1.0, grid="Z")
    with pytest.raises(ValueError, match="omega"):
        UniformQuantizer(2, 0.0)
    with pytest.raises(ValueError, match="scale"):
        FormatQuantizer("int8")
    with pytest.raises(ValueError, match="rng"):
        AdditiveNoise(0.1)(np.zeros(3))
    with pytest.raises(TypeError, match="site 'data'"):
        Sites(data=3.5)
    with pytest.raises(ValueError, match="unknown"):
        Sites().replace(weight=None)
    assert isinstance(as_quantizer("float8_e5m2"), FormatQuantizer)
