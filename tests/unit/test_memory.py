"""Memory of ``decode`` and ``unpack`` (issue 19): at most 1.5x their output's size of extra
memory, measured with tracemalloc (which sees NumPy's allocations) on a moderate array. Both
work chunk by chunk; ``decode`` of a uint8 code used to peak near 16-40 bytes per code."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import qemu_arrays as qa

SHAPE = (256, 1024)  # 262144 codes: large beside the chunks, small for the suite
LIMIT = 1.5
X = np.random.default_rng(7).standard_normal(SHAPE).astype(np.float32)


def _extra(fn):
    """(result, extra bytes at the peak beyond the result itself) of ``fn()``, warmed up."""
    fn()  # tables, kernels and caches are built once, not per call
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak - out.nbytes


DECODES = [
    ("float8_e4m3fn", {}, np.float32),
    ("float4_e2m1fn", {}, np.float32),
    ("bfloat16", {}, np.float32),
    ("float8_e5m2", {}, np.float16),
    ("float32", {}, np.float32),
    ("int8", {"scale": 0.05}, np.float32),
    ("uint8", {"scale": 0.05, "zero_point": 128}, np.float16),
    ("int8", {"scale": "absmax", "axis": 0}, np.float32),
    ("int4", {"scale": "absmax", "block_size": 32, "symmetric": False}, np.float32),
    ("mxfp4_e2m1", {}, np.float32),
    ("mxfp8_e4m3", {"axis": 0}, np.float32),
    ("nvfp4", {}, np.float32),
]


@pytest.mark.parametrize(("fmt", "kw", "dtype"), DECODES, ids=[f"{f}-{i}" for i, (f, _, _) in
                                                              enumerate(DECODES)])  # fmt: skip
def test_decode_memory(fmt, kw, dtype):
    enc = qa.encode(X, fmt, **kw)
    if isinstance(enc, np.ndarray):  # bare codes: pass the scale again
        extra = {k: kw[k] for k in ("scale", "zero_point") if k in kw}
        out, used = _extra(lambda: qa.decode(enc, fmt, dtype=dtype, **extra))
    else:
        out, used = _extra(lambda: qa.decode(enc, fmt, dtype=dtype))
    assert out.dtype == np.dtype(dtype)
    assert used <= LIMIT * out.nbytes, f"{used / out.size:.2f} extra bytes per code"


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 6, 7, 8])
def test_unpack_memory(bits):
    codes = np.random.default_rng(bits).integers(0, 1 << bits, X.size).astype(np.uint8)
    packed = qa.pack(codes, bits)
    out, used = _extra(lambda: qa.unpack(packed, bits, codes.size))
    np.testing.assert_array_equal(out, codes)
    assert used <= LIMIT * out.nbytes, f"{used / out.size:.2f} extra bytes per code"
