"""The wheel installs nothing at top level but ``qemu_arrays`` (the repository's formats/ and
cuda_kernels/ folders become qemu_arrays.formats and qemu_arrays.cuda_kernels), and holds every
module of those folders; a user's own ``formats.py`` beside their script cannot shadow it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"qemu_arrays": "qemu_arrays", "formats": "qemu_arrays/formats"}
FOLDERS["cuda_kernels"] = "qemu_arrays/cuda_kernels"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from a copy of the sources (the build leaves nothing in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in FOLDERS:
        shutil.copytree(
            ROOT / folder, src / folder, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
        )
    out = tmp_path_factory.mktemp("wheel")
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    (whl,) = out.glob("qemu_arrays-*.whl")
    return whl


def test_wheel_has_qemu_arrays_as_its_only_top_level_name(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"qemu_arrays"}


def test_wheel_holds_every_module_of_the_three_folders(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    missing = []
    for folder, installed_as in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(ROOT / folder).as_posix()
            if f"{installed_as}/{rel}" not in names:
                missing.append(f"{folder}/{rel}")
    assert missing == []


def test_a_users_formats_module_does_not_shadow_the_package(tmp_path):
    """The defect this layout fixes: a script's own formats.py broke ``import qemu_arrays``."""
    (tmp_path / "formats.py").write_text("RAISE = 1 / 0\n")
    (tmp_path / "cuda_kernels.py").write_text("RAISE = 1 / 0\n")
    code = "import qemu_arrays as qa, numpy as np; print(qa.quantize(np.ones(2), 'float8_e4m3fn'))"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "[1. 1.]" in res.stdout
