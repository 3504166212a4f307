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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seilab import io, schema
from seilab.campaign import design as D
from seilab.campaign import store
from seilab.campaign.config import (
    CampaignConfig,
    dump_toml,
    identity_diff,
    utc_now,
    versions,
)
from seilab.campaign.task import RunTask, format_error, process_alive, run_one
from seilab.errors import CampaignError, SeilabError
from seilab.io import sigterm_as_interrupt

#: A run whose worker process dies this many times (pool broken while it was in flight) is
#: recorded as failed instead of being retried again.
MAX_WORKER_DEATHS = 3
#: Minimum seconds between two manifest writes while a campaign runs (always written at the end).
MANIFEST_INTERVAL_S = 2.0


@dataclass
class PlannedRun:
    """A run of the plan: its spec, the overrides it runs with, its resolved parameters.

    Attributes
    ----------
    spec
        Id, design set, index, replicate, seed, own parameters.
    overrides
        Every override applied to the base model (campaign-wide first, then the run's own).
    pairs
        Resolved pair energies (eV) by pair name.
    params
        Resolved values of the varied non-pair model keys.
    error
        Why the parameters are invalid (the run is recorded as failed without running).
    """

    spec: D.RunSpec
    overrides: dict[str, Any]
    pairs: dict[str, float | None]
    params: dict[str, Any]
    error: str | None = None


@dataclass
class CampaignPlan:
    """A validated campaign: configuration, base model and the list of runs."""

    config: CampaignConfig
    base_model: Any
    pairs: list[str]
    varied_pairs: list[str] | None
    param_keys: list[str]
    campaign_overrides: dict[str, Any]
    set_overrides: dict[str, Any]
    cycles: int
    box: list[int]
    model_sha256: str
    runs: list[PlannedRun]
    param_sets: list[dict[str, Any]] | None = None

    @property
    def identity(self) -> dict[str, Any]:
        """What must match when a folder is resumed (see :mod:`seilab.campaign.config`)."""
        c = self.config
        return {
            "design": c.design,
            "seed": int(c.seed),
            "replicates": int(c.replicates),
            "n": None if c.n is None else int(c.n),
            "pairs": self.varied_pairs,
            "param_sets_sha256": D.sets_sha256(self.param_sets) if self.param_sets else None,
            "n_runs": len(self.runs),
            "model_sha256": self.model_sha256,
            "cycles": self.cycles,
            "box": self.box,
            "set": self.set_overrides or None,
        }

    def config_document(self) -> dict[str, Any]:
        """Content of ``campaign.toml``."""
        c = self.config
        ident = self.identity
        return {
            "campaign": {
                "design": c.design,
                "seed": ident["seed"],
                "replicates": ident["replicates"],
                "n": ident["n"],
                "pairs": ident["pairs"],
                "file": None if c.file is None else str(Path(c.file).resolve()),
                "param_sets_file": store.PARAM_SETS_FILE if self.param_sets else None,
                "param_sets_sha256": ident["param_sets_sha256"],
                "n_runs": ident["n_runs"],
                "seed_scheme": D.SEED_SCHEME,
            },
            "simulator": {
                "model": str(c.model),
                "model_sha256": self.model_sha256,
                "cycles": self.cycles,
                "box": self.box,
                "set": self.set_overrides or None,
            },
            "execution": {
                "backend": c.backend,
                "workers": c.workers,
                "scheduler": c.scheduler,
            },
            "slurm": dict(c.slurm) or None,
            "versions": versions(),
            "created": {"utc": utc_now()},
        }


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


# ------------------------------------------------------------------------------ planning
def _lookup(data: Any, key: str) -> Any:
    """Value of a dotted model key in ``Model.to_dict()`` (reactions addressed by name)."""
    node = data
    for part in key.split("."):
        if isinstance(node, list):
            match = [r for r in node if isinstance(r, dict) and r.get("name") == part]
            if not match:
                return None
            node = match[0]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def _canonical_params(
    params: Mapping[str, Any], pairs: Sequence[str], where: str
) -> tuple[dict[str, Any], str | None]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        ck = D.canonical_key(k, pairs)
        if ck in out:
            return out, f"{where}: parameter {ck!r} is given twice"
        out[ck] = v
    return out, None


def plan_campaign(config: CampaignConfig) -> CampaignPlan:
    """Validate a configuration and expand its design into runs (writes nothing).

    Raises
    ------
    CampaignError, ModelError
        Invalid design arguments, options or campaign-wide model overrides.
    """
    from seilab.model import load_model

    config.check()
    D.check_design_args(
        config.design,
        n=config.n,
        pairs=config.pairs,
        file=config.file,
        replicates=config.replicates,
        seed=config.seed,
        has_sets=config.param_sets is not None,
    )
    base = load_model(config.model)
    pairs = list(base.pair_energies())
    set_over: dict[str, Any] = {}
    for k, v in (config.set or {}).items():
        set_over[D.override_key(D.canonical_key(k, pairs), pairs)] = v
    camp_over = dict(set_over)
    if config.box is not None:
        camp_over["lattice.box"] = [int(v) for v in config.box]
    if config.cycles is not None:
        camp_over["protocol.cycles"] = int(config.cycles)
    camp_model = base.with_overrides(camp_over) if camp_over else base
    spec = camp_model.spec
    varied = None
    if config.design in ("oat", "random", "sobol", "paper"):
        varied = D.resolve_pairs(config.pairs, pairs)
    param_sets: list[dict[str, Any]] | None = None
    if config.design in ("file", "sets"):
        if config.param_sets is not None:
            param_sets = D.normalise_sets(config.param_sets, source="parameter sets")
        else:
            param_sets = D.read_param_file(str(config.file))
        if not param_sets:
            raise CampaignError("the design has no parameter sets")
    groups = D.design_sets(
        config.design,
        pairs=varied or pairs,
        n=config.n,
        campaign_seed=int(config.seed),
        param_sets=param_sets,
    )
    specs = D.expand(groups, replicates=int(config.replicates), campaign_seed=int(config.seed))
    base_pairs = camp_model.pair_energies()
    runs: list[PlannedRun] = []
    param_keys: list[str] = []
    seen_keys: set[str] = set()
    cache: dict[str, tuple[dict, dict, str | None]] = {}
    for s in specs:
        where = f"{s.design_set} set {s.index}"
        params, err = _canonical_params(s.params, pairs, where)
        own = {D.override_key(k, pairs): v for k, v in params.items()}
        full = {**camp_over, **own}
        for k in params:
            if k not in pairs and k not in seen_keys:
                seen_keys.add(k)
                param_keys.append(k)
        ckey = io.canonical_json(own)
        if ckey not in cache:
            res_pairs: dict[str, float | None] = dict(base_pairs)
            res_params: dict[str, Any] = {}
            error = err
            if error is None:
                try:
                    m = base.with_overrides(full)
                    res_pairs = dict(m.pair_energies())
                    data = m.to_dict()
                    res_params = {k: _lookup(data, k) for k in params if k not in pairs}
                except SeilabError as exc:
                    error = f"invalid parameters ({where}): {exc}"
                except Exception as exc:  # noqa: BLE001 - any bad value is this run's failure
                    error = f"invalid parameters ({where}): {format_error(exc)}"
            if error is not None:
                for k, v in params.items():
                    if k in pairs:
                        ok = isinstance(v, int | float) and not isinstance(v, bool)
                        res_pairs[k] = float(v) if ok else None
                    else:
                        res_params[k] = v
            cache[ckey] = (res_pairs, res_params, error)
        res_pairs, res_params, error = cache[ckey]
        runs.append(PlannedRun(s, full, dict(res_pairs), dict(res_params), error))
    return CampaignPlan(
        config=config,
        base_model=base,
        pairs=pairs,
        varied_pairs=varied,
        param_keys=param_keys,
        campaign_overrides=camp_over,
        set_overrides=set_over,
        cycles=int(spec.protocol.cycles),
        box=[int(v) for v in spec.lattice.box],
        model_sha256=camp_model.sha256,
        runs=runs,
        param_sets=param_sets,
    )


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
        todo = [
            r for r in plan.runs if states[r.spec.run_id]["status"] != "done" and r.error is None
        ]
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


# ------------------------------------------------------------------------------ Python API
def run_param_sets(
    param_sets: Sequence[Mapping[str, Any]],
    replicates: int = 1,
    out_dir: str | Path | None = None,
    *,
    base_model: str | Path = "paper",
    cycles: int | None = None,
    box: Sequence[int] | None = None,
    overrides: Mapping[str, Any] | None = None,
    backend: str = "process",
    workers: int | None = None,
    seed: int = 0,
    scheduler: str | None = None,
    progress: bool = False,
) -> Any:
    """Simulate parameter sets (``replicates`` seeds each) as a resumable campaign folder.

    Parameters
    ----------
    param_sets
        One dict per set, keyed by pair name (``"SFO-Li"``) or model key
        (``"protocol.event_budget"``).
    replicates
        Seeds per set.
    out_dir
        Campaign folder (re-running with the same arguments resumes it; other arguments on an
        existing folder are refused).
    base_model
        Bundled model name or TOML path.
    cycles, box, overrides
        Campaign-wide simulator options (``overrides`` = ``--set``).
    backend, workers, scheduler
        Execution backend (``process``, ``dask``, ``slurm``).
    seed
        Campaign seed (run seeds derive from it, see :mod:`seilab.campaign.design`).
    progress
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per run: ``spec`` (index into ``param_sets``), ``replicate``, ``run_id``, the
        parameters as given, ``seed``, ``status``, ``ce_mean_pct`` (mean of ``ce_pct`` over the
        run's cycles, NaN-skipping; NaN for failed runs), ``n_cycles``, ``end_reason``,
        ``wall_s``, ``error``.
    """
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    if out_dir is None:
        raise CampaignError("run_param_sets needs out_dir (the campaign folder)")
    sets = D.normalise_sets(list(param_sets), source="param_sets")
    if not sets:
        raise CampaignError("run_param_sets: param_sets is empty")
    cfg = CampaignConfig(
        design="sets",
        param_sets=sets,
        replicates=int(replicates),
        seed=int(seed),
        model=str(base_model),
        cycles=cycles,
        box=None if box is None else tuple(int(v) for v in box),
        set=dict(overrides or {}),
        backend=backend,
        workers=workers,
        scheduler=scheduler,
    )
    result = run_campaign(cfg, out_dir, progress=progress)
    man = store.read_manifest(result.folder)
    rows = []
    keys: list[str] = []
    for s in sets:
        keys += [k for k in s if k not in keys]
    for r in man.itertuples(index=False):
        rec = r._asdict()
        spec = int(rec["design_index"])
        ce = float("nan")
        path = store.run_path(result.folder, rec["run_id"])
        if rec["status"] == "done" and path.is_file():
            col = pq.read_table(path, columns=[schema.TARGET]).column(0)
            vals = np.asarray(col.to_numpy(zero_copy_only=False), dtype=float)
            ce = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
        row = {"spec": spec, "replicate": int(rec["replicate"]), "run_id": rec["run_id"]}
        row.update({k: sets[spec].get(k) for k in keys})
        row.update(
            seed=int(rec["seed"]),
            status=rec["status"],
            ce_mean_pct=ce,
            n_cycles=rec["n_cycles"],
            end_reason=rec["end_reason"],
            wall_s=rec["wall_s"],
            error=rec["error"],
        )
        rows.append(row)
    return pd.DataFrame(rows)


def plan_summary(plan: CampaignPlan, limit: int = 5) -> list[str]:
    """Lines describing a plan (``seilab campaign run --dry-run``)."""
    by_set = Counter(r.spec.design_set for r in plan.runs)
    lines = [
        f"design {plan.config.design}: {len(plan.runs)} runs ("
        + ", ".join(f"{k} {v}" for k, v in by_set.items())
        + f"), {plan.config.replicates} replicate(s), campaign seed {plan.config.seed}",
        f"model {plan.config.model}: {plan.cycles} cycles, box {plan.box}"
        + (f", --set {plan.set_overrides}" if plan.set_overrides else ""),
    ]
    bad = [r for r in plan.runs if r.error]
    if bad:
        lines.append(f"{len(bad)} run(s) have invalid parameters, e.g. {bad[0].error}")
    for r in plan.runs[:limit]:
        lines.append(f"  {r.spec.run_id}  seed {r.spec.seed}  {r.spec.params}")
    if len(plan.runs) > limit:
        lines.append(f"  ... ({len(plan.runs) - limit} more)")
    return lines


__all__ = [
    "CampaignPlan",
    "CampaignResult",
    "PlannedRun",
    "folder_lock",
    "plan_campaign",
    "plan_summary",
    "run_campaign",
    "run_param_sets",
]
