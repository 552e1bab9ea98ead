"""One CUDA-simulator subprocess for every ``tests/routes/test_cuda*.py`` file.

numba's simulator must be switched on (``NUMBA_ENABLE_CUDASIM=1``) before ``numba.cuda`` is
imported, so each CUDA test file has an outer test that runs the file's tests in a subprocess.
The first outer test of a session starts one subprocess for all of the files (each launch pays
an interpreter, the imports and a collection: seconds); each outer test then checks its own
file's results in it: some tests ran, none failed, none errored.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def simulator_files() -> tuple[Path, ...]:
    """The CUDA test files (each has an outer launcher calling :func:`assert_passed_in_simulator`)."""
    return tuple(sorted(Path(__file__).parent.glob("test_cuda*.py")))


@functools.cache
def _simulator_run(tmp: str) -> tuple[subprocess.CompletedProcess, dict[str, dict[str, list]]]:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(ROOT)}
    xml = Path(tmp) / "simulator.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE",
           f"--junitxml={xml}", *map(str, simulator_files())]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    per_file: dict[str, dict[str, list]] = {}
    if xml.exists():
        for case in ET.parse(xml).getroot().iter("testcase"):
            module = case.get("classname", "").rsplit(".", 1)[-1]
            name = f"{module}::{case.get('name')}"
            kind = "passed"
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    kind = child.tag
            per_file.setdefault(module, {}).setdefault(kind, []).append(name)
    return res, per_file


def assert_passed_in_simulator(test_file: str, tmp_path_factory) -> None:
    """The tests of ``test_file`` passed in the shared simulator subprocess."""
    tmp = tmp_path_factory.getbasetemp() / "cuda-simulator"
    tmp.mkdir(exist_ok=True)
    res, per_file = _simulator_run(str(tmp))
    mine = per_file.get(Path(test_file).stem, {})
    tail = res.stdout[-4000:] + res.stderr[-2000:]
    bad = mine.get("failure", []) + mine.get("error", [])
    assert not bad, f"{len(bad)} failed in the simulator: {bad[:10]}\n{tail}"
    assert mine.get("passed"), f"no test of {test_file} passed in the simulator\n{tail}"
    if res.returncode not in (0, 1):  # 1: another file's failure, reported by its own launcher
        msg = f"the simulator run ended with {res.returncode}\n{tail}"
        raise AssertionError(msg)


def to_device(x, real: bool):
    """``x`` on the device: a PyTorch CUDA tensor on a real GPU (``real``), else a numba device
    array (the simulator's)."""
    import numpy as np

    if real:
        import torch

        return torch.from_numpy(np.ascontiguousarray(x)).cuda()
    from numba import cuda

    return cuda.to_device(np.ascontiguousarray(x))


def to_host(y, real: bool):
    """A device array of :func:`to_device` back as a NumPy array."""
    return y.cpu().numpy() if real else y.copy_to_host()
