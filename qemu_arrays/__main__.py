"""``python -m qemu_arrays``: the ``qemu-arrays`` command (:mod:`qemu_arrays.cli`)."""

import sys

from qemu_arrays.cli import main

if __name__ == "__main__":
    sys.exit(main())
