"""Sweeps: a grid of independent runs, on Dask or in-process, gathered into one table.

``run_sweep(fn, grid)`` calls ``fn(**params)`` for every point of the grid (the Cartesian
product of a dict of lists, or an explicit list of dicts). ``fn`` returns a dict (one row) or a
list of dicts (several rows, e.g. one per record time); every row is prefixed with the point's
parameters. The result is a list of dicts (``to_columns`` turns it into a dict of numpy
columns). ``fn`` and the parameters must be picklable for a process-based Dask cluster (a
module-level function, not a lambda).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterable

import numpy as np

__all__ = ["expand_grid", "run_sweep", "to_columns"]


def expand_grid(grid) -> list[dict]:
    """A dict of lists -> the list of its Cartesian-product points; a list of dicts as is."""
    if isinstance(grid, dict):
        keys = list(grid)
        vals = []
        for k in keys:
            v = grid[k]
            vals.append(list(v) if isinstance(v, list | tuple | range | np.ndarray) else [v])
        return [dict(zip(keys, combo)) for combo in itertools.product(*vals)]
    if isinstance(grid, Iterable):
        pts = list(grid)
        if not all(isinstance(p, dict) for p in pts):
            msg = "grid must be a dict of lists or a list of dicts; got a list with non-dicts"
            raise TypeError(msg)
        return pts
    msg = f"grid must be a dict of lists or a list of dicts, got {type(grid).__name__}"
    raise TypeError(msg)


def _rows(params: dict, out) -> list[dict]:
    if isinstance(out, dict):
        out = [out]
    if not isinstance(out, list):
        msg = f"the sweep function must return a dict or a list of dicts, got {type(out).__name__}"
        raise TypeError(msg)
    return [{**params, **row} for row in out]


def _call(fn, params):
    return _rows(params, fn(**params))


def run_sweep(
    fn: Callable[..., dict | list[dict]],
    grid,
    *,
    scheduler: str | None = "auto",
    address: str | None = None,
    n_workers: int | None = None,
    processes: bool = True,
    progress: bool = True,
) -> list[dict]:
    """Run ``fn`` over every point of ``grid`` and gather the rows into one table.

    Parameters
    ----------
    scheduler
        ``"auto"`` (default): Dask when ``address`` is given, else in-process;
        ``"dask"``: a ``dask.distributed`` cluster (``address`` of the user's scheduler, or a
        ``LocalCluster`` started and closed here); ``"inprocess"`` (or None): a plain loop.
    address
        Address of an existing Dask scheduler (``"tcp://host:8786"``).
    n_workers, processes
        For the local cluster: number of workers, and processes (True) or threads (False).
    progress
        Show a progress bar (tqdm if installed, else a stderr counter).
    """
    points = expand_grid(grid)
    if scheduler == "auto":
        scheduler = "dask" if address is not None else "inprocess"
    if scheduler in (None, "inprocess"):
        return _run_inprocess(fn, points, progress)
    if scheduler != "dask":
        msg = f"scheduler must be 'auto', 'dask' or 'inprocess', got {scheduler!r}"
        raise ValueError(msg)
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        msg = (
            "scheduler='dask' needs dask.distributed; hint: pip install 'dask[distributed]' "
            "or use scheduler='inprocess'"
        )
        raise ValueError(msg) from None
    cluster = None
    if address is None:
        cluster = LocalCluster(
            n_workers=n_workers or 2,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=None,
            # no dashboard, and the scheduler's HTTP routes on a free port: the default 8787
            # may be taken (another cluster, a second sweep), which distributed warns about
            scheduler_kwargs={"dashboard": False, "dashboard_address": ":0"},
        )
        client = Client(cluster)
    else:
        client = Client(address)
    try:
        futures = [client.submit(_call, fn, p, pure=False) for p in points]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list = [None] * len(points)
        bar = _bar(len(points), progress)
        for fut in as_completed(futures):
            results[index[fut.key]] = fut.result()
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return [row for rows in results for row in rows]


def _bar(total, progress):
    if not progress:
        return None
    from qemu_arrays.training.sgd import _progress

    return _progress(total, True)


def _run_inprocess(fn, points, progress):
    bar = _bar(len(points), progress)
    out = []
    for p in points:
        out.extend(_call(fn, p))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
        sys.stderr.flush()
    return out


def to_columns(rows: list[dict]) -> dict[str, np.ndarray]:
    """A list of dicts -> a dict of numpy columns (missing entries become None)."""
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    return {k: np.array([r.get(k) for r in rows]) for k in keys}
