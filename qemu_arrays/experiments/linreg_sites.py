"""``linreg-sites``: paper 002's claims per quantization target, batch size and spectrum.

Setting (paper 002's experiments, scaled down): Gaussian least squares with ``λ_i = i^(−2)``,
``w* = 1``, ``σ = 1``, one-pass minibatch SGD at a constant step, iterate averaging, ``N`` steps
of ``B`` fresh samples. One quantizer at a time sits at one of the five targets of the paper
(data, labels, parameters = ``weights``, activations, gradients = ``output_grad``), additive
(``x + √ε ξ``, INT-like) or shared multiplicative (``(1 + √ε ξ) x``, the paper's FP model).

For each target, scheme and batch size it reports the *penalty*: the final averaged-iterate risk
minus the full-precision risk at the same ``B``, from the simulation (paired: same seed, so the
data are the same and only the quantizer's noise differs; mean ± s.e. over replicas) beside the
exact moment recursion of :func:`qemu_arrays.theory.linreg_risk.risk_recursion`. It also
measures the quantized data spectrum ``H^(q)`` from samples against ``λ + ε`` and ``(1 + ε)λ``.

Claims (abstract and Corollary 4.1 of paper 002): additive activation and gradient quantization
noise is suppressed by the batch size (penalty ∝ 1/B), multiplicative activation noise much less;
data quantization distorts the spectrum when additive and keeps its shape when multiplicative;
every target's quantization costs risk; the simulation agrees with the recursion.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import numpy as np

from qemu_arrays.experiments.claims import Claim

__all__ = ["TARGETS", "run"]

#: paper 002's five targets and the harness site that carries each
TARGETS = {
    "data": "data",
    "labels": "labels",
    "parameters": "weights",
    "activations": "activations",
    "gradients": "output_grad",
}
SCHEMES = ("additive", "multiplicative")


def _settings(full: bool) -> dict:
    base = {"d": 32, "eps": 0.2, "steps": 400, "lr": 0.1, "batches": [1, 4, 16]}
    if full:
        return {**base, "replicas": 2000, "spectrum_samples": 200_000}
    return {**base, "replicas": 400, "spectrum_samples": 40_000}


def _quantizer(scheme: str, eps: float):
    from qemu_arrays.training import AdditiveNoise, MultiplicativeNoise

    return AdditiveNoise(eps) if scheme == "additive" else MultiplicativeNoise(eps, shared=True)


def _penalties(cfg, seed, progress):
    """Rows: target, scheme, B, simulated penalty ± s.e., recursion penalty, and both risks."""
    from qemu_arrays.theory.linreg_risk import risk_recursion
    from qemu_arrays.training import LinearRegression, run_sgd

    model = LinearRegression(cfg["d"], 2.0, 1.0, 1.0)
    steps, lr, R = cfg["steps"], cfg["lr"], cfg["replicas"]
    kw = {"steps": steps, "lr": lr, "replicas": R, "average": True, "record_steps": [steps]}
    rows = []
    for B in cfg["batches"]:
        fp = run_sgd(model, batch=B, seed=seed + B, **kw).risk_avg[-1]
        fp_th = risk_recursion(model.eigenvalues, model.w_star, model.noise, lr, steps, batch=B,
                               record_steps=[steps])["risk_avg"][-1]  # fmt: skip
        for target, site in TARGETS.items():
            for scheme in SCHEMES:
                q = _quantizer(scheme, cfg["eps"])
                sim = run_sgd(model, batch=B, seed=seed + B, sites={site: q}, **kw).risk_avg[-1]
                th = risk_recursion(model.eigenvalues, model.w_star, model.noise, lr, steps,
                                    batch=B, record_steps=[steps],
                                    **{site: q})["risk_avg"][-1]  # fmt: skip
                diff = sim - fp
                rows.append({
                    "target": target, "site": site, "scheme": scheme, "batch": B,
                    "penalty_sim": float(diff.mean()),
                    "penalty_sem": float(diff.std(ddof=1) / math.sqrt(R)),
                    "penalty_theory": float(th - fp_th),
                    "risk_sim": float(sim.mean()),
                    "risk_sem": float(sim.std(ddof=1) / math.sqrt(R)),
                    "risk_theory": float(th),
                    "risk_fp_theory": float(fp_th),
                })  # fmt: skip
        if progress:
            print(f"[linreg-sites] batch {B} done", flush=True)
    return rows


def _spectrum(cfg, seed):
    """Diagonal of ``H^(q)`` from samples of ``Q_d(x)`` for both schemes, and its s.e."""
    lam = np.arange(1, cfg["d"] + 1, dtype=np.float64) ** -2.0
    rng = np.random.default_rng(seed)
    n = cfg["spectrum_samples"]
    out = {"lambda": lam}
    for scheme in SCHEMES:
        x = rng.standard_normal((n, cfg["d"])) * np.sqrt(lam)
        xq = _quantizer(scheme, cfg["eps"])(x, rng)
        sq = xq * xq
        out[scheme] = sq.mean(axis=0)
        out[scheme + "_sem"] = sq.std(axis=0, ddof=1) / math.sqrt(n)
    out["additive_theory"] = lam + cfg["eps"]
    out["multiplicative_theory"] = (1 + cfg["eps"]) * lam
    return out


def _lookup(rows, target, scheme, batch):
    return next(
        r for r in rows if r["target"] == target and r["scheme"] == scheme and r["batch"] == batch
    )


def _ratio(rows, target, scheme, b_lo, b_hi, key):
    return _lookup(rows, target, scheme, b_lo)[key] / _lookup(rows, target, scheme, b_hi)[key]


def _batch_claim(rows, cfg) -> Claim:
    """Additive activation/gradient noise falls with B, multiplicative activation noise less."""
    b_lo, b_hi = cfg["batches"][0], cfg["batches"][-1]
    factor = b_hi / b_lo
    ratios = {(t, s): (_ratio(rows, t, s, b_lo, b_hi, "penalty_sim"),
                       _ratio(rows, t, s, b_lo, b_hi, "penalty_theory"))
              for t in ("activations", "gradients") for s in SCHEMES}  # fmt: skip

    def suppressed(target, scheme):
        """Simulated penalty at the largest B is at most 2/factor of the one at the smallest,
        within 2 s.e. of the large-B penalty (None: undecided by the noise)."""
        lo, hi = _lookup(rows, target, scheme, b_lo), _lookup(rows, target, scheme, b_hi)
        bound = 2.0 / factor * lo["penalty_sim"]
        if hi["penalty_sim"] <= bound - 2 * hi["penalty_sem"]:
            return True
        if hi["penalty_sim"] >= bound + 2 * hi["penalty_sem"]:
            return False
        return hi["penalty_sim"] <= bound

    add_ok = all(suppressed(t, "additive") for t in ("activations", "gradients"))
    contrast = not suppressed("activations", "multiplicative") and (
        ratios[("activations", "additive")][1] > 2 * ratios[("activations", "multiplicative")][1]
    )
    fmt = ", ".join(f"{t} {s[:3]}: {m:.1f}x (recursion {p:.1f}x)" for (t, s), (m, p) in
                    ratios.items())  # fmt: skip
    return Claim(
        source="002 abstract, Cor. 4.1",
        statement="additive quantization of activations and gradients: the noise it adds is "
        "suppressed by the batch size; multiplicative activation noise is not",
        measured=f"penalty ratio B={b_lo} / B={b_hi}: {fmt}",
        expected=f"1/B scaling gives {factor:g}x; test: the additive penalties at B={b_hi} "
        f"are below 2/{factor:g} of those at B={b_lo} and the multiplicative activation one "
        "is not (simulation, by 2 s.e.), and the recursion's additive activation ratio is "
        "> 2x the multiplicative one",
        holds=bool(add_ok and contrast),
    )


def _claims(rows, spec, cfg) -> list[Claim]:
    b_lo = cfg["batches"][0]
    z = [(r["penalty_sim"] - r["penalty_theory"]) / max(r["penalty_sem"], 1e-300) for r in rows]
    worst = rows[int(np.argmax(np.abs(z)))]
    at_b1 = [r for r in rows if r["batch"] == b_lo]
    costs = all(r["penalty_theory"] > 0 and r["penalty_sim"] > 2 * r["penalty_sem"] for r in at_b1)
    lam = spec["lambda"]
    spec_z = max(float(np.max(np.abs(spec[s] - spec[s + "_theory"]) / spec[s + "_sem"]))
                 for s in SCHEMES)  # fmt: skip
    shape = {s: float(spec[s][-1] / spec[s][0]) for s in SCHEMES}
    shape0 = float(lam[-1] / lam[0])
    spec_ok = (spec_z <= 4.5 and abs(shape["multiplicative"] / shape0 - 1) < 0.1
               and shape["additive"] > 10 * shape0)  # fmt: skip
    return [
        _batch_claim(rows, cfg),
        Claim(
            source="002 abstract",
            statement="data quantization distorts the spectrum (additive lifts every eigenvalue "
            "by eps); multiplicative keeps its shape ((1+eps) lambda)",
            measured=f"lambda_d/lambda_1 of H^(q): additive {shape['additive']:.3g}, "
            f"multiplicative {shape['multiplicative']:.3g}, unquantized {shape0:.3g}; largest "
            f"gap to lambda+eps / (1+eps)lambda {spec_z:.1f} s.e.",
            expected="test: sampled H^(q) within 4.5 s.e. of the formulas, multiplicative ratio "
            "within 10% of the unquantized one, additive ratio > 10x it",
            holds=bool(spec_ok),
        ),
        Claim(
            source="002 abstract",
            statement="quantizing any of the five targets (data, labels, parameters, "
            "activations, gradients) raises the risk",
            measured=f"B={b_lo} penalties: "
            + ", ".join(f"{r['target']} {r['scheme'][:3]} {r['penalty_sim']:.2e}" for r in at_b1),
            expected="test: recursion penalty > 0 and simulated penalty > 2 s.e. for all ten",
            holds=bool(costs),
        ),
        Claim(
            source="002 Thm. 4.1 setting",
            statement="the simulation agrees with the exact risk recursion (all targets, schemes "
            "and batch sizes)",
            measured=f"largest gap {abs(worst['penalty_sim'] - worst['penalty_theory']):.2e} "
            f"= {max(abs(v) for v in z):.1f} s.e. ({worst['target']}, {worst['scheme']}, "
            f"B={worst['batch']})",
            expected="test: every penalty within 4 s.e. of the recursion",
            holds=bool(max(abs(v) for v in z) <= 4.0),
        ),
    ]


def run(
    full: bool = False,
    out_dir: str | Path | None = "results/linreg-sites",
    progress: bool = True,
    *,
    seed: int = 0,
    overrides: dict | None = None,
    plot: bool = True,
) -> dict:
    """Run the experiment; write ``linreg_sites.{csv,json,png}`` into ``out_dir`` (None: no
    files). ``overrides`` replaces settings (``d``, ``eps``, ``steps``, ``lr``, ``batches``,
    ``replicas``, ``spectrum_samples``). Returns ``rows``, ``spectrum``, ``settings``,
    ``claims``, ``runtime_s`` and ``files``."""
    t0 = time.perf_counter()
    cfg = _settings(bool(full))
    bad = sorted(set(overrides or {}) - set(cfg))
    if bad:
        msg = f"overrides has unknown key(s) {bad}; allowed: {sorted(cfg)}; hint: overrides={{'replicas': 100}}"
        raise ValueError(msg)
    cfg.update(overrides or {})
    batches = cfg["batches"]
    if len(batches) < 2 or any(not isinstance(b, int) or b < 1 for b in batches):
        msg = f"batches must be two or more ints >= 1, got {batches!r}; hint: [1, 4, 16]"
        raise ValueError(msg)
    cfg["batches"] = sorted(batches)
    rows = _penalties(cfg, seed, progress)
    spec = _spectrum(cfg, seed + 7)
    claims = _claims(rows, spec, cfg)
    result = {
        "experiment": "linreg-sites",
        "settings": cfg,
        "rows": rows,
        "spectrum": {k: [float(v) for v in a] for k, a in spec.items()},
        "claims": [c.to_dict() for c in claims],
        "files": [],
    }
    if out_dir is not None:
        result["files"] = _write(Path(out_dir), result, plot)
    result["runtime_s"] = time.perf_counter() - t0
    return result


def _write(out: Path, result: dict, plot: bool) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    csv_path, js = out / "linreg_sites.csv", out / "linreg_sites.json"
    with csv_path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(result["rows"][0]))
        w.writeheader()
        w.writerows(result["rows"])
    js.write_text(json.dumps({k: v for k, v in result.items() if k != "files"}, indent=1))
    files = [str(csv_path), str(js)]
    if plot:
        png = out / "linreg_sites.png"
        _plot(result, png)
        files.insert(0, str(png))
    return files


def _plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cfg, spec = result["rows"], result["settings"], result["spectrum"]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.8))
    colors = dict(zip(TARGETS, ("tab:gray", "tab:olive", "tab:purple", "tab:red", "tab:blue")))
    for ax, scheme in ((ax1, "additive"), (ax2, "multiplicative")):
        for target in TARGETS:
            sel = [r for r in rows if r["target"] == target and r["scheme"] == scheme]
            b = np.array([r["batch"] for r in sel])
            ax.errorbar(b, [r["penalty_sim"] for r in sel], [r["penalty_sem"] for r in sel],
                        fmt="o", ms=4, color=colors[target], label=target)  # fmt: skip
            ax.plot(b, [r["penalty_theory"] for r in sel], "-", color=colors[target], lw=1)
        bb = np.array(cfg["batches"], dtype=float)
        ref = _lookup(rows, "activations", scheme, cfg["batches"][0])["penalty_theory"]
        ax.plot(bb, ref * bb[0] / bb, "k:", lw=0.8, label="1/B")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size B")
        ax.set_title(f"{scheme} eps={cfg['eps']:g}: risk penalty vs B", fontsize=9)
        ax.legend(fontsize=6)
    ax1.set_ylabel("risk(quantized) - risk(full precision)")
    i = np.arange(1, len(spec["lambda"]) + 1)
    ax3.loglog(i, spec["lambda"], "k-", label="H (unquantized)")
    for scheme, col in (("additive", "tab:red"), ("multiplicative", "tab:blue")):
        ax3.loglog(i, spec[scheme], "o", ms=3, color=col, label=f"{scheme} (sampled)")
        ax3.loglog(i, spec[scheme + "_theory"], "-", lw=0.8, color=col)
    ax3.set_xlabel("eigenvalue index i")
    ax3.set_ylabel("eigenvalue of H^(q)")
    ax3.set_title("data spectrum H^(q) (lines: lambda+eps, (1+eps)lambda)", fontsize=9)
    ax3.legend(fontsize=6)
    fig.suptitle(f"SGD on linear regression, d={cfg['d']}, N={cfg['steps']} steps, "
                 f"lr={cfg['lr']}, {cfg['replicas']} runs (markers: simulation +- s.e.; "
                 "lines: exact recursion)", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
