"""``ste-joint``: see :func:`qemu_arrays.experiments.ste.run_joint`."""

from qemu_arrays.experiments.ste import run_joint as run

__all__ = ["run"]
