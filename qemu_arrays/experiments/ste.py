"""Paper 000 experiments: STE training of a quantized teacher-student model vs its limit theory.

One ``run_*`` function per figure setting (``NOTES_ste_dynamics.md`` section 9); each writes a PNG
and a CSV (plus a JSON summary) into ``out_dir`` and returns a dict. Default sizes finish in well
under a minute on 2 cores; ``full=True`` uses the paper's sizes (d, five runs, longer horizons).

The microscopic simulation is :func:`simulate`, a vectorised online-SGD loop over ``R``
independent replicas held as an ``(R, d)`` array (notes recipe 10.1). The theory curves come from
:mod:`qemu_arrays.theory.ste_dynamics` (the PDE; closed ODEs where they are exact).
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from qemu_arrays.theory import ste_dynamics as sd

__all__ = [
    "run_bitwidth",
    "run_density",
    "run_joint",
    "run_range",
    "run_stability",
    "simulate",
]


# ---------------------------------------------------------------------------------------------
# progress and output helpers
# ---------------------------------------------------------------------------------------------


class _StderrBar:
    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.n, self._last = max(int(total), 1), desc, 0, -1

    def update(self, k: int = 1):
        self.n += k
        pct = int(100 * self.n / self.total)
        if pct != self._last and pct % 5 == 0:
            self._last = pct
            print(f"\r{self.desc}: {pct:3d}%", end="", file=sys.stderr, flush=True)

    def close(self):
        print(file=sys.stderr, flush=True)


class _NoBar:
    def update(self, k: int = 1):
        pass

    def close(self):
        pass


def _bar(total: int, desc: str, progress: bool):
    if not progress:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _StderrBar(total, desc)
    return tqdm(total=total, desc=desc, leave=False)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write(out_dir, name: str, rows: list[dict], summary: dict, fig) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png, csv_path, js = out / f"{name}.png", out / f"{name}.csv", out / f"{name}.json"
    fig.savefig(png, dpi=120, bbox_inches="tight")
    _plt().close(fig)
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(js, "w") as fh:
        json.dump(summary, fh, indent=2, default=float)
    return {"png": str(png), "csv": str(csv_path), "json": str(js)}


# ---------------------------------------------------------------------------------------------
# microscopic simulator (recipe 10.1)
# ---------------------------------------------------------------------------------------------


def simulate(
    setting: sd.STESetting,
    d: int,
    tau_max: float,
    *,
    replicas: int = 5,
    n_out: int = 51,
    seed: int = 0,
    keep_weights_at=(),
    progress: bool = False,
    desc: str = "simulate",
    chunk: int = 256,
) -> dict:
    """Online STE-SGD on the teacher-student model, ``replicas`` runs at once as an (R, d) array.

    Per step: ``x ~ N(0, I_d)``, ``u = Q_x(x)``, ``e = w*.x/sqrt(d) + sigma xi - Q_w(w).u/sqrt(d)``,
    ``w += (eta/sqrt(d)) e u g(w) - (eta lam / d) w``. ``eps_g`` is the exact finite-d formula
    ``(rho - 2 kappa1 m_Q + kappa2 q_Q) / 2``. Returns ``{"tau", "eps_g" (R, n_out), "weights"
    {tau: (R, d) array}}``; reproducible from ``seed``.
    """
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 2:
        msg = f"d must be an int >= 2, got {d!r}"
        raise ValueError(msg)
    if isinstance(replicas, bool) or not isinstance(replicas, (int, np.integer)) or replicas < 1:
        msg = f"replicas must be an int >= 1, got {replicas!r}"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    w_star = sd._teacher_vector(setting, int(d))
    w = setting.init_mean + setting.init_std * rng.standard_normal((replicas, d))
    eta, lam, k1, k2 = setting.eta_eff, setting.lam, setting.kappa1, setting.kappa2
    rho, sigma = float(np.mean(w_star**2)), setting.sigma
    sq = math.sqrt(d)
    n_steps = int(round(tau_max * d))
    out_steps = np.unique(np.round(np.linspace(0, n_steps, n_out)).astype(np.int64))
    keep_steps = {int(round(t * d)): float(t) for t in keep_weights_at}
    eps = np.empty((replicas, out_steps.size))
    kept = {}
    identity_ste = setting.ste == "identity"
    bar = _bar(n_steps, desc, progress)

    def record(k, t):
        qv = setting.qw(w)
        eps[:, k] = 0.5 * (rho - 2 * k1 * (qv @ w_star) / d + k2 * np.mean(qv * qv, axis=1))
        if t in keep_steps:
            kept[keep_steps[t]] = w.copy()

    k_out = 0
    if out_steps[0] == 0:
        record(0, 0)
        k_out = 1
    t = 0
    while t < n_steps:
        m = min(chunk, n_steps - t)
        x = rng.standard_normal((m, replicas, d))
        y = (x @ w_star) / sq
        if sigma:
            y = y + sigma * rng.standard_normal((m, replicas))
        u = setting.qx(x) if setting.input_quantizer is not None else x
        for j in range(m):
            uj = u[j]
            qv = setting.qw(w) if setting.weight_quantizer is not None else w
            e = y[j] - np.einsum("rd,rd->r", qv, uj) / sq
            step = (eta / sq) * e[:, None] * uj
            if not identity_ste:
                step = step * setting.ste_factor(w)
            if lam:
                step = step - (eta * lam / d) * w
            w = w + step
            t += 1
            if k_out < out_steps.size and t == out_steps[k_out]:
                record(k_out, t)
                k_out += 1
            elif t in keep_steps:
                kept[keep_steps[t]] = w.copy()
        bar.update(m)
    bar.close()
    return {"tau": out_steps / d, "eps_g": eps, "weights": kept, "w_star": w_star}


def _mean_err(eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = eps.shape[0]
    err = eps.std(axis=0, ddof=1) / math.sqrt(r) if r > 1 else np.zeros(eps.shape[1])
    return eps.mean(axis=0), err


def _sizes(full: bool, default: dict, paper: dict) -> dict:
    return paper if full else default


# ---------------------------------------------------------------------------------------------
# Figure 1: density of the latent weights vs the PDE
# ---------------------------------------------------------------------------------------------


def run_density(
    full: bool = False,
    out_dir="results",
    progress: bool = True,
    *,
    grid: str = "A",
    eta: float = 0.1,
    seed: int = 0,
) -> dict:
    """``ste-density``: ``mu_tau(w | w*=1)`` at tau in {10, 25, 50, 100}, simulation vs PDE.

    Figure 1 setting: inputs and weights quantized with ``omega = 2``, ``b = 2``, ``w* = 1``,
    ``mu_0 = N(0, 1)``; eta (default 0.1), lam = sigma = 0 (unstated in the paper; notes 9.1).
    Default d = 1000, 2 runs; full: d = 3000, 10 runs.
    """
    t0 = time.perf_counter()
    sz = _sizes(full, {"d": 1000, "replicas": 2}, {"d": 3000, "replicas": 10})
    q = sd.uniform_quantizer(2, 2.0, grid)
    setting = sd.STESetting(eta=eta, weight_quantizer=q, input_quantizer=q)
    taus = (10.0, 25.0, 50.0, 100.0)
    pde = sd.solve_fokker_planck(setting, 100.0, n_out=201, density_taus=taus)
    sim = simulate(
        setting,
        sz["d"],
        100.0,
        replicas=sz["replicas"],
        n_out=101,
        seed=seed,
        keep_weights_at=taus,
        progress=progress,
        desc="ste-density",
    )
    plt = _plt()
    fig, axes = plt.subplots(1, 5, figsize=(20, 3.6))
    edges = np.linspace(-1.0, 3.0, 121)
    hist_rows = []
    for ax, k in zip(axes[:4], range(len(taus))):
        tau = taus[k]
        wk = sim["weights"][tau].ravel()
        h, _ = np.histogram(wk, bins=edges, density=True)
        h = h * np.mean((wk >= edges[0]) & (wk <= edges[-1]))
        ax.stairs(h, edges, fill=True, color="tab:red", alpha=0.5, label="STE simulation")
        ax.plot(pde.x, pde.density[k, 0], color="tab:blue", lw=1.5, label="PDE")
        for th in q.thresholds:
            ax.axvline(th, color="gray", lw=0.5, ls=":")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_title(f"tau = {tau:g}")
        ax.set_xlabel("latent weight")
        for lo, hi, val in zip(edges[:-1], edges[1:], h):
            pde_val = np.interp(0.5 * (lo + hi), pde.x, pde.density[k, 0])
            hist_rows.append(
                {"tau": tau, "w_lo": lo, "w_hi": hi, "sim_density": val, "pde_density": pde_val}
            )
    axes[0].legend(fontsize=8)
    mean, err = _mean_err(sim["eps_g"])
    axes[4].errorbar(sim["tau"], mean, err, fmt="o", ms=3, color="tab:red", label="simulation")
    axes[4].plot(pde.tau, pde.eps_g, color="tab:blue", label="PDE")
    axes[4].set_xlabel("tau")
    axes[4].set_ylabel("eps_g")
    axes[4].set_yscale("log")
    axes[4].legend(fontsize=8)
    fig.suptitle(f"Fig. 1 setting: grid {grid}, b=2, omega=2, eta={eta}, d={sz['d']}")
    pde_at = np.interp(sim["tau"], pde.tau, pde.eps_g)
    summary = {
        "experiment": "ste-density",
        "full": full,
        "setting": {"grid": grid, "bits": 2, "omega": 2.0, "eta": eta, **sz},
        "eps_g_pde_at_taus": {str(t): float(np.interp(t, pde.tau, pde.eps_g)) for t in taus},
        "eps_g_sim_at_taus": {str(t): float(np.interp(t, sim["tau"], mean)) for t in taus},
        "max_abs_diff_eps_g": float(np.max(np.abs(mean - pde_at))),
    }
    paths = _write(out_dir, "ste_density", hist_rows, summary, fig)
    summary["runtime_s"] = time.perf_counter() - t0
    return {**summary, **paths}


# ---------------------------------------------------------------------------------------------
# Figures 2-4: eps_g(tau) curves, simulation mean +- error over runs vs PDE
# ---------------------------------------------------------------------------------------------


def _curves(name, title, configs, sz, tau_max, out_dir, progress, seed, *, panels=None):
    """Simulate and solve every ``(label, setting)`` of ``configs``; plot; write files."""
    t0 = time.perf_counter()
    rows, results = [], []
    for i, (label, setting) in enumerate(configs):
        pde = sd.solve_fokker_planck(setting, tau_max, n_out=201)
        iso = sd.isotropic_closure_ode(setting, pde.tau)
        sim = simulate(
            setting,
            sz["d"],
            tau_max,
            replicas=sz["replicas"],
            n_out=sz["n_points"],
            seed=seed + 1000 * i,
            progress=progress,
            desc=f"{name} {label}",
        )
        mean, err = _mean_err(sim["eps_g"])
        pde_at = np.interp(sim["tau"], pde.tau, pde.eps_g)
        for k in range(sim["tau"].size):
            rows.append(
                {
                    "config": label,
                    "tau": sim["tau"][k],
                    "sim_mean": mean[k],
                    "sim_err": err[k],
                    "pde": pde_at[k],
                    "isotropic_ode": float(np.interp(sim["tau"][k], iso.tau, iso.eps_g)),
                }
            )
        results.append((label, setting, sim, mean, err, pde, iso))
    plt = _plt()
    groups = panels or [[r[0] for r in results]]
    fig, axes = plt.subplots(len(groups), 1, figsize=(7, 4.2 * len(groups)), squeeze=False)
    cmap = plt.get_cmap("viridis")
    summary = {"experiment": name, "sizes": sz, "tau_max": tau_max, "configs": {}}
    for ax, group in zip(axes[:, 0], groups):
        sel = [r for r in results if r[0] in group]
        for j, (label, setting, sim, mean, err, pde, iso) in enumerate(sel):
            col = cmap(j / max(len(sel) - 1, 1))
            ax.errorbar(sim["tau"], mean, err, fmt="o", ms=3, color=col, label=f"{label} (sim)")
            ax.plot(pde.tau, pde.eps_g, color=col, lw=1.5)
            ax.plot(iso.tau, iso.eps_g, color=col, lw=0.8, ls="--")
            pde_at = np.interp(sim["tau"], pde.tau, pde.eps_g)
            z = np.abs(mean - pde_at)
            summary["configs"][label] = {
                "kappa1": setting.kappa1,
                "kappa2": setting.kappa2,
                "eps_g_final_sim": float(mean[-1]),
                "eps_g_final_sim_err": float(err[-1]),
                "eps_g_final_pde": float(pde.eps_g[-1]),
                "eps_g_final_isotropic_ode": float(iso.eps_g[-1]),
                "max_abs_diff": float(np.max(z)),
            }
        ax.set_xlabel("tau = t/d")
        ax.set_ylabel("eps_g")
        ax.set_yscale("log")
        ax.legend(fontsize=7, ncol=2)
    axes[0, 0].set_title(
        title + "\n(symbols: simulation mean +- s.e.; solid: PDE; dashed: isotropic ODE)",
        fontsize=9,
    )
    paths = _write(out_dir, name.replace("-", "_"), rows, summary, fig)
    summary["runtime_s"] = time.perf_counter() - t0
    return {**summary, **paths}


_FIG2_DEFAULT = {"d": 300, "replicas": 5, "n_points": 26}
_FIG2_FULL = {"d": 900, "replicas": 5, "n_points": 41}


def run_bitwidth(
    full: bool = False,
    out_dir="results",
    progress: bool = True,
    *,
    grid: str = "A",
    seed: int = 0,
    input_quantized: bool = False,
) -> dict:
    """``ste-bitwidth``: eps_g(tau) for b in {2, 3, 4, 5} (Figure 2 setting).

    eta = 0.04, lam = 1, omega = 1, w* = 1, mu_0 = N(0, 1), sigma = 0; weights only by default
    (notes 12.7). Default d = 300 to tau = 60; full: d = 900 to tau = 100. Five runs each.
    """
    configs = []
    for b in (2, 3, 4, 5):
        q = sd.uniform_quantizer(b, 1.0, grid)
        configs.append(
            (
                f"b={b}",
                sd.STESetting(
                    eta=0.04,
                    lam=1.0,
                    weight_quantizer=q,
                    input_quantizer=q if input_quantized else None,
                ),
            )
        )
    sz = _FIG2_FULL if full else _FIG2_DEFAULT
    return _curves(
        "ste-bitwidth",
        f"Fig. 2 setting: omega=1, eta=0.04, lam=1, grid {grid}",
        configs,
        sz,
        100.0 if full else 60.0,
        out_dir,
        progress,
        seed,
    )


def run_range(
    full: bool = False,
    out_dir="results",
    progress: bool = True,
    *,
    grid: str = "A",
    seed: int = 0,
) -> dict:
    """``ste-range``: eps_g(tau) at b = 3 for omega in {0.25, 0.5, 1, 1.25, 1.5} (Figure 3).

    The rest as Figure 2 (eta = 0.04, lam = 1, weights only; unstated in the paper).
    """
    configs = []
    for om in (0.25, 0.5, 1.0, 1.25, 1.5):
        q = sd.uniform_quantizer(3, om, grid)
        configs.append((f"omega={om:g}", sd.STESetting(eta=0.04, lam=1.0, weight_quantizer=q)))
    sz = _FIG2_FULL if full else _FIG2_DEFAULT
    return _curves(
        "ste-range",
        f"Fig. 3 setting: b=3, eta=0.04, lam=1, grid {grid}",
        configs,
        sz,
        100.0 if full else 60.0,
        out_dir,
        progress,
        seed,
    )


def run_joint(
    full: bool = False,
    out_dir="results",
    progress: bool = True,
    *,
    grid: str = "A",
    seed: int = 0,
) -> dict:
    """``ste-joint``: weights (b in {3, 4}) and inputs (b_x in {3, 4, 5, none}) quantized.

    Figure 4 setting: omega = omega_x = 1, eta = 0.05, lam = 1, "T = 0" read as sigma = 0,
    d = 500 (full; default 250 to tau = 40).
    """
    configs, panels = [], []
    for b in (3, 4):
        qw = sd.uniform_quantizer(b, 1.0, grid)
        group = []
        for bx in (3, 4, 5, None):
            qx = None if bx is None else sd.uniform_quantizer(bx, 1.0, grid)
            label = f"b={b}, b_x={'none' if bx is None else bx}"
            configs.append(
                (label, sd.STESetting(eta=0.05, lam=1.0, weight_quantizer=qw, input_quantizer=qx))
            )
            group.append(label)
        panels.append(group)
    sz = (
        {"d": 500, "replicas": 5, "n_points": 41}
        if full
        else {"d": 250, "replicas": 5, "n_points": 21}
    )
    return _curves(
        "ste-joint",
        f"Fig. 4 setting: omega=1, eta=0.05, lam=1, grid {grid}",
        configs,
        sz,
        80.0 if full else 40.0,
        out_dir,
        progress,
        seed,
        panels=panels,
    )


# ---------------------------------------------------------------------------------------------
# Figure 5: input-only quantization, stability boundary and steady state
# ---------------------------------------------------------------------------------------------


def run_stability(
    full: bool = False,
    out_dir="results",
    progress: bool = True,
    *,
    grid: str = "A",
    omega: float = 1.0,
    seed: int = 0,
) -> dict:
    """``ste-stability``: input-only quantization, lam = sigma = 0 (Figure 5 setting).

    Left: the stability boundary ``eta_c = 2 / kappa2`` per bit width (unquantized: 2), with
    simulations at ``0.9 eta_c`` (settles) and ``1.1 eta_c`` (blows up). Right: steady-state
    ``eps_g* = rho (1 - kappa1^2/kappa2) / (2 - eta kappa2)`` vs eta, with long simulations
    (time average over the last third of the run, mean +- s.e. over runs).
    b, omega and grid are unstated in the paper: b in {2, 3, 4, 5}, omega = 1, grid A.
    """
    t0 = time.perf_counter()
    sz = {"d": 500, "replicas": 5, "tau": 60.0} if full else {"d": 200, "replicas": 4, "tau": 30.0}
    bits = (2, 3, 4, 5)
    etas_sim = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
    rows, summary = [], {"experiment": "ste-stability", "sizes": sz, "bits": {}}
    total = len(bits) * (len(etas_sim) + 2)
    bar = _bar(total, "ste-stability", progress)
    sims = {}
    for b in bits:
        q = sd.uniform_quantizer(b, omega, grid)
        base = sd.STESetting(eta=1.0, input_quantizer=q)
        eta_c = sd.stability_boundary(base)
        info = {"kappa1": base.kappa1, "kappa2": base.kappa2, "eta_c": eta_c, "points": []}
        for i, eta in enumerate((*etas_sim, 0.9 * eta_c, 1.1 * eta_c)):
            s = sd.STESetting(eta=eta, input_quantizer=q)
            theory = sd.steady_state_eps_g(s)
            tau = sz["tau"] if i < len(etas_sim) else 15.0
            sim = simulate(
                s, sz["d"], tau, replicas=sz["replicas"], n_out=61, seed=seed + 100 * b + i
            )
            tail = sim["eps_g"][:, 40:].mean(axis=1)
            final = sim["eps_g"][:, -1]
            r = {
                "bits": b,
                "eta": eta,
                "eta_over_eta_c": eta / eta_c,
                "theory_eps_g_star": theory,
                "sim_tail_mean": float(tail.mean()),
                "sim_tail_err": float(tail.std(ddof=1) / math.sqrt(tail.size)),
                "sim_final_mean": float(final.mean()),
            }
            rows.append(r)
            info["points"].append(r)
            sims[(b, i)] = sim
            bar.update()
        summary["bits"][str(b)] = info
    bar.close()
    plt = _plt()
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(17, 4.2))
    cmap = plt.get_cmap("viridis")
    ax1.plot(bits, [summary["bits"][str(b)]["eta_c"] for b in bits], "o-", label="2/kappa2")
    ax1.axhline(2.0, ls="--", color="k", label="unquantized (2)")
    ax1.set_xlabel("input bit width b_x")
    ax1.set_ylabel("stability boundary eta_c")
    ax1.legend(fontsize=8)
    ax1.set_title("stability boundary 2/sigma_psi^2")
    for j, b in enumerate(bits):
        col = cmap(j / (len(bits) - 1))
        for i, ls in ((len(etas_sim), "-"), (len(etas_sim) + 1, ":")):
            sim = sims[(b, i)]
            ax2.plot(
                sim["tau"],
                sim["eps_g"].mean(axis=0),
                ls=ls,
                color=col,
                label=f"b={b}, eta={'0.9' if ls == '-' else '1.1'} eta_c",
            )
        info = summary["bits"][str(b)]
        eg = np.linspace(0.05, 0.995 * info["eta_c"], 200)
        th = [
            sd.steady_state_eps_g(
                sd.STESetting(eta=e, input_quantizer=sd.uniform_quantizer(b, omega, grid))
            )
            for e in eg
        ]
        ax3.plot(eg, th, color=col, label=f"b={b} theory")
        pts = info["points"][: len(etas_sim)]
        ax3.errorbar(
            [p["eta"] for p in pts],
            [p["sim_tail_mean"] for p in pts],
            [p["sim_tail_err"] for p in pts],
            fmt="o",
            ms=4,
            color=col,
        )
    ax2.set_yscale("log")
    ax2.set_xlabel("tau")
    ax2.set_ylabel("eps_g (simulation)")
    ax2.legend(fontsize=6, ncol=2)
    ax2.set_title("just below / above the boundary")
    ax3.axhline(0.0, ls="--", color="k", label="unquantized (0)")
    ax3.set_xlabel("eta")
    ax3.set_ylabel("steady-state eps_g*")
    ax3.set_ylim(0, 1.0)
    ax3.legend(fontsize=7)
    ax3.set_title(f"input-only quantization, grid {grid}, omega={omega}")
    paths = _write(out_dir, "ste_stability", rows, summary, fig)
    summary["runtime_s"] = time.perf_counter() - t0
    return {**summary, **paths}
