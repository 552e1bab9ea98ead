"""The numba CPU kernels: ``prange`` loops over the scalar cores of :mod:`qemu_arrays.formats`.

- :mod:`~qemu_arrays.kernels.elements`: element formats (float and integer), codes, decode, and
  the branch-free float32 nearest-even kernel;
- :mod:`~qemu_arrays.kernels.scaled`: integer scales per channel/group (range pass, quantize);
- :mod:`~qemu_arrays.kernels.blocks`: block formats (MX, NVFP4), fused per block;
- :mod:`~qemu_arrays.kernels.simd`: LLVM vector intrinsics the block kernels use.

Importing a kernel module imports numba (never done by ``import qemu_arrays``); kernels compile
on first call and are cached on disk. Only the routes of :mod:`qemu_arrays.routes` call them.
"""
