"""The rounding modes of issue 16 (ties to zero, to odd, toward +inf/-inf, away from zero,
jamming, equal-probability stochastic) on every route, against the exact reference and against
a table probed from APyTypes.

The NumPy route's numba kernels are checked on every deciding input of every small format in
``test_cpu_exact.py`` (its ``MODES`` hold every member); here: the generic array-API route on the
same inputs, the APyTypes table, and the properties that define JAM and STOCHASTIC_EQUAL.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats.catalog import get_format, minifloat
from qemu_arrays.formats.reference import encode_value, quantize_value, random_bits
from qemu_arrays.formats.spec import Rounding, Specials
from qemu_arrays.routes import generic
from tests.conftest import assert_same_floats

NEW = (
    Rounding.NEAREST_ZERO, Rounding.NEAREST_ODD, Rounding.NEAREST_UP, Rounding.NEAREST_DOWN,
    Rounding.AWAY_FROM_ZERO, Rounding.JAM,
)  # fmt: skip

# ---- APyTypes 0.5.1 (probed) --------------------------------------------------------------------
# Probed in a scratch venv with apytypes 0.5.1 (not a test dependency):
#   APyFloat.from_float(v, 11, 52, 1023).cast(4, 3, 7, QuantizationMode.<mode>)
# i.e. float64 input into APyTypes' IEEE-like E4M3 (bias 7, exponent 15 reserved: max 240), which
# is minifloat(4, 3, bias=7, specials=IEEE) here. No input lies between the largest subnormal and
# the smallest normal, where APyTypes 0.5.1 wrongly returns 0 (fixed upstream in 80da2f51).
APY_E4M3 = minifloat(4, 3, bias=7, specials=Specials.IEEE, name="apy_e4m3")
# fmt: off
VALUES = (1.0, 1.0625, 1.1875, 1.09375, 1.03125, -1.0625, -1.1875, -1.09375, 1.5, 3.25, 3.75, -3.25, 0.00146484375, 0.00244140625, -0.00244140625, 0.00048828125, 0.000244140625, 0.000244140625, -0.000244140625, 0.0009765625, 0.0, -0.0, 232.0, 236.0, 240.0, 244.0, 248.0, 250.0, 300.0, -248.0, -300.0, -1000000000.0, 1000000000.0, 1.0000000009313226, -1.0000000009313226, 7.0, 7.5, 0.3, -0.3)
inf = math.inf
APYTYPES = {
    'TIES_ZERO': (1.0, 1.0, 1.125, 1.125, 1.0, -1.0, -1.125, -1.125, 1.5, 3.25, 3.75, -3.25, 0.001953125, 0.001953125, -0.001953125, 0.0, 0.0, 0.0, -0.0, 0.0, 0.0, -0.0, 224.0, 240.0, 240.0, 240.0, 240.0, inf, inf, -240.0, -inf, -inf, inf, 1.0, -1.0, 7.0, 7.5, 0.3125, -0.3125),
    'TIES_ODD': (1.0, 1.125, 1.125, 1.125, 1.0, -1.125, -1.125, -1.125, 1.5, 3.25, 3.75, -3.25, 0.001953125, 0.001953125, -0.001953125, 0.0, 0.0, 0.0, -0.0, 0.001953125, 0.0, -0.0, 240.0, 240.0, 240.0, 240.0, 240.0, inf, inf, -240.0, -inf, -inf, inf, 1.0, -1.0, 7.0, 7.5, 0.3125, -0.3125),
    'TIES_POS': (1.0, 1.125, 1.25, 1.125, 1.0, -1.0, -1.125, -1.125, 1.5, 3.25, 3.75, -3.25, 0.001953125, 0.001953125, -0.001953125, 0.0, 0.0, 0.0, -0.0, 0.001953125, 0.0, -0.0, 240.0, 240.0, 240.0, 240.0, inf, inf, inf, -240.0, -inf, -inf, inf, 1.0, -1.0, 7.0, 7.5, 0.3125, -0.3125),
    'TIES_NEG': (1.0, 1.0, 1.125, 1.125, 1.0, -1.125, -1.25, -1.125, 1.5, 3.25, 3.75, -3.25, 0.001953125, 0.001953125, -0.001953125, 0.0, 0.0, 0.0, -0.0, 0.0, 0.0, -0.0, 224.0, 240.0, 240.0, 240.0, 240.0, inf, inf, -inf, -inf, -inf, inf, 1.0, -1.0, 7.0, 7.5, 0.3125, -0.3125),
    'TO_AWAY': (1.0, 1.125, 1.25, 1.125, 1.125, -1.125, -1.25, -1.125, 1.5, 3.25, 3.75, -3.25, 0.001953125, 0.00390625, -0.00390625, 0.001953125, 0.001953125, 0.001953125, -0.001953125, 0.001953125, 0.0, -0.0, 240.0, 240.0, 240.0, inf, inf, inf, inf, -inf, -inf, -inf, inf, 1.125, -1.125, 7.0, 7.5, 0.3125, -0.3125),
    'JAM': (1.125, 1.125, 1.125, 1.125, 1.125, -1.125, -1.125, -1.125, 1.625, 3.25, 3.75, -3.25, 0.001953125, 0.001953125, -0.001953125, 0.001953125, 0.001953125, 0.001953125, -0.001953125, 0.001953125, 0.0, -0.0, 240.0, 240.0, 240.0, 240.0, 240.0, 240.0, 240.0, -240.0, -240.0, -240.0, 240.0, 1.125, -1.125, 7.5, 7.5, 0.28125, -0.28125),
    'TIES_EVEN': (1.0, 1.0, 1.25, 1.125, 1.0, -1.0, -1.25, -1.125, 1.5, 3.25, 3.75, -3.25, 0.001953125, 0.001953125, -0.001953125, 0.0, 0.0, 0.0, -0.0, 0.0, 0.0, -0.0, 224.0, 240.0, 240.0, 240.0, inf, inf, inf, -inf, -inf, -inf, inf, 1.0, -1.0, 7.0, 7.5, 0.3125, -0.3125),
    'TIES_AWAY': (1.0, 1.125, 1.25, 1.125, 1.0, -1.125, -1.25, -1.125, 1.5, 3.25, 3.75, -3.25, 0.001953125, 0.001953125, -0.001953125, 0.0, 0.0, 0.0, -0.0, 0.001953125, 0.0, -0.0, 240.0, 240.0, 240.0, 240.0, inf, inf, inf, -inf, -inf, -inf, inf, 1.0, -1.0, 7.0, 7.5, 0.3125, -0.3125),
    'TO_ZERO': (1.0, 1.0, 1.125, 1.0, 1.0, -1.0, -1.125, -1.0, 1.5, 3.25, 3.75, -3.25, 0.0, 0.001953125, -0.001953125, 0.0, 0.0, 0.0, -0.0, 0.0, 0.0, -0.0, 224.0, 224.0, 240.0, 240.0, 240.0, 240.0, 240.0, -240.0, -240.0, -240.0, 240.0, 1.0, -1.0, 7.0, 7.5, 0.28125, -0.28125),
    'TO_POS': (1.0, 1.125, 1.25, 1.125, 1.125, -1.0, -1.125, -1.0, 1.5, 3.25, 3.75, -3.25, 0.001953125, 0.00390625, -0.001953125, 0.001953125, 0.001953125, 0.001953125, -0.0, 0.001953125, 0.0, -0.0, 240.0, 240.0, 240.0, inf, inf, inf, inf, -240.0, -240.0, -240.0, inf, 1.125, -1.0, 7.0, 7.5, 0.3125, -0.28125),
    'TO_NEG': (1.0, 1.0, 1.125, 1.0, 1.0, -1.125, -1.25, -1.125, 1.5, 3.25, 3.75, -3.25, 0.0, 0.001953125, -0.00390625, 0.0, 0.0, 0.0, -0.001953125, 0.0, 0.0, -0.0, 224.0, 224.0, 240.0, 240.0, 240.0, 240.0, 240.0, -inf, -inf, -inf, 240.0, 1.0, -1.125, 7.0, 7.5, 0.28125, -0.3125),
    'JAM_UNBIASED': (1.0, 1.125, 1.125, 1.125, 1.125, -1.125, -1.125, -1.125, 1.5, 3.25, 3.75, -3.25, 0.001953125, 0.001953125, -0.001953125, 0.001953125, 0.001953125, 0.001953125, -0.001953125, 0.001953125, 0.0, -0.0, 240.0, 240.0, 240.0, 240.0, 240.0, 240.0, 240.0, -240.0, -240.0, -240.0, 240.0, 1.125, -1.125, 7.0, 7.5, 0.28125, -0.28125),
}
# fmt: on
APY_MODE = {
    "TIES_ZERO": Rounding.NEAREST_ZERO,
    "TIES_ODD": Rounding.NEAREST_ODD,
    "TIES_POS": Rounding.NEAREST_UP,
    "TIES_NEG": Rounding.NEAREST_DOWN,
    "TO_AWAY": Rounding.AWAY_FROM_ZERO,
    "JAM": Rounding.JAM,
    "TIES_EVEN": Rounding.NEAREST_EVEN,
    "TIES_AWAY": Rounding.NEAREST_AWAY,
    "TO_ZERO": Rounding.TOWARD_ZERO,
    "TO_POS": Rounding.UP,
    "TO_NEG": Rounding.DOWN,
    "JAM_UNBIASED": Rounding.TO_ODD,
}  # fmt: skip


def _generic(x, fmt, mode, **kw):
    import array_api_strict as xps

    return np.asarray(generic.quantize(xps.asarray(x), fmt, rounding=mode, **kw))


@pytest.mark.parametrize("name", sorted(APYTYPES))
def test_apytypes_table(name):
    mode = APY_MODE[name]
    x = np.array(VALUES, dtype=np.float64)
    want = np.array(APYTYPES[name], dtype=np.float64)
    ref = np.array([quantize_value(v, APY_E4M3, mode) for v in VALUES])
    assert_same_floats(ref, want, f"reference {name}")
    assert_same_floats(qa.quantize(x, APY_E4M3, rounding=mode), want, f"numpy {name}")
    assert_same_floats(_generic(x, APY_E4M3, mode), want, f"generic {name}")


def test_apytypes_live():
    """Against the installed APyTypes, where it is (not a test dependency), working around its
    0.5.1 bug: a value above the largest subnormal that it sends to 0 should be min normal."""
    apy = pytest.importorskip("apytypes")
    rng = np.random.default_rng(5)
    x = np.ldexp(rng.uniform(1, 2, 300), rng.integers(-12, 9, 300)) * rng.choice([-1, 1], 300)
    for name, mode in APY_MODE.items():
        q = getattr(apy.QuantizationMode, name)
        want = np.array(
            [float(apy.APyFloat.from_float(float(v), 11, 52, 1023).cast(4, 3, 7, q)) for v in x]
        )
        bug = (want == 0) & (np.abs(x) > APY_E4M3.smallest_normal * (1 - 2.0**-3))
        want = np.where(bug, np.copysign(APY_E4M3.smallest_normal, x), want)
        assert_same_floats(qa.quantize(x, APY_E4M3, rounding=mode), want, name)


# ---- the generic route on every deciding input -------------------------------------------------

GENERIC_FORMATS = ("float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "float8_e8m0fnu", "int8")


@pytest.mark.parametrize("mode", [*NEW, Rounding.STOCHASTIC_EQUAL], ids=lambda m: m.name)
@pytest.mark.parametrize("name", GENERIC_FORMATS)
def test_generic_route_matches_reference(name, mode, probe):
    fmt = get_format(name)
    scale = {"scale": 0.25} if fmt.name == "int8" else {}
    x = probe(get_format("float8_e4m3fn") if scale else fmt, np.float32)
    if fmt.name == "float8_e8m0fnu":
        x = x[x > 0]
    kw = {"seed": 9} if mode.stochastic else {}
    want = []
    for i, v in enumerate(x.tolist()):
        rkw = {"u": random_bits(9, 0, i, 32), "r": 32} if mode.stochastic else {}
        want.append(quantize_value(v, fmt, mode, input_dtype="float32", **scale, **rkw))
    want = np.array(want, dtype=np.float32)
    assert_same_floats(_generic(x, fmt, mode, **kw, **scale), want, f"generic {name}")
    assert_same_floats(qa.quantize(x, fmt, rounding=mode, **kw, **scale), want, f"numpy {name}")


# ---- JAM and STOCHASTIC_EQUAL -------------------------------------------------------------------


def test_jam_sets_the_last_bit_when_the_grid_is_coarser_than_the_input():
    fmt = get_format("float8_e4m3fn")
    # float64 and float32 input: 1.0 has bits below E4M3's last one (all zero): jammed
    for dt in (np.float64, np.float32):
        assert qa.quantize(np.array([1.0, -2.0, 0.0], dt), fmt, rounding=Rounding.JAM).tolist() == [
            1.125,
            -2.25,
            0.0,
        ]
    # no bit dropped: float32 input into float32 is unchanged, tiny values become the smallest
    one = np.array([1.0, 2.0**-140], np.float32)
    assert qa.quantize(one, "float32", rounding=Rounding.JAM).tolist() == [1.0, 2.0**-140]
    assert quantize_value(2.0**-30, fmt, Rounding.JAM) == fmt.smallest_subnormal
    assert quantize_value(1e9, fmt, Rounding.JAM) == 448.0  # never rounds up: overflow is max
    # integer formats: the float64 quotient's grid is finer than 1 (k | 1), exact 0 stays 0
    got = qa.quantize(np.array([2.0, 0.0, -4.0, 1000.0]), "int8", scale=1.0, rounding=Rounding.JAM)
    assert got.tolist() == [3.0, 0.0, -5.0, 127.0]


def test_stochastic_equal_rounds_inexact_values_up_with_probability_one_half():
    fmt = get_format("float8_e4m3fn")
    n = 4000
    for f in (1 / 64, 0.5, 63 / 64):
        x = np.full(n, 1.0 + f / 8, np.float32)
        got = qa.quantize(x, fmt, rounding=Rounding.STOCHASTIC_EQUAL, seed=4)
        ups = np.count_nonzero(got == 1.125)
        assert np.all((got == 1.0) | (got == 1.125))
        assert abs(ups - n / 2) < 4 * math.sqrt(n) / 2, (f, ups)  # 4 sigma
    exact = np.full(n, 1.125, np.float32)
    assert np.all(qa.quantize(exact, fmt, rounding=Rounding.STOCHASTIC_EQUAL, seed=4) == 1.125)


def test_stochastic_equal_encode_and_dask():
    fmt = get_format("float8_e5m2")
    x = np.linspace(-3, 3, 101, dtype=np.float32)
    codes = qa.encode(x, fmt, rounding=Rounding.STOCHASTIC_EQUAL, seed=1)
    want = [
        encode_value(v, fmt, Rounding.STOCHASTIC_EQUAL, u=random_bits(1, 0, i, 32), r=32)
        for i, v in enumerate(x.tolist())
    ]
    assert codes.tolist() == want
