"""``import qemu_arrays`` stays light: no torch, jax, dask, matplotlib, numba.cuda, cuda_kernels.

And the layers stay a DAG (``formats`` <- ``cuda_kernels`` <- ``qemu_arrays``): checked statically
on the source, so an import hidden inside a function counts too.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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
    mods = _modules_after("import qemu_arrays")
    assert _heavy(mods) == []
    # nor numba or scipy: the kernels are imported (and compiled) on first use
    assert [m for m in mods if m.split(".")[0] in ("numba", "llvmlite", "scipy")] == []


def test_numpy_quantize_and_routing_stay_light():
    code = (
        "import numpy as np, qemu_arrays as qa\n"
        "from qemu_arrays import dispatch\n"
        "from qemu_arrays.routes import generic\n"
        "qa.quantize(np.ones(3, np.float32), 'float8_e4m3fn')\n"
        "assert dispatch.route(np.ones(2)) is dispatch.Route.NUMPY"
    )
    assert _heavy(_modules_after(code)) == []


# ---- the layers: formats/ (bottom) -> cuda_kernels/ -> qemu_arrays/ (top) ------------------------

# folder -> (its package name, the packages its modules may import from this project)
LAYERS = {
    "formats": ("qemu_arrays.formats", ("qemu_arrays.formats",)),
    "cuda_kernels": (
        "qemu_arrays.cuda_kernels",
        ("qemu_arrays.formats", "qemu_arrays.cuda_kernels"),
    ),
}
_IMPORTERS = ("import_module", "__import__")


def _imported(path: Path, package_dir: Path, package: str | None = None) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, at any depth (relative ones resolved), and
    of every ``importlib.import_module("...")``/``__import__("...")`` with a literal name."""
    tree = ast.parse(path.read_text(), filename=str(path))
    pkg = (package or package_dir.name).split(".")
    parts = [*pkg, *path.relative_to(package_dir).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + (path.name == "__init__.py")]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            found.append((node.lineno, mod))
            found += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Call) and node.args:
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)
            arg = node.args[0]
            if name in _IMPORTERS and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
    return found


def test_layers_form_a_dag():
    """No module of formats/ imports the rest of qemu_arrays, and no module of cuda_kernels/
    imports more than formats (the host side of the CUDA route lives in qemu_arrays)."""
    bad = []
    checked = 0
    for folder, (package, allowed) in LAYERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            checked += 1
            for line, mod in _imported(path, ROOT / folder, package):
                ours = mod == "qemu_arrays" or mod.startswith("qemu_arrays.")
                if ours and not any(mod == a or mod.startswith(a + ".") for a in allowed):
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    assert checked >= 10
    assert bad == []


def test_nothing_imports_the_folders_as_top_level_packages():
    """formats/ and cuda_kernels/ are installed as qemu_arrays.formats/.cuda_kernels only; an
    import of a top-level ``formats`` would load a second copy (other enum identities)."""
    bad = []
    for folder in ("qemu_arrays", "formats", "cuda_kernels", "tests", "benchmarks", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            package = LAYERS[folder][0] if folder in LAYERS else folder
            for line, mod in _imported(path, ROOT / folder, package):
                if mod.split(".")[0] in ("formats", "cuda_kernels"):
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    assert bad == []


def test_dag_check_sees_hidden_imports(tmp_path):
    """The checker finds imports inside functions, relative imports and import_module calls."""
    pkg = tmp_path / "cuda_kernels"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from . import kern\n")
    (pkg / "kern.py").write_text(
        "import importlib\n"
        "def f():\n"
        "    from qemu_arrays import api\n"
        "    import qemu_arrays.cpu\n"
        "    return importlib.import_module('qemu_arrays.blocks'), api\n"
    )
    mods = [m for _, m in _imported(pkg / "kern.py", pkg)]
    assert {"qemu_arrays", "qemu_arrays.cpu", "qemu_arrays.blocks"} <= set(mods)
    assert "cuda_kernels.kern" in [m for _, m in _imported(pkg / "__init__.py", pkg)]
