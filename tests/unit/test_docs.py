"""Every ```python block of docs/*.md and README.md runs; the mkdocs site builds offline.

Blocks of one file run in order in one namespace (a page is a script); blocks fenced as
```python no-run are shown, not run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.DOTALL | re.MULTILINE)


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of the runnable python blocks of a markdown file."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        info = m.group(1).strip().split()
        if not info or info[0] != "python" or "no-run" in info[1:]:
            continue
        out.append((text.count("\n", 0, m.start()) + 1, m.group(2)))
    return out


def test_fence_parser():
    sample = "a\n```python\nx = 1\n```\n```python no-run\nboom()\n```\n```sh\nls\n```\n"
    tmp = ROOT / "tests" / "__fence_sample.md"
    try:
        tmp.write_text(sample)
        assert python_blocks(tmp) == [(2, "x = 1\n")]
    finally:
        tmp.unlink()


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_doc_examples_run(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    namespace = {"__name__": f"docs_{page.stem}"}
    for line, code in python_blocks(page):
        try:
            exec(compile(code, f"{page.name}:{line}", "exec"), namespace)  # noqa: S102
        except Exception as exc:
            pytest.fail(f"{page.name}, block at line {line}: {type(exc).__name__}: {exc}")
    capsys.readouterr()


def _nav_files(text: str) -> list[str]:
    return re.findall(r"^\s*-\s*[^:\n]+:\s*(\S+\.md)\s*$", text, re.MULTILINE)


def test_every_nav_entry_exists():
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = _nav_files(text)
    assert "index.md" in nav
    assert "testing.md" in nav
    missing = [f for f in nav if not (ROOT / "docs" / f).is_file()]
    assert not missing, f"mkdocs.yml nav names missing pages: {missing}"


def test_mkdocs_build_strict(tmp_path):
    mkdocs = shutil.which("mkdocs") or shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install 'qemu-arrays[docs]')")
    nav = _nav_files((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    if any(not (ROOT / "docs" / f).is_file() for f in nav):
        pytest.skip("a nav page is missing (test_every_nav_entry_exists reports which)")
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").is_file()
