"""The SGD harness: R independent replicas, a quantizer at every site, log-spaced records.

One step (``w`` the full-precision master copy, shape ``(R, d)``)::

    X, y   = model.sample(R, B)                      # fresh minibatch per replica
    Xq, yq = Q_d(X), Q_l(y)
    wq     = Q_p(w)                                  # forward uses the quantized weights
    a      = Q_a(model.forward(wq, Xq))              # activations (prediction)
    o      = Q_o(model.loss_grad(a, yq))             # output gradient (= −residual)
    g      = Q_g(model.backward(wq, Xq, o) · Q_p.derivative(w)) + model.regularizer_grad(w)
    w      = optimizer.step(w, g, lr(t))

Each of the eight random streams (initial weights, batches, the six sites) is its own
``numpy.random.Generator`` spawned from ``SeedSequence(seed)``, so a run is a pure function of
``seed`` and the configuration, and changing one site's quantizer leaves every other stream
untouched.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from qemu_arrays.training.optimizers import make_optimizer
from qemu_arrays.training.sites import SITE_NAMES, Sites

__all__ = ["TrainResult", "log_grid", "run_sgd"]


def log_grid(steps: int, n: int = 40) -> np.ndarray:
    """0 and ``n`` log-spaced integers in ``[1, steps]`` (unique, ascending, ending at steps)."""
    if steps < 1:
        return np.array([0], dtype=np.int64)
    g = np.unique(np.round(np.geomspace(1, steps, max(int(n), 2))).astype(np.int64))
    return np.concatenate([[0], g])


@dataclass
class TrainResult:
    """Records of a run. ``risk[k, r]`` is replica ``r``'s risk after ``steps[k]`` steps."""

    steps: np.ndarray
    time: np.ndarray
    risk: np.ndarray | None
    risk_avg: np.ndarray | None
    metrics: dict[str, np.ndarray]
    w: object
    w_avg: object
    sites: dict[str, str]
    seed: int
    config: dict = field(default_factory=dict)

    def _get(self, name):
        if name == "risk":
            return self.risk
        if name == "risk_avg":
            return self.risk_avg
        return self.metrics[name]

    def mean(self, name: str = "risk") -> np.ndarray:
        """Mean over replicas of a recorded quantity, per record time."""
        return np.mean(self._get(name), axis=1)

    def sem(self, name: str = "risk") -> np.ndarray:
        """Standard error of the replica mean (``std/√R``; 0 for one replica)."""
        v = self._get(name)
        r = v.shape[1]
        if r < 2:
            return np.zeros(v.shape[0])
        return np.std(v, axis=1, ddof=1) / np.sqrt(r)

    def table(self) -> list[dict]:
        """One row per record time: step, time, mean and sem of every recorded quantity."""
        names = [n for n in ("risk", "risk_avg") if self._get(n) is not None]
        names += list(self.metrics)
        rows = []
        for k in range(len(self.steps)):
            row = {"step": int(self.steps[k]), "time": float(self.time[k])}
            for n in names:
                row[n] = float(self.mean(n)[k])
                row[n + "_sem"] = float(self.sem(n)[k])
            rows.append(row)
        return rows


def _namespace(backend):
    if backend is None or backend == "numpy":
        return np
    if isinstance(backend, str):
        import importlib

        try:
            from array_api_compat import array_namespace

            mod = importlib.import_module({"jax": "jax.numpy"}.get(backend, backend))
            return array_namespace(mod.asarray([0.0]))
        except ImportError as exc:
            msg = f"backend {backend!r} could not be imported ({exc}); hint: install it or use 'numpy'"
            raise ValueError(msg) from None
    return backend


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, leave=False)
    except ImportError:
        return _StderrCounter(total)


class _StderrCounter:
    def __init__(self, total):
        self.total, self.n = total, 0

    def update(self, k):
        self.n += k
        sys.stderr.write(f"\r{self.n}/{self.total}")

    def close(self):
        sys.stderr.write("\n")


def _to_numpy(v):
    if v is None:
        return None
    if hasattr(v, "detach"):  # torch
        v = v.detach().cpu()
    return np.asarray(v, dtype=np.float64)


def run_sgd(
    model,
    *,
    steps: int,
    lr: float | Callable[[int], float],
    batch: int = 1,
    replicas: int = 1,
    sites=None,
    optimizer=None,
    average: bool = False,
    average_start: int = 0,
    seed: int = 0,
    n_records: int = 40,
    record_steps=None,
    metrics: dict[str, Callable] | None = None,
    backend=None,
    dtype: str = "float64",
    progress: bool = False,
    w0=None,
    prefetch: int = 1,
) -> TrainResult:
    """Run minibatch SGD on ``model`` for ``replicas`` independent runs at once.

    Parameters
    ----------
    model
        Any object with the interface of :class:`qemu_arrays.training.models.Model`.
    steps
        Number of SGD steps (each uses ``batch`` fresh samples per replica).
    lr
        Constant step size, or a schedule ``t -> lr_t`` (see :mod:`.optimizers`).
    sites
        :class:`Sites`, a dict ``{site: quantizer}``, or None for ``model.default_sites()``.
        A dict is applied on top of the model's defaults.
    optimizer
        ``OptimizerKind.SGD`` (default), ``MOMENTUM``, ``ADAM`` or an optimizer object (the
        strings ``"sgd"`` ... work with a DeprecationWarning).
    average
        Also record the risk of the iterate average ``w̄_N = (1/(N−s)) Σ_{t=s}^{N−1} w_t``
        (``s = average_start``; Zou et al.'s convention, ``w_0`` included when ``s = 0``).
    seed
        Seeds every random stream (see the module docstring).
    n_records, record_steps
        Record times: ``log_grid(steps, n_records)`` or explicit step counts.
    metrics
        Extra per-replica quantities ``name -> f(w, model) -> (R,)`` recorded with the risk.
    backend
        ``None``/``"numpy"``, ``"torch"``, ``"jax"`` or an array namespace: the arrays the model
        and quantizers see (samples are drawn with numpy and converted).
    dtype
        ``"float64"`` or ``"float32"``.
    progress
        Show a progress bar (tqdm if installed, else a stderr counter).
    w0
        Initial weights ``(d,)`` or ``(R, d)`` overriding ``model.init_weights``.
    prefetch
        Draw the batches of ``prefetch`` steps at once (``model.sample(R, B·prefetch)``) and
        apply the data quantizer to the whole block in one call (it does not depend on ``w``).
        Same distribution, fewer calls (useful when a quantizer has a per-call overhead); the
        random streams differ from ``prefetch=1``, so keep it fixed when comparing runs.
    """
    _check_counts(steps=steps, batch=batch, replicas=replicas, prefetch=prefetch)
    if dtype not in ("float64", "float32"):
        msg = f"dtype must be 'float64' or 'float32', got {dtype!r}; hint: dtype='float64'"
        raise ValueError(msg)
    schedule = _schedule(lr)
    sites = _resolve_sites(model, sites)
    opt = make_optimizer(optimizer)
    xp = _namespace(backend)
    npdt = np.dtype(dtype)
    R, B, steps = int(replicas), int(batch), int(steps)
    rngs = _Streams(seed)

    def conv(a):
        a = np.asarray(a, dtype=npdt)
        return a if xp is np else xp.asarray(a)

    w = _initial_weights(model, w0, R, rngs.init, conv, dtype, xp)
    state = opt.init(w)
    rec = _record_grid(steps, n_records, record_steps)
    recorder = _Recorder(model, sites, rngs.metric, dict(metrics or {}), average, w)
    batches = _Batches(model, R, B, steps, prefetch, conv, sites.data, rngs)
    bar = _progress(steps, progress)
    ri = 0
    chunk = max(1, steps // 100)
    for t in range(steps + 1):
        while ri < len(rec) and rec[ri] == t:
            recorder.record(w)
            ri += 1
        if t == steps:
            break
        if average and t >= average_start:
            recorder.accumulate(w)
        X, Xq, y = batches.get(t)
        g = _gradient(model, sites, rngs, w, Xq, y)
        w, state = opt.step(w, g, schedule(t), t, state)
        if bar is not None and (t + 1) % chunk == 0:
            bar.update(chunk)
    if bar is not None:
        bar.close()
    return recorder.result(rec, model, w, sites, seed,
                           {"steps": steps, "batch": B, "replicas": R, "optimizer": repr(opt)})  # fmt: skip


def _check_counts(**counts):
    lows = {"steps": 0, "batch": 1, "replicas": 1, "prefetch": 1}
    for name, v in counts.items():
        lo = lows[name]
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
            msg = f"{name} must be an int >= {lo}, got {v!r}; hint: {name}={max(lo, 1)}"
            raise ValueError(msg)


def _schedule(lr) -> Callable[[int], float]:
    if callable(lr):
        return lr
    lr_c = float(lr)
    if not lr_c >= 0:
        msg = f"lr must be >= 0 or a schedule t -> lr_t, got {lr!r}; hint: lr=0.1"
        raise ValueError(msg)
    return lambda t, _v=lr_c: _v


def _resolve_sites(model, sites) -> Sites:
    """A dict is applied on top of the model's defaults; None means the defaults."""
    if isinstance(sites, dict):
        return model.default_sites().replace(**sites)
    if sites is None:
        return model.default_sites()
    return Sites.coerce(sites)


class _Streams:
    """The eight independent random streams of a run (see the module docstring)."""

    def __init__(self, seed):
        ss = np.random.SeedSequence(int(seed))
        self.init, self.data, *site_rngs = (np.random.default_rng(s) for s in ss.spawn(8))
        self.sites = dict(zip(SITE_NAMES, site_rngs))
        self.metric = np.random.default_rng(ss.spawn(1)[0])


def _initial_weights(model, w0, R, rng_init, conv, dtype, xp):
    if w0 is None:
        w = conv(model.init_weights(R, rng_init))
    else:
        w = conv(np.broadcast_to(np.asarray(w0, dtype=np.float64), (R, model.dim)))
    if str(w.dtype).rsplit(".", 1)[-1] != dtype:
        msg = (
            f"backend {getattr(xp, '__name__', xp)!r} turned dtype={dtype!r} into {w.dtype}; "
            "hint: for JAX enable float64 with jax.config.update('jax_enable_x64', True), or "
            "pass dtype='float32'"
        )
        raise ValueError(msg)
    if tuple(w.shape) != (R, model.dim):
        msg = f"initial weights must have shape {(R, model.dim)}, got {tuple(w.shape)}"
        raise ValueError(msg)
    return w


def _record_grid(steps, n_records, record_steps) -> np.ndarray:
    if record_steps is None:
        return log_grid(steps, n_records)
    rec = np.unique(np.asarray(record_steps, dtype=np.int64))
    if rec.size and (rec[0] < 0 or rec[-1] > steps):
        msg = f"record_steps must lie in [0, steps={steps}], got {rec[0]}..{rec[-1]}"
        raise ValueError(msg)
    return rec


class _Recorder:
    """Risk, averaged-iterate risk and metrics at the record times; the running iterate sum."""

    def __init__(self, model, sites, rng_metric, metrics, average, w):
        self.model, self.sites, self.rng, self.metrics = model, sites, rng_metric, metrics
        self.average = average
        self.has_risk = model.risk(w, sites, rng_metric) is not None
        self.risk, self.avg = [], []
        self.out_metrics = {k: [] for k in metrics}
        self.w_sum, self.n_avg = None, 0

    def accumulate(self, w):
        self.w_sum = w if self.w_sum is None else self.w_sum + w
        self.n_avg += 1

    def record(self, w):
        if self.has_risk:
            self.risk.append(_to_numpy(self.model.risk(w, self.sites, self.rng)))
        if self.average:
            wa = w if self.n_avg == 0 else self.w_sum / self.n_avg
            risk = self.model.risk(wa, self.sites, self.rng) if self.has_risk else None
            self.avg.append(_to_numpy(risk))
        for k, f in self.metrics.items():
            self.out_metrics[k].append(_to_numpy(f(w, self.model)))

    def result(self, rec, model, w, sites, seed, config) -> TrainResult:
        stack = (lambda lst: np.stack(lst)) if self.has_risk else (lambda lst: None)
        return TrainResult(
            steps=rec,
            time=rec / float(getattr(model, "time_unit", 1.0)),
            risk=stack(self.risk),
            risk_avg=stack(self.avg) if self.average else None,
            metrics={k: np.stack(v) for k, v in self.out_metrics.items()},
            w=w,
            w_avg=(self.w_sum / self.n_avg) if (self.average and self.n_avg) else None,
            sites=sites.describe(),
            seed=int(seed),
            config=config,
        )


class _Batches:
    """Fresh minibatches and their quantized features, drawn one step or ``prefetch`` steps at
    a time (the data quantizer does not depend on ``w``, so a block is quantized at once)."""

    def __init__(self, model, R, B, steps, prefetch, conv, qd, rngs):
        self.model, self.R, self.B, self.steps, self.prefetch = model, R, B, steps, prefetch
        self.conv, self.qd, self.rng, self.rd = conv, qd, rngs.data, rngs.sites["data"]
        self.block = None

    def get(self, t):
        B = self.B
        if self.prefetch == 1:
            X, y = self.model.sample(self.R, B, self.rng)
            X, y = self.conv(X), self.conv(y)
            return X, self.qd(X, self.rd), y
        j = t % self.prefetch
        if j == 0:
            nb = min(self.prefetch, self.steps - t)
            Xb, yb = self.model.sample(self.R, B * nb, self.rng)
            Xb, yb = self.conv(Xb), self.conv(yb)
            self.block = (Xb, self.qd(Xb, self.rd), yb)
        Xb, Xqb, yb = self.block
        sl = slice(j * B, (j + 1) * B)
        return Xb[:, sl], Xqb[:, sl], yb[:, sl]


def _gradient(model, sites, rngs, w, Xq, y):
    """The quantized gradient of one step (module docstring), regulariser included."""
    r = rngs.sites
    yq = sites.labels(y, r["labels"])
    wq = sites.weights(w, r["weights"])
    a = sites.activations(model.forward(wq, Xq), r["activations"])
    o = sites.output_grad(model.loss_grad(a, yq), r["output_grad"])
    g = model.backward(wq, Xq, o)
    dq = sites.weights.derivative(w)
    if not (isinstance(dq, float) and dq == 1.0):
        g = g * dq
    g = sites.param_grad(g, r["param_grad"])
    reg = model.regularizer_grad(w)
    return g if reg is None else g + reg
