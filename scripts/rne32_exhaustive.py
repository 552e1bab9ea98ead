"""Check :func:`qemu_arrays.formats.rne32.rne32` against :func:`qemu_arrays.kernels.elements.rne_f32_bits` (the int64
reference of the same select-only step) on all 2^32 float32 bit patterns, for every eligible
(catalog format, overflow policy) plan. About 7 s per plan on two cores, 5 minutes in all.

Run: python scripts/rne32_exhaustive.py [FORMAT ...]
"""

from __future__ import annotations

import sys
import time

import numpy as np
from numba import njit, prange

import qemu_arrays as qa
from qemu_arrays.formats.rne32 import rne32
from qemu_arrays.kernels.elements import rne_f32_bits, rne_f32_plan


@njit(parallel=True, cache=False)
def _mismatches(plan):
    bad = 0
    for hi in prange(1 << 16):
        for lo in range(1 << 16):
            b = np.uint32((hi << 16) | lo)
            bad += np.uint32(rne32(b, plan)) != np.uint32(rne_f32_bits(np.int64(b), plan))
    return bad


def main(names):
    t0 = time.time()
    total = 0
    for name in sorted(names or qa.list_formats()):
        fmt = qa.get_format(name)
        if not isinstance(fmt, qa.FloatFormat):
            continue
        for ovf in qa.Overflow:
            plan = rne_f32_plan(fmt.params(), int(ovf))
            if plan is None:
                continue
            bad = _mismatches(plan)
            total += bad
            print(f"{name:22s} {ovf.name:10s} mismatches {bad}  ({time.time() - t0:.0f} s)")
    print("all plans agree" if total == 0 else f"{total} mismatches")
    return 0 if total == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
