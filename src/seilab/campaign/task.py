"""The worker side of a campaign: run one simulation and write its run file atomically.

Importing this module has no side effects and imports nothing heavy (no Numba, no pyarrow), so
a worker of any backend (process pool, Dask, SLURM) can unpickle :func:`run_one` cheaply.  The
worker environment is prepared on first use (:func:`prepare_worker_env`):

* ``NUMBA_NUM_THREADS=1``, ``OMP_NUM_THREADS=1`` (and ``MKL_NUM_THREADS``/``OPENBLAS_NUM_THREADS``
  unless set): one simulation per core, no oversubscription;
* Numba's on-disk cache goes to a local folder (``$TMPDIR/seilab-numba-cache-$USER``, or
  ``$SEILAB_LOCAL_CACHE``) when the folder it would use otherwise -- ``$NUMBA_CACHE_DIR`` if set,
  else the ``__pycache__`` beside the installed ``seilab.kmc`` -- is on a network file system
  (NFS, Lustre, GPFS, BeeGFS, CIFS, ...) or not writable.  Concurrent writers on network file
  systems have corrupted Numba caches; a local cache costs one compilation per node.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: File-system types treated as network file systems (``/proc/self/mounts``).
NETWORK_FS: frozenset[str] = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "lustre",
        "gpfs",
        "beegfs",
        "ceph",
        "fuse.ceph",
        "glusterfs",
        "fuse.glusterfs",
        "fuse.sshfs",
        "panfs",
        "afs",
        "ncpfs",
        "9p",
        "wekafs",
    }
)

#: Longest error text kept in the manifest.
MAX_ERROR_CHARS = 4000

_PREPARED = False


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs for one run (small, picklable).

    Attributes
    ----------
    run_id
        The run's id.
    path
        Final path of the run file (written to a temporary name, then renamed).
    seed
        Simulation seed.
    model
        The campaign's base model (:class:`seilab.model.Model`), before any override.
    overrides
        Every override of the run (campaign ``--set``/``--box``/``--cycles`` and the run's own
        parameters), applied with ``Model.with_overrides``.
    """

    run_id: str
    path: str
    seed: int
    model: Any
    overrides: dict[str, Any] = field(default_factory=dict)


def _unescape_mount(field_: str) -> str:
    return (
        field_.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def filesystem_type(path: str | Path) -> str | None:
    """File-system type of the mount holding ``path`` (Linux ``/proc/self/mounts``), else None."""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    p = Path(path).expanduser()
    while not p.exists() and p != p.parent:
        p = p.parent
    real = os.path.realpath(p)
    best, best_type = "", None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt, fstype = _unescape_mount(parts[1]), parts[2]
        inside = real == mnt or real.startswith(mnt.rstrip("/") + "/") or mnt == "/"
        if inside and len(mnt) >= len(best):
            best, best_type = mnt, fstype
    return best_type


def is_network_fs(path: str | Path) -> bool:
    """Whether ``path`` lies on a network file system (see :data:`NETWORK_FS`)."""
    fstype = filesystem_type(path)
    return fstype is not None and (fstype in NETWORK_FS or fstype.startswith("nfs"))


def local_numba_cache_dir() -> str | None:
    """A local ``NUMBA_CACHE_DIR`` to use in this worker, or None to keep Numba's own choice.

    Returns
    -------
    str or None
        ``$SEILAB_LOCAL_CACHE`` or ``<tempdir>/seilab-numba-cache-<user>`` when the cache folder
        Numba would use is on a network file system or not writable; None otherwise.
    """
    user_dir = os.environ.get("NUMBA_CACHE_DIR")
    if user_dir:
        if not is_network_fs(user_dir):
            return None
    else:
        import importlib.util

        spec = importlib.util.find_spec("seilab.kmc")
        if spec is None or spec.origin is None:
            return None
        src = Path(spec.origin).parent
        if not is_network_fs(src) and os.access(src, os.W_OK):
            return None
    base = os.environ.get("SEILAB_LOCAL_CACHE")
    if base:
        return base
    try:
        user = os.getlogin()
    except OSError:
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return str(Path(tempfile.gettempdir()) / f"seilab-numba-cache-{user}")


def prepare_worker_env() -> None:
    """Set the worker's thread counts and Numba cache folder (idempotent, once per process).

    Called as the process pool's initializer and at the start of every :func:`run_one`, before
    the simulator (and so Numba) is imported.
    """
    global _PREPARED
    if _PREPARED:
        return
    os.environ["NUMBA_NUM_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    cache = local_numba_cache_dir()
    if cache:
        os.environ["NUMBA_CACHE_DIR"] = cache
    if "numba" in sys.modules:  # imported before us (e.g. a Dask worker that ran other work)
        try:
            import numba

            numba.core.config.reload_config()
            numba.set_num_threads(1)
        except Exception:  # noqa: BLE001 - best effort; the defaults still work
            pass
    _PREPARED = True


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill()
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _watch_parent(pid: int, interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        if not process_alive(pid):
            os._exit(70)  # the campaign process is gone: nobody will collect our result


def init_pool_worker(parent_pid: int, interval_s: float = 0.5) -> None:
    """Initializer of the process-pool workers.

    Prepares the environment (:func:`prepare_worker_env`) and starts a daemon thread that ends
    the worker when the campaign process ``parent_pid`` dies (e.g. ``kill -9``): pool workers
    are children of the forkserver, not of the campaign, and would otherwise wait forever for
    work that never comes.  A run in flight is lost (its temporary file is removed by the next
    session), as documented.
    """
    prepare_worker_env()
    threading.Thread(
        target=_watch_parent,
        args=(int(parent_pid), interval_s),
        daemon=True,
        name="seilab-parent-watch",
    ).start()


def format_error(exc: BaseException) -> str:
    """One error text for the manifest: ``Type: message (at file:line)``, size-limited."""
    text = f"{type(exc).__name__}: {exc}".strip()
    tb = traceback.extract_tb(exc.__traceback__)
    if tb:
        last = tb[-1]
        text += f" (at {Path(last.filename).name}:{last.lineno})"
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 3] + "..."
    return text


def run_one(task: RunTask) -> dict[str, Any]:
    """Run one simulation and write its run file (temporary name, then rename).

    Never raises for a simulation error: the returned record has ``status = "failed"`` and the
    error text, so a batch goes on.

    Parameters
    ----------
    task
        The run to do.

    Returns
    -------
    dict
        ``run_id``, ``status`` (``done``/``failed``), ``wall_s``, ``n_cycles``, ``end_reason``,
        ``error``, ``seilab_version``, ``model_sha256``, ``host``, ``pid``.
    """
    prepare_worker_env()
    t0 = time.perf_counter()
    rec: dict[str, Any] = {
        "run_id": task.run_id,
        "status": "failed",
        "n_cycles": None,
        "end_reason": None,
        "error": None,
        "seilab_version": None,
        "model_sha256": None,
        "host": os.uname().nodename if hasattr(os, "uname") else None,
        "pid": os.getpid(),
    }
    try:
        from seilab.kmc import simulate

        res = simulate(task.model, seed=int(task.seed), overrides=dict(task.overrides))
        res.write(Path(task.path))
        md = res.metadata
        rec.update(
            status="done",
            n_cycles=int(res.table.num_rows),
            end_reason=str(res.end_reason),
            seilab_version=md.get("seilab_version"),
            model_sha256=md.get("model_sha256"),
        )
    except Exception as exc:  # noqa: BLE001 - every simulation error is recorded, the batch goes on
        rec["error"] = format_error(exc)
    rec["wall_s"] = round(time.perf_counter() - t0, 4)
    return rec


def noop(x: Any = None) -> Any:
    """A trivial task (used to warm up workers and to measure backend overhead)."""
    prepare_worker_env()
    return x
