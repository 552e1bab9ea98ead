"""Shared fixtures: seeded randomness, the probe inputs of a format and bit-exact comparisons."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.backends import Backend, skip_reason


def _uint_of(dtype) -> type:
    return {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[np.dtype(dtype).itemsize]


def _grid(fmt) -> np.ndarray:
    """Every distinct finite value of a float format (at most 16 bits), ascending, float64."""
    from qemu_arrays.formats.reference import decode_exact

    vals = {decode_exact(c, fmt) for c in range(1 << fmt.bits)}
    return np.array(sorted(float(v) for v in vals if not isinstance(v, float)), dtype=np.float64)


def probe_values(fmt, dtype=np.float32) -> np.ndarray:
    """The inputs that decide a rounding: every finite value of ``fmt``, every midpoint between
    neighbours, the first grid point past max and the midpoint before it, tiny magnitudes below
    the smallest one, each of these negated, one ``dtype`` ulp either side of each, ±0 and ±inf.
    Only values exactly representable in ``dtype`` are kept. NaN is not included."""
    dtype = np.dtype(dtype)
    grid = _grid(fmt)
    pos = grid[grid > 0]
    mids = (grid[1:] + grid[:-1]) / 2
    top = fmt.max + math.ldexp(1.0, fmt.emax - fmt.mantissa_bits)
    tiny = pos[0] * np.array([0.5, 0.25, 0.75, 2.0**-8])
    base = np.concatenate([grid, mids, [top, (top + fmt.max) / 2, 2 * top], tiny])
    base = np.concatenate([base, -base])
    with np.errstate(over="ignore", under="ignore"):
        cast = base.astype(dtype)
        exact = np.isfinite(cast) & (cast.astype(np.float64) == base)
        cast = cast[exact]
        inf = np.array(np.inf, dtype=dtype)
        x = np.concatenate([cast, np.nextafter(cast, inf), np.nextafter(cast, -inf)])
    x = np.unique(x[np.isfinite(x)])
    specials = np.array([0.0, -0.0, np.inf, -np.inf], dtype=dtype)
    return np.concatenate([x[x != 0], specials])


def assert_same_floats(got, expected, context=""):
    """Bit-identical float arrays (sign of zero included), NaN compared by isnan only."""
    got = np.asarray(got)
    expected = np.asarray(expected)
    assert got.dtype == expected.dtype, f"{context}: dtype {got.dtype} != {expected.dtype}"
    assert got.shape == expected.shape, f"{context}: shape {got.shape} != {expected.shape}"
    with np.errstate(invalid="ignore"):
        g_nan = np.isnan(got.astype(np.float64))
        e_nan = np.isnan(expected.astype(np.float64))
    ut = _uint_of(got.dtype)
    bad = (g_nan != e_nan) | (~g_nan & ~e_nan & (got.view(ut) != expected.view(ut)))
    if bad.any():
        idx = np.flatnonzero(bad)
        examples = [(i, got.flat[i], expected.flat[i]) for i in idx[:8]]
        pytest.fail(f"{context}: {idx.size} mismatches (index, got, expected): {examples}")


def assert_same_codes(got, expected, context="", inputs=None):
    got = np.asarray(got)
    expected = np.asarray(expected)
    assert got.shape == expected.shape, f"{context}: shape {got.shape} != {expected.shape}"
    bad = got.astype(np.uint64) != expected.astype(np.uint64)
    if bad.any():
        idx = np.flatnonzero(bad)
        examples = [
            (
                None if inputs is None else float(np.asarray(inputs).flat[i]),
                hex(int(got.flat[i])),
                hex(int(expected.flat[i])),
            )
            for i in idx[:8]
        ]
        pytest.fail(f"{context}: {idx.size} code mismatches (input, got, expected): {examples}")


@pytest.fixture(params=list(Backend), ids=lambda b: b.value)
def backend(request):
    """Each array library in turn (tests/backends.py); a row that cannot run here is skipped
    with its reason (not installed, no GPU, simulator not enabled)."""
    reason = skip_reason(request.param)
    if reason:
        pytest.skip(reason)
    return request.param


@pytest.fixture
def rng():
    """A freshly seeded numpy Generator (every random draw in the suite is seeded)."""
    return np.random.default_rng(20240607)


@pytest.fixture(scope="session")
def probe():
    """``probe(fmt, dtype)``: the deciding inputs of a format (see :func:`probe_values`)."""
    return probe_values


@pytest.fixture(scope="session")
def grid():
    """``grid(fmt)``: every distinct finite value of a float format, ascending."""
    return _grid


@pytest.fixture(scope="session")
def same_floats():
    """``same_floats(got, expected, context)``: bit-identical floats, NaN by isnan."""
    return assert_same_floats


@pytest.fixture(scope="session")
def same_codes():
    """``same_codes(got, expected, context, inputs)``: identical integer codes."""
    return assert_same_codes
