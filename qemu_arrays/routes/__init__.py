"""The routes: one implementation of ``quantize``/``encode``/``decode`` per kind of array.

:mod:`qemu_arrays.dispatch` chooses a route from its capability table and calls its
``run(x, request)``; a route checks what is specific to its arrays, picks kernels and returns
arrays of the caller's library. No route imports the façade (:mod:`qemu_arrays.api`).

- :mod:`~qemu_arrays.routes.cpu`: NumPy arrays, through the numba CPU kernels (element and
  scaled formats here, block formats in :mod:`~qemu_arrays.routes.cpu_blocks`);
- :mod:`~qemu_arrays.routes.torch_cpu`: PyTorch CPU tensors, as zero-copy NumPy views;
- :mod:`~qemu_arrays.routes.cuda` and :mod:`~qemu_arrays.routes.cuda_blocks`: device memory,
  launching the kernels of :mod:`qemu_arrays.cuda_kernels`;
- :mod:`~qemu_arrays.routes.dask`: Dask arrays, lazily, chunk by chunk;
- :mod:`~qemu_arrays.routes.generic`: any array-API namespace (JAX, also under ``jax.jit``);
- :mod:`~qemu_arrays.routes.host`: block formats on JAX/array-API arrays, through NumPy.
"""
