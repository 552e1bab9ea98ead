"""``ste-stability``: see :func:`qemu_arrays.experiments.ste.run_stability`."""

from qemu_arrays.experiments.ste import run_stability as run

__all__ = ["run"]
