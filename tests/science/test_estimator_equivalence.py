"""Smoke run of paper 001's STE-equivalence experiment at a tiny size."""

from __future__ import annotations

import json

import pytest

from qemu_arrays.experiments.estimator_equivalence import make_estimator, run


def test_tiny_run_reproduces_the_ordering(tmp_path):
    res = run(out_dir=tmp_path, progress=False, steps=120, lr_multipliers=(0.5, 1.0), plot=False)
    rows = {(r["task"], r["optimizer"], r["comparison"]): r for r in res["rows"]}
    mlp = "mlp-gaussian-mixture"
    base = rows[(mlp, "sgd", "baseline")]["ebar_percent"]
    tweak = rows[(mlp, "sgd", "lr-tweak")]["ebar_percent"]
    unadj = rows[(mlp, "sgd", "unadjusted")]["ebar_percent"]
    # paper 001, Table 4: baseline is of the order of lr-tweak, far below unadjusted
    assert base < unadj / 4, (base, tweak, unadj)
    assert base < 8 * tweak + 0.05, (base, tweak)
    for task in ("teacher-student", mlp):
        r = rows[(task, "sgd", "baseline")]
        assert r["agreement_percent"] > 80
        assert r["alpha"] == pytest.approx(0.5113, abs=1e-4)  # HTGE t=4
        assert rows[(task, "adam", "baseline")]["agreement_percent"] > 80
        assert (task, "adam", "unadjusted") not in rows
    # the one-step misalignment is second order in the learning rate
    s0, s1 = res["lr_sweep"]
    assert s1["one_step_ebar_percent"] / s0["one_step_ebar_percent"] == pytest.approx(4, rel=0.1)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["rows"]) == len(res["rows"]) == 10
    assert (tmp_path / "results.csv").read_text().count("\n") == 11
    assert (tmp_path / "ebar_vs_lr.csv").exists()


def test_plot_and_arguments(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib draws the plot (qemu-arrays[plot])")
    res = run(out_dir=tmp_path, progress=False, steps=20, lr_multipliers=(1.0, 2.0),
              estimators=("dsq",))  # fmt: skip
    assert (tmp_path / "ebar_vs_lr.png").stat().st_size > 1000
    assert res["files"]["png"].endswith("ebar_vs_lr.png")
    with pytest.raises(ValueError, match="estimator"):
        make_estimator("lsq")
    with pytest.raises(ValueError, match="steps"):
        run(out_dir=None, steps=0)
