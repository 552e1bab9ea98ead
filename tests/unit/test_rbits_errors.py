"""``rbits=`` applicability and its errors (issue 16): each names the parameter, the value, what
is allowed and a hint."""

from __future__ import annotations

import numpy as np
import pytest

import qemu_arrays as qa
from qemu_arrays.formats.spec import Rounding

X = np.array([1.0, 1.01], np.float32)
B = np.array([1, 2], np.uint16)
SR = Rounding.STOCHASTIC


@pytest.mark.parametrize(
    ("kw", "exc", "match"),
    [
        ({"rbits": B}, ValueError, "rbits applies to the stochastic modes"),
        ({"rounding": SR, "rbits": B, "seed": 1}, ValueError, "seed=1 does not apply"),
        ({"rounding": SR, "rbits": B.astype(np.int32)}, TypeError, "unsigned integers"),
        ({"rounding": SR, "rbits": [1, 2]}, TypeError, "numpy.asarray"),
        ({"rounding": SR, "rbits": B, "random_bits": 17}, ValueError, "exceeds the 16 bits"),
        ({"rounding": SR, "rbits": B.astype(np.uint64)}, ValueError, "needs random_bits="),
        ({"rounding": SR, "rbits": np.ones(3, np.uint16)}, ValueError, "does not broadcast"),
    ],
)
def test_rbits_errors(kw, exc, match):
    with pytest.raises(exc, match=match):
        qa.quantize(X, "float8_e4m3fn", **kw)


def test_rbits_not_with_array_scales_nor_on_the_host_route():
    """Block formats take rbits= and STOCHASTIC_EQUAL (tests/oracle/test_block_rbits.py), on
    the CUDA kernels too; integer formats with an array of scales do not, nor does the HOST
    route."""
    from qemu_arrays.dispatch import Route, _check_capability
    from qemu_arrays.request import Op, round_request

    with pytest.raises(NotImplementedError, match="one scale value"):
        qa.quantize(X, "int8", scale=np.array([0.5, 0.25]), rounding=SR, rbits=B)
    kw = {k: None for k in ("overflow", "seed", "random_bits", "scale", "zero_point", "axis",
                            "block_size", "scale_format", "symmetric", "percentile")}  # fmt: skip
    kw.update(overflow=qa.Overflow.OWN, stream=0, offset=0, via_float32=False)
    req = round_request(Op.QUANTIZE, "mxfp8_e4m3", rounding=SR, **{**kw, "rbits": B})
    _check_capability(Route.CUDA, req)  # the CUDA kernels take rbits= (tests/routes/test_cuda*)
    with pytest.raises(NotImplementedError, match="rbits=.*HOST route.*NUMPY, TORCH_CPU, CUDA"):
        _check_capability(Route.HOST, req)
    req = round_request(Op.QUANTIZE, "mxfp8_e4m3", rounding=Rounding.STOCHASTIC_EQUAL,
                        **{**kw, "seed": 1})  # fmt: skip
    _check_capability(Route.CUDA, req)  # the CUDA kernels take STOCHASTIC_EQUAL
    with pytest.raises(NotImplementedError, match="STOCHASTIC_EQUAL.*HOST route"):
        _check_capability(Route.HOST, req)


def test_rbits_uint64_with_random_bits_and_out():
    out = np.empty_like(X)
    got = qa.quantize(X, "float8_e4m3fn", rounding=SR, rbits=B.astype(np.uint64), random_bits=62,
                      out=out)  # fmt: skip
    assert got is out
    assert out.tolist() == [1.0, 1.0]
