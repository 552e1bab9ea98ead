"""``ste-bitwidth``: see :func:`qemu_arrays.experiments.ste.run_bitwidth`."""

from qemu_arrays.experiments.ste import run_bitwidth as run

__all__ = ["run"]
