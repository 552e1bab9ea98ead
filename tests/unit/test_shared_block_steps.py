"""The CPU and CUDA block kernels share one step per rule (issue 13): read from the sources.

Every block-format rule (the MX and NVFP4 block scales, the element under that scale, NaN
blocks, quotient overflow, the value of a code) is a function of ``formats/block_cores.py``.
The CPU kernels (``qemu_arrays/kernels/blocks.py``) and the CUDA kernels
(``cuda_kernels/block_kernels.py``) call those functions and compose none of their own from the
rounding cores of ``formats/cores.py``; no kernel module defines a function of the same name.
The CPU's select-only fast paths (vector maxima, the float32 scale window of ``nv_scale32``,
``rne_scale_f64``, the exponent on the bits) are other algorithms for the same results, tested
equal to the shared steps in ``tests/routes/test_blocks_fastpath.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "formats" / "block_cores.py"
CPU = ROOT / "qemu_arrays" / "kernels" / "blocks.py"
CUDA = ROOT / "cuda_kernels" / "block_kernels.py"
CUDA_IO = ROOT / "cuda_kernels" / "block_io.py"

# the rounding cores a block rule is written with: only formats/ composes them
RULE_CORES = {
    "round_magnitude", "round_bits_fast", "round_subnormal_fast", "round_int_value",
    "round_ieee_bits", "format_code", "decode_code", "has_negative_zero", "rne32",
    "mx_float_general",
}  # fmt: skip
# the steps both kernels must call (a CUDA name may be the bits form of the CPU's)
STEPS = {
    "mx_scale": ("mx_scale",),
    "mx_element": ("mx_element",),
    "mx_rne32": ("mx_rne32", "mx_rne32_bits"),
    "nv_scale": ("nv_scale",),
    "nv_element": ("nv_element",),
    "nv_rne32": ("nv_rne32", "nv_rne32_bits"),
    "nv_vec_ok": ("nv_vec_ok",),
}


def _tree(path):
    return ast.parse(path.read_text(), filename=str(path))


def _names_used(tree) -> set[str]:
    """Every name the module loads or imports (calls included)."""
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            used |= {a.asname or a.name for a in node.names}
    return used


def _defined(tree) -> set[str]:
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_the_shared_module_holds_the_rules():
    defined = _defined(_tree(SHARED))
    for names in STEPS.values():
        assert set(names) <= defined
    assert {"block_value", "shared_exponent", "split_bits"} <= defined


def test_cpu_and_cuda_kernels_compose_no_rule_of_their_own():
    for path in (CPU, CUDA):
        used = _names_used(_tree(path))
        assert not used & RULE_CORES, f"{path.name} uses {sorted(used & RULE_CORES)}"
    # the CUDA loads and stores narrow float32 results to 16 bits (the CPU route's output cast)
    # and nothing else
    io_used = _names_used(_tree(CUDA_IO)) & RULE_CORES
    assert io_used <= {"round_ieee_bits"}, sorted(io_used)


def test_cpu_and_cuda_kernels_call_every_shared_step():
    for path in (CPU, CUDA):
        tree = _tree(path)
        used = _names_used(tree)
        missing = [step for step, names in STEPS.items() if not used & set(names)]
        assert missing == [], f"{path.name} does not call {missing}"
        imports = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        assert "qemu_arrays.formats.block_cores" in imports


def test_no_kernel_module_redefines_a_shared_step():
    shared = _defined(_tree(SHARED))
    for folder in (ROOT / "qemu_arrays" / "kernels", ROOT / "cuda_kernels"):
        for path in sorted(folder.glob("*.py")):
            again = _defined(_tree(path)) & shared
            assert not again, f"{path.name} defines {sorted(again)} again"
