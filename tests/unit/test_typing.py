"""The type checker (mypy) passes on formats/ and the façade.

mypy reads sources, not the installed package, and cannot map the folder formats/ to
qemu_arrays.formats itself: the test builds that layout from symbolic links in a temporary
directory and checks it there, with the configuration of pyproject.toml."""

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
)


def test_mypy_passes_on_formats_and_the_facade(tmp_path):
    pytest.importorskip("mypy", reason="mypy is in the test extra")
    pkg = tmp_path / "qemu_arrays"
    pkg.mkdir()
    for entry in (ROOT / "qemu_arrays").iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    (pkg / "formats").symlink_to(ROOT / "formats")
    (pkg / "cuda_kernels").symlink_to(ROOT / "cuda_kernels")
    res = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / ".mypy_cache"), *CHECKED],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
