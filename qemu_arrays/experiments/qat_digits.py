"""Quantization-aware training of a small MLP on scikit-learn's bundled digits, per format.

What ``qemu-arrays qat`` runs: for each (weights, activations, gradients) format triple, the same
network (64-``hidden``-10, ReLU) from the same initial weights and the same batches, trained with
Adam for ``steps`` steps through :func:`qemu_arrays.torch.quantize_model`, then its test accuracy
on the last 397 images and its time per training step (after the first
``WARMUP_STEPS``, which compile); the first row is plain float32 training.
Needs PyTorch and scikit-learn (``pip install 'qemu-arrays[torch,sklearn]'``); nothing is
downloaded (the digits ship with scikit-learn). The host's PyTorch thread count is set for the
run (``threads``) and restored afterwards.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["QatConfig", "format_kind", "run_qat"]

N_TRAIN = 1400  # of 1797 digits; the rest is the test set
WARMUP_STEPS = 3  # steps before the clock starts


@dataclass(frozen=True)
class QatConfig:
    """One row: format names (or None: not quantized) of the weights, activations, gradients."""

    weights: str | None
    activations: str | None = None
    gradients: str | None = None

    @property
    def label(self) -> str:
        parts = (self.weights, self.activations, self.gradients)
        return " / ".join(p or "-" for p in parts) if any(parts) else "float32"


def format_kind(name: str | None) -> str:
    """``INT``, ``FP``, ``MX``, ``NVFP4`` or ``float32`` (None) for a format name."""
    if name is None:
        return "float32"
    from qemu_arrays.formats.block_spec import BlockFormat
    from qemu_arrays.formats.catalog import get_format
    from qemu_arrays.formats.spec import IntFormat

    fmt = get_format(name)
    if isinstance(fmt, BlockFormat):  # a per-tensor scale over the blocks: NVFP4's scheme
        return "NVFP4" if fmt.tensor_scale else "MX"
    return "INT" if isinstance(fmt, IntFormat) else "FP"


@contextlib.contextmanager
def _torch_threads(n: int | None):
    import torch

    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _data():
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        msg = "qat needs scikit-learn for its bundled digits; pip install 'qemu-arrays[sklearn]'"
        raise ImportError(msg) from exc
    import torch

    X, y = load_digits(return_X_y=True)
    return torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y)


def _train_one(cfg: QatConfig, X, y, *, steps, batch, hidden, lr, seed) -> dict:
    import torch

    import qemu_arrays.torch as qt

    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10)
    )
    if cfg.weights or cfg.activations or cfg.gradients:
        qt.quantize_model(
            model, weights=cfg.weights, activations=cfg.activations, gradients=cfg.gradients
        )
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    order = [torch.randint(0, N_TRAIN, (batch,), generator=gen) for _ in range(steps)]
    model.train()
    warm = min(WARMUP_STEPS, steps - 1)  # not timed: the first calls compile the kernels
    t0 = time.perf_counter()
    loss = torch.tensor(float("nan"))
    for i, idx in enumerate(order):
        if i == warm:
            t0 = time.perf_counter()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
        loss.backward()
        opt.step()
    step_s = (time.perf_counter() - t0) / (steps - warm)
    with torch.no_grad():
        pred = model.eval()(X[N_TRAIN:]).argmax(1)
    acc = float((pred == y[N_TRAIN:]).float().mean())
    return {
        "weights": cfg.weights or "float32",
        "activations": cfg.activations or "-",
        "gradients": cfg.gradients or "-",
        "kind": format_kind(cfg.weights),
        "test_accuracy": acc,
        "final_loss": loss.item(),
        "step_ms": step_s * 1e3,
    }


def run_qat(
    configs: Iterable[QatConfig],
    *,
    steps: int = 150,
    batch: int = 128,
    hidden: int = 64,
    lr: float = 1e-2,
    seed: int = 0,
    threads: int | None = 1,
    progress: Callable | None = None,
) -> list[dict]:
    """Train once in float32 and once per config; one record per run (float32 first), with
    ``step_ratio`` the step time over float32's. ``progress(iterable, total, desc)`` wraps the
    runs (the CLI's progress bar)."""
    for name, v, lo in (("steps", steps, 1), ("batch", batch, 1), ("hidden", hidden, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            msg = f"{name} must be an int >= {lo}, got {v!r}"
            raise ValueError(msg)
    runs = [QatConfig(None), *configs]
    X, y = _data()
    it = progress(runs, len(runs), "qat") if progress else runs
    with _torch_threads(threads):
        records = [_train_one(c, X, y, steps=steps, batch=batch, hidden=hidden, lr=lr, seed=seed)
                   for c in it]  # fmt: skip
    base = records[0]["step_ms"]
    for r in records:
        r["step_ratio"] = r["step_ms"] / base if base > 0 else float("nan")
    return records
