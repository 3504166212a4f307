"""Shared services: atomic writes, folder lock, SIGTERM handling, provenance, hashing, time.

Every layer that writes a file, locks a folder, records versions or hashes settings calls this
module, so that there is one recipe for each (one package list in the provenance of every
output, one canonical JSON hash, one temporary-file-then-rename writer).  Only the standard
library is imported at module level; pyarrow and matplotlib load in the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: The lock file of a locked folder (campaign folder, run folder).
LOCK_FILE = ".lock"

#: Distributions whose versions shape the results; recorded in every output's provenance.
PROVENANCE_PACKAGES: tuple[str, ...] = (
    "seilab",
    "numpy",
    "numba",
    "scipy",
    "pandas",
    "pyarrow",
    "pydantic",
    "matplotlib",
    "scikit-learn",
    "torch",
    "xgboost",
    "catboost",
    "shap",
    "optuna",
    "lifelines",
    "dask",
    "distributed",
    "dask-jobqueue",
)


# ------------------------------------------------------------------------------ time
def utc_now() -> str:
    """Current UTC time, ISO 8601 to the second (``2026-12-02T07:00:00+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------ hashing
def canonical_json(obj: Any) -> str:
    """The canonical JSON text of ``obj``: sorted keys, no spaces, ``str`` for anything else."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def stable_hash(obj: Any, length: int | None = None) -> str:
    """SHA-256 of :func:`canonical_json` of ``obj`` (hex; the first ``length`` characters).

    Dataclasses are hashed through their fields (``dataclasses.asdict``), so a settings object
    and the dict it round-trips to give the same hash.
    """
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    digest = hashlib.sha256(canonical_json(obj).encode()).hexdigest()
    return digest if length is None else digest[:length]


def text_hash(text: str | bytes) -> str:
    """SHA-256 (hex) of a text or of bytes."""
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


# ------------------------------------------------------------------------------ provenance
def versions() -> dict[str, str]:
    """Versions of Python and of :data:`PROVENANCE_PACKAGES` (``"not installed"`` if absent).

    ``xgboost`` also answers to the ``xgboost-cpu`` distribution.
    """
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in PROVENANCE_PACKAGES:
        out[pkg] = "not installed"
        for name in (pkg, f"{pkg}-cpu"):
            try:
                out[pkg] = md.version(name)
                break
            except md.PackageNotFoundError:
                continue
    return out


def provenance() -> dict[str, Any]:
    """Versions, platform and CPU count: what every output records about where it was made."""
    return {
        "versions": versions(),
        "platform": {"system": platform.platform(), "cpus": os.cpu_count()},
        "created_utc": utc_now(),
    }


# ------------------------------------------------------------------------------ atomic writes
def _tmp_for(path: Path) -> Path:
    # ``.<name>.tmp-<pid>``: the campaign runner removes those of dead pids.
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed to ``path``.

    Use it for writers that want a file name (``DataFrame.to_parquet``, ``Figure.savefig``).
    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = _tmp_for(path)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(data: bytes, path: str | Path) -> Path:
    """Write bytes through a temporary file beside ``path`` and ``os.replace``."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return path


def atomic_write_text(text: str, path: str | Path) -> Path:
    """Write UTF-8 text through a temporary file beside ``path`` and ``os.replace``."""
    return atomic_write_bytes(text.encode("utf-8"), path)


def atomic_write_json(obj: Any, path: str | Path, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON (``str`` for what JSON cannot hold) atomically, newline-terminated."""
    return atomic_write_text(json.dumps(obj, indent=indent, default=str) + "\n", path)


def atomic_write_parquet(table: Any, path: str | Path, *, index: bool = False) -> Path:
    """Write a pyarrow Table or a pandas DataFrame to Parquet atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if hasattr(table, "to_parquet"):  # pandas
            table.to_parquet(tmp, index=index)
        else:
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
    return path


def atomic_write_csv(frame: Any, path: str | Path, *, index: bool = False) -> Path:
    """Write a pandas DataFrame to CSV atomically."""
    return atomic_write_text(frame.to_csv(index=index), path)


def atomic_save(path: str | Path, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp)`` and rename ``tmp`` to ``path`` when it returns (atomic)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        writer(tmp)
    return path


# ------------------------------------------------------------------------------ folders
def check_writable_dir(
    path: str | Path, *, option: str = "--out", shown: str | Path | None = None
) -> Path:
    """Check, before any work, that ``path`` is (or can be created as) a writable folder.

    Nothing is created: the nearest existing ancestor must be a writable folder.

    Raises
    ------
    seilab.errors.SeilabError
        One line naming the option and the path.
    """
    from seilab.errors import SeilabError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SeilabError(f"{option} {path}: exists and is not a folder")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    shown = path if shown is None else shown
    if not probe.is_dir():
        raise SeilabError(f"{option} {shown}: cannot write there ({probe} is not a folder)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SeilabError(f"{option} {shown}: cannot write there ({probe} is not writable)")
    return path


def check_writable_file(path: str | Path, *, option: str = "--out") -> Path:
    """Check, before any work, that a file can be written at ``path`` (its folder may be new)."""
    from seilab.errors import SeilabError

    path = Path(path)
    if path.is_dir():
        raise SeilabError(f"{option} {path}: is a folder, give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise SeilabError(f"{option} {path}: exists and is not writable")
    check_writable_dir(path.parent, option=option, shown=path)
    return path


@contextmanager
def folder_lock(
    folder: Path, *, what: str = "folder", error: type[Exception] | None = None
) -> Iterator[None]:
    """Hold ``DIR/.lock`` (``fcntl.flock``, non-blocking) for the duration of the block.

    The lock file holds the pid of the owner while it is held.

    Parameters
    ----------
    folder
        The folder to lock (must exist).
    what, error
        How the folder is named in the error, and the exception raised
        (default :class:`seilab.errors.SeilabError`).

    Raises
    ------
    error
        "<what> DIR is in use by another process (pid N)".
    """
    if error is None:
        from seilab.errors import SeilabError

        error = SeilabError
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    path = Path(folder) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            pid = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        finally:
            os.close(fd)
        raise error(f"{what} {folder} is in use by another process (pid {pid})") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        try:
            os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


# ------------------------------------------------------------------------------ signals
@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt (main thread only) so that status files get written.

    A second SIGTERM kills at once: the first one's KeyboardInterrupt can be lost when it arrives
    inside a ctypes callback (Numba compiling in this process).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# ------------------------------------------------------------------------------ warnings
@contextmanager
def captured_warnings() -> Iterator[list[str]]:
    """Collect the warnings raised in the block (one line each, without duplicates).

    Dependencies warn about things the user cannot act on (a tiny sample clipped, a solver that
    stopped early); the stages record them in their status instead of printing them.
    """
    import warnings

    lines: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield lines
        finally:
            for w in caught:
                line = f"{w.category.__name__}: {str(w.message).splitlines()[0]}"
                if line not in lines:
                    lines.append(line)
