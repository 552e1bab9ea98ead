"""The package's import graph: no cycle, one way down through the layers.

Every import between modules of qemu_arrays counts, at module level or inside a function (an
import placed in a function to dodge a cycle is still a cycle), read statically from the source
with the checker of tests/unit/test_import_light.py. The layers, top to bottom:

    façade (api, matmul, __init__) -> dispatch -> routes -> kernels / cuda_kernels -> formats
    with request, matmul_request, validation, encoded, float_casts, scales as leaves below
    the façade.
"""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_import_light import _imported

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {
    "qemu_arrays": ROOT / "qemu_arrays",
    "qemu_arrays.formats": ROOT / "formats",
    "qemu_arrays.cuda_kernels": ROOT / "cuda_kernels",
}


def _modules() -> dict[str, Path]:
    mods = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([package, *parts])] = path
    return mods


def _graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (a name ``pkg.attr`` resolves to ``pkg`` when
    ``pkg.attr`` is not a module). Importing a module imports its parent packages too, but the
    edge to a parent ``__init__`` is not a dependency of the module's code and is not counted."""
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        package = ".".join(name.split(".")[:-1]) if path.name != "__init__.py" else name
        folder = path.parent if path.name == "__init__.py" else path.parent
        deps = set()
        for _, mod in _imported(path, folder, package if path.name != "__init__.py" else name):
            while mod and mod not in mods:
                mod = mod.rpartition(".")[0]
            if mod and mod != name and not name.startswith(mod + "."):
                deps.add(mod)
        graph[name] = deps
    return graph


def _cycle(graph):
    """One cycle of the graph as a list of modules, or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    assert len(graph) > 40
    assert _cycle(graph) is None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _deps_matching(graph, module_prefix, dep_prefixes):
    bad = []
    for name, deps in graph.items():
        if name != module_prefix and not name.startswith(module_prefix + "."):
            continue
        bad += [
            f"{name} imports {d}"
            for d in deps
            if any(d == p or d.startswith(p + ".") for p in dep_prefixes)
        ]
    return bad


FACADE = ("qemu_arrays.api", "qemu_arrays.matmul")
ABOVE_FACADE = (
    "qemu_arrays.qarray", "qemu_arrays.estimators", "qemu_arrays.autodiff",
    "qemu_arrays.training", "qemu_arrays.theory", "qemu_arrays.experiments",
    "qemu_arrays.testing", "qemu_arrays.cli", "qemu_arrays.plotting", "qemu_arrays.__main__",
    "qemu_arrays.hardware", "qemu_arrays.cli_gemm",
)  # fmt: skip


def test_one_way_down():
    graph = _graph()
    bad = []
    # nothing below the façade imports it, or anything above it
    for below in (
        "qemu_arrays.dispatch", "qemu_arrays.routes", "qemu_arrays.kernels",
        "qemu_arrays.request", "qemu_arrays.matmul_request", "qemu_arrays.validation",
        "qemu_arrays.encoded",
        "qemu_arrays.scales", "qemu_arrays.float_casts", "qemu_arrays.packing",
        "qemu_arrays.formats", "qemu_arrays.cuda_kernels",
    ):  # fmt: skip
        bad += _deps_matching(graph, below, FACADE + ABOVE_FACADE + ("qemu_arrays.dispatch",))
    # routes never import the dispatcher; kernels import only kernels and formats
    for name, deps in graph.items():
        if name.startswith(("qemu_arrays.kernels", "qemu_arrays.cuda_kernels")):
            bad += [
                f"{name} imports {d}"
                for d in deps
                if not d.startswith(("qemu_arrays.formats", "qemu_arrays.kernels"))
                and not (
                    name.startswith("qemu_arrays.cuda_kernels")
                    and d.startswith(name.rsplit(".", 1)[0])
                )
            ]
        if name.startswith(("qemu_arrays.validation", "qemu_arrays.encoded")):
            bad += [f"{name} imports {d}" for d in deps if not d.startswith("qemu_arrays.formats")]
    assert bad == []
