"""``ste-plateau``: see :func:`qemu_arrays.experiments.ste.run_plateau`."""

from qemu_arrays.experiments.ste import run_plateau as run

__all__ = ["run"]
