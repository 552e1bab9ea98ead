"""Sweeps: grids of independent runs gathered into one table, in-process and on Dask."""

from __future__ import annotations

import contextlib
import socket

import numpy as np
import pytest

from qemu_arrays.training import AdditiveNoise, LinearRegression, run_sgd, run_sweep
from qemu_arrays.training.sweep import expand_grid, to_columns


def _task(eps, seed, d=6):
    model = LinearRegression(d, 1.0, 1.0, 0.5)
    res = run_sgd(
        model, steps=50, lr=0.2, replicas=4, seed=seed, sites={"data": AdditiveNoise(eps)},
        record_steps=[50],
    )  # fmt: skip
    return {"risk": float(res.mean()[-1])}


def _rows_task(eps, seed):
    return [{"k": k, "v": eps * k + seed} for k in range(3)]


def test_expand_grid():
    pts = expand_grid({"a": [1, 2], "b": ["x", "y", "z"], "c": 0})
    assert len(pts) == 6
    assert pts[0] == {"a": 1, "b": "x", "c": 0}
    assert expand_grid([{"a": 1}]) == [{"a": 1}]
    with pytest.raises(TypeError, match="grid"):
        expand_grid(3)


def test_inprocess_sweep_is_one_table_and_reproducible():
    grid = {"eps": [0.0, 0.1], "seed": [0, 1]}
    rows = run_sweep(_task, grid, scheduler="inprocess", progress=False)
    assert [(r["eps"], r["seed"]) for r in rows] == [(0.0, 0), (0.0, 1), (0.1, 0), (0.1, 1)]
    assert rows == run_sweep(_task, grid, progress=False)
    direct = _task(0.1, 1)["risk"]
    assert rows[3]["risk"] == direct
    cols = to_columns(rows)
    assert cols["risk"].shape == (4,)
    multi = run_sweep(_rows_task, {"eps": [1.0], "seed": [0, 10]}, progress=False)
    assert [r["v"] for r in multi] == [0.0, 1.0, 2.0, 10.0, 11.0, 12.0]


def test_dask_local_cluster_threads_matches_inprocess():
    """Also with dask's default HTTP port 8787 taken (another cluster on the machine): the
    sweep's cluster must not warn about it (a flake of a loaded CI machine)."""
    pytest.importorskip("dask.distributed")
    grid = {"eps": [0.0, 0.2], "seed": [3]}
    local = run_sweep(_task, grid, progress=False)
    with socket.socket() as busy:
        with contextlib.suppress(OSError):  # taken already: the case under test anyway
            busy.bind(("", 8787))
            busy.listen()
        dist = run_sweep(_task, grid, scheduler="dask", processes=False, n_workers=2,
                         progress=False)  # fmt: skip
    assert dist == local


def test_bad_scheduler():
    with pytest.raises(ValueError, match="scheduler"):
        run_sweep(_task, {"eps": [0.0], "seed": [0]}, scheduler="spark")
    with pytest.raises(TypeError, match="dict or a list"):
        run_sweep(lambda **k: 3, {"a": [1]}, progress=False)
    assert np.isfinite(_task(0.0, 0)["risk"])
