"""``import qemu_arrays`` stays light: no torch, jax, dask, matplotlib, numba.cuda, cuda_kernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "jax", "jaxlib", "dask", "matplotlib", "numba.cuda", "cupy", "cuda_kernels")


def _modules_after(code: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    res = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def _heavy(mods):
    return sorted(m for m in mods if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_import_qemu_arrays_is_light():
    assert _heavy(_modules_after("import qemu_arrays")) == []


def test_numpy_quantize_and_routing_stay_light():
    code = (
        "import numpy as np, qemu_arrays as qa\n"
        "from qemu_arrays import dispatch, generic\n"
        "qa.quantize(np.ones(3, np.float32), 'float8_e4m3fn')\n"
        "assert dispatch.route(np.ones(2)) is dispatch.Route.NUMPY"
    )
    assert _heavy(_modules_after(code)) == []
