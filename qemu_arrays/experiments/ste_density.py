"""``ste-density``: see :func:`qemu_arrays.experiments.ste.run_density`."""

from qemu_arrays.experiments.ste import run_density as run

__all__ = ["run"]
