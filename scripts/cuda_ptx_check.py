"""Compile the CUDA kernels to PTX without a GPU: a typing and lowering check for the device target.

The CUDA simulator runs kernels as Python, so it cannot tell whether a kernel compiles for a GPU
(a numba feature the CUDA target lacks, an intrinsic that does not lower, a type that does not
unify). This script compiles every kernel family of ``cuda_kernels`` for ``sm_90`` with NVVM
alone, and prints, per kernel, the number of PTX instructions and how many of them are 64-bit.
It needs libnvvm and NVRTC, which the pip packages ``nvidia-cuda-nvcc`` and
``nvidia-cuda-nvrtc`` provide (no driver, no GPU):

    pip install --target /tmp/nvcc nvidia-cuda-nvcc nvidia-cuda-nvrtc
    LD_LIBRARY_PATH=/tmp/nvcc/nvidia/cu13/lib PYTHONPATH=/tmp/nvcc:. \\
        python scripts/cuda_ptx_check.py [--quick]

(copy ``libnvrtc*`` next to ``libnvvm`` if they were installed in separate folders). numba asks
the current device for its compute capability while typing device functions; the script
answers (9, 0) in its place.
"""

from __future__ import annotations

import argparse
import collections
import sys
import types as pytypes


def _counts(ptx):
    ops = [
        line.split()[0]
        for line in ptx.splitlines()
        if line.startswith("\t") and line.split() and not line.startswith("\t//")
    ]
    c = collections.Counter(ops)
    return len(ops), sum(n for k, n in c.items() if "64" in k)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one block format, float32 only")
    args = ap.parse_args(argv)

    import numpy as np

    if not hasattr(np, "row_stack"):  # as cuda_kernels.load()
        setattr(np, "row_stack", np.vstack)  # noqa: B010
    import numba.cuda.dispatcher as disp
    from numba import cuda, types

    disp.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=(9, 0))

    import qemu_arrays as qa
    from qemu_arrays.cuda_kernels import block_kernels as bk
    from qemu_arrays.cuda_kernels import kernels as ek
    from qemu_arrays.routes import cuda_blocks as hb
    from qemu_arrays.routes.cpu_elements import rne_plan

    def arr(dt):
        return types.Array(dt, 1, "C")

    def compile_(label, fn, sig):
        ptx, _ = cuda.compile_ptx(fn.py_func, sig, cc=(9, 0))
        total, wide = _counts(ptx)
        print(f"{label:60s} {total:6d} PTX instructions, {wide:5d} 64-bit", flush=True)

    u32, i64, u16, u8 = types.uint32, types.int64, types.uint16, types.uint8
    for name in ("float8_e4m3fn", "float4_e2m1fn", "float8_e5m2", "bfloat16"):
        fmt = qa.get_format(name)
        for ovf in qa.Overflow:
            plan = rne_plan(fmt, ovf)
            if plan is not None:
                kern = ek.rne32_quantize(plan, fmt.params(), int(ovf))
                compile_(f"rne32 {name} {ovf.name}", kern, (arr(u32), arr(u32), arr(types.int32)))
    raw = {0: u32, 1: i64, 2: u16, 3: u16, 4: i64}
    names = ["mxfp8_e4m3"] if args.quick else ["mxfp8_e4m3", "mxfp4_e2m1", "mxint8", "nvfp4"]
    kinds = [(0, 0)] if args.quick else [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (4, 1)]
    for name in names:
        fmt = qa.get_format(name)
        for in_kind, out_kind in kinds:
            if fmt.tensor_scale and (in_kind, out_kind) in ((1, 1), (4, 4)):
                continue
            if not fmt.tensor_scale and (in_kind, out_kind) == (4, 1):
                continue
            for want in (1, 2):
                for ne in (True, False):
                    spec = hb.block_spec(fmt, in_kind, out_kind, want, ne, True)
                    outt = raw[spec.out_kind] if want == 1 else u32
                    sig = (arr(raw[in_kind]), arr(outt), arr(u8), arr(u8), *([i64] * 10),
                           types.float32)  # fmt: skip
                    for kind, build in (("lanes", bk._build_lanes), ("rows", bk._build_rows)):
                        label = f"{kind} {name} in{in_kind} out{out_kind} want{want} ne={ne}"
                        compile_(label, build(spec), sig)
    for kind in (0, 1, 2, 4):
        compile_(f"amax kind {kind}", bk.amax_kernel(kind), (arr(raw[kind]), arr(i64)))
    for name in names:
        for ok, ot in ((0, u32), (1, i64), (2, u16), (3, u16)):
            kern = bk.decode_kernel(hb.decode_spec(qa.get_format(name), ok))
            sig = (arr(u8), arr(u8), arr(ot), i64, i64, i64, types.float32)
            compile_(f"decode {name} out{ok}", kern, sig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
