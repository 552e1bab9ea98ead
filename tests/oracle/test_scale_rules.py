"""The E8M0 scale rules of issue 16 beyond OCP's FLOOR: ``ScaleRule.CEIL_POW2`` (torchao's CEIL),
``RFLOOR`` (CUDA's round-toward-zero of ``amax / max``) and ``RHALF_UP`` (ml_dtypes' cast of
``amax / max``), against a table computed by hand, on every route against the exact reference,
the select-only CPU step against the shared one at each rule's thresholds, and ml_dtypes'
``float8_e8m0fnu`` cast where it runs.

The parametrized tests over ``list(ScaleRule)`` in tests/oracle/test_blocks.py,
tests/routes/test_blocks_fastpath.py and tests/routes/test_cuda_blocks.py run these rules too.
"""

from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats import reference as ref
from qemu_arrays.formats.enums import ScaleRule
from tests.backends import Backend, capability, supports, to_backend, to_numpy

NEW = (ScaleRule.CEIL_POW2, ScaleRule.RFLOOR, ScaleRule.RHALF_UP)
MX = ("mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4_e2m1", "mxint8")

# (format, amax, CEIL_POW2, RFLOOR, RHALF_UP): the unbiased scale exponent, by hand. CEIL_POW2 =
# ceil(log2 amax) - emax; RFLOOR = floor(log2 q), q = amax / max; RHALF_UP = the k of the power
# of two nearest to q, 1.5 * 2^k going up (E4M3 emax 8 max 448, E5M2 15 / 57344, E2M1 2 / 6,
# MXINT8 0 / 127/64).
TABLE = [
    ("mxfp8_e4m3", 1.0, -8, -9, -9),  # q = 2^-9 * 512/448
    ("mxfp8_e4m3", 300.0, 1, -1, -1),  # q = 0.67: below 3/4
    ("mxfp8_e4m3", 336.0, 1, -1, 0),  # q = 3/4 exactly: up
    ("mxfp8_e4m3", 384.0, 1, -1, 0),
    ("mxfp8_e4m3", 448.0, 1, 0, 0),  # q = 1
    ("mxfp8_e4m3", 449.0, 1, 0, 0),
    ("mxfp8_e4m3", 672.0, 2, 0, 1),  # q = 3/2 exactly: up
    ("mxfp8_e4m3", 671.0, 2, 0, 0),
    ("mxfp8_e4m3", 255 / 128, -7, -8, -8),
    ("mxfp8_e4m3", 256.0, 0, -1, -1),  # a power of two: CEIL_POW2 stays; q = 4/7
    ("mxfp4_e2m1", 6.0, 1, 0, 0),
    ("mxfp4_e2m1", 7.0, 1, 0, 0),
    ("mxfp4_e2m1", 5.0, 1, -1, 0),
    ("mxfp4_e2m1", 4.5, 1, -1, 0),  # q = 3/4
    ("mxfp4_e2m1", 4.0, 0, -1, -1),
    ("mxfp8_e5m2", 480.0, -6, -7, -7),
    ("mxint8", 127 / 64, 1, 0, 0),
    ("mxint8", 255 / 128, 1, 0, 0),
    ("mxint8", 381 / 128, 2, 0, 1),  # q = 3/2
]


@pytest.mark.parametrize(("name", "amax", "c", "z", "h"), TABLE)
def test_reference_and_numpy_against_the_table(name, amax, c, z, h):
    for rule, want in zip(NEW, (c, z, h)):
        fmt = qa.get_format(name).with_rule(rule)
        assert ref.shared_exponent(Fraction(amax), fmt) == want, rule.name
        for dt in (np.float32, np.float64):
            x = np.zeros((1, 32), dt)
            x[0, 9] = -amax
            assert int(qa.encode(x, fmt).scales[0, 0]) == want + 127, (rule.name, dt)


def _threshold_blocks(name) -> np.ndarray:
    """Rows of 32 whose maxima sit on and one float32 ulp around each rule's thresholds
    (powers of two, max, 3/4 and 3/2 of max, times 2^k), and in the float32 subnormals."""
    mx = qa.get_format(name).element_max
    base = [1.0, mx, 0.75 * mx, 1.5 * mx, 0.5 * mx]
    amax = []
    for k in (-130, -126, -60, -1, 0, 7, 60):
        for b in base:
            v = np.float32(b * 2.0**k)
            amax += [v, np.nextafter(v, np.float32(0)), np.nextafter(v, np.float32(np.inf))]
    amax = np.array(amax, np.float32)
    amax = amax[np.isfinite(amax) & (amax > 0)]
    x = np.outer(amax, np.linspace(-1, 1, 32, dtype=np.float32)).astype(np.float32)
    x[:, 31] = amax
    return np.concatenate([x, np.zeros((1, 32), np.float32)])


@pytest.mark.parametrize("rule", NEW, ids=lambda r: r.name)
def test_numpy_matches_reference_at_thresholds(rule):
    for name in ("mxfp8_e4m3", "mxfp4_e2m1", "mxint8"):
        fmt = qa.get_format(name).with_rule(rule)
        x = _threshold_blocks(name)
        want = np.array(ref.quantize_blocks(x, fmt), np.float64)
        got = qa.quantize(x, fmt)
        np.testing.assert_array_equal(got, want.astype(np.float32), err_msg=name)
        wanted = [ref.shared_exponent(Fraction(float(a)), fmt) for a in x.max(axis=1)]
        codes = qa.encode(x, fmt).scales[:, 0].astype(int)
        assert codes.tolist()[:-1] == [max(e, -127) + 127 for e in wanted[:-1]], name
        assert codes[-1] == 0  # the all-zero block


@pytest.mark.parametrize("rule", NEW, ids=lambda r: r.name)
def test_select_step_equals_shared_step_at_thresholds(rule):
    from qemu_arrays.kernels import blocks as kb

    for name in MX:
        fmt = qa.get_format(name)
        el = fmt.element
        mprec, maxsig = (el.mantissa_bits, el.params()[3]) if hasattr(el, "mantissa_bits") else (
            el.max.bit_length() - 1, el.max)  # fmt: skip
        sh, mref = kb.block_exponent_consts(mprec, maxsig)
        for a in _threshold_blocks(name).max(axis=1).view(np.uint32).tolist()[:-1]:
            _, M, E, _ = kb.split_bits(a, 8, 23)
            want = kb.shared_exponent(M, E, int(rule), mprec, fmt.element_emax, maxsig)
            got = kb.block_exponent_f32(a, int(rule), sh, mref, mprec, fmt.element_emax, maxsig)
            assert got == want, (name, hex(a), got, want)


def test_an_unknown_rule_code_gets_a_nan_scale_not_another_rule():
    """The kernels take rule codes: one that is no ScaleRule must not fall into a rule."""
    from qemu_arrays.formats import block_cores as bc
    from qemu_arrays.kernels import blocks as kb

    a = int(np.float32(300.0).view(np.uint32))
    _, M, E, _ = kb.split_bits(a, 8, 23)
    for code in (7, 99, -1):
        assert bc.shared_exponent(M, E, code, 3, 8, 14) == bc.NO_RULE
        assert kb.block_exponent_f32(a, code, 20, 0x600000, 3, 8, 14) > 127


def test_every_route_matches_numpy(backend):
    if backend in (Backend.NUMPY_READONLY, Backend.JAX_CPU):
        pytest.skip("the NumPy route itself; JAX takes the generic route of array_api_strict")
    if not capability(backend, block=True).block:
        pytest.skip(f"no block formats on {backend.value}")
    for rule in NEW:
        for name, dt in (("mxfp8_e4m3", np.float32), ("mxint8", np.float64),
                         ("mxfp4_e2m1", np.float32)):  # fmt: skip
            if not supports(backend, dt):
                continue
            fmt = qa.get_format(name).with_rule(rule)
            x = _threshold_blocks(name).astype(dt)
            want = qa.quantize(x, fmt).astype(np.float64)
            got = to_numpy(backend, qa.quantize(to_backend(backend, x), fmt)).astype(np.float64)
            np.testing.assert_array_equal(got, want, err_msg=f"{name} {rule.name}")
            enc = qa.encode(to_backend(backend, x), fmt)
            np.testing.assert_array_equal(to_numpy(backend, enc.scales), qa.encode(x, fmt).scales)


def test_rhalf_up_is_ml_dtypes_cast_of_the_quotient():
    """ScaleRule.RHALF_UP against the installed ml_dtypes: the float32 quotient amax / max cast
    to float8_e8m0fnu, on normal quotients (ml_dtypes < 0.7 rounds float32 subnormals into E8M0
    otherwise, docs/formats.md) and ties 1.5 * 2^k."""
    rng = np.random.default_rng(5)
    for name in MX:
        fmt = qa.get_format(name).with_rule(ScaleRule.RHALF_UP)
        mx = np.float32(fmt.element_max)
        q = np.concatenate([
            (rng.uniform(1, 2, 400) * 2.0 ** rng.integers(-120, 120, 400)).astype(np.float32),
            (np.float32(1.5) * np.exp2(np.arange(-120, 120))).astype(np.float32),
        ])  # fmt: skip
        with np.errstate(over="ignore"):
            amax = q * mx  # the quotient is computed back from amax below, as a library does
        ok = np.isfinite(amax)
        amax = amax[ok]
        quot = amax / mx
        keep = quot >= np.float32(2.0**-126)
        amax, quot = amax[keep], quot[keep]
        want = quot.astype(ml_dtypes.float8_e8m0fnu).view(np.uint8)
        x = np.zeros((amax.size, 32), np.float32)
        x[:, 4] = amax
        got = qa.encode(x, fmt).scales[:, 0]
        assert np.array_equal(got, want), (name, amax[got != want][:4], got[got != want][:4])
