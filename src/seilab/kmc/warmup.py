"""Compile the kernels once: at install (``seilab warmup``) or on first use, under a file lock.

Numba compiles a kernel on its first call and keeps the machine code in its cache
(``cache=True``: ``__pycache__`` next to ``kernels.py``, or ``NUMBA_CACHE_DIR``).  Without
coordination every process that starts on an empty cache compiles the kernels itself: the two
workers of a campaign both spent about a minute doing the same work.  Here the first process
takes an exclusive lock in the cache folder, runs a tiny simulation that calls every kernel the
driver calls (so each one is compiled and written to the cache) and leaves a marker; processes
that arrive meanwhile wait on the lock and then load the cache, and later processes see the
marker and skip the lock altogether.  The marker's name carries the kernel file's stamp (size
and modification time, the stamp Numba's own cache checks) and the Numba and Python versions,
so an edited kernel file or an upgraded Numba compiles again.

``scripts/setup.sh`` runs ``python -m seilab warmup`` so that a fresh install starts with a
full cache; ``pip install seilab`` users get the same by running ``seilab warmup`` once
(otherwise the first simulation compiles, once for all processes sharing the cache folder).
The simulation that compiles is the engine's (:func:`seilab.kmc.engine.exercise_kernels`,
passed in): this module knows locks and markers, not the driver.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

_READY = False


def cache_dir() -> Path:
    """The folder where Numba keeps the compiled kernels of this installation."""
    from seilab.kmc import kernels as K

    return Path(K.run_half._cache._cache_path)


def _stamp() -> str:
    import numba

    from seilab.kmc import kernels as K

    st = os.stat(K.__file__)
    py = f"{sys.version_info[0]}{sys.version_info[1]}"
    return f"{int(st.st_mtime)}-{st.st_size}-nb{numba.__version__}-py{py}"


def marker_path() -> Path:
    """The file whose presence says the cache holds every kernel of this kernel file."""
    return cache_dir() / f"seilab-warm-{_stamp()}"


@contextmanager
def _file_lock(path: Path):
    """An exclusive advisory lock (POSIX ``flock``; no lock where that is unavailable)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: compile without coordination
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def ensure_compiled(exercise: Callable[[], None]) -> float:
    """Make sure this process can load every kernel from the cache; compile once if not.

    Parameters
    ----------
    exercise
        Calls every kernel the driver calls, on a tiny box
        (:func:`seilab.kmc.engine.exercise_kernels`): run by the one process that compiles.

    Returns
    -------
    float
        Seconds spent (waiting on another process's compilation included); 0.0 when the
        cache was already complete or this process has been here before.
    """
    global _READY
    if _READY:
        return 0.0
    _READY = True  # set first: the warm-up simulation below comes back through here
    t0 = time.perf_counter()
    try:
        marker = marker_path()
        if marker.exists():
            return 0.0
        with _file_lock(cache_dir() / "seilab-compile.lock"):
            if not marker.exists():  # not compiled by the process we waited for
                # the one wait of this length a user meets without a progress bar: say why
                print(
                    "seilab: compiling the kMC kernels for this installation, once "
                    "(about 20 s; `seilab warmup` does it ahead of time)",
                    file=sys.stderr,
                    flush=True,
                )
                exercise()
                marker.touch()
    except OSError:
        # a read-only cache folder: Numba then compiles in memory; nothing to coordinate
        return 0.0
    return time.perf_counter() - t0
