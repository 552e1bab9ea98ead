"""Smoke test of the linreg-int-vs-fp experiment on a tiny setting."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from qemu_arrays.experiments.linreg_int_vs_fp import run


def test_linreg_int_vs_fp_tiny(tmp_path):
    pytest.importorskip("matplotlib")
    out = run(
        out_dir=tmp_path,
        progress=False,
        overrides={
            "eps": [1e-2],
            "dims": [20],
            "d_eps": 20,
            "steps": 200,
            "replicas": 200,
            "n_records": 4,
            "formats": ["int8", "float8_e4m3fn"],
            "d_formats": 20,
        },
    )
    for f in out["files"]:
        assert (tmp_path / f.split("/")[-1]).stat().st_size > 0
    with open(out["files"][1]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(out["rows"])
    with open(out["files"][2]) as fh:
        summ = json.load(fh)["summary"]
    noise = [s for s in summ if s["scheme"] in ("fp", "add", "mul")]
    assert all(abs(s["z"]) < 3.5 for s in noise)  # simulation vs exact recursion
    byscheme = {(s["part"], s["scheme"]): s["final_theory"] for s in summ}
    assert byscheme[("eps", "add")] > byscheme[("eps", "mul")] > byscheme[("eps", "fp")]
    assert np.isfinite([s["final_sim"] for s in summ]).all()
    # the claim lines: the reading of Corollary 4.3 names the wrong winner (a comparison of
    # upper bounds); the simulation agrees with the recursion at this size too
    lines = {c["source"]: c for c in out["claims"]}
    assert not lines["002 Cor. 4.3 (as read)"]["holds"]
    assert "in 3 of 9 (b, m) pairs" in lines["002 Cor. 4.3 (as read)"]["measured"]
    assert lines["002 Thm. 4.1 setting"]["holds"]
    with pytest.raises(ValueError, match="overrides"):
        run(out_dir=tmp_path, progress=False, overrides={"bogus": 1})
