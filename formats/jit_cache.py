"""Keep numba's on-disk kernel cache in step with the scalar cores it inlines.

numba keys a cached (``cache=True``) function on the stamp of its own source file only, but a
kernel's machine code also holds every ``@njit`` function and ``@intrinsic`` it calls, inlined or
linked in. A module whose cached kernels call the cores of :mod:`formats` therefore calls
:func:`purge_stale_cache` with its ``__file__`` at import time: when any numba source of
``formats/`` (:data:`NJIT_SOURCES`) or one of the extra files it names has changed since the
last import, its cache files are deleted and numba compiles afresh.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["NJIT_SOURCES", "purge_stale_cache"]

_HERE = Path(__file__).resolve().parent

#: the modules of ``formats/`` that hold numba code (``@njit`` functions, ``@intrinsic``\ s) or
#: the constants it compiles in (the code tables)
NJIT_SOURCES = (
    "cores.py",
    "bits.py",
    "block_cores.py",
    "block_plans.py",
    "rne32.py",
    "round32.py",
    "codes.py",
    "enums.py",
    "accumulate.py",
    "add32.py",
)


def _stamp(extra) -> str:
    parts = []
    for f in (*(_HERE / n for n in NJIT_SOURCES), *(Path(e) for e in extra)):
        st = os.stat(f)
        parts.append(f"{f.name}:{st.st_mtime_ns}:{st.st_size}")
    return ";".join(parts)


def purge_stale_cache(module_file: str, *depends_on: str) -> None:
    """Drop numba's on-disk cache of ``module_file`` when a numba source of ``formats/`` (or
    one of the files ``depends_on``, e.g. another module whose ``@njit`` functions or
    intrinsics its kernels call) changed.

    The stamp of those files is kept next to the cache (``__pycache__/<stem>.cores-stamp``);
    on a read-only install nothing is written and numba falls back to its user cache directory.
    """
    src = Path(module_file)
    cache_dir = src.parent / "__pycache__"
    stamp = _stamp(depends_on)
    marker = cache_dir / f"{src.stem}.cores-stamp"
    try:
        if marker.read_text() == stamp:
            return
    except OSError:
        pass
    try:
        cache_dir.mkdir(exist_ok=True)
        for f in cache_dir.glob(f"{src.stem}.*.nb[ic]"):
            f.unlink()
        marker.write_text(stamp)
    except OSError:
        pass  # read-only install: numba falls back to its user cache directory
