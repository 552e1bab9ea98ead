"""One Grid type: the papers' grids A/M/D/C defined once and shared by the estimators, the
training quantizers and the theory (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest

from qemu_arrays.estimators import STE, Grid, alpha
from qemu_arrays.grids import GridKind
from qemu_arrays.theory import ste_dynamics as sd
from qemu_arrays.training.quantizers import UniformQuantizer

# the definitions of NOTES_ste_dynamics.md section 2.3, written out
EXPECTED = {
    GridKind.A: lambda b, w: -w + (2 * w / (2**b - 1)) * np.arange(2**b),
    GridKind.M: lambda b, w: -w + (2 * w / 2**b) * (np.arange(2**b) + 0.5),
    GridKind.D: lambda b, w: (w / 2 ** (b - 1)) * np.arange(-(2 ** (b - 1)), 2 ** (b - 1) + 1),
    GridKind.C: lambda b, w: (w / (2 ** (b - 1) - 1)) * np.arange(1 - 2 ** (b - 1), 2 ** (b - 1)),
}


@pytest.mark.parametrize("kind", list(GridKind))
@pytest.mark.parametrize(("bits", "omega"), [(2, 1.0), (3, 2.5), (5, 0.3)])
def test_one_definition_shared(kind, bits, omega):
    g = Grid.of_kind(bits, omega, kind)
    np.testing.assert_allclose(g.levels, EXPECTED[kind](bits, omega), rtol=0, atol=1e-15)
    assert g.omega == omega
    assert g.step is not None
    theory = sd.uniform_quantizer(bits, omega, kind)
    training = UniformQuantizer(bits, omega, grid=kind)
    # the theory's and the training's quantizers hand out the very same levels
    assert np.array_equal(theory.to_grid().levels, g.levels)
    assert np.array_equal(training.to_grid().levels, g.levels)
    assert np.array_equal(training.levels, g.levels)
    assert theory.to_grid().omega == training.to_grid().omega == omega


def test_estimators_take_the_shared_grid():
    q = UniformQuantizer(3, 1.0, grid=GridKind.D)
    est = STE(format=q.to_grid())
    assert est.grid.levels.size == 9
    assert alpha(est) == pytest.approx(1.0)
    # and the theory's nearest-level convention is the grid's bin_index
    x = np.linspace(-1.2, 1.2, 97)
    theory = sd.uniform_quantizer(3, 1.0, GridKind.D)
    assert np.array_equal(theory(x), theory.to_grid().levels[theory.to_grid().bin_index(x)])
    np.testing.assert_array_equal(theory.to_grid().jumps, np.diff(theory.to_grid().levels))


@pytest.mark.parametrize(
    ("bits", "omega", "kind", "err", "match"),
    [
        (0, 1.0, GridKind.A, ValueError, "bits must be in"),
        (1, 1.0, GridKind.C, ValueError, r"GridKind\.C"),
        (2.0, 1.0, GridKind.A, TypeError, "bits must be an int"),
        (2, -1.0, GridKind.A, ValueError, "omega must be a positive"),
        (2, float("nan"), GridKind.A, ValueError, "omega must be a positive"),
        (2, "1", GridKind.A, TypeError, "omega"),
        (2, 1.0, "Z", ValueError, "grid"),
    ],
)
def test_bad_grids(bits, omega, kind, err, match):
    with pytest.raises(err, match=match):
        Grid.of_kind(bits, omega, kind)
