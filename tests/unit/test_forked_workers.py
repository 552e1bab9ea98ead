"""Forked workers and concurrent threads: the threading layer qemu_arrays chooses.

numba's default layer on Linux, GNU OpenMP, kills a process forked after a parallel kernel ran
as soon as the child runs one; ``multiprocessing`` pools then hang and PyTorch ``DataLoader``
workers die. qemu_arrays asks for the fork-safe layer when the user chose none
(``qemu_arrays.kernels.runtime.init_threading``). The layer is process-global, so every case runs in a
fresh interpreter. Each kernel call here takes the parallel variant (``runtime.force``), so the
pool really is used before and after the fork; the arrays are small and one kernel is compiled.

On the code before issue 12 (GNU OpenMP, numba's default) these tests fail: the forked child
ends with SIGTERM, the pool times out, the DataLoader reports a dead worker (checked on main's
tree; see docs/performance.md#threads-and-compilation). Where ``qemu_arrays.kernels.runtime``
is missing, the prelude falls back to 2^16-element arrays, which main's kernels ran on the pool.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# a worker that rounds on the pool; the parent calls it before forking
PRELUDE = """
import numpy as np
import qemu_arrays as qa
try:
    from qemu_arrays.kernels.runtime import force
except ImportError:  # before issue 12 (the test then fails as the issue says): the pool from 2^15
    from contextlib import nullcontext as force

X = np.linspace(-3, 3, 1 << 16, dtype=np.float32)

def work(i):
    with force("parallel"):
        return float(qa.quantize(X * (i + 1), "float8_e4m3fn").sum())

EXPECTED = [work(i) for i in range(4)]  # the pool runs in the parent first
"""


def run_script(body: str, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    """Run ``PRELUDE + body`` in a fresh interpreter (the environment inherited, so that
    ``NUMBA_THREADING_LAYER=omp pytest ...`` shows the failures this module guards against)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "QEMU_ARRAYS_COMPILE_NOTICE": "0", **env}
    full_env.pop("NUMBA_ENABLE_CUDASIM", None)
    full_env = {k: v for k, v in full_env.items() if v is not None}
    code = PRELUDE + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=timeout, check=False,
    )  # fmt: skip


def _ok(res):
    assert res.returncode == 0, f"status {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res.stdout


def test_fork_after_use_and_pool_with_fork_start_method():
    """One interpreter (the layer is process-global): the layer qemu_arrays chose, a child
    forked after the pool ran, then a fork-start-method Pool."""
    out = _ok(
        run_script(
            """
            import multiprocessing as mp
            import os
            import numba
            print("layer", numba.threading_layer())
            pid = os.fork()
            if pid == 0:
                os._exit(0 if [work(i) for i in range(4)] == EXPECTED else 3)
            _, status = os.waitpid(pid, 0)
            print("child", status)
            with mp.get_context("fork").Pool(2) as pool:
                got = pool.map_async(work, range(4)).get(timeout=30)
            print("pool", got == EXPECTED)
        """,
            NUMBA_THREADING_LAYER=None,
        )
    )
    assert out.split("layer ")[-1].split()[0] in ("workqueue", "tbb")  # numba's "forksafe"
    assert "child 0" in out
    assert "pool True" in out


def test_dataloader_with_workers():
    pytest.importorskip("torch")
    out = _ok(
        run_script("""
            import torch
            from torch.utils.data import DataLoader, Dataset

            class Quantized(Dataset):
                def __len__(self):
                    return 4
                def __getitem__(self, i):
                    return torch.tensor(work(i))

            loader = DataLoader(Quantized(), batch_size=2, num_workers=2, timeout=30,
                                multiprocessing_context="fork")
            got = [float(v) for batch in loader for v in batch]
            print("loader", got == EXPECTED)
        """)
    )
    assert "loader True" in out


def test_layer_the_user_chose_is_kept():
    res = subprocess.run(
        [sys.executable, "-c", "import numpy as np, numba, qemu_arrays as qa\n"
         "qa.quantize(np.ones(3, np.float32), 'float8_e4m3fn')\n"
         "print('layer', numba.threading_layer())"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_THREADING_LAYER": "omp"},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("layer ")[-1].strip() == "omp"


def test_layer_set_in_config_before_first_use_is_kept():
    res = subprocess.run(
        [sys.executable, "-c", textwrap.dedent("""
            import numba
            numba.config.THREADING_LAYER = "omp"
            import numpy as np, qemu_arrays as qa
            qa.quantize(np.ones(3, np.float32), "float8_e4m3fn")
            print("layer", numba.threading_layer())
        """)],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("layer ")[-1].strip() == "omp"


def test_threads_launch_concurrently():
    """Eight threads on the pool at once: under workqueue (not thread-safe) each launch takes
    a lock, and a thread that finds the pool busy computes alone; no abort, same results."""
    out = _ok(
        run_script("""
            import threading
            bad = []
            def loop():
                for k in range(40):
                    if work(k % 4) != EXPECTED[k % 4]:
                        bad.append(k)
            ts = [threading.Thread(target=loop) for _ in range(8)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            print("bad", len(bad))
        """)
    )
    assert "bad 0" in out
