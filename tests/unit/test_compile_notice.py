"""The one-line stderr notice while a kernel compiles for longer than ``runtime.NOTICE_AFTER``.

The in-process cases use a test-local ``@njit`` function (no disk cache) and a low threshold,
so that they are quick; the subprocess case compiles a real kernel into an empty cache, then
loads it from there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from numba import njit

import qemu_arrays as qa
from qemu_arrays.kernels import runtime

ROOT = Path(__file__).resolve().parents[2]


def _fresh_kernel():
    """A new dispatcher each time (so it compiles), slow enough to compile for > 20 ms."""

    @njit(cache=False)
    def slow_to_compile(x):
        acc = 0.0
        for i in range(x.size):
            acc += x[i] ** 2 if x[i] > 0 else abs(x[i]) * 3.0
        return acc

    return slow_to_compile


@pytest.fixture
def watched(monkeypatch):
    runtime.init_threading()  # installs the listener
    monkeypatch.setattr(runtime, "WATCHED", (__name__,))
    monkeypatch.setattr(runtime, "NOTICE_AFTER", 0.005)
    monkeypatch.delenv(runtime.ENV_NOTICE, raising=False)
    prev = qa.set_compile_notice(None)
    yield
    qa.set_compile_notice(prev)


def _lines(capfd):
    time.sleep(0.05)  # a timer that fired has printed by now
    return [ln for ln in capfd.readouterr().err.splitlines() if "qemu_arrays: compiling" in ln]


def test_notice_prints_one_line_for_a_slow_compile(watched, capfd):
    import numpy as np

    kernel = _fresh_kernel()
    kernel(np.ones(3))
    lines = _lines(capfd)
    assert len(lines) == 1
    assert "'slow_to_compile'" in lines[0]
    assert "QEMU_ARRAYS_COMPILE_NOTICE=0" in lines[0]
    kernel(np.ones(3))  # compiled: nothing
    assert _lines(capfd) == []


def test_notice_silenced_by_setting_and_by_environment(watched, capfd, monkeypatch):
    import numpy as np

    qa.set_compile_notice(False)
    _fresh_kernel()(np.ones(3))
    assert _lines(capfd) == []
    qa.set_compile_notice(None)
    monkeypatch.setenv(runtime.ENV_NOTICE, "0")
    _fresh_kernel()(np.ones(3))
    assert _lines(capfd) == []


def test_notice_quiet_for_a_quick_compile_and_other_modules(watched, capfd, monkeypatch):
    import numpy as np

    monkeypatch.setattr(runtime, "NOTICE_AFTER", 60.0)
    _fresh_kernel()(np.ones(3))
    assert _lines(capfd) == []
    monkeypatch.setattr(runtime, "NOTICE_AFTER", 0.005)
    monkeypatch.setattr(runtime, "WATCHED", ("some_other_package.",))
    _fresh_kernel()(np.ones(3))
    assert _lines(capfd) == []


def test_set_compile_notice_checks_its_argument():
    with pytest.raises(TypeError, match=r"on must be True, False or None, got 'no'.*hint"):
        qa.set_compile_notice("no")


def test_notice_for_a_real_kernel_then_none_from_the_cache(tmp_path):
    code = (
        "import numpy as np, qemu_arrays as qa\n"
        "from qemu_arrays.kernels import runtime\n"
        "runtime.NOTICE_AFTER = 0.0\n"
        "qa.decode(np.arange(5, dtype=np.uint32), 'float32')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": str(tmp_path)}
    env.pop(runtime.ENV_NOTICE, None)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    errs = []
    for _ in range(2):
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
            timeout=300, check=False,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        errs.append([ln for ln in res.stderr.splitlines() if "qemu_arrays: compiling" in ln])
    assert len(errs[0]) == 1  # the outermost compile only
    assert "'decode_span'" in errs[0][0]
    assert errs[1] == []  # loaded from the cache: no compile, no notice
