"""Every code block of docs/*.md and README.md runs; the mkdocs site builds offline.

- ```python blocks of one file run in order in one namespace (a page is a script);
- ```sh blocks: every line is a ``qemu-arrays ...`` (or ``python -m qemu_arrays ...``) command,
  run in-process through ``qemu_arrays.cli.main`` and expected to exit 0;
- ```toml blocks parse;
- a block fenced with ``{.no-run}`` after the language (```sh {.no-run}) is shown, not run
  (install commands, long benchmarks); ```text blocks are output samples.

Files written by the blocks of a page go to one temporary folder per page.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"^( *)```([^\n`]*)\n(.*?)^\1```\s*$", re.DOTALL | re.MULTILINE)
SHELLS = ("sh", "bash", "console", "shell")


def code_blocks(path: Path) -> list[tuple[int, str, bool, str]]:
    """(line number, language, runs, code) of every fenced block of a markdown file."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        info = m.group(2).strip().split()
        lang = info[0] if info else ""
        runs = not any("no-run" in tok for tok in info[1:])
        indent = len(m.group(1))
        code = "\n".join(ln[indent:] for ln in m.group(3).splitlines()) + "\n"
        out.append((text.count("\n", 0, m.start()) + 1, lang, runs, code))
    return out


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of the runnable python blocks of a markdown file."""
    return [(ln, code) for ln, lang, runs, code in code_blocks(path) if lang == "python" and runs]


def shell_commands(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, argv) of the qemu-arrays commands of the runnable shell blocks."""
    out = []
    for line, lang, runs, code in code_blocks(path):
        if lang not in SHELLS or not runs:
            continue
        lines = code.replace("\\\n", "  ").splitlines()  # a trailing \ continues a line
        for k, cmd in enumerate(lines):
            words = shlex.split(cmd, comments=True)
            if not words:
                continue
            if words[0] == "qemu-arrays":
                out.append((line + 1 + k, words[1:]))
            elif words[:3] == ["python", "-m", "qemu_arrays"]:
                out.append((line + 1 + k, words[3:]))
            else:
                out.append((line + 1 + k, ["<not runnable>", cmd]))
    return out


def test_fence_parser(tmp_path):
    sample = (
        "a\n```python\nx = 1\n```\n```python {.no-run}\nboom()\n```\n```sh\nqemu-arrays formats"
        "  # list\npip install x\nqemu-arrays info \\\n  int8\n```\n```sh {.no-run}\npip install y\n```\n"
        "!!! note\n    ```python\n    y = 2\n    ```\n"
    )
    md = tmp_path / "sample.md"
    md.write_text(sample)
    assert python_blocks(md) == [(2, "x = 1\n"), (18, "y = 2\n")]
    assert shell_commands(md) == [
        (9, ["formats"]),
        (10, ["<not runnable>", "pip install x"]),
        (11, ["info", "int8"]),
    ]


def _pages_with(kind):
    if kind == "python":
        return [p for p in PAGES if python_blocks(p)]
    return [p for p in PAGES if shell_commands(p)]


@pytest.mark.parametrize("page", _pages_with("python"), ids=lambda p: p.name)
def test_doc_examples_run(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    namespace = {"__name__": f"docs_{page.stem}"}
    for line, code in python_blocks(page):
        try:
            exec(compile(code, f"{page.name}:{line}", "exec"), namespace)  # noqa: S102
        except Exception as exc:
            pytest.fail(f"{page.name}, block at line {line}: {type(exc).__name__}: {exc}")
    capsys.readouterr()


@pytest.mark.parametrize("page", _pages_with("sh"), ids=lambda p: p.name)
def test_doc_commands_run(page, tmp_path, monkeypatch, capsys):
    from qemu_arrays import cli

    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page.stem}"}
    for line, code in python_blocks(page):  # the page's python blocks may write input files
        exec(compile(code, f"{page.name}:{line}", "exec"), namespace)  # noqa: S102
    for line, argv in shell_commands(page):
        assert argv[0] != "<not runnable>", (
            f"{page.name}:{line}: {argv[1]!r} is not a qemu-arrays command; fence the block "
            "as ```sh {.no-run} to show it without running it"
        )
        code = cli.main([*argv, "--no-progress"] if argv[0] == "compare" else argv)
        _, err = capsys.readouterr()
        assert code == 0, f"{page.name}:{line}: qemu-arrays {' '.join(argv)} -> {code}: {err}"


def test_toml_blocks_parse():
    tomllib = pytest.importorskip("tomllib")
    for page in PAGES:
        for line, lang, _, code in code_blocks(page):
            if lang == "toml":
                assert tomllib.loads(code), f"{page.name}:{line}"


IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def test_figures_exist_and_are_small():
    used = set()
    for page in sorted((ROOT / "docs").glob("*.md")):
        for src in IMAGE.findall(page.read_text(encoding="utf-8")):
            assert not src.startswith(("http:", "https:", "//")), f"{page.name}: remote {src}"
            path = (page.parent / src).resolve()
            assert path.is_file(), f"{page.name}: {src} does not exist"
            used.add(path)
    figures = sorted((ROOT / "docs" / "figures").glob("*.png"))
    assert figures, "docs/figures/ holds the figures"
    for png in figures:
        assert png.stat().st_size < 150_000, f"{png.name} is {png.stat().st_size} bytes"
        assert png.resolve() in used, f"{png.name} is not used by any page"


def test_figure_script_makes_a_figure(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import make_doc_figures
    finally:
        sys.path.pop(0)
    assert set(make_doc_figures.FIGURES) == {
        p.stem for p in (ROOT / "docs" / "figures").glob("*.png")
    }
    assert make_doc_figures.main(["--out", str(tmp_path), "--only", "grid-int8"]) == 0
    assert (tmp_path / "grid-int8.png").read_bytes()[:4] == b"\x89PNG"


def _nav_files(text: str) -> list[str]:
    return re.findall(r"^\s*-\s*[^:\n]+:\s*(\S+\.md)\s*$", text, re.MULTILINE)


def test_every_nav_entry_exists():
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = _nav_files(text)
    assert "index.md" in nav
    assert "testing.md" in nav
    missing = [f for f in nav if not (ROOT / "docs" / f).is_file()]
    assert not missing, f"mkdocs.yml nav names missing pages: {missing}"


EXTERNAL = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=\"((?:https?:)?//[^\"]+)\""
)


def test_mkdocs_build_strict_offline(tmp_path):
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
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    site = tmp_path / "site"
    assert (site / "index.html").is_file()
    # nothing is loaded from outside: scripts, styles, images and fonts are local
    for page in site.rglob("*.html"):
        remote = EXTERNAL.findall(page.read_text(encoding="utf-8"))
        assert not remote, f"{page.relative_to(site)} loads {remote}"
    for css in site.rglob("*.css"):
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", css.read_text(encoding="utf-8"))
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("qemu_arrays.quantize", "qemu_arrays.QArray.reshape", "qemu_arrays.FloatFormat",
                 "qemu_arrays.testing.check_format"):  # fmt: skip
        assert f'id="{name}"' in api, name
    assert "katex.min.js" in (site / "index.html").read_text(encoding="utf-8")
    assert 'class="highlight"' in (site / "getting-started" / "index.html").read_text()
