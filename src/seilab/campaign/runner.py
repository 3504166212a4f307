"""Running a campaign: plan, lock, resume, execute, keep the manifest.

The parent process plans the runs (design, seeds, validated parameters), takes the folder lock,
checks a resumed folder's configuration, and hands one :class:`~seilab.campaign.task.RunTask`
per unfinished run to the executor.  Workers write their own run files (temporary name, then
rename); only the parent writes ``manifest.parquet`` (temporary file, then ``os.replace``).  A
killed campaign therefore loses at most the runs in flight, and a re-run skips every run whose
file exists and is readable.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seilab import io, schema
from seilab.campaign import store
from seilab.campaign.config import (
    CampaignConfig,
    dump_toml,
    identity_diff,
    utc_now,
)

#: A run whose worker process dies this many times (pool broken while it was in flight) is
#: recorded as failed instead of being retried again.
from seilab.campaign.plan import CampaignPlan, PlannedRun, plan_campaign, plan_summary
from seilab.campaign.task import RunTask, format_error, process_alive, run_one
from seilab.errors import CampaignError
from seilab.io import sigterm_as_interrupt

MAX_WORKER_DEATHS = 3
#: Minimum seconds between two manifest writes while a campaign runs (always written at the end).
MANIFEST_INTERVAL_S = 2.0


@dataclass
class CampaignResult:
    """Outcome of :func:`run_campaign`.

    Attributes
    ----------
    folder
        The campaign folder.
    n_runs
        Runs in the design.
    counts
        Runs by status at the end (``done``, ``failed``, ``pending``).
    skipped
        Runs already finished when the command started.
    ran
        Runs attempted in this session.
    wall_s
        Wall time of this session.
    failures
        ``[(run_id, error), ...]``.
    backend
        Description of the executor.
    """

    folder: Path
    n_runs: int
    counts: dict[str, int]
    skipped: int
    ran: int
    wall_s: float
    failures: list[tuple[str, str]] = field(default_factory=list)
    backend: str = ""

    @property
    def n_failed(self) -> int:
        """Number of failed runs."""
        return int(self.counts.get("failed", 0))


# ------------------------------------------------------------------------------ folder
def folder_lock(
    folder: Path, *, what: str = "campaign folder", error: type[Exception] = CampaignError
):
    """:func:`seilab.io.folder_lock` with the campaign's wording and error."""
    return io.folder_lock(folder, what=what, error=error)


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise CampaignError(f"--out {out}: exists and is not a folder")
    if out.is_dir():
        entries = {p.name for p in out.iterdir()}
        ours = {
            schema.CAMPAIGN_CONFIG,
            schema.MANIFEST,
            schema.RUNS_DIR,
            store.LOCK_FILE,
            store.PARAM_SETS_FILE,
            store.QUARANTINE_DIR,
        }
        if entries and schema.CAMPAIGN_CONFIG not in entries and not entries <= ours:
            raise CampaignError(
                f"--out {out}: the folder is not empty and holds no {schema.CAMPAIGN_CONFIG}; "
                "give a new or empty folder"
            )


def _old_identity(doc: Mapping[str, Any]) -> dict[str, Any]:
    c, s = doc.get("campaign", {}), doc.get("simulator", {})
    return {
        "design": c.get("design"),
        "seed": c.get("seed"),
        "replicates": c.get("replicates"),
        "n": c.get("n"),
        "pairs": c.get("pairs"),
        "param_sets_sha256": c.get("param_sets_sha256"),
        "n_runs": c.get("n_runs"),
        "model_sha256": s.get("model_sha256"),
        "cycles": s.get("cycles"),
        "box": s.get("box"),
        "set": s.get("set"),
    }


def _prepare_config(plan: CampaignPlan, out: Path) -> bool:
    """Write ``campaign.toml`` for a new folder, or check a resumed one. True when resumed."""
    import tomllib

    cfg_path = out / schema.CAMPAIGN_CONFIG
    if cfg_path.is_file():
        try:
            doc = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise CampaignError(f"{cfg_path}: malformed ({exc}); not a seilab campaign") from None
        diff = identity_diff(_old_identity(doc), plan.identity)
        if diff:
            raise CampaignError(
                f"campaign folder {out} holds a different campaign ({'; '.join(diff)}); "
                f"re-run with the options in {cfg_path} (or `seilab campaign resume {out}`), "
                "or give another --out folder"
            )
        return True
    if plan.param_sets is not None:
        store.atomic_write_text(
            json.dumps(plan.param_sets, indent=1) + "\n", out / store.PARAM_SETS_FILE
        )
    header = (
        "Campaign configuration written by `seilab campaign run` (see docs/campaigns.md).\n"
        "[campaign] and [simulator] identify the campaign; a resumed run must match them."
    )
    store.atomic_write_text(dump_toml(plan.config_document(), header), cfg_path)
    return False


def _clean_temp_files(runs_dir: Path) -> None:
    """Remove temporary run files left by dead writers (``.<name>.tmp-<pid>``)."""
    if not runs_dir.is_dir():
        return
    for p in runs_dir.glob(".*.tmp-*"):
        try:
            pid = int(p.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if pid != os.getpid() and not process_alive(pid):
            p.unlink(missing_ok=True)


def _quarantine(out: Path, path: Path) -> None:
    qdir = out / store.QUARANTINE_DIR
    qdir.mkdir(exist_ok=True)
    os.replace(path, qdir / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}")


def _base_record(run: PlannedRun) -> dict[str, Any]:
    s = run.spec
    rec: dict[str, Any] = {
        "run_id": s.run_id,
        "design_set": s.design_set,
        "seed": int(s.seed),
        "status": "pending",
        "wall_s": None,
        "n_cycles": None,
        "end_reason": None,
        "error": None,
        "seilab_version": None,
        "model_sha256": None,
        "design_index": int(s.index),
        "replicate": int(s.replicate),
    }
    for p, v in run.pairs.items():
        rec[schema.pair_column(p)] = v
    for k, v in run.params.items():
        rec[f"{store.PARAM_PREFIX}{k}"] = v
    return rec


_RESULT_FIELDS = (
    "status",
    "wall_s",
    "n_cycles",
    "end_reason",
    "error",
    "seilab_version",
    "model_sha256",
)


def _initial_states(plan: CampaignPlan, out: Path) -> tuple[dict[str, dict[str, Any]], dict]:
    """Manifest records at start: finished runs from their files, the rest pending/failed."""
    old: dict[str, dict[str, Any]] = {}
    meta: dict[str, Any] = {}
    if (out / schema.MANIFEST).is_file():
        try:
            import pyarrow.parquet as pq

            for row in pq.read_table(out / schema.MANIFEST).to_pylist():
                old[str(row.get("run_id"))] = row
            meta = store.read_manifest_metadata(out)
        except Exception:  # noqa: BLE001 - a manifest is rebuilt from the run files
            old, meta = {}, {}
    _clean_temp_files(out / schema.RUNS_DIR)
    states: dict[str, dict[str, Any]] = {}
    for run in plan.runs:
        rec = _base_record(run)
        path = store.run_path(out, run.spec.run_id)
        if path.exists():
            try:
                fr = store.record_from_run_file(path)
                if fr.get("seed") is not None and int(fr["seed"]) != int(run.spec.seed):
                    raise ValueError("seed mismatch")
                prev = old.get(run.spec.run_id)
                src = prev if prev and prev.get("status") == "done" else fr
                rec.update({k: src.get(k) for k in _RESULT_FIELDS})
                rec["status"], rec["error"] = "done", None
            except Exception:  # noqa: BLE001 - unreadable: move aside, run again
                _quarantine(out, path)
        elif run.error is not None:
            rec.update(status="failed", error=run.error)
        states[run.spec.run_id] = rec
    return states, meta


class _ManifestWriter:
    """Writes the manifest from the run records (throttled while running, always at the end)."""

    def __init__(self, out: Path, plan: CampaignPlan, states: dict, meta: dict, session: dict):
        self.out = out
        self.plan = plan
        self.states = states
        self.sessions = list(meta.get("sessions", []))
        self.session = session
        self.t0 = time.perf_counter()
        self.last = 0.0
        types = {}
        for k in plan.param_keys:
            valid = [r.params.get(k) for r in plan.runs if r.error is None]
            types[k] = store.infer_param_type(valid or [r.params.get(k) for r in plan.runs])
        self.types = types
        self.schema = store.manifest_schema(plan.pairs, types)

    def records(self) -> list[dict[str, Any]]:
        out = []
        for r in self.states.values():
            rec = dict(r)
            for k, t in self.types.items():
                col = f"{store.PARAM_PREFIX}{k}"
                rec[col] = store.coerce_param(rec.get(col), t)
            out.append(rec)
        return out

    def write(self, force: bool = True) -> None:
        now = time.perf_counter()
        if not force and now - self.last < MANIFEST_INTERVAL_S:
            return
        c = Counter(r["status"] for r in self.states.values())
        self.session.update(
            ended_utc=utc_now(),
            wall_s=round(now - self.t0, 3),
            done=c.get("done", 0),
            failed=c.get("failed", 0),
            pending=c.get("pending", 0),
        )
        meta = {"sessions": [*self.sessions, self.session], "n_runs": len(self.states)}
        store.write_manifest(self.out, self.records(), self.schema, meta)
        self.last = time.perf_counter()


class _Progress:
    """Rich progress bar with done, failed and ETA (or nothing when disabled)."""

    def __init__(self, enabled: bool, total: int, done: int, failed: int, label: str):
        self.bar = None
        self.failed = failed
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("done, [red]{task.fields[failed]} failed"),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            speed_estimate_period=600,
        )
        self.task = self.bar.add_task(label, total=total, completed=done, failed=failed)
        self.bar.start()

    def advance(self, failed: bool) -> None:
        if failed:
            self.failed += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1, failed=self.failed)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _task_for(plan: CampaignPlan, out: Path, run: PlannedRun) -> RunTask:
    return RunTask(
        run_id=run.spec.run_id,
        path=str(store.run_path(out, run.spec.run_id).resolve()),
        seed=int(run.spec.seed),
        model=plan.base_model,
        overrides=dict(run.overrides),
    )


def _likely_longest_first(todo: list[PlannedRun]) -> list[PlannedRun]:
    """The runs in submission order: those that vary more parameters first (stable).

    A pool finishes when its last run does, so a long run submitted last leaves the other
    workers idle.  Which runs are long is not known in advance, but the far corners of a
    design are where it is likeliest: in the paper design every run that reached the step
    budget (33 of 380, 5 s each against a median 0.24 s) was a random set, which varies all
    19 pairs, and none an OAT set, which varies one; the idle tail was 2.6-4.4 s per campaign.
    Only the submission order changes: each run's result depends on its seed alone.
    """
    return sorted(todo, key=lambda r: -len(r.spec.params))


def _execute(
    plan: CampaignPlan,
    out: Path,
    todo: list[PlannedRun],
    states: dict[str, dict[str, Any]],
    writer: _ManifestWriter,
    handle: Any,
    progress: _Progress,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    queue: deque[PlannedRun] = deque(todo)
    inflight: dict[Future, PlannedRun] = {}
    deaths: Counter[str] = Counter()
    broken = False
    last_slots = time.perf_counter()

    def record(run: PlannedRun, rec: Mapping[str, Any]) -> None:
        st = states[run.spec.run_id]
        st.update({k: rec.get(k) for k in _RESULT_FIELDS})
        progress.advance(st["status"] == "failed")
        if on_result is not None:
            on_result(st)

    while queue or inflight:
        window = max(2 * handle.slots, 2)
        while queue and not broken and len(inflight) < window:
            run = queue.popleft()
            try:
                fut = handle.executor.submit(run_one, _task_for(plan, out, run))
            except BrokenProcessPool:
                queue.appendleft(run)
                broken = True
                break
            inflight[fut] = run
        if inflight:
            done, _ = wait(list(inflight), timeout=0.5, return_when=FIRST_COMPLETED)
        else:
            done = set()
        for fut in done:
            run = inflight.pop(fut)
            rid = run.spec.run_id
            try:
                rec = fut.result()
            except (BrokenProcessPool, CancelledError) as exc:
                broken = broken or isinstance(exc, BrokenProcessPool)
                path = store.run_path(out, rid)
                if path.is_file():
                    try:
                        record(run, store.record_from_run_file(path))
                        continue
                    except Exception:  # noqa: BLE001
                        _quarantine(out, path)
                if isinstance(exc, CancelledError):
                    queue.appendleft(run)
                    continue
                deaths[rid] += 1
                if deaths[rid] >= MAX_WORKER_DEATHS:
                    record(
                        run,
                        {
                            "status": "failed",
                            "error": f"the worker process died while running this run "
                            f"{deaths[rid]} times (killed, or out of memory)",
                        },
                    )
                else:
                    queue.appendleft(run)
                continue
            except Exception as exc:  # noqa: BLE001 - e.g. dask KilledWorker: record, go on
                rec = {"status": "failed", "error": format_error(exc)}
            record(run, rec)
        if broken and not inflight:
            handle.restart()
            broken = False
        if time.perf_counter() - last_slots > 10:
            handle.refresh_slots()
            last_slots = time.perf_counter()
        writer.write(force=False)


def run_campaign(
    config: CampaignConfig,
    out: str | Path,
    *,
    progress: bool | None = None,
    on_start: Callable[[CampaignPlan, int, str, int], None] | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> CampaignResult:
    """Run (or resume) a campaign into a folder.

    Parameters
    ----------
    config
        The campaign's options.
    out
        Campaign folder; created if missing.  An existing campaign folder is resumed (its
        configuration must match), finished runs are skipped, failed and pending runs are run.
    progress
        Show a progress bar on stderr (default: when stderr is a terminal).
    on_start
        Called as ``on_start(plan, n_todo, backend_description, n_already_done)`` before the
        first run.
    on_result
        Called with each finished run's manifest record (in the parent).

    Returns
    -------
    CampaignResult

    Raises
    ------
    CampaignError, ModelError
        Invalid options (nothing is written), a folder in use, or a different campaign in the
        folder.
    KeyboardInterrupt
        On SIGINT/SIGTERM, after the manifest has been written (runs in flight stay pending).
    """
    from seilab.campaign.backends import open_executor

    t0 = time.perf_counter()
    plan = plan_campaign(config)
    out = Path(out)
    _check_target(out)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        _prepare_config(plan, out)
        (out / schema.RUNS_DIR).mkdir(exist_ok=True)
        states, meta = _initial_states(plan, out)
        skipped = sum(1 for s in states.values() if s["status"] == "done")
        todo = _likely_longest_first(
            [r for r in plan.runs if states[r.spec.run_id]["status"] != "done" and r.error is None]
        )
        session: dict[str, Any] = {
            "started_utc": utc_now(),
            "backend": config.backend,
            "pid": os.getpid(),
            "todo": len(todo),
        }
        writer = _ManifestWriter(out, plan, states, meta, session)
        writer.write()
        if progress is None:
            progress = sys.stderr.isatty()
        failed0 = sum(1 for s in states.values() if s["status"] == "failed")
        desc = "nothing to run"
        bar = _Progress(False, 0, 0, failed0, "")
        try:
            with sigterm_as_interrupt():
                if todo:
                    with open_executor(
                        config.backend,
                        workers=config.workers,
                        scheduler=config.scheduler,
                        slurm=config.slurm,
                    ) as handle:
                        desc = handle.description
                        session["executor"] = desc
                        if on_start is not None:
                            on_start(plan, len(todo), desc, skipped)
                        bar = _Progress(
                            bool(progress),
                            len(plan.runs),
                            len(plan.runs) - len(todo),
                            failed0,
                            "campaign",
                        )
                        _execute(plan, out, todo, states, writer, handle, bar, on_result)
                elif on_start is not None:
                    on_start(plan, 0, desc, skipped)
        except KeyboardInterrupt:
            session["interrupted"] = True
            raise
        finally:
            bar.close()
            writer.write()
            _clean_temp_files(out / schema.RUNS_DIR)
    counts = Counter({"done": 0, "failed": 0, "pending": 0})
    counts.update(s["status"] for s in states.values())
    failures = [
        (rid, str(s.get("error") or "")) for rid, s in states.items() if s["status"] == "failed"
    ]
    return CampaignResult(
        folder=out,
        n_runs=len(plan.runs),
        counts=dict(counts),
        skipped=skipped,
        ran=len(todo),
        wall_s=time.perf_counter() - t0,
        failures=failures,
        backend=desc,
    )


__all__ = [
    "CampaignPlan",
    "CampaignResult",
    "PlannedRun",
    "folder_lock",
    "plan_campaign",
    "plan_summary",
    "run_campaign",
]
