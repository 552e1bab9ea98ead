"""Every source file and module the docs and the README name exists (layouts move; the docs
must follow)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
PATH = re.compile(
    r"`((?:qemu_arrays|formats|cuda_kernels|tests|benchmarks|scripts)/[\w/.-]+\.(?:py|sh))"
)
DOTTED = re.compile(r"`(qemu_arrays(?:\.\w+)+)(?![\w<])")


def _module_prefix(dotted: str) -> str | None:
    """The longest prefix of ``dotted`` that is an importable module, or None."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        try:
            if importlib.util.find_spec(name) is not None:
                return name
        except (ImportError, ValueError):
            continue
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_named_files_exist(page):
    text = page.read_text()
    missing = sorted({m for m in PATH.findall(text) if not (ROOT / m).exists()})
    assert not missing, f"{page.name} names files that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_named_modules_exist(page):
    """``qemu_arrays.x.y`` in a page: the longest module prefix exists and, when the rest is an
    attribute path, the module defines its first name (read from the source, nothing imported
    beyond the package parents)."""
    bad = []
    for dotted in sorted(set(DOTTED.findall(page.read_text()))):
        mod = _module_prefix(dotted)
        rest = dotted[len(mod) + 1 :].split(".") if mod and mod != dotted else []
        if mod is None or (rest and not _defined(mod, rest[0])):
            bad.append(dotted)
    assert not bad, f"{page.name} names modules or attributes that do not exist: {bad}"


def _defined(module: str, name: str) -> bool:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return True  # not a source module we can read: do not guess
    src = Path(spec.origin).read_text()
    pattern = rf"^(?:def|class)\s+{name}\b|^{name}\s*[:=]|import .*\b{name}\b|^\s+\"{name}\","
    return re.search(pattern, src, flags=re.M) is not None
