"""Execution backends: one ``concurrent.futures.Executor`` code path for all of them.

``process``
    ``concurrent.futures.ProcessPoolExecutor`` with ``workers`` processes started by the
    ``forkserver`` method (``spawn`` where it is unavailable): workers start from a clean
    interpreter, inherit neither the parent's threads nor its open files (so not the campaign
    lock), and their initializer (:func:`seilab.campaign.task.init_pool_worker`) sets the
    worker environment and ends the worker if the campaign process dies.
``dask``
    ``distributed.Client(ADDRESS).get_executor()`` for an existing scheduler (``--scheduler``);
    without an address, a ``LocalCluster(n_workers=workers, threads_per_worker=1,
    processes=True)``.  The run folder must be visible from the workers (shared file system).
``slurm``
    A ``dask_jobqueue.SLURMCluster`` built from the ``[slurm]`` section of the campaign
    configuration (keyword arguments of ``SLURMCluster``) or, when that section is absent, from
    Dask's own configuration (``jobqueue.slurm`` in ``~/.config/dask/jobqueue.yaml``).  Extra
    keys: ``jobs`` (fixed number of jobs, default 1), or ``minimum_jobs``/``maximum_jobs``
    (adaptive scaling).  :func:`slurm_job_script` returns the job script without a cluster.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from seilab.campaign import task as task_mod
from seilab.errors import CampaignError

#: Lines added to every SLURM job script (before the worker starts), unless the settings give
#: their own ``job_script_prologue``.
SLURM_PROLOGUE: tuple[str, ...] = (
    "export NUMBA_NUM_THREADS=1",
    "export OMP_NUM_THREADS=1",
    'export NUMBA_CACHE_DIR="${TMPDIR:-/tmp}/seilab-numba-cache-${USER}"',
)
#: Keys of the ``[slurm]`` section that seilab handles itself (not SLURMCluster arguments).
SLURM_OWN_KEYS: frozenset[str] = frozenset({"jobs", "minimum_jobs", "maximum_jobs"})
_PLACEHOLDER_SCHEDULER = "tcp://<scheduler-address>:8786"


def default_workers() -> int:
    """Default number of worker processes: ``os.cpu_count()``."""
    return max(1, os.cpu_count() or 1)


@dataclass
class ExecutorHandle:
    """An open executor and what the campaign loop needs to know about it.

    Attributes
    ----------
    executor
        The ``concurrent.futures.Executor``.
    slots
        Tasks that can run at once (worker processes or Dask threads).
    description
        For the progress line (``"process pool, 2 workers"``).
    restartable
        Whether :meth:`restart` can replace a broken pool.
    """

    executor: Executor
    slots: int
    description: str
    restartable: bool = False
    _factory: Any = field(default=None, repr=False)
    _closers: list[Any] = field(default_factory=list, repr=False)

    def restart(self) -> None:
        """Replace a broken process pool by a fresh one."""
        if self._factory is None:
            raise CampaignError("this backend cannot be restarted")
        terminate_pool(self.executor)
        self.executor = self._factory()

    def refresh_slots(self) -> int:
        """Re-read the number of slots (Dask clusters can grow and shrink)."""
        client = getattr(self.executor, "_client", None)
        if client is not None:
            try:
                n = sum(client.nthreads().values())
                if n > 0:
                    self.slots = n
            except Exception:  # noqa: BLE001 - keep the last known value
                pass
        return self.slots


def _mp_context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _process_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_mp_context(),
        initializer=task_mod.init_pool_worker,
        initargs=(os.getpid(),),
    )


def terminate_pool(executor: Executor) -> None:
    """Shut an executor down now: cancel queued tasks and stop process-pool workers."""
    # ProcessPoolExecutor keeps its worker processes in ``_processes`` (pid -> Process); a
    # plain shutdown would wait for running simulations to end.
    proc_objs = list(dict(getattr(executor, "_processes", None) or {}).values())
    try:
        executor.shutdown(wait=False, cancel_futures=True)
    except Exception:  # noqa: BLE001 - a broken pool may complain; we stop it anyway
        pass
    for p in proc_objs:
        try:
            if p.is_alive():
                p.terminate()
        except Exception:  # noqa: BLE001
            pass
    for p in proc_objs:
        try:
            p.join(timeout=5)
        except Exception:  # noqa: BLE001
            pass


def _dask_silence() -> None:
    for name in ("distributed", "distributed.worker", "distributed.nanny", "distributed.scheduler"):
        logging.getLogger(name).setLevel(logging.ERROR)


def slurm_cluster_kwargs(settings: dict[str, Any] | None) -> dict[str, Any]:
    """``SLURMCluster`` keyword arguments from a ``[slurm]`` section.

    Without a section (``None`` or empty) only the prologue is added and everything else
    comes from Dask's ``jobqueue.slurm`` configuration.  The default prologue
    (:data:`SLURM_PROLOGUE`) is appended to Dask's configured prologue unless the section sets
    ``job_script_prologue`` itself.
    """
    import dask.config

    kw = {k: v for k, v in (settings or {}).items() if k not in SLURM_OWN_KEYS}
    for old, new in (("env_extra", "job_script_prologue"), ("job_extra", "job_extra_directives")):
        if old in kw:
            kw[new] = kw.pop(old)
    if "job_script_prologue" not in kw:
        configured = dask.config.get("jobqueue.slurm.job-script-prologue", default=None) or []
        kw["job_script_prologue"] = [*configured, *SLURM_PROLOGUE]
    return kw


def slurm_job_script(
    settings: dict[str, Any] | None = None, scheduler_address: str | None = None
) -> str:
    """The job script that dask-jobqueue submits for one SLURM worker job.

    No cluster, scheduler or ``sbatch`` is needed: the script is rendered by
    ``dask_jobqueue.slurm.SLURMJob`` with the campaign's ``[slurm]`` settings (or Dask's
    ``jobqueue.slurm`` configuration).

    Parameters
    ----------
    settings
        The ``[slurm]`` section (``queue``, ``account``, ``cores``, ``memory``, ``processes``,
        ``walltime``, ``job_extra_directives``, ``job_script_prologue``, ...).
    scheduler_address
        Address written into the worker command (default: a placeholder).

    Raises
    ------
    CampaignError
        When dask-jobqueue is missing or the settings are incomplete or invalid.
    """
    try:
        from dask_jobqueue.slurm import SLURMJob
    except ImportError:
        raise CampaignError(
            "the SLURM backend needs dask-jobqueue: pip install 'seilab[cluster]'"
        ) from None
    kw = slurm_cluster_kwargs(settings)
    try:
        job = SLURMJob(scheduler=scheduler_address or _PLACEHOLDER_SCHEDULER, name="seilab", **kw)
        return job.job_script()
    except (ValueError, TypeError) as exc:
        raise CampaignError(
            f"[slurm] settings: {exc} (give at least cores and memory, in the campaign config's "
            "[slurm] section or in Dask's jobqueue.slurm configuration)"
        ) from None


@contextmanager
def open_executor(
    backend: str,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    slurm: dict[str, Any] | None = None,
) -> Iterator[ExecutorHandle]:
    """Open the executor of a backend; close it (and any cluster it started) on exit.

    Parameters
    ----------
    backend
        ``process``, ``dask`` or ``slurm``.
    workers
        Processes of the process pool / local Dask cluster (default ``os.cpu_count()``).
    scheduler
        Address of an existing Dask scheduler.
    slurm
        ``[slurm]`` settings.
    """
    n = int(workers) if workers else default_workers()
    if backend == "process":

        def factory() -> ProcessPoolExecutor:
            return _process_pool(n)

        handle = ExecutorHandle(
            factory(), n, f"process pool, {n} worker{'s' * (n != 1)}", True, factory
        )
        try:
            yield handle
        except BaseException:
            terminate_pool(handle.executor)
            raise
        if _broken(handle.executor):
            terminate_pool(handle.executor)
        else:
            handle.executor.shutdown(wait=True, cancel_futures=True)
        return
    if backend in ("dask", "slurm"):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise CampaignError(
                "the dask backend needs the 'cluster' extra: pip install 'seilab[cluster]'"
            ) from None
        _dask_silence()
        closers: list[Any] = []
        cluster = None
        try:
            if backend == "dask" and scheduler:
                try:
                    client = Client(scheduler, timeout="30s")
                except OSError as exc:
                    raise CampaignError(
                        f"--scheduler {scheduler}: cannot connect ({exc})"
                    ) from None
                desc = f"dask scheduler {scheduler}"
            elif backend == "dask":
                cluster = LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
                closers.append(cluster)
                client = Client(cluster)
                desc = f"dask LocalCluster, {n} worker{'s' * (n != 1)}"
            else:
                try:
                    from dask_jobqueue import SLURMCluster
                except ImportError:
                    raise CampaignError(
                        "the SLURM backend needs dask-jobqueue: pip install 'seilab[cluster]'"
                    ) from None
                s = dict(slurm or {})
                try:
                    cluster = SLURMCluster(**slurm_cluster_kwargs(s))
                except (ValueError, TypeError) as exc:
                    raise CampaignError(f"[slurm] settings: {exc}") from None
                closers.append(cluster)
                if "maximum_jobs" in s or "minimum_jobs" in s:
                    cluster.adapt(
                        minimum_jobs=int(s.get("minimum_jobs", 0)),
                        maximum_jobs=int(s.get("maximum_jobs", s.get("minimum_jobs", 1))),
                    )
                    desc = (
                        f"SLURM, adaptive {s.get('minimum_jobs', 0)}-{s.get('maximum_jobs')} jobs"
                    )
                else:
                    cluster.scale(jobs=int(s.get("jobs", 1)))
                    desc = f"SLURM, {int(s.get('jobs', 1))} job(s)"
                client = Client(cluster)
            closers.insert(0, client)
            slots = sum(client.nthreads().values()) or n
            handle = ExecutorHandle(client.get_executor(pure=False), slots, desc, False)
            yield handle
        finally:
            for c in closers:
                try:
                    c.close()
                except Exception:  # noqa: BLE001 - closing best effort
                    pass
        return
    raise CampaignError(f"--backend {backend!r}: unknown backend (allowed: process, dask, slurm)")


def _broken(executor: Executor) -> bool:
    return bool(getattr(executor, "_broken", False))
