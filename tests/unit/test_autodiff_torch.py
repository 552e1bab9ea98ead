"""PyTorch adapter: forward bit-exact with quantize, backward = estimator derivative x grad."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is an optional extra (qemu-arrays[torch])")

import qemu_arrays as qa  # noqa: E402
from qemu_arrays.autodiff.torch import QuantizedModule, fake_quant, quantize_tensor  # noqa: E402
from qemu_arrays.estimators import DSQ, EDE, HTGE, LSQ, MAD, PWL, STE, Custom  # noqa: E402

CASES = [
    ("float8_e4m3fn", None, torch.float32),
    ("float4_e2m1fn", None, torch.float64),
    ("float8_e5m2", None, torch.bfloat16),
    ("float6_e3m2fn", None, torch.float16),
    ("int4", 0.25, torch.float32),
]
ESTIMATORS = [STE(), PWL(), MAD(), DSQ(k=3.0), HTGE(t=4.0), EDE(progress=0.5)]


def _data(dtype, n=513, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=3.0, size=n)
    return torch.tensor(x, dtype=dtype)


def _bits(t):
    t = t.detach()
    return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]).numpy()


@pytest.mark.parametrize(("fmt", "scale", "dtype"), CASES)
def test_forward_bit_exact(fmt, scale, dtype):
    t = _data(dtype)
    y = fake_quant(t, fmt, scale=scale)
    assert y.dtype == dtype
    assert y.shape == t.shape
    want = qa.quantize(_np(t), fmt, scale=scale)
    np.testing.assert_array_equal(_bits(quantize_tensor(t, fmt, scale=scale)), _np_bits(want))
    np.testing.assert_array_equal(_bits(y), _np_bits(want))


def _np(t):
    from qemu_arrays.autodiff.torch import _to_numpy

    return _to_numpy(t)


def _np_bits(a):
    return a.view({2: np.int16, 4: np.int32, 8: np.int64}[a.dtype.itemsize])


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize(("fmt", "scale", "dtype"), CASES)
def test_backward_is_estimator_derivative(est, fmt, scale, dtype):
    t = _data(dtype, seed=1).requires_grad_(True)
    up = _data(dtype, seed=2)
    y = fake_quant(t, fmt, est, scale=scale)
    y.backward(up)
    bound = est.on(fmt, scale) if est.needs_grid else est
    want = up * bound.derivative(t.detach()).to(dtype)
    np.testing.assert_array_equal(_bits(t.grad), _bits(want))
    # and the derivative itself agrees with the NumPy one
    d64 = bound.derivative(t.detach().double()).numpy()
    np.testing.assert_allclose(d64, bound.derivative(_np(t.detach()).astype(np.float64)))


def test_stochastic_rounding_and_kwargs_pass_through():
    t = _data(torch.float32, seed=3)
    y = fake_quant(t, "float8_e4m3fn", rounding=qa.Rounding.STOCHASTIC, seed=7)
    want = qa.quantize(t.numpy(), "float8_e4m3fn", rounding=qa.Rounding.STOCHASTIC, seed=7)
    np.testing.assert_array_equal(y.numpy(), want)


def test_custom_estimator_and_input_untouched():
    t = _data(torch.float64, seed=4).requires_grad_(True)
    keep = t.detach().clone()
    est = Custom(derivative_fn=lambda x: 1.0 + 0.5 * x * x)
    fake_quant(t, "int8", est, scale=0.1).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), 1.0 + 0.5 * keep.numpy() ** 2)
    np.testing.assert_array_equal(t.detach().numpy(), keep.numpy())


def test_lsq_learns_the_step():
    t = _data(torch.float64, seed=5).requires_grad_(True)
    s = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    up = _data(torch.float64, seed=6)
    fake_quant(t, "int4", LSQ(), scale=s).backward(up)
    est = LSQ(format="int4")
    want_s = est.step_gradient(t.detach().numpy(), up.numpy(), 0.4)
    assert float(s.grad) == pytest.approx(float(want_s), rel=1e-12)
    want_t = up.numpy() * ((t.detach().numpy() / 0.4 >= -8) & (t.detach().numpy() / 0.4 <= 7))
    np.testing.assert_array_equal(t.grad.numpy(), want_t)
    with pytest.raises(ValueError, match="only LSQ"):
        fake_quant(t, "int4", STE(), scale=s)


def test_quantized_module():
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 3)
    qm = QuantizedModule(
        lin, weight_format="float4_e2m1fn", input_format="float8_e4m3fn", estimator=DSQ(k=3.0)
    )
    x = torch.randn(5, 8, requires_grad=True)
    with pytest.warns(UserWarning, match="flush to zero"):  # unscaled FP4: most weights flush
        out = qm(x)
    wq = qa.quantize(lin.weight.detach().numpy(), "float4_e2m1fn")
    xq = qa.quantize(x.detach().numpy(), "float8_e4m3fn")
    want = xq @ wq.T + lin.bias.detach().numpy()
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-6, atol=1e-6)
    out.sum().backward()
    est = DSQ(k=3.0, format="float4_e2m1fn")
    g_wq = np.ones((5, 3), np.float32).T @ xq
    np.testing.assert_allclose(
        lin.weight.grad.numpy(), g_wq * est.derivative(lin.weight.detach().numpy()), rtol=1e-6
    )
    g_xq = np.ones((5, 3), np.float32) @ wq
    d_in = DSQ(k=3.0, format="float8_e4m3fn").derivative(x.detach().numpy())
    np.testing.assert_allclose(x.grad.numpy(), g_xq * d_in, rtol=1e-6)
    assert lin.bias.grad is not None  # the bias is not quantized but still trains
    with pytest.raises(ValueError, match="param_names"):
        QuantizedModule(lin, weight_format="int8", param_names=("kernel",))


def test_bad_arguments():
    with pytest.raises(TypeError, match="torch.Tensor"):
        fake_quant(np.zeros(3), "int8")
    with pytest.raises(TypeError, match="estimator"):
        fake_quant(torch.zeros(3), "int8", "ste", scale=1.0)
