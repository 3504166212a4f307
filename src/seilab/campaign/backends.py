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
    keys: ``jobs`` (number of jobs, default 1; a job that ends early -- cancelled, node failure,
    ``lifetime`` reached -- is replaced), or ``minimum_jobs``/``maximum_jobs`` (adaptive
    scaling), and ``lifetime``/``lifetime_stagger`` (workers retire after that time, before
    their walltime; the runs they had are run elsewhere).  Workers start with the campaign's
    Python (``sys.executable``) and its ``PYTHONPATH`` and ``NUMBA_*`` settings, so they import
    the same seilab.  :func:`slurm_job_script` returns the job script without a cluster.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shlex
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from seilab.campaign import task as task_mod
from seilab.errors import CampaignError

#: Lines added to every SLURM job script (before the worker starts), unless the settings give
#: their own ``job_script_prologue``.
#: (Numba's cache folder is chosen by the worker itself, local when the installation lies on a
#: network file system: :func:`seilab.campaign.task.local_numba_cache_dir`.)
SLURM_PROLOGUE: tuple[str, ...] = (
    "export NUMBA_NUM_THREADS=1",
    "export OMP_NUM_THREADS=1",
)
#: Keys of the ``[slurm]`` section that seilab handles itself (not SLURMCluster arguments).
SLURM_OWN_KEYS: frozenset[str] = frozenset(
    {"jobs", "minimum_jobs", "maximum_jobs", "lifetime", "lifetime_stagger"}
)
#: Seconds between two checks for SLURM jobs that ended early (one ``squeue`` call each).
SLURM_WATCH_S = 5.0
#: Seconds a job of the campaign may stay pending before the user is told why (once per job).
SLURM_PENDING_WARN_S = 120.0
#: Environment variables of the campaign process exported in the job script (when set), so that
#: workers import the same seilab with the same Numba settings even where ``sbatch`` does not
#: pass the environment on (``SBATCH_EXPORT=NONE``).
SLURM_PASSED_ENV: tuple[str, ...] = ("PYTHONPATH",)
SLURM_PASSED_ENV_PREFIXES: tuple[str, ...] = ("NUMBA_",)
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

    s = dict(settings or {})
    kw = {k: v for k, v in s.items() if k not in SLURM_OWN_KEYS}
    for old, new in (
        ("env_extra", "job_script_prologue"),
        ("job_extra", "job_extra_directives"),
        ("extra", "worker_extra_args"),
    ):
        if old in kw:
            kw[new] = kw.pop(old)
    if "job_script_prologue" in kw:
        prologue = list(kw["job_script_prologue"])
    else:
        configured = dask.config.get("jobqueue.slurm.job-script-prologue", default=None) or []
        prologue = [*configured, *SLURM_PROLOGUE]
    # the campaign's own settings first: a prologue line of the user's may still override them
    kw["job_script_prologue"] = [*_passed_env_lines(), *prologue]
    kw.setdefault("python", sys.executable)
    if s.get("lifetime") is not None:
        extra = kw.get("worker_extra_args")
        if extra is None:
            extra = dask.config.get("jobqueue.slurm.worker-extra-args", default=None) or []
        extra = [*extra, "--lifetime", _duration_arg(s["lifetime"])]
        if s.get("lifetime_stagger") is not None:
            extra += ["--lifetime-stagger", _duration_arg(s["lifetime_stagger"])]
        kw["worker_extra_args"] = extra
    return kw


def _duration_arg(value: Any) -> str:
    """A ``dask worker --lifetime`` value: seconds as numbers get an ``s``, strings pass."""
    return f"{value}s" if isinstance(value, int | float) else str(value)


def _passed_env_lines() -> list[str]:
    """``export NAME=VALUE`` lines for :data:`SLURM_PASSED_ENV` variables set here."""
    names = [
        k
        for k in sorted(os.environ)
        if k in SLURM_PASSED_ENV or k.startswith(SLURM_PASSED_ENV_PREFIXES)
    ]
    # thread counts are fixed by SLURM_PROLOGUE; a cache folder is chosen per node
    skip = {"NUMBA_NUM_THREADS"}
    return [f"export {k}={shlex.quote(os.environ[k])}" for k in names if k not in skip]


async def _replace_ended_jobs(cluster: Any) -> list[str]:
    """Resubmit the jobs of ``cluster`` that SLURM no longer runs; return their names.

    dask-jobqueue forgets a job that ends on its own (``scancel``, node failure, walltime,
    workers retired by ``--lifetime``) only for one-process jobs, and then after
    ``distributed.deploy.lost-worker-timeout``; with ``processes > 1`` the cluster keeps
    counting the dead job and the campaign waits forever.  Here a job whose id ``squeue`` no
    longer lists (or lists as COMPLETING) is dropped and the cluster's own bookkeeping
    (``_correct_state``) submits a job in its place, if its plan still wants it.
    """
    import asyncio

    ids = {n: str(j.job_id) for n, j in list(cluster.workers.items()) if getattr(j, "job_id", 0)}
    if not ids:
        return []
    proc = await asyncio.create_subprocess_exec(
        "squeue",
        "-h",
        "-o",
        "%i %T %r",
        "-u",
        str(os.getuid()),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        return []  # scheduler busy or unreachable: decide next time
    live = set()
    pending: dict[str, str] = {}
    for line in out.decode().splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[1] != "COMPLETING":
            live.add(parts[0])
            if parts[1] == "PENDING":
                pending[parts[0]] = parts[2] if len(parts) == 3 else "?"
    _warn_long_pending(cluster, {i: r for i, r in pending.items() if i in ids.values()})
    ended = [n for n, i in ids.items() if i not in live and n in cluster.worker_spec]
    if not ended:
        return []
    async with cluster._lock:
        for name in ended:
            job = cluster.workers.get(name)
            if job is None or str(getattr(job, "job_id", "")) != ids[name]:
                continue  # replaced meanwhile
            del cluster.workers[name]
            try:
                await job.close()
            except Exception:  # noqa: BLE001 - the job is gone already
                pass
    await cluster._correct_state()
    logging.getLogger("seilab.campaign").info("resubmitted ended SLURM job(s) %s", ended)
    return ended


def _warn_long_pending(cluster: Any, pending: dict[str, str], now: float | None = None) -> None:
    """Tell the user, once per job, that a job of the campaign waits in the queue, and why.

    A campaign whose jobs never start (a drained node, a partition or walltime the cluster
    refuses) would otherwise wait silently; ``pending`` maps job ids to SLURM's reason.
    """
    now = time.monotonic() if now is None else now
    since: dict[str, float] = cluster.__dict__.setdefault("_seilab_pending_since", {})
    warned: set[str] = cluster.__dict__.setdefault("_seilab_pending_warned", set())
    for job_id in list(since):
        if job_id not in pending:
            del since[job_id]
    for job_id, reason in pending.items():
        t0 = since.setdefault(job_id, now)
        if now - t0 >= SLURM_PENDING_WARN_S and job_id not in warned:
            warned.add(job_id)
            logging.getLogger("seilab.campaign").warning(
                "SLURM job %s has been pending for %.0f s (reason: %s); the campaign waits "
                "for it (see `squeue -j %s`, `sinfo -R`)",
                job_id,
                now - t0,
                reason,
                job_id,
            )


async def _watch_slurm_jobs(cluster: Any, interval_s: float) -> None:
    """Every ``interval_s``, replace the cluster's jobs that ended early (on its event loop)."""
    import asyncio

    from distributed.core import Status

    while True:
        await asyncio.sleep(interval_s)
        if cluster.status in (Status.closing, Status.closed, Status.failed):
            return
        try:
            await _replace_ended_jobs(cluster)
        except Exception:  # noqa: BLE001 - a failed check must not end the campaign
            logging.getLogger("seilab.campaign").debug("SLURM job check failed", exc_info=True)


def slurm_job_range(settings: dict[str, Any] | None) -> tuple[int, int]:
    """``(minimum_jobs, maximum_jobs)`` of a ``[slurm]`` section (``jobs`` gives both)."""
    s = settings or {}
    if "minimum_jobs" in s or "maximum_jobs" in s:
        lo = int(s.get("minimum_jobs", 0))
        return lo, int(s.get("maximum_jobs", max(lo, 1)))
    n = int(s.get("jobs", 1))
    return n, n


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
                lo, hi = slurm_job_range(s)
                cluster.adapt(minimum_jobs=lo, maximum_jobs=hi)
                cluster.loop.add_callback(_watch_slurm_jobs, cluster, SLURM_WATCH_S)
                desc = f"SLURM, {lo} job(s)" if lo == hi else f"SLURM, adaptive {lo}-{hi} jobs"
                if s.get("lifetime") is not None:
                    desc += f", worker lifetime {s['lifetime']}"
                client = Client(cluster)
            closers.insert(0, client)
            slots = sum(client.nthreads().values()) or n
            handle = ExecutorHandle(_client_executor(client), slots, desc, False)
            yield handle
        finally:
            for c in closers:
                try:
                    c.close()
                except Exception:  # noqa: BLE001 - closing best effort
                    pass
        return
    raise CampaignError(f"--backend {backend!r}: unknown backend (allowed: process, dask, slurm)")


async def _cascade(future: Any, cf_future: Any) -> None:
    """Pass a Dask future's outcome to a ``concurrent.futures`` future.

    Unlike ``distributed.cfexecutor``, it decides from what ``_result`` returned, not from the
    future's status read afterwards: when the worker holding a result leaves (retired by
    ``lifetime``) just after the result arrived, the status is no longer ``finished`` and the
    stock code raised ``ValueError: too many values to unpack`` for a good result.
    """
    try:
        result = await future._result(raiseit=False)
    except Exception as exc:  # noqa: BLE001 - e.g. the result could not be gathered
        result = exc
    if cf_future.done():
        return
    if isinstance(result, tuple) and len(result) == 3 and isinstance(result[1], BaseException):
        cf_future.set_exception(result[1].with_traceback(result[2]))  # the task raised
    elif isinstance(result, BaseException):
        # cancelled or lost: the campaign loop keeps a run file already written, else resubmits
        cf_future.cancel()
        cf_future.set_running_or_notify_cancel()
    else:
        cf_future.set_result(result)


def _client_executor(client: Any) -> Executor:
    """``client.get_executor(pure=False)`` with :func:`_cascade` for the outcome."""
    from distributed.cfexecutor import ClientExecutor

    class _Executor(ClientExecutor):
        def _wrap_future(self, future: Any) -> Any:
            import concurrent.futures as cf

            cf_future: cf.Future = cf.Future()

            def on_done(f: cf.Future) -> None:
                if f.cancelled() and future.status != "cancelled":
                    future.cancel()

            cf_future.add_done_callback(on_done)
            self._client.loop.add_callback(_cascade, future, cf_future)
            return cf_future

    return _Executor(client, pure=False)


def _broken(executor: Executor) -> bool:
    return bool(getattr(executor, "_broken", False))
