"""qemu_arrays.torch in training loops: scaled and block formats through every estimator, the
custom op under torch.compile, quantize_model, fresh stochastic bits per step, digits QAT."""

from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is an optional extra (qemu-arrays[torch])")

import qemu_arrays as qa  # noqa: E402
import qemu_arrays.torch as qt  # noqa: E402
from qemu_arrays.estimators import DSQ, HTGE, PWL  # noqa: E402


def _x(shape=(6, 64), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * torch.linspace(0.01, 5, shape[0])[:, None]


@pytest.mark.parametrize(
    ("fmt", "kw"),
    [
        ("int8", {"scale": "absmax"}),
        ("int4", {"scale": "absmax", "axis": 0}),
        ("float4_e2m1fn", {"scale": "absmax", "axis": 0}),
        ("float8_e4m3fn", {"scale": "absmax", "block_size": 16, "scale_format": "float8_e8m0fnu"}),
        ("int8", {"scale": torch.linspace(0.01, 0.05, 6)[:, None], "axis": 0}),
    ],
    ids=["int8-absmax", "int4-channel", "fp4-channel", "fp8-groups-e8m0", "int8-tensor-scales"],
)
def test_fake_quant_scaled_is_quantize_with_ste(fmt, kw):
    t = _x().requires_grad_(True)
    y = qt.fake_quant(t, fmt, **kw)
    np_kw = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    np.testing.assert_array_equal(y.detach().numpy(), qa.quantize(t.detach().numpy(), fmt, **np_kw))
    y.backward(torch.full_like(t, 3.0))
    assert bool((t.grad == 3.0).all())


@pytest.mark.parametrize("est", [DSQ(k=3.0), HTGE(t=4.0), PWL()], ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("fmt", ["mxfp4_e2m1", "nvfp4", "float4_e2m1fn"])
def test_estimators_on_block_and_scaled_formats(est, fmt):
    """The gradient is the estimator's derivative on the element grid at t / s, s each
    element's (block) scale; not the STE's."""
    kw = {"scale": "absmax", "axis": 0} if fmt == "float4_e2m1fn" else {}
    t = _x((4, 64), seed=1).requires_grad_(True)
    up = _x((4, 64), seed=2)
    y = qt.fake_quant(t, fmt, est, **kw)
    np.testing.assert_array_equal(y.detach().numpy(), qa.quantize(t.detach().numpy(), fmt, **kw))
    y.backward(up)
    s = qt.element_scales(t, fmt, **kw)
    enc = qa.encode(t.detach().numpy(), fmt, **kw)
    if fmt != "float4_e2m1fn":  # the block scales, one per 32 (MX) or 16 (NVFP4) elements
        blk = qa.get_format(fmt).block_size
        want = qa.decode(enc.scales, qa.get_format(fmt).scale, dtype=np.float64)
        want = want * (1.0 if enc.tensor_scale is None else float(enc.tensor_scale))
        np.testing.assert_array_equal(s.numpy()[:, ::blk], want)
    elem = qa.get_format(fmt).element if fmt != "float4_e2m1fn" else "float4_e2m1fn"
    d = est.on(elem).derivative(t.detach().double() / s).float()
    np.testing.assert_array_equal(t.grad.numpy(), (up * d).numpy())
    if not isinstance(est, PWL):  # (PWL is the STE inside the range absmax scales to)
        assert not bool((d == 1).all())  # a real estimator, not the STE


def test_quantize_never_silently_detaches():
    t = _x().requires_grad_(True)
    with pytest.raises(ValueError, match="fake_quant"):
        qa.quantize(t, "float8_e4m3fn")
    with torch.no_grad():
        a = qa.quantize(t, "float8_e4m3fn")
    np.testing.assert_array_equal(a.numpy(), qa.quantize(t.detach(), "float8_e4m3fn").numpy())


def test_torch_compile_fullgraph():
    """The forward pass is a registered custom op with a fake implementation: dynamo and
    AOTAutograd trace it in one graph, forward and backward, with the eager values."""

    def f(x, w):
        xq = qt.fake_quant(x, "float8_e4m3fn", rounding=qa.Rounding.STOCHASTIC, seed=3)
        return (xq @ qt.fake_quant(w, "int8", scale="absmax")).sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    x, w = _x((8, 16)).requires_grad_(True), _x((16, 4), 1).requires_grad_(True)
    y = compiled(x, w)
    y.backward()
    assert y.item() == f(x, w).item()
    gx = x.grad.clone()
    x.grad = None
    f(x, w).backward()
    np.testing.assert_array_equal(gx.numpy(), x.grad.numpy())


def _mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def test_quantize_model_swaps_in_place_and_saves():
    model = _mlp()
    keys = set(model.state_dict())
    out = qt.quantize_model(model, weights="int4", activations="float8_e4m3fn", skip=("2",))
    assert out is model
    assert type(model[0]) is qt.QuantizedLinear
    assert type(model[2]) is torch.nn.Linear  # skipped
    assert set(model.state_dict()) == keys | {"0.qat_step"}
    x = _x((5, 64))
    y = model(x)
    w = model[0].weight.detach().numpy()
    xq = qa.quantize(x.numpy(), "float8_e4m3fn", scale="absmax")
    h = xq @ qa.quantize(w, "int4", scale="absmax").T + model[0].bias.detach().numpy()
    want = np.maximum(h, 0) @ model[2].weight.detach().numpy().T + model[2].bias.detach().numpy()
    np.testing.assert_allclose(y.detach().numpy(), want, rtol=1e-5, atol=1e-6)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    other = qt.quantize_model(_mlp(1), weights="int4", activations="float8_e4m3fn", skip="2")
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert int(other[0].qat_step) == 1
    np.testing.assert_array_equal(
        other.eval()(x).detach().numpy(), model.eval()(x).detach().numpy()
    )
    with pytest.raises(ValueError, match="nothing was quantized"):
        qt.quantize_model(_mlp(), weights="int8", skip="*")


def test_gradient_quantizer():
    lin = torch.nn.Linear(16, 8)
    qt.quantize_model(lin, gradients="float8_e5m2")
    x = _x((4, 16)).requires_grad_(True)
    up = _x((4, 8), seed=3) * 1e-3
    lin(x).backward(up)
    gq = qa.quantize(up.numpy(), "float8_e5m2", scale="absmax")
    np.testing.assert_allclose(x.grad.numpy(), gq @ lin.weight.detach().numpy(), rtol=1e-6)
    assert not np.allclose(x.grad.numpy(), up.numpy() @ lin.weight.detach().numpy(), rtol=1e-6)


def test_stochastic_rounding_draws_fresh_bits_each_step():
    spec = qt.QuantSpec("int4", scale="absmax", rounding="stochastic", seed=5)

    def weights_seen(steps, train=True):
        lin = qt.quantize_model(torch.nn.Linear(64, 8), weights=spec)
        with torch.no_grad():
            lin.weight.copy_(_x((8, 64)))
        lin.train(train)
        seen = []
        for _ in range(steps):
            lin(_x((2, 64)))
            seen.append(lin._qat_weight(lin.weight).detach().numpy().copy())
        return seen

    a, b = weights_seen(3), weights_seen(3)
    for p, q in zip(a, b, strict=True):
        np.testing.assert_array_equal(p, q)  # reproducible from the seed
    assert not np.array_equal(a[0], a[1])  # fresh bits at every step
    assert not np.array_equal(a[1], a[2])
    e = weights_seen(2, train=False)
    np.testing.assert_array_equal(e[0], e[1])  # eval: no step


def test_unscaled_float_format_warns_once():
    torch.manual_seed(0)
    qm = qt.QuantizedModule(torch.nn.Linear(64, 10), weight_format="float4_e2m1fn")
    with pytest.warns(qt.QuantizationWarning, match="scale='absmax'"):
        qm(_x((2, 64)))
    qm(_x((2, 64)))  # once per module (warnings are errors in this suite)


def test_digits_mlp_trains_with_fp4_weights_fp8_activations_and_gradients():
    """The issue's new user: QAT of an MLP on scikit-learn's bundled digits, FP4 weights, FP8
    activations and gradients, absmax scales by default, well above chance (10%)."""
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    perm = np.random.default_rng(0).permutation(len(X))
    tr, te = perm[:1400], perm[1400:]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = qt.quantize_model(
            _mlp(), weights="float4_e2m1fn", activations="float8_e4m3fn",
            gradients="float8_e5m2",
        )  # fmt: skip
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        rng = np.random.default_rng(1)
        for _ in range(40):
            b = torch.as_tensor(rng.choice(tr, 128))
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X[b]), y[b]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(X[te]).argmax(1) == y[te]).float().mean().item()
    finally:
        torch.set_num_threads(threads)
    assert acc > 0.75, acc
