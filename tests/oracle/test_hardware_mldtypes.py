"""The ml-dtypes profile against the installed ml_dtypes, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from qemu_arrays.hardware import profile

ml_dtypes = pytest.importorskip("ml_dtypes")
P = profile("ml-dtypes")


def _inputs(dtype):
    rng = np.random.default_rng(5)
    f = np.finfo(np.float32)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, f.tiny, f.tiny / 3, 1e30, -1e30, 448.0,
               464.0, -57344.0, 61440.0, 6.0, 7.0, 2.0**-127, 3 * 2.0**-129]  # fmt: skip
    x = np.concatenate([special, rng.standard_normal(400) * 10.0 ** rng.integers(-8, 6, 400)])
    return x.astype(dtype)


@pytest.mark.parametrize("name", [n for n in P.formats if hasattr(ml_dtypes, n)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_profile_is_the_installed_cast(name, dtype):
    x = _inputs(dtype)
    t = getattr(ml_dtypes, name)
    with np.errstate(all="ignore"):
        want = x.astype(t)
    got = P.encode(x, name)
    assert np.array_equal(np.asarray(got).view(np.uint8 if t(0).itemsize == 1 else np.uint16),
                          want.view(np.uint8 if want.itemsize == 1 else np.uint16)), name  # fmt: skip
    q = P.quantize(x, name)
    ref = want.astype(dtype)
    same = (q == ref) | (np.isnan(q) & np.isnan(ref))
    assert same.all(), (name, x[~same][:5], q[~same][:5], ref[~same][:5])


def test_profile_refuses_other_formats_and_modes():
    with pytest.raises(ValueError, match="no format 'int8'"):
        P.quantize(np.ones(2, np.float32), "int8")
    with pytest.raises(TypeError, match="takes no rounding"):
        P.quantize(np.ones(2, np.float32), "float8_e4m3fn", rounding="stochastic")
    assert P.rules() is not None
