"""How the numba CPU kernels use threads, and the notice printed while one compiles.

The settings, in one place (``docs/performance.md#threads-and-compilation``):

* :func:`set_num_threads` / :func:`get_num_threads`: the threads the CPU kernels run on
  (environment: ``QEMU_ARRAYS_NUM_THREADS``); by default numba's thread count for the calling
  thread (``NUMBA_NUM_THREADS``, or what ``numba.set_num_threads`` set there);
* :func:`set_compile_notice`: the line printed on stderr when a kernel compile runs for more
  than a second (environment: ``QEMU_ARRAYS_COMPILE_NOTICE=0`` silences it).

Every kernel is a serial span (a plain ``@njit`` function over a range of its work) that
:func:`run` either calls on the calling thread or spreads over numba's thread pool in chunks
(:mod:`qemu_arrays.kernels.parallel`): the calling thread alone below a size measured per kernel
family (:data:`SERIAL_BELOW`, ``benchmarks/bench_threads.py``), where waking the pool costs more
than the work, the pool above. Both give the same bits.

Threading layer: numba's default on Linux is GNU OpenMP, which kills a process forked after a
parallel kernel ran as soon as the child runs one (PyTorch ``DataLoader`` workers,
``multiprocessing`` with the fork start method), and which sets the OpenMP thread count that
PyTorch reads. When the user has chosen no layer (``NUMBA_THREADING_LAYER`` unset and
``numba.config.THREADING_LAYER`` still ``"default"``) and numba has launched none yet, the first
kernel use asks numba for a fork-safe one (``"forksafe"``: TBB when it loads, else numba's
``workqueue``). ``workqueue`` is not thread-safe, so under it a process-wide lock guards every
parallel launch: a thread that finds the pool busy runs the serial variant instead (no waiting,
same bits). A layer the user chose, or one already launched by other numba code, is kept.

Nothing here changes PyTorch's, numba's or OpenMP's settings as the caller sees them: the
numba thread count of the calling thread is set only around a launch and restored, and when the
layer turns out to be OpenMP, the OpenMP thread count its launch set is put back.

Importing this module does not import numba.
"""

from __future__ import annotations

import numbers
import os
import sys
import threading
from contextlib import contextmanager, suppress

__all__ = ["get_num_threads", "set_compile_notice", "set_num_threads"]

ENV_THREADS = "QEMU_ARRAYS_NUM_THREADS"
ENV_NOTICE = "QEMU_ARRAYS_COMPILE_NOTICE"

#: below this much work (elements) a family's serial variant runs on the calling thread alone:
#: about where the serial variant takes half a millisecond, so that waking numba's pool (150-300
#: us on a loaded machine) costs at most about half the work (``benchmarks/bench_threads.py``
#: measures both; docs/performance.md has the figures)
SERIAL_BELOW = {
    "element": 1 << 16,  # the general element kernels (other modes, float64 input): 8 ns/element
    "element_rne": 1 << 21,  # the select-only float32 nearest-even and integer kernels
    "decode": 1 << 15,  # formats of more than 16 bits (narrower ones decode through a table)
    "scaled": 1 << 20,  # per-channel and per-group integer scales (range and rounding passes)
    "block": 1 << 20,  # MX and NVFP4
    "matmul": 1 << 16,  # matmul/dot: multiply-adds (the rounded additions: about 1 ns each)
}

#: seconds a compile runs before the notice is printed
NOTICE_AFTER = 1.0
#: modules whose numba functions the notice watches
WATCHED = ("qemu_arrays.",)

_lock = threading.Lock()  # guards the workqueue pool (see run)
_init_lock = threading.Lock()
_layer: str | None = None  # numba's threading layer, once launched
_threads: int | None = None  # the user's setting (None: numba's count)
_threads_read = False  # ENV_THREADS read
_notice: bool | None = None  # None: ENV_NOTICE decides
_force: str | None = None  # "serial" or "parallel": tests and warm-up take one variant


def _reset_after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # a child of a process forked mid-launch starts with a free pool


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


# ---- settings ----------------------------------------------------------------------------------


def _check_threads(n, name):
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        msg = (
            f"{name} must be a positive int or None, got {n!r} ({type(n).__name__}); "
            "hint: qemu_arrays.set_num_threads(1) for one thread, None for numba's count"
        )
        raise TypeError(msg)
    import numba

    top = numba.config.NUMBA_NUM_THREADS
    if not 1 <= n <= top:
        msg = (
            f"{name} must lie in [1, {top}] (numba's pool has NUMBA_NUM_THREADS={top} threads), "
            f"got {n}; hint: set NUMBA_NUM_THREADS before the first kernel runs for a larger pool"
        )
        raise ValueError(msg)
    return int(n)


def _setting() -> int | None:
    global _threads, _threads_read
    if not _threads_read:
        raw = os.environ.get(ENV_THREADS, "").strip()
        if raw:
            try:
                value = int(raw)
            except ValueError:
                msg = (
                    f"environment variable {ENV_THREADS}={raw!r} must be a positive integer; "
                    f"hint: {ENV_THREADS}=1 for one thread, or unset it for numba's count"
                )
                raise ValueError(msg) from None
            _threads = _check_threads(value, ENV_THREADS)
        _threads_read = True
    return _threads


def set_num_threads(n):
    """Run the CPU kernels on at most ``n`` threads (``None``: numba's thread count for the
    calling thread, the default). Process-wide; returns the previous setting.

    ``n`` lies between 1 and ``NUMBA_NUM_THREADS``. Results never depend on it. Arrays below
    a size measured per kernel family always run on the calling thread alone.
    """
    global _threads, _threads_read
    n = _check_threads(n, "n")
    prev = _setting()
    _threads, _threads_read = n, True
    return prev


def get_num_threads() -> int:
    """The threads a large array's kernel runs on when called from this thread."""
    n = _setting()
    if n is not None:
        return n
    init_threading()
    import numba

    return numba.get_num_threads()


def set_compile_notice(on):
    """Print (``True``) or not (``False``) one line on stderr when a kernel compile runs for more
    than a second; ``None`` leaves it to ``QEMU_ARRAYS_COMPILE_NOTICE`` (default on).
    Returns the previous setting."""
    global _notice
    if on is not None and not isinstance(on, bool):
        msg = f"on must be True, False or None, got {on!r}; hint: set_compile_notice(False)"
        raise TypeError(msg)
    prev = _notice
    _notice = on
    return prev


def _notice_on() -> bool:
    if _notice is not None:
        return _notice
    return os.environ.get(ENV_NOTICE, "1").strip().lower() not in ("0", "false", "no", "off")


# ---- the threading layer -----------------------------------------------------------------------


def _libgomp():
    """The GNU OpenMP runtime already loaded in this process, or None."""
    import ctypes

    try:
        return ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except (OSError, AttributeError):
        return None


def init_threading() -> str:
    """Choose (if the user has not) and launch numba's threading layer; returns its name.

    Called by the kernel modules when they are imported, before any kernel compiles or runs.
    """
    global _layer
    if _layer is not None:
        return _layer
    with _init_lock:
        if _layer is not None:
            return _layer
        import numba
        from numba.np.ufunc import parallel

        try:
            _layer = numba.threading_layer()  # launched already, by other numba code
        except ValueError:
            chosen = "NUMBA_THREADING_LAYER" in os.environ
            if not chosen and str(numba.config.THREADING_LAYER).lower() == "default":
                numba.config.THREADING_LAYER = "forksafe"
            gomp = _libgomp()
            before = (gomp.omp_get_max_threads(), gomp.omp_get_nested()) if gomp else None
            parallel._launch_threads()
            _layer = numba.threading_layer()
            if _layer == "omp" and before is not None:
                # numba's OpenMP launch sets the thread count (and nesting) of the OpenMP
                # runtime that PyTorch may share: put back what the caller had
                gomp.omp_set_num_threads(before[0])
                gomp.omp_set_nested(before[1])
        _install_notice()
        return _layer


@contextmanager
def force(variant):
    """Run every kernel as its ``"serial"`` or ``"parallel"`` variant (tests and warm-up)."""
    global _force
    if variant not in ("serial", "parallel", None):
        msg = f"variant must be 'serial', 'parallel' or None, got {variant!r}"
        raise ValueError(msg)
    prev, _force = _force, variant
    try:
        yield
    finally:
        _force = prev


def run(work, family, span, units, per, *args):
    """``span(0, units, *args)`` on the calling thread, or the span over chunks of ``per``
    units on numba's thread pool (:func:`qemu_arrays.kernels.parallel.run_parallel`); the span's
    int return (summed over the chunks).

    The calling thread runs it alone below :data:`SERIAL_BELOW` ``[family]`` elements of
    ``work``, with one thread configured, and (under ``workqueue``) while another thread holds
    the pool.
    """
    f = _force
    if f != "parallel" and (f == "serial" or work < SERIAL_BELOW[family]):
        return span(0, units, *args)
    n = _setting()
    import numba

    prev = numba.get_num_threads()
    if n is None:
        n = prev
    if n <= 1 and f is None:
        return span(0, units, *args)
    lock = _lock if _layer == "workqueue" else None
    if lock is not None and not lock.acquire(blocking=False):
        return span(0, units, *args)  # the pool is busy: this thread computes alone
    try:
        from qemu_arrays.kernels.parallel import run_parallel

        if n != prev:
            numba.set_num_threads(n)
        try:
            return run_parallel(span, units, per, args)
        finally:
            if n != prev:
                numba.set_num_threads(prev)
    finally:
        if lock is not None:
            lock.release()


# ---- the compile notice ------------------------------------------------------------------------

_notice_installed = False


def _describe(dispatcher) -> str:
    name = getattr(dispatcher.py_func, "__name__", "kernel").strip("_")
    return (
        f"qemu_arrays: compiling the CPU kernel {name!r} for its first use: seconds, once "
        f"(cached on disk); `qemu-arrays warmup` compiles ahead, {ENV_NOTICE}=0 silences this"
    )


def _say(line: str) -> None:
    with suppress(OSError, ValueError):  # stderr closed
        print(line, file=sys.stderr, flush=True)


def _install_notice() -> None:
    global _notice_installed
    if _notice_installed:
        return
    from numba.core import event

    class CompileNotice(event.Listener):
        """Starts a timer on the outermost compile of a watched function; prints when it
        fires before the compile ends."""

        def __init__(self):
            self.local = threading.local()

        def on_start(self, ev):
            depth = getattr(self.local, "depth", 0)
            self.local.depth = depth + 1
            if depth or not _notice_on():
                return
            data = ev.data or {}
            disp = data.get("dispatcher")
            mod = getattr(getattr(disp, "py_func", None), "__module__", "") or ""
            if not mod.startswith(WATCHED):
                return
            timer = threading.Timer(NOTICE_AFTER, _say, (_describe(disp),))
            timer.daemon = True
            self.local.timer = timer
            timer.start()

        def on_end(self, ev):
            self.local.depth = getattr(self.local, "depth", 1) - 1
            timer = getattr(self.local, "timer", None)
            if self.local.depth == 0 and timer is not None:
                timer.cancel()
                self.local.timer = None

    event.register("numba:compile", CompileNotice())
    _notice_installed = True
