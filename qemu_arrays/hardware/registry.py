"""The profile registry and the fields every profile has."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = ["Profile", "list_profiles", "profile", "register_profile"]


@dataclass(frozen=True, kw_only=True)
class Profile:
    """What every profile states: its name, what it emulates, where the rules come from, and
    what is uncertain about them. Subclasses add the operations (``quantize``, ``matmul``)."""

    name: str
    emulates: str
    """The chip, instruction or library function whose behaviour the profile reproduces."""
    sources: tuple[str, ...]
    """Citations: ISA document and section, or repository, file (and commit) of a library."""
    uncertain: tuple[str, ...] = ()
    """What the sources leave open, and what the profile assumes there."""
    confidence: str = "documented"
    """How the rules were established: "tested" (bit for bit against the library, in the
    tests), "documented" (transcribed from the document, tested against that transcription),
    or "inferred" (reconstructed where the documents are silent)."""

    def describe(self) -> str:
        lines = [f"{self.name}: {self.emulates}", *(f"  source: {s}" for s in self.sources)]
        lines += [f"  uncertain: {u}" for u in self.uncertain]
        lines.append(f"  confidence: {self.confidence}")
        return "\n".join(lines)


_PROFILES: dict[str, Profile] = {}


def register_profile(p: Profile) -> Profile:
    """Add a profile under its name; a name can be registered once."""
    if not isinstance(p, Profile):
        msg = f"register_profile takes a Profile, got {p!r} ({type(p).__name__})"
        raise TypeError(msg)
    key = p.name.lower()
    if key in _PROFILES:
        msg = f"a profile named {p.name!r} is already registered; hint: choose another name"
        raise ValueError(msg)
    _PROFILES[key] = p
    return p


def _load_builtin():
    """Import the modules that define the built-in profiles (each registers its own)."""
    import importlib
    import pkgutil

    import qemu_arrays.hardware as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name != "registry":
            importlib.import_module(f"qemu_arrays.hardware.{mod.name}")


def list_profiles(kind: type[Profile] | None = None) -> list[str]:
    """The names of the registered profiles (of one kind, a Profile subclass, if given)."""
    _load_builtin()
    return sorted(p.name for p in _PROFILES.values() if kind is None or isinstance(p, kind))


def profile(name: str) -> Profile:
    """The profile called ``name`` (case-insensitive); ``ValueError`` with close names else."""
    if not isinstance(name, str):
        msg = f"name must be a profile name (str), got {name!r}; hint: list_profiles()"
        raise TypeError(msg)
    _load_builtin()
    key = name.strip().lower()
    if key in _PROFILES:
        return _PROFILES[key]
    close = difflib.get_close_matches(key, list(_PROFILES), n=4, cutoff=0.5)
    hint = f"did you mean {', '.join(map(repr, close))}?" if close else "see list_profiles()"
    msg = f"unknown profile {name!r}; {hint}"
    raise ValueError(msg)
