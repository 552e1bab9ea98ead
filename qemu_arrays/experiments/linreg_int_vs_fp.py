"""``linreg-int-vs-fp``: additive (INT) vs multiplicative (FP) data quantization in SGD.

Paper 002's experiments: Gaussian least squares with ``λ_i = i^(−2)``, ``w* = 1``, ``σ = 1``,
batch 1, constant step size, iterate averaging; the data (features) are quantized.

Part 1 (noise models): additive ``x + √ε ξ`` vs multiplicative ``(1 + √ε ξ)x`` (shared, the
paper's model) at several ε and dimensions ``d``; Monte Carlo mean ± s.e. over replicas next to
the exact risk recursion of :mod:`qemu_arrays.theory.linreg_risk`.

Part 2 (real formats): the same SGD with the data rounded to INT8/INT4 and FP8 (E4M3)/FP4 (E2M1)
by :func:`qemu_arrays.quantize` (per-sample absmax scaling, stochastic rounding so that the
rounding is unbiased), next to the full-precision recursion and the noise-model recursion at
the nominal ε of each format (INT: ``E[Δ²]/6``, the mean variance of stochastic rounding with
step Δ; FP: elementwise multiplicative ``0.09·2^(−2m)``; subnormals and the range are ignored,
so the nominal FP curve is optimistic for narrow formats).
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["run"]

NAME = "linreg-int-vs-fp"


def _settings(full: bool) -> dict:
    if full:
        return {
            "eps": [1e-3, 5e-3, 1e-2],
            "dims": [50, 100, 200, 400],
            "d_eps": 200,
            "eps_dim": 1e-2,
            "steps": 20_000,
            "replicas": 200,
            "lr": 0.05,
            "n_records": 30,
            "formats": ["int8", "int4", "float8_e4m3fn", "float4_e2m1fn"],
            "d_formats": 200,
        }
    return {
        "eps": [1e-3, 1e-2],
        "dims": [50, 200],
        "d_eps": 200,
        "eps_dim": 1e-2,
        "steps": 2_000,
        "replicas": 24,
        "lr": 0.05,
        "n_records": 16,
        "formats": ["int8", "int4", "float8_e4m3fn", "float4_e2m1fn"],
        "d_formats": 100,
    }


def _bar(total: int, progress: bool):
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=NAME, leave=False)
    except ImportError:
        from qemu_arrays.training.sgd import _StderrCounter

        return _StderrCounter(total)


def _nominal_eps(fmt_name: str, d: int, rng) -> tuple[str, float]:
    """(scheme, ε) of the noise model matching a format with per-sample absmax scaling."""
    from qemu_arrays.formats.catalog import get_format
    from qemu_arrays.formats.spec import IntFormat

    fmt = get_format(fmt_name)
    if isinstance(fmt, IntFormat):
        lam = np.arange(1, d + 1, dtype=np.float64) ** -2.0
        x = rng.standard_normal((4000, d)) * np.sqrt(lam)
        step = np.abs(x).max(axis=1) / fmt.max
        return "add", float(np.mean(step**2) / 6.0)
    return "mul_el", 0.09 * 2.0 ** (-2 * fmt.mantissa_bits)


def run(
    full: bool = False,
    out_dir: str | Path = "out/linreg-int-vs-fp",
    progress: bool = True,
    overrides: dict | None = None,
):
    """Run the experiment; write ``linreg_int_vs_fp.{png,csv,json}`` to ``out_dir``.

    ``overrides`` replaces entries of the settings (``eps``, ``dims``, ``d_eps``, ``eps_dim``,
    ``steps``, ``replicas``, ``lr``, ``n_records``, ``formats``, ``d_formats``), e.g. for a
    quick smoke run.

    Returns a dict with ``rows`` (one per curve and record time: part, scheme, eps, d,
    format, step, samples, sim, sim_sem, theory), ``summary`` (final averaged-iterate risks),
    ``settings``, ``runtime_s`` and ``files``.
    """
    from qemu_arrays.training import log_grid

    t_start = time.perf_counter()
    cfg = _settings(bool(full))
    bad = sorted(set(overrides or {}) - set(cfg))
    if bad:
        msg = f"overrides has unknown key(s) {bad}; allowed: {sorted(cfg)}; hint: see _settings"
        raise ValueError(msg)
    cfg.update(overrides or {})
    rec = log_grid(cfg["steps"], cfg["n_records"])
    rec = rec[rec > 0]
    tasks = _tasks(cfg)
    rows, summary = [], []
    bar = _bar(len(tasks), progress)
    rng_eps = np.random.default_rng(12345)
    for k, task in enumerate(tasks):
        r, s = _run_task(k, task, cfg, rec, rng_eps)
        rows += r
        summary.append(s)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    claims = [c.to_dict() for c in _claims(summary, cfg)]
    files = _write_outputs(Path(out_dir), rows, summary, claims, cfg, t_start)
    return {
        "rows": rows,
        "summary": summary,
        "settings": cfg,
        "claims": claims,
        "runtime_s": time.perf_counter() - t_start,
        "files": files,
    }


def _tasks(cfg) -> list[tuple]:
    """(part, scheme, eps, d, format-or-None) of every curve."""
    tasks = []
    for eps in [0.0, *cfg["eps"]]:
        for scheme in ("add", "mul") if eps else ("fp",):
            tasks.append(("eps", scheme, eps, cfg["d_eps"], None))
    for d in cfg["dims"]:
        for scheme in ("fp", "add", "mul"):
            tasks.append(("dim", scheme, 0.0 if scheme == "fp" else cfg["eps_dim"], d, None))
    tasks.append(("format", "fp", 0.0, cfg["d_formats"], None))
    for f in cfg["formats"]:
        tasks.append(("format", "hw", 0.0, cfg["d_formats"], f))
    return tasks


def _quantizers(scheme, eps, fmt, d, rng_eps):
    """(the simulated quantizer, its noise model for the recursion, the nominal eps)."""
    from qemu_arrays.training import AdditiveNoise, FormatQuantizer, MultiplicativeNoise

    if scheme == "add":
        return AdditiveNoise(eps), AdditiveNoise(eps), eps
    if scheme == "mul":
        q = MultiplicativeNoise(eps, shared=True)
        return q, q, eps
    if scheme == "hw":
        from qemu_arrays import Rounding

        q = FormatQuantizer(fmt, rounding=Rounding.STOCHASTIC, scale="absmax")
        kind, eps = _nominal_eps(fmt, d, rng_eps)
        model = AdditiveNoise(eps) if kind == "add" else MultiplicativeNoise(eps, shared=False)
        return q, model, eps
    return None, None, eps


def _run_task(k, task, cfg, rec, rng_eps):
    """Simulate one curve and its recursion; the CSV rows and the summary entry."""
    from qemu_arrays.theory.linreg_risk import risk_recursion
    from qemu_arrays.training import LinearRegression, run_sgd

    part, scheme, eps, d, fmt = task
    steps, lr, R = cfg["steps"], cfg["lr"], cfg["replicas"]
    model = LinearRegression(d, 2.0, 1.0, 1.0)
    q, theory_q, eps = _quantizers(scheme, eps, fmt, d, rng_eps)
    res = run_sgd(
        model, steps=steps, lr=lr, replicas=R, sites={"data": q}, average=True,
        seed=1000 + k, record_steps=rec, prefetch=250,
    )  # fmt: skip
    th = risk_recursion(
        model.eigenvalues, model.w_star, model.noise, lr, steps, data=theory_q,
        record_steps=rec,
    )["risk_avg"]  # fmt: skip
    mean, sem = res.mean("risk_avg"), res.sem("risk_avg")
    key = {"part": part, "scheme": scheme, "eps": eps, "d": d, "format": fmt or ""}
    rows = [{**key, "step": int(st), "samples": int(st), "sim": float(mean[i]),
             "sim_sem": float(sem[i]), "theory": float(th[i])}
            for i, st in enumerate(rec)]  # fmt: skip
    summary = {**key, "final_sim": float(mean[-1]), "final_sem": float(sem[-1]),
               "final_theory": float(th[-1]),
               "z": float((mean[-1] - th[-1]) / max(sem[-1], 1e-300))}  # fmt: skip
    return rows, summary


def _write_outputs(out: Path, rows, summary, claims, cfg, t_start) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "linreg_int_vs_fp.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    runtime = time.perf_counter() - t_start
    json_path = out / "linreg_int_vs_fp.json"
    json_path.write_text(
        json.dumps(
            {"settings": cfg, "summary": summary, "claims": claims, "runtime_s": runtime}, indent=1
        )
    )
    png_path = out / "linreg_int_vs_fp.png"
    _plot(rows, cfg, png_path)
    return [str(png_path), str(csv_path), str(json_path)]


def _final(summary, part, scheme, **match):
    return [s for s in summary if s["part"] == part and s["scheme"] == scheme
            and all(s[k] == v for k, v in match.items())]  # fmt: skip


def _claims(summary, cfg) -> list:
    """The claim lines: the epsilon and dimension sweeps, agreement, and Corollary 4.3."""
    from qemu_arrays.experiments.claims import Claim

    fp = _final(summary, "eps", "fp")[0]
    adds = _final(summary, "eps", "add")
    muls = _final(summary, "eps", "mul")
    add_pen = [a["final_theory"] - fp["final_theory"] for a in adds]
    mul_pen = [m["final_theory"] - fp["final_theory"] for m in muls]
    sim_add = [a["final_sim"] for a in adds]
    eps_ok = (all(b > a for a, b in zip(sim_add, sim_add[1:]))
              and all(m < 0.25 * a for m, a in zip(mul_pen, add_pen)))  # fmt: skip
    dims = cfg["dims"]
    pen = {}
    for scheme in ("add", "mul"):
        pen[scheme] = [
            _final(summary, "dim", scheme, d=d)[0]["final_theory"]
            - _final(summary, "dim", "fp", d=d)[0]["final_theory"]
            for d in dims
        ]
    dim_ok = (pen["add"][-1] >= 1.25 * pen["add"][0]
              and max(pen["mul"]) < 1.5 * min(pen["mul"]) + 0.002)  # fmt: skip
    noise = [s for s in summary if s["scheme"] in ("fp", "add", "mul")]
    zmax = max(abs(s["z"]) for s in noise)
    return [
        Claim(
            source="002 Sec. 5 experiments",
            statement="multiplicative data quantization stays on the full-precision curve; "
            "additive degrades as eps grows",
            measured="final risk, fp "
            + f"{fp['final_sim']:.4f}; "
            + ", ".join(
                f"eps={a['eps']:g}: add {a['final_sim']:.4f}, mul {m['final_sim']:.4f}"
                for a, m in zip(adds, muls)
            ),
            expected="test: additive risk increases with eps (simulation) and the multiplicative "
            "penalty is < 1/4 of the additive one at each eps (recursion)",
            holds=bool(eps_ok),
        ),
        Claim(
            source="002 Sec. 5 experiments, Cor. 4.3",
            statement="additive data quantization deteriorates significantly as d grows; "
            "multiplicative is insensitive to d (exact recursion; the simulation's agreement is "
            "the next claim)",
            measured="penalty vs d "
            + ", ".join(
                f"d={d}: add {a:.4f}, mul {m:.4f}" for d, a, m in zip(dims, pen["add"], pen["mul"])
            ),
            expected="test: the additive penalty at the largest d >= 1.25x the one at the "
            "smallest, the multiplicative one within a factor 1.5 (+0.002) across d. On the "
            "clean-data excess risk the lifted tail is weighted by lambda_i, so the growth is "
            "mild; the paper's d-dependence is that of its upper bound (k* = d)",
            holds=bool(dim_ok),
        ),
        Claim(
            source="002 Thm. 4.1 setting",
            statement="the simulation agrees with the exact risk recursion (noise models)",
            measured=f"largest |z| = {zmax:.2f} over {len(noise)} curves",
            expected="test: |z| <= 4",
            holds=bool(zmax <= 4.0),
        ),
        _cor43_claim(cfg),
    ]


def _cor43_claim(cfg):
    """Corollary 4.3's condition as a decision rule, against the exact recursion (9 pairs)."""
    from qemu_arrays.experiments.claims import Claim
    from qemu_arrays.theory.linreg_risk import _cor43_threshold, int_fp_data_risks
    from qemu_arrays.training.models import LinearRegression

    model = LinearRegression(cfg["d_eps"], 2.0, 1.0, 1.0)
    pairs = [(b, m) for b in (4, 6, 8) for m in (2, 3, 4)]
    verdicts = []
    for b, m in pairs:
        r_int, r_fp = int_fp_data_risks(b, m, model.eigenvalues, 1.0, 1.0, cfg["lr"],
                                        cfg["steps"])  # fmt: skip
        verdicts.append((b, m, r_fp <= r_int, m >= _cor43_threshold(b, 2.0, cfg["d_eps"])))
    agree = sum(v[2] == v[3] for v in verdicts)
    return Claim(
        source="002 Cor. 4.3 (as read)",
        statement="FP with m mantissa bits beats INT with b bits when m >= b - (a/2) log2 d",
        measured=f"the condition names the exact recursion's winner in {agree} of "
        f"{len(pairs)} (b, m) pairs; "
        + ", ".join(
            f"(b={b},m={m}): exact {'FP' if e else 'INT'}, Cor. {'FP' if c else 'INT'}"
            for b, m, e, c in verdicts
        ),
        expected=f"d={cfg['d_eps']}, a=2, eps_int=2^-2b, eps_fp=2^-2m, {cfg['steps']} steps; "
        "test: all agree. The corollary compares upper bounds, so a mismatch refutes this "
        "reading as a decision rule, not the bound",
        holds=agree == len(pairs),
    )


def _plot(rows, cfg, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    style = {"fp": ("k", "-"), "add": ("tab:red", "--"), "mul": ("tab:blue", "-")}

    def curves(part):
        keys = []
        for r in rows:
            key = (r["scheme"], r["eps"], r["d"], r["format"])
            if r["part"] == part and key not in keys:
                keys.append(key)
        for key in keys:
            sel = [
                r
                for r in rows
                if r["part"] == part and (r["scheme"], r["eps"], r["d"], r["format"]) == key
            ]
            yield key, sel

    panels = (
        (axes[0], "eps", f"d = {cfg['d_eps']}: ε sweep (lighter: smaller ε)"),
        (axes[1], "dim", f"ε = {cfg['eps_dim']}: dimension sweep (lighter: smaller d)"),
        (axes[2], "format", f"real formats, d = {cfg['d_formats']}"),
    )
    fmt_colors = iter(["tab:red", "tab:orange", "tab:blue", "tab:cyan"])
    for ax, part, title in panels:
        for (scheme, eps, d, fmt), sel in curves(part):
            n = np.array([r["samples"] for r in sel])
            sim = np.array([r["sim"] for r in sel])
            err = np.array([r["sim_sem"] for r in sel])
            th = np.array([r["theory"] for r in sel])
            if scheme == "hw":
                color, ls = next(fmt_colors), "-"
                label = fmt
            else:
                color, ls = style[scheme]
                label = scheme if scheme == "fp" else f"{scheme} ε={eps:g}"
                if part == "dim":
                    label += f" d={d}"
            alpha = 1.0
            if part == "dim":
                alpha = 0.35 + 0.65 * (cfg["dims"].index(d) + 1) / len(cfg["dims"])
            elif part == "eps" and eps in cfg["eps"]:  # lighter = smaller eps
                alpha = 0.35 + 0.65 * (cfg["eps"].index(eps) + 1) / len(cfg["eps"])
            ax.errorbar(n, sim, yerr=err, fmt="o", ms=3, color=color, alpha=alpha, label=label)
            ax.plot(n, th, ls, color=color, alpha=alpha, lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("samples N")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=6)
    axes[0].set_ylabel("excess risk of the averaged iterate")
    fig.suptitle(
        "SGD on linear regression: INT (additive) vs FP (multiplicative) data quantization "
        "(markers: simulation ± s.e.; lines: exact recursion / noise model)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":  # pragma: no cover
    out = run(full="--full" in sys.argv)
    print(json.dumps({"runtime_s": out["runtime_s"], "files": out["files"]}, indent=1))
    for s in out["summary"]:
        print(s)
    print(f"{math.nan if not out['summary'] else len(out['summary'])} curves")
