"""``ste-range``: see :func:`qemu_arrays.experiments.ste.run_range`."""

from qemu_arrays.experiments.ste import run_range as run

__all__ = ["run"]
