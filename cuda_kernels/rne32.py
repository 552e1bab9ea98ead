"""Where :func:`qemu_arrays.formats.rne32.rne32` used to live (the CUDA kernels import it from here)."""

from qemu_arrays.formats.rne32 import bits_f64, f64_bits, rne32, rne32_cpu

__all__ = ["bits_f64", "f64_bits", "rne32", "rne32_cpu"]
