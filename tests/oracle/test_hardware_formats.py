"""Formats added with issue 16: ml_dtypes 0.7's float8_e5m3fnu (UE5M3), the int1/uint1 names and
MXINT8's full-range option (0x80 = -2.0), against ml_dtypes and gfloat where installed."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats.spec import Overflow
from tests.conftest import assert_same_codes, assert_same_floats

E5M3 = getattr(ml_dtypes, "float8_e5m3fnu", None)


@pytest.mark.skipif(E5M3 is None, reason="ml_dtypes < 0.7 has no float8_e5m3fnu")
def test_e5m3fnu_matches_ml_dtypes_on_every_float16_pattern():
    fmt = qa.get_format("float8_e5m3fnu")
    codes = np.arange(256, dtype=np.uint8)
    want = codes.view(E5M3).astype(np.float64)
    assert_same_floats(qa.decode(codes, fmt, dtype=np.float64), want, "decode")
    x = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    with np.errstate(invalid="ignore", over="ignore"):
        ml = x.astype(E5M3)
    ml_nan = np.isnan(ml.astype(np.float32))
    got = qa.encode(x, fmt, overflow=Overflow.ML_DTYPES)
    assert np.array_equal(got == 0xFF, ml_nan)
    assert_same_codes(got[~ml_nan], ml.view(np.uint8)[~ml_nan], "encode", inputs=x[~ml_nan])


def test_e5m3fnu_values():
    fmt = qa.get_format("float8_e5m3fnu")
    assert (fmt.max, fmt.smallest_subnormal, fmt.smallest_normal) == (114688.0, 2.0**-17, 2.0**-14)
    x = np.array([-1.0, -0.0, 120000.0, 114688.0, 2.0**-18, 1.5 * 2.0**-18], np.float32)
    assert qa.encode(x, fmt).tolist() == [0xFF, 0x00, 0xFF, 0xFE, 0x00, 0x01]


@pytest.mark.parametrize("name", ["int1", "uint1", "int2", "uint2", "int4", "uint4"])
def test_int_names_have_ml_dtypes_ranges(name):
    fmt = qa.get_format(name)
    dt = getattr(ml_dtypes, name, None)
    if dt is None:
        pytest.skip(f"ml_dtypes {ml_dtypes.__version__} has no {name}")
    info = ml_dtypes.iinfo(dt)
    assert (fmt.min, fmt.max) == (int(info.min), int(info.max))


def test_mxint8_full_range_matches_gfloat_ocp_int8():
    """Elements of a block with scale 1 (amax in [1, 2)): gfloat's ``format_info_ocp_int8``
    (two's complement, min -2.0) with saturation; the symmetric default clamps at -127/64."""
    gfloat = pytest.importorskip("gfloat")
    formats = pytest.importorskip("gfloat.formats")
    v = [-1.995, -1.9921875, 1.9921875, 0.5 / 64, 1.5 / 64, -1.0, -0.3]
    x = np.zeros(32, np.float32)
    x[: len(v)] = v
    want = [
        gfloat.round_float(formats.format_info_ocp_int8, float(np.float32(t)), sat=True) for t in v
    ]
    full = qa.quantize(x, "mxint8_full")[: len(v)]
    assert full.tolist() == want
    assert full[0] == -2.0
    sym = qa.quantize(x, "mxint8")[: len(v)]
    assert sym[0] == -127 / 64
    enc = qa.encode(x, "mxint8")
    enc.codes[0] = 0x80  # decoding 0x80 always gives -2.0, whichever option produced it
    assert qa.decode(enc, "mxint8")[0] == -2.0
