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

from qemu_arrays.experiments.claims import Claim
from qemu_arrays.theory import ste_dynamics as sd
from qemu_arrays.theory.kinds import GridKind, SteVariant, coerce_kind

__all__ = [
    "plateau_measure",
    "run_bitwidth",
    "run_density",
    "run_joint",
    "run_plateau",
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


_DPI = 72  # small PNGs (the docs commit some of them)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write(out_dir, name: str, rows: list[dict], summary: dict, fig) -> dict:
    summary["claims"] = [c.to_dict() if isinstance(c, Claim) else c for c in summary["claims"]]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png, csv_path, js = out / f"{name}.png", out / f"{name}.csv", out / f"{name}.json"
    fig.savefig(png, dpi=_DPI, bbox_inches="tight")
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
    identity_ste = setting.ste is SteVariant.IDENTITY
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


def _sizes(full: bool, default: dict, paper: dict, **overrides) -> dict:
    """The default or paper sizes, with the non-None ``overrides`` (d, replicas, tau_max)."""
    sz = dict(paper if full else default)
    for key, val in overrides.items():
        if val is None:
            continue
        if key == "tau_max":
            if isinstance(val, bool) or not (isinstance(val, (int, float)) and val > 0):
                msg = f"tau_max must be a positive number, got {val!r}; hint: tau_max=20.0"
                raise ValueError(msg)
            val = float(val)
        else:
            lo = 2 if key == "d" else 1
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < lo:
                msg = f"{key} must be an int >= {lo}, got {val!r}; hint: {key}={sz[key]}"
                raise ValueError(msg)
        sz[key] = val
    return sz


# tolerance of "simulation agrees with theory": |mean - theory| <= Z_TOL s.e. + ABS_TOL
# (ABS_TOL absorbs the O(1/d) finite-size bias and the PDE's discretisation)
Z_TOL, ABS_TOL = 4.0, 0.005


def _agreement(mean, err, theory) -> tuple[float, float, bool]:
    """(max |diff|, the s.e. at that point, whether every point is within Z_TOL s.e. + ABS_TOL)."""
    diff = np.abs(np.asarray(mean) - np.asarray(theory))
    k = int(np.argmax(diff))
    return float(diff[k]), float(err[k]), bool(np.all(diff <= Z_TOL * err + ABS_TOL))


def _agreement_claim(source: str, per_config: dict) -> Claim:
    """One claim over configs ``{label: (max_diff, max_z, ok)}``: the simulation follows the PDE."""
    worst = max(per_config, key=lambda k: per_config[k][0])
    dmax, se, _ = per_config[worst]
    return Claim(
        source=source,
        statement="the STE simulation follows the limit equation (PDE) at every recorded tau",
        measured=f"largest |sim - PDE| = {dmax:.4f} (s.e. {se:.4f}) at {worst}",
        expected=f"within {Z_TOL:g} s.e. + {ABS_TOL} everywhere, for every config",
        holds=all(v[2] for v in per_config.values()),
    )


def _crossing(tau, eps, level: float, falling: bool) -> float:
    """First tau where ``eps`` reaches ``level`` (linear interpolation; inf if never)."""
    hit = eps <= level if falling else eps >= level
    idx = np.flatnonzero(hit)
    if idx.size == 0:
        return math.inf
    i = int(idx[0])
    if i == 0:
        return float(tau[0])
    e0, e1 = eps[i - 1], eps[i]
    return float(tau[i - 1] + (level - e0) * (tau[i] - tau[i - 1]) / (e1 - e0))


def plateau_measure(setting: sd.STESetting, tau, eps_g) -> dict:
    """The first plateau of an ``eps_g(tau)`` curve, measured and predicted.

    Prediction (notes 6.3, :func:`~qemu_arrays.theory.ste_dynamics.plateau_lengths`): a latent
    weight starting at the initial mean travels through its bin in ``T`` (tau units), holding
    ``eps_g`` at the value ``eps_plateau`` it has with every weight on that bin's level; then it
    enters the next bin, where ``eps_g`` would be ``eps_next`` with every weight there.
    Measurement: ``t_half``, the first tau where ``eps_g`` is halfway from ``eps_plateau`` to
    ``eps_next`` (the median weight has crossed); ``flat``: ``eps_g`` stays within 10% of the gap
    of ``eps_plateau`` until ``T/2``; ``dropped``: by ``1.5 T`` it has moved at least 40% of the
    gap towards ``eps_next``.
    """
    wq = setting.weight_quantizer
    if wq is None:
        msg = "plateau_measure needs a weight_quantizer (full-precision weights have no plateau)"
        raise ValueError(msg)
    tau, eps = np.asarray(tau, dtype=np.float64), np.asarray(eps_g, dtype=np.float64)
    path = sd.plateau_lengths(setting, setting.init_mean)
    lv = wq.level_array
    k0 = int(wq.bin_index(setting.init_mean))
    first = path["bins"][0] if path["bins"] else (lv[k0], setting.init_mean, math.nan, math.inf)
    predicted = float(first[3])
    step = 1 if first[2] > first[1] else -1
    k1 = min(max(k0 + step, 0), lv.size - 1)
    ebar = float(np.sum(setting.teacher_probs * setting.teacher_values))

    def eps_at(level):
        return 0.5 * (setting.rho - 2 * setting.kappa1 * ebar * level + setting.kappa2 * level**2)

    e_pl, e_next = eps_at(lv[k0]), eps_at(lv[k1])
    gap = e_next - e_pl
    falling = gap < 0
    t_half = _crossing(tau, eps, e_pl + 0.5 * gap, falling) if gap else math.inf
    out = {
        "predicted": predicted,
        "measured": t_half,
        "eps_plateau": e_pl,
        "eps_next": e_next,
        "flat": False,
        "dropped": False,
    }
    if math.isfinite(predicted) and gap:
        early = tau <= 0.5 * predicted
        out["flat"] = bool(np.all(np.abs(eps[early] - e_pl) <= 0.1 * abs(gap)))
        late = float(np.interp(1.5 * predicted, tau, eps))
        out["dropped"] = bool((late - e_pl) / gap >= 0.4 and 1.5 * predicted <= tau[-1])
    return out


def _length_claim(source: str, label: str, values, measures: dict, rel_tol: float) -> Claim:
    """Plateau length grows with the range, and each is within ``rel_tol`` of the prediction."""
    meas = [measures[v]["measured"] for v in values]
    pred = [measures[v]["predicted"] for v in values]
    rel = [abs(m / p - 1) if math.isfinite(m) and math.isfinite(p) else math.inf
           for m, p in zip(meas, pred)]  # fmt: skip
    grows = all(b > a for a, b in zip(meas, meas[1:]))
    return Claim(
        source=source,
        statement="the plateau length depends on the quantization range omega (grows with it)",
        measured=", ".join(f"{label}={v:g}: {m:.2f}" for v, m in zip(values, meas))
        + " (simulated tau of the half drop)",
        expected="predicted "
        + ", ".join(f"{p:.2f}" for p in pred)
        + f"; test: strictly increasing in {label} and each within {rel_tol:.0%} of the prediction",
        holds=bool(grows and max(rel) <= rel_tol),
    )


# ---------------------------------------------------------------------------------------------
# Figure 1: density of the latent weights vs the PDE
# ---------------------------------------------------------------------------------------------


def run_density(
    full: bool = False,
    out_dir="results",
    progress: bool = True,
    *,
    grid: GridKind = GridKind.A,
    eta: float = 0.1,
    seed: int = 0,
    d: int | None = None,
    replicas: int | None = None,
) -> dict:
    """``ste-density``: ``mu_tau(w | w*=1)`` at tau in {10, 25, 50, 100}, simulation vs PDE.

    Figure 1 setting: inputs and weights quantized with ``omega = 2``, ``b = 2``, ``w* = 1``,
    ``mu_0 = N(0, 1)``; eta (default 0.1), lam = sigma = 0 (unstated in the paper; notes 9.1).
    Default d = 600, 4 runs; full: d = 3000, 10 runs. Claims: the mass of every quantization
    bin and ``eps_g`` follow the PDE.
    """
    t0 = time.perf_counter()
    grid = coerce_kind(GridKind, grid, "grid")
    sz = _sizes(full, {"d": 600, "replicas": 4}, {"d": 3000, "replicas": 10}, d=d,
                replicas=replicas)  # fmt: skip
    q = sd.uniform_quantizer(2, 2.0, grid)
    setting = sd.STESetting(eta=eta, weight_quantizer=q, input_quantizer=q)
    taus = (10.0, 25.0, 50.0, 100.0)
    pde = sd.solve_fokker_planck(setting, 100.0, n_out=201, density_taus=taus)
    sim = simulate(setting, sz["d"], 100.0, replicas=sz["replicas"], n_out=101, seed=seed,
                   keep_weights_at=taus, progress=progress, desc="ste-density")  # fmt: skip
    hist_rows, mass_check = _density_panels(q, taus, sim, pde)
    fig = _density_figure(q, taus, sim, pde, f"grid {grid.value}, b=2, omega=2, eta={eta}, "
                          f"d={sz['d']}")  # fmt: skip
    mean, err = _mean_err(sim["eps_g"])
    pde_at = np.interp(sim["tau"], pde.tau, pde.eps_g)
    dmax, se_max, ok = _agreement(mean, err, pde_at)
    worst = max(mass_check, key=lambda r: r["gap"])
    claims = [
        Claim(
            source="000 Fig. 1",
            statement="the PDE predicts the density of the latent weights mu_tau(w | w*=1)",
            measured=f"largest bin-mass gap {worst['gap']:.4f} at tau={worst['tau']:g} "
            f"(bin {worst['bin']}; allowed {worst['allowed']:.4f})",
            expected="mass of every quantization bin within 4 binomial s.e. + 0.01 of the PDE "
            "at every tau",
            holds=all(r["excess"] <= 0 for r in mass_check),
        ),
        _agreement_claim("000 Fig. 1", {"eps_g": (dmax, se_max, ok)}),
    ]
    summary = {
        "experiment": "ste-density",
        "full": full,
        "setting": {"grid": grid.value, "bits": 2, "omega": 2.0, "eta": eta, **sz},
        "eps_g_pde_at_taus": {str(t): float(np.interp(t, pde.tau, pde.eps_g)) for t in taus},
        "eps_g_sim_at_taus": {str(t): float(np.interp(t, sim["tau"], mean)) for t in taus},
        "max_abs_diff_eps_g": dmax,
        "bin_mass_check": mass_check,
        "claims": claims,
    }
    paths = _write(out_dir, "ste_density", hist_rows, summary, fig)
    summary["runtime_s"] = time.perf_counter() - t0
    return {**summary, **paths}


def _density_panels(q, taus, sim, pde):
    """Histogram rows for the CSV and the per-bin mass check (simulation vs PDE)."""
    edges = np.linspace(-1.0, 3.0, 121)
    rows, checks = [], []
    bins = np.concatenate([[-np.inf], q.thresholds, [np.inf]])
    for k, tau in enumerate(taus):
        wk = sim["weights"][tau].ravel()
        h, _ = np.histogram(wk, bins=edges, density=True)
        h = h * np.mean((wk >= edges[0]) & (wk <= edges[-1]))
        for lo, hi, val in zip(edges[:-1], edges[1:], h):
            pde_val = np.interp(0.5 * (lo + hi), pde.x, pde.density[k, 0])
            rows.append({"tau": tau, "w_lo": lo, "w_hi": hi, "sim_density": val,
                         "pde_density": pde_val})  # fmt: skip
        sim_mass = np.histogram(wk, bins=bins)[0] / wk.size
        cell = pde.density[k, 0] * pde.dx
        pde_mass = np.array([cell[(pde.x > a) & (pde.x < b)].sum() for a, b in
                             zip(bins[:-1], bins[1:])])  # fmt: skip
        for j, (ms, mp) in enumerate(zip(sim_mass, pde_mass)):
            allowed = 4 * math.sqrt(max(mp * (1 - mp), 1e-12) / wk.size) + 0.01
            checks.append({"tau": tau, "bin": j, "sim": float(ms), "pde": float(mp),
                           "gap": float(abs(ms - mp)), "allowed": allowed,
                           "excess": float(abs(ms - mp) - allowed)})  # fmt: skip
    return rows, checks


def _density_figure(q, taus, sim, pde, title):
    plt = _plt()
    fig, axes = plt.subplots(1, 5, figsize=(15, 3.0))
    edges = np.linspace(-1.0, 3.0, 81)
    for ax, k in zip(axes[:4], range(len(taus))):
        wk = sim["weights"][taus[k]].ravel()
        h, _ = np.histogram(wk, bins=edges, density=True)
        h = h * np.mean((wk >= edges[0]) & (wk <= edges[-1]))
        ax.stairs(h, edges, fill=True, color="tab:red", alpha=0.5, label="STE simulation")
        ax.plot(pde.x, pde.density[k, 0], color="tab:blue", lw=1.2, label="PDE")
        for th in q.thresholds:
            ax.axvline(th, color="gray", lw=0.5, ls=":")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_title(f"tau = {taus[k]:g}", fontsize=9)
        ax.set_xlabel("latent weight w")
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=7)
    mean, err = _mean_err(sim["eps_g"])
    axes[4].errorbar(sim["tau"], mean, err, fmt="o", ms=2, color="tab:red", label="simulation")
    axes[4].plot(pde.tau, pde.eps_g, color="tab:blue", label="PDE")
    axes[4].set_xlabel("tau = t/d")
    axes[4].set_ylabel("eps_g")
    axes[4].set_yscale("log")
    axes[4].legend(fontsize=7)
    fig.suptitle(f"Fig. 1 setting: {title} (dotted: thresholds)", fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Figures 2-4 and the plateau: eps_g(tau) curves, simulation mean +- s.e. over runs vs PDE
# ---------------------------------------------------------------------------------------------


def _simulate_configs(name, configs, sz, progress, seed):
    """PDE, isotropic ODE and simulation of every ``(label, setting)``; CSV rows and results."""
    rows, results = [], []
    for i, (label, setting) in enumerate(configs):
        pde = sd.solve_fokker_planck(setting, sz["tau_max"], n_out=201)
        iso = sd.isotropic_closure_ode(setting, pde.tau)
        sim = simulate(setting, sz["d"], sz["tau_max"], replicas=sz["replicas"],
                       n_out=sz["n_points"], seed=seed + 1000 * i, progress=progress,
                       desc=f"{name} {label}")  # fmt: skip
        mean, err = _mean_err(sim["eps_g"])
        pde_at = np.interp(sim["tau"], pde.tau, pde.eps_g)
        iso_at = np.interp(sim["tau"], iso.tau, iso.eps_g)
        for k in range(sim["tau"].size):
            rows.append({"config": label, "tau": sim["tau"][k], "sim_mean": mean[k],
                         "sim_err": err[k], "pde": pde_at[k],
                         "isotropic_ode": iso_at[k]})  # fmt: skip
        results.append({"label": label, "setting": setting, "sim": sim, "mean": mean,
                        "err": err, "pde": pde, "iso": iso,
                        "agreement": _agreement(mean, err, pde_at)})  # fmt: skip
    return rows, results


def _config_summary(r) -> dict:
    s, mean, err, pde, iso = r["setting"], r["mean"], r["err"], r["pde"], r["iso"]
    return {
        "kappa1": s.kappa1,
        "kappa2": s.kappa2,
        "eps_g_final_sim": float(mean[-1]),
        "eps_g_final_sim_err": float(err[-1]),
        "eps_g_final_pde": float(pde.eps_g[-1]),
        "eps_g_final_isotropic_ode": float(iso.eps_g[-1]),
        "max_abs_diff": r["agreement"][0],
        "sim_err_at_max_diff": r["agreement"][1],
    }


def _draw_curves(ax, sel, cmap, marks, legend=True):
    for j, r in enumerate(sel):
        col = cmap(0.9 * j / max(len(sel) - 1, 1))
        ax.errorbar(r["sim"]["tau"], r["mean"], r["err"], fmt="o", ms=2.5, color=col,
                    label=r["label"])  # fmt: skip
        ax.plot(r["pde"].tau, r["pde"].eps_g, color=col, lw=1.3)
        if marks is None:
            ax.plot(r["iso"].tau, r["iso"].eps_g, color=col, lw=0.8, ls="--")
            continue
        pred, meas = marks[r["label"]]
        if math.isfinite(pred):
            ax.axvline(pred, color=col, lw=0.8, ls=":")
        if math.isfinite(meas):
            y = float(np.interp(meas, r["pde"].tau, r["pde"].eps_g))
            ax.plot([meas], [y], "x", ms=8, mew=2, color=col)
    ax.set_xlabel("tau = t/d")
    ax.set_ylabel("eps_g")
    if legend:
        ax.legend(fontsize=7, ncol=2)


def _zoom(ax, sel, window, what):
    """Linear-y close-up of ``window = (tau0, tau1)``, y limits fitted to the data there."""
    lo, hi = window
    vals = np.concatenate([np.asarray(r["mean"])[(r["sim"]["tau"] >= lo) & (r["sim"]["tau"] <= hi)]
                           for r in sel])  # fmt: skip
    pad = 0.08 * (vals.max() - vals.min() + 1e-9)
    ax.set_xlim(lo, hi)
    ax.set_ylim(vals.min() - pad, vals.max() + pad)
    ax.set_title(f"close-up: {what}", fontsize=8)


def _plot_curves(results, title, panels=None, *, log=True, marks=None, zoom=None):
    """One row per label group: simulation (symbols), PDE (solid), isotropic ODE (dashed) or,
    with ``marks[label] = (predicted, measured)``, the predicted plateau end (dotted) and the
    measured half drop (x). ``zoom = ((tau0, tau1), what)`` adds a linear close-up column."""
    plt = _plt()
    groups = panels or [[r["label"] for r in results]]
    ncol = 2 if zoom else 1
    size = (6.4, 3.6 * len(groups)) if ncol == 1 else (10.0, 3.2 * len(groups))
    fig, axes = plt.subplots(len(groups), ncol, figsize=size, squeeze=False)
    cmap = plt.get_cmap("viridis")
    for row, group in enumerate(groups):
        sel = [r for r in results if r["label"] in group]
        _draw_curves(axes[row, 0], sel, cmap, marks)
        if log:
            axes[row, 0].set_yscale("log")
        if zoom:
            _draw_curves(axes[row, 1], sel, cmap, marks, legend=False)
            _zoom(axes[row, 1], sel, *zoom)
    legend = ("symbols: simulation mean +- s.e.; solid: PDE; "
              + ("dashed: isotropic ODE" if marks is None else
                 "dotted: predicted plateau end; x: measured half drop"))  # fmt: skip
    fig.suptitle(f"{title}\n({legend})", fontsize=9)
    fig.tight_layout()
    return fig


def _finish(name, title, results, rows, sz, claims, out_dir, t0, *, extra=None, **plot_kw):
    summary = {"experiment": name, "sizes": sz, "tau_max": sz["tau_max"],
               "configs": {r["label"]: _config_summary(r) for r in results},
               **(extra or {}), "claims": claims}  # fmt: skip
    fig = _plot_curves(results, title, **plot_kw)
    paths = _write(out_dir, name.replace("-", "_"), rows, summary, fig)
    summary["runtime_s"] = time.perf_counter() - t0
    return {**summary, **paths}


_FIG2_DEFAULT = {"d": 300, "replicas": 5, "n_points": 26, "tau_max": 60.0}
_FIG2_FULL = {"d": 900, "replicas": 5, "n_points": 41, "tau_max": 100.0}


def run_bitwidth(
    full: bool = False,
    out_dir="results",
    progress: bool = True,
    *,
    grid: GridKind = GridKind.A,
    seed: int = 0,
    input_quantized: bool = False,
    d: int | None = None,
    replicas: int | None = None,
    tau_max: float | None = None,
) -> dict:
    """``ste-bitwidth``: eps_g(tau) for b in {2, 3, 4, 5} (Figure 2 setting).

    eta = 0.04, lam = 1, omega = 1, w* = 1, mu_0 = N(0, 1), sigma = 0; weights only by default
    (notes 12.7). Default d = 300 to tau = 60; full: d = 900 to tau = 100. Five runs each.
    Claims: the long-time error falls with the bit width, and the simulation follows the PDE.
    """
    t0 = time.perf_counter()
    grid = coerce_kind(GridKind, grid, "grid")
    bits = (2, 3, 4, 5)
    configs = []
    for b in bits:
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
    sz = _sizes(full, _FIG2_DEFAULT, _FIG2_FULL, d=d, replicas=replicas, tau_max=tau_max)
    rows, results = _simulate_configs("ste-bitwidth", configs, sz, progress, seed)
    tail = [_tail_mean(r) for r in results]
    pde_end = [float(r["pde"].eps_g[-1]) for r in results]
    claims = [
        Claim(
            source="000 Fig. 2",
            statement="the error reached falls as the bit width b grows (until the gain is "
            "below the noise)",
            measured="late-time eps_g "
            + ", ".join(f"b={b}: {m:.4f}+-{e:.4f}" for b, (m, e) in zip(bits, tail)),
            expected="PDE "
            + ", ".join(f"{v:.4f}" for v in pde_end)
            + "; test: decreasing from b=2 to 3 to 4, each step by more than 2 s.e.; b=5 not "
            "above b=4 by more than 2 s.e. (the PDE's b=4 -> 5 gain is 0.001)",
            holds=all(a[0] - b[0] > 2 * math.hypot(a[1], b[1]) for a, b in zip(tail[:3], tail[1:3]))
            and tail[3][0] - tail[2][0] <= 2 * math.hypot(tail[3][1], tail[2][1]),
        ),
        _agreement_claim("000 Fig. 2", {r["label"]: r["agreement"] for r in results}),
    ]
    title = f"Fig. 2 setting: omega=1, eta=0.04, lam=1, grid {grid.value}"
    return _finish("ste-bitwidth", title, results, rows, sz, claims, out_dir, t0)


def _tail_mean(r, frac: float = 0.25) -> tuple[float, float]:
    """Mean and s.e. over runs of the time average of eps_g over the last ``frac`` of the run."""
    eps = r["sim"]["eps_g"]
    k = max(1, int(round(frac * eps.shape[1])))
    per_run = eps[:, -k:].mean(axis=1)
    se = per_run.std(ddof=1) / math.sqrt(per_run.size) if per_run.size > 1 else 0.0
    return float(per_run.mean()), float(se)


def _check_init(init_mean, init_std, teacher):
    for pname, val in (("init_mean", init_mean), ("init_std", init_std)):
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val):
            msg = f"{pname} must be a finite number, got {val!r}; hint: {pname}=0.0"
            raise TypeError(msg)
    return {"init_mean": float(init_mean), "init_std": float(init_std), "teacher": teacher}


def run_range(
    full: bool = False,
    out_dir="results",
    progress: bool = True,
    *,
    grid: GridKind = GridKind.D,
    seed: int = 0,
    omegas=(0.25, 0.5, 1.0, 1.25, 1.5),
    init_mean: float = 0.0,
    init_std: float = 0.01,
    teacher=1.0,
    d: int | None = None,
    replicas: int | None = None,
    tau_max: float | None = None,
) -> dict:
    """``ste-range``: eps_g(tau) at b = 3 for omega in {0.25, 0.5, 1, 1.25, 1.5} (Figure 3).

    eta = 0.04, lam = 1, weights only (the rest unstated in the paper, as Figure 2). The initial
    law ``N(init_mean, init_std^2)`` and the teacher (a number, or ``(values, probabilities)``)
    are parameters: the default narrow start ``N(0, 0.01^2)`` on the mid-tread grid D puts every
    weight in the bin of level 0, so ``eps_g`` holds at 0.5 until the weights cross the first
    threshold ``omega/8`` -- a plateau whose length grows with omega, printed beside the
    theory's prediction. (From ``N(0, 1)`` no plateau shows: ``init_std=1`` makes the claim fail.)
    """
    t0 = time.perf_counter()
    grid = coerce_kind(GridKind, grid, "grid")
    init = _check_init(init_mean, init_std, teacher)
    omegas = tuple(float(o) for o in omegas)
    configs = [(f"omega={om:g}", sd.STESetting(eta=0.04, lam=1.0, **init,
                weight_quantizer=sd.uniform_quantizer(3, om, grid))) for om in omegas]  # fmt: skip
    sz = _sizes(full, {**_FIG2_DEFAULT, "n_points": 121}, {**_FIG2_FULL, "n_points": 201}, d=d,
                replicas=replicas, tau_max=tau_max)  # fmt: skip
    rows, results = _simulate_configs("ste-range", configs, sz, progress, seed)
    measures = {om: plateau_measure(r["setting"], r["sim"]["tau"], r["mean"])
                for om, r in zip(omegas, results)}  # fmt: skip
    claims = [
        _length_claim("000 Fig. 3", "omega", omegas, measures, rel_tol=0.3),
        _agreement_claim("000 Fig. 3", {r["label"]: r["agreement"] for r in results}),
    ]
    marks = {r["label"]: (measures[om]["predicted"], measures[om]["measured"])
             for om, r in zip(omegas, results)}  # fmt: skip
    title = (f"Fig. 3 setting: b=3, eta=0.04, lam=1, grid {grid.value}, "
             f"mu0=N({init_mean:g}, {init_std:g}^2)")  # fmt: skip
    extra = {"plateaus": {str(k): v for k, v in measures.items()}, "init": init}
    longest = max((m["predicted"] for m in measures.values() if math.isfinite(m["predicted"])),
                  default=sz["tau_max"])  # fmt: skip
    zoom = ((0.0, min(2.0 * longest, sz["tau_max"])), "the first plateaus")
    return _finish("ste-range", title, results, rows, sz, claims, out_dir, t0, extra=extra,
                   marks=marks, zoom=zoom)  # fmt: skip


def run_plateau(
    full: bool = False,
    out_dir="results",
    progress: bool = True,
    *,
    grid: GridKind = GridKind.D,
    bits: int = 2,
    eta: float = 0.05,
    omegas=(1.0, 2.0, 3.0),
    init_mean: float = 0.0,
    init_std: float = 0.05,
    teacher=1.0,
    input_quantized: bool = False,
    seed: int = 0,
    d: int | None = None,
    replicas: int | None = None,
    tau_max: float | None = None,
) -> dict:
    """``ste-plateau``: the abstract's "plateau, then a sharp drop; plateau length set by omega".

    Weight-only quantization (paper section VI-A) on the mid-tread grid D, b = 2, w* = 1,
    eta = 0.05, lam = sigma = 0, a narrow start ``mu_0 = N(0, 0.05^2)`` (all weights in the bin
    of level 0, ``eps_g = 0.5``). The weights drift at speed ``eta kappa1 w*`` to the threshold
    ``omega/4``, so the plateau lasts ``T = omega / (4 eta)`` (5, 10, 15 for omega = 1, 2, 3),
    then ``eps_g`` drops to the next level's value. The initial law, teacher, grid, eta and the
    omegas are parameters (a wide ``init_std=1`` removes the plateau and the claim fails).
    Default d = 500, 5 runs; full: d = 2000, 5 runs.
    """
    t0 = time.perf_counter()
    grid = coerce_kind(GridKind, grid, "grid")
    init = _check_init(init_mean, init_std, teacher)
    omegas = tuple(float(o) for o in omegas)
    configs = []
    for om in omegas:
        q = sd.uniform_quantizer(bits, om, grid)
        configs.append((f"omega={om:g}", sd.STESetting(
            eta=eta, weight_quantizer=q, input_quantizer=q if input_quantized else None,
            **init)))  # fmt: skip
    longest = max(sd.plateau_lengths(s, init["init_mean"])["bins"][0][3] for _, s in configs)
    horizon = 2.5 * longest if math.isfinite(longest) else 50.0
    sz = _sizes(full, {"d": 500, "replicas": 5, "n_points": 61, "tau_max": horizon},
                {"d": 2000, "replicas": 5, "n_points": 101, "tau_max": horizon}, d=d,
                replicas=replicas, tau_max=tau_max)  # fmt: skip
    rows, results = _simulate_configs("ste-plateau", configs, sz, progress, seed)
    measures = {om: plateau_measure(r["setting"], r["sim"]["tau"], r["mean"])
                for om, r in zip(omegas, results)}  # fmt: skip
    shape_ok = all(m["flat"] and m["dropped"] for m in measures.values())
    claims = [
        Claim(
            source="000 abstract",
            statement="STE training shows a plateau of eps_g followed by a drop",
            measured=", ".join(
                f"omega={om:g}: flat {m['eps_plateau']:.3f} to T/2 {'yes' if m['flat'] else 'NO'}"
                f", dropped by 1.5T {'yes' if m['dropped'] else 'NO'}"
                for om, m in measures.items()
            ),
            expected="test: eps_g within 10% of the gap of its plateau value until T/2, then "
            ">= 40% of the way to the next level's value by 1.5 T (T: predicted length)",
            holds=shape_ok,
        ),
        _length_claim("000 abstract", "omega", omegas, measures, rel_tol=0.3),
        _agreement_claim("000 abstract", {r["label"]: r["agreement"] for r in results}),
    ]
    marks = {r["label"]: (measures[om]["predicted"], measures[om]["measured"])
             for om, r in zip(omegas, results)}  # fmt: skip
    title = (f"Plateau: grid {grid.value}, b={bits}, eta={eta}, weights"
             f"{' and inputs' if input_quantized else ' only'}, "
             f"mu0=N({init_mean:g}, {init_std:g}^2), d={sz['d']}")  # fmt: skip
    extra = {"plateaus": {str(k): v for k, v in measures.items()}, "init": init}
    return _finish("ste-plateau", title, results, rows, sz, claims, out_dir, t0, extra=extra,
                   log=False, marks=marks)  # fmt: skip


def run_joint(
    full: bool = False,
    out_dir="results",
    progress: bool = True,
    *,
    grid: GridKind = GridKind.A,
    omega_x: float = 4.0,
    weight_bits=(3, 4),
    seed: int = 0,
    d: int | None = None,
    replicas: int | None = None,
    tau_max: float | None = None,
) -> dict:
    """``ste-joint``: weights (b in {3, 4}) and inputs (b_x in {3, 4, 5, none}) quantized.

    Figure 4 setting: omega = 1 for the weights, eta = 0.05, lam = 1, "T = 0" read as sigma = 0,
    d = 500 (full; default 250 to tau = 40). The input range ``omega_x`` defaults to 4: at
    ``omega_x = 1`` (the paper's omega, if it applies to the inputs too) clipping dominates the
    input error and b_x = 3, 4, 5 give the same curve (0.2568 / 0.2566 / 0.2565 at tau = 40);
    at ``omega_x = 4`` rounding dominates and the error falls with b_x. ``weight_bits`` picks the
    panels (the paper's b = 3 and 4).
    """
    t0 = time.perf_counter()
    grid = coerce_kind(GridKind, grid, "grid")
    configs, panels = [], []
    weight_bits = tuple(weight_bits)
    for b in weight_bits:
        qw = sd.uniform_quantizer(b, 1.0, grid)
        group = []
        for bx in (3, 4, 5, None):
            qx = None if bx is None else sd.uniform_quantizer(bx, float(omega_x), grid)
            label = f"b={b}, b_x={'none' if bx is None else bx}"
            configs.append(
                (label, sd.STESetting(eta=0.05, lam=1.0, weight_quantizer=qw, input_quantizer=qx))
            )
            group.append(label)
        panels.append(group)
    sz = _sizes(full, {"d": 250, "replicas": 5, "n_points": 21, "tau_max": 40.0},
                {"d": 500, "replicas": 5, "n_points": 41, "tau_max": 80.0}, d=d,
                replicas=replicas, tau_max=tau_max)  # fmt: skip
    rows, results = _simulate_configs("ste-joint", configs, sz, progress, seed)
    claims = []
    for b, group in zip(weight_bits, panels):
        sel = [r for r in results if r["label"] in group]
        tail = [_tail_mean(r, 0.3) for r in sel]
        pde_end = [float(r["pde"].eps_g[-1]) for r in sel]
        quantized, unquantized = tail[:-1], tail[-1]
        ok = all(
            a[0] - c[0] > 2 * math.hypot(a[1], c[1]) for a, c in zip(quantized, quantized[1:])
        ) and unquantized[0] <= quantized[-1][0] + 2 * math.hypot(unquantized[1], quantized[-1][1])
        claims.append(Claim(
            source="000 Fig. 4",
            statement=f"with b={b} weights, the input bit width b_x changes the error "
            "(coarser inputs, higher eps_g; unquantized lowest)",
            measured="late-time eps_g " + ", ".join(
                f"b_x={lab.split('b_x=')[1]}: {m:.4f}+-{e:.4f}" for lab, (m, e) in
                zip(group, tail)),
            expected="PDE " + ", ".join(f"{v:.4f}" for v in pde_end)
            + f" (omega_x={omega_x:g}); test: decreasing from b_x=3 to 4 to 5, each step by "
            "more than 2 s.e., and unquantized inputs not above b_x=5 (by 2 s.e.)",
            holds=ok,
        ))  # fmt: skip
    claims.append(_agreement_claim("000 Fig. 4", {r["label"]: r["agreement"] for r in results}))
    title = f"Fig. 4 setting: omega=1 (weights), omega_x={omega_x:g}, eta=0.05, lam=1, grid {grid.value}"
    zoom = ((0.7 * sz["tau_max"], sz["tau_max"]), "late times, where b_x separates the curves")
    return _finish("ste-joint", title, results, rows, sz, claims, out_dir, t0,
                   extra={"omega_x": float(omega_x)}, panels=panels, zoom=zoom)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Figure 5: input-only quantization, stability boundary and steady state
# ---------------------------------------------------------------------------------------------


def run_stability(
    full: bool = False,
    out_dir="results",
    progress: bool = True,
    *,
    grid: GridKind = GridKind.A,
    omega: float = 1.0,
    seed: int = 0,
    d: int | None = None,
    replicas: int | None = None,
    tau_max: float | None = None,
) -> dict:
    """``ste-stability``: input-only quantization, lam = sigma = 0 (Figure 5 setting).

    Left: the stability boundary ``eta_c = 2 / kappa2`` per bit width (unquantized: 2), with
    simulations at ``0.9 eta_c`` (settles) and ``1.1 eta_c`` (blows up). Right: steady-state
    ``eps_g* = rho (1 - kappa1^2/kappa2) / (2 - eta kappa2)`` vs eta, with long simulations
    (time average over the last third of the run, mean +- s.e. over runs).
    b, omega and grid are unstated in the paper: b in {2, 3, 4, 5}, omega = 1, grid A.
    """
    t0 = time.perf_counter()
    grid = coerce_kind(GridKind, grid, "grid")
    sz = _sizes(full, {"d": 200, "replicas": 4, "tau_max": 30.0},
                {"d": 500, "replicas": 5, "tau_max": 60.0}, d=d, replicas=replicas,
                tau_max=tau_max)  # fmt: skip
    bits = (2, 3, 4, 5)
    rows, info, sims = _stability_runs(grid, omega, bits, sz, seed, progress)
    below = [p for b in bits for p in info[str(b)]["points"] if p["eta_over_eta_c"] == 0.9]
    above = [p for b in bits for p in info[str(b)]["points"] if p["eta_over_eta_c"] == 1.1]
    steady = [p for b in bits for p in info[str(b)]["points"] if p["eta_over_eta_c"] <= 0.8]
    worst = max(steady, key=lambda p: abs(p["sim_tail_mean"] - p["theory_eps_g_star"]))
    claims = [
        Claim(
            source="000 Fig. 5",
            statement="training is stable for eta < 2/sigma_psi^2 and has no stable fixed point "
            "above",
            measured="final eps_g at 0.9 eta_c: "
            + ", ".join(f"b={p['bits']}: {p['sim_final_mean']:.3g}" for p in below)
            + "; at 1.1 eta_c: "
            + ", ".join(f"b={p['bits']}: {p['sim_final_mean']:.3g}" for p in above),
            expected="eta_c = 2/kappa2 = "
            + ", ".join(f"{info[str(b)]['eta_c']:.3f}" for b in bits)
            + "; test: below, final < 3x the theory's eps_g*; above, final > 100x eps_g(0)",
            holds=all(p["sim_final_mean"] < 3 * p["theory_eps_g_star"] for p in below)
            and all(not p["sim_final_mean"] < 100 * p["eps_g_initial"] for p in above),
        ),
        Claim(
            source="000 Fig. 5",
            statement="the steady-state error is rho (1 - kappa1^2/kappa2) / (2 - eta kappa2)",
            measured=f"largest gap {abs(worst['sim_tail_mean'] - worst['theory_eps_g_star']):.4f}"
            f" (b={worst['bits']}, eta={worst['eta']:g}) over {len(steady)} points with "
            "eta <= 0.8 eta_c",
            expected=f"test: within {Z_TOL:g} s.e. + 0.01 of the closed form",
            holds=all(p["excess"] <= 0 for p in steady),
        ),
    ]
    summary = {"experiment": "ste-stability", "sizes": sz, "bits": info, "claims": claims}
    fig = _stability_figure(grid, omega, bits, info, sims)
    paths = _write(out_dir, "ste_stability", rows, summary, fig)
    summary["runtime_s"] = time.perf_counter() - t0
    return {**summary, **paths}


_STABILITY_ETAS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)


def _stability_runs(grid, omega, bits, sz, seed, progress):
    rows, info, sims = [], {}, {}
    bar = _bar(len(bits) * (len(_STABILITY_ETAS) + 2), "ste-stability", progress)
    for b in bits:
        q = sd.uniform_quantizer(b, omega, grid)
        base = sd.STESetting(eta=1.0, input_quantizer=q)
        eta_c = sd.stability_boundary(base)
        entry = {"kappa1": base.kappa1, "kappa2": base.kappa2, "eta_c": eta_c, "points": []}
        etas = [e for e in _STABILITY_ETAS if e < eta_c] + [0.9 * eta_c, 1.1 * eta_c]
        for i, eta in enumerate(etas):
            s = sd.STESetting(eta=eta, input_quantizer=q)
            theory = sd.steady_state_eps_g(s)
            boundary = i >= len(etas) - 2
            tau = 15.0 if boundary else sz["tau_max"]
            with np.errstate(over="ignore", invalid="ignore"):
                sim = simulate(s, sz["d"], tau, replicas=sz["replicas"], n_out=61,
                               seed=seed + 100 * b + i)  # fmt: skip
                tail = sim["eps_g"][:, 40:].mean(axis=1)
                tail_err = float(tail.std(ddof=1) / math.sqrt(tail.size)) if tail.size > 1 else 0.0
                excess = abs(float(tail.mean()) - theory) - (Z_TOL * tail_err + 0.01)
            r = {
                "bits": b,
                "eta": eta,
                "eta_over_eta_c": round(eta / eta_c, 6) if boundary else eta / eta_c,
                "theory_eps_g_star": theory,
                "eps_g_initial": float(sim["eps_g"][:, 0].mean()),
                "sim_tail_mean": float(tail.mean()),
                "sim_tail_err": tail_err,
                "sim_final_mean": float(sim["eps_g"][:, -1].mean()),
                "excess": float(excess) if math.isfinite(excess) else math.inf,
            }
            rows.append(r)
            entry["points"].append(r)
            sims[(b, round(eta / eta_c, 6) if boundary else i)] = sim
            bar.update()
        info[str(b)] = entry
    bar.close()
    return rows, info, sims


def _stability_figure(grid, omega, bits, info, sims):
    plt = _plt()
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 3.8))
    cmap = plt.get_cmap("viridis")
    ax1.plot(bits, [info[str(b)]["eta_c"] for b in bits], "o-", label="2/kappa2")
    ax1.axhline(2.0, ls="--", color="k", label="unquantized (2)")
    ax1.set_xlabel("input bit width b_x")
    ax1.set_ylabel("stability boundary eta_c")
    ax1.legend(fontsize=8)
    ax1.set_title("stability boundary 2/sigma_psi^2", fontsize=9)
    for j, b in enumerate(bits):
        col = cmap(0.9 * j / (len(bits) - 1))
        for key, ls in ((0.9, "-"), (1.1, ":")):
            sim = sims[(b, key)]
            with np.errstate(over="ignore", invalid="ignore"):
                ax2.plot(sim["tau"], sim["eps_g"].mean(axis=0), ls=ls, color=col,
                         label=f"b={b}, eta={key} eta_c")  # fmt: skip
        entry = info[str(b)]
        eg = np.linspace(0.05, 0.995 * entry["eta_c"], 120)
        q = sd.uniform_quantizer(b, omega, grid)
        th = [sd.steady_state_eps_g(sd.STESetting(eta=e, input_quantizer=q)) for e in eg]
        ax3.plot(eg, th, color=col, label=f"b={b} theory")
        pts = [p for p in entry["points"] if p["eta_over_eta_c"] < 0.9]
        ax3.errorbar([p["eta"] for p in pts], [p["sim_tail_mean"] for p in pts],
                     [p["sim_tail_err"] for p in pts], fmt="o", ms=4, color=col)  # fmt: skip
    ax2.set_yscale("log")
    ax2.set_xlabel("tau")
    ax2.set_ylabel("eps_g (simulation)")
    ax2.legend(fontsize=6, ncol=2)
    ax2.set_title("just below (solid) / above (dotted) the boundary", fontsize=9)
    ax3.axhline(0.0, ls="--", color="k", label="unquantized (0)")
    ax3.set_xlabel("eta")
    ax3.set_ylabel("steady-state eps_g*")
    ax3.set_ylim(0, 1.0)
    ax3.legend(fontsize=7)
    ax3.set_title(f"input-only quantization, grid {grid.value}, omega={omega}", fontsize=9)
    fig.tight_layout()
    return fig
