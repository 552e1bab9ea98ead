"""The type checker (mypy) passes on formats/ and the façade.

mypy reads the sources; the links qemu_arrays/formats -> formats/ and qemu_arrays/cuda_kernels
-> cuda_kernels/ give it the installed layout. The configuration is pyproject.toml's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = (
    "qemu_arrays/formats",
    "qemu_arrays/api.py",
    "qemu_arrays/request.py",
    "qemu_arrays/validation.py",
    "qemu_arrays/dispatch.py",
    "qemu_arrays/encoded.py",
    "qemu_arrays/grids.py",
    "qemu_arrays/matmul.py",
    "qemu_arrays/matmul_request.py",
)


def test_mypy_passes_on_formats_and_the_facade(tmp_path):
    pytest.importorskip("mypy", reason="mypy is in the test extra")
    res = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / ".mypy_cache"), *CHECKED],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
