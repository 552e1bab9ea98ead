"""Named hardware and library profiles: the exact rules of specific chips and software stacks.

A profile is a frozen object that says what it emulates, cites its sources (an ISA document and
section, a library's file) and marks what is uncertain; it offers the operations of what it
emulates (``quantize`` for rounding and scale-rule profiles, ``matmul`` for matrix-multiply
profiles). ``list_profiles()`` names them, ``profile(name)`` returns one. See docs/hardware.md.
"""

from qemu_arrays.hardware.registry import Profile, list_profiles, profile, register_profile

__all__ = ["Profile", "list_profiles", "profile", "register_profile"]
