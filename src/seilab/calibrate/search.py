"""``seilab.calibrate.calibrate``: search the knobs of a model so that its statistics hit targets.

Each trial is one setting of the knobs.  It is simulated as a campaign (``design = "sets"``:
one parameter set, or the sets of a fidelity subset, times the spec's replicates) in its own
resumable folder ``OUT/trials/<key>/``, where ``<key>`` is a hash of the knob values, so a
repeated or resumed setting reuses its finished runs.  The statistics of the targets are
computed from the campaign's data set and the trial's loss is

    loss = 1/T sum_t ((stat_t - target_t) / tolerance_t)^2

over the T targets; an undefined statistic (NaN: for example no failing run) counts as
``(UNDEFINED_Z)^2``.  The search is Optuna (TPE, random or grid sampler with every setting
explicit) with its SQLite storage in ``OUT/optuna.db``: running the same command again
continues the study (trials interrupted in flight are run again, reusing their finished runs).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seilab.calibrate.knobs import check_against_model, knob_overrides
from seilab.calibrate.spec import (
    CalibrationError,
    CalibrationSpec,
    TargetSet,
    load_spec,
    load_targets,
)

#: z-score charged for a statistic that is undefined in a trial.
UNDEFINED_Z = 10.0
STUDY_NAME = "seilab-calibrate"
STATE_FILE = "calibration.json"


@dataclass
class CalibrationResult:
    """What :func:`calibrate` returns.

    Attributes
    ----------
    out
        Output folder.
    trials
        One row per completed trial: ``trial``, ``loss``, knob values, statistics.
    best
        The best trial's row.
    n_simulations
        Simulations in the trials' campaigns (finished runs, reused ones counted once).
    sim_wall_s
        Their summed wall time (s, in the workers).
    wall_s
        Wall time of this call.
    files
        Files written.
    """

    out: Path
    trials: Any
    best: dict[str, Any]
    n_simulations: int
    sim_wall_s: float
    wall_s: float
    files: list[Path] = field(default_factory=list)

    @property
    def best_loss(self) -> float:
        """Loss of the best trial."""
        return float(self.best["loss"])


def trial_loss(stats: dict[str, float], targets: TargetSet) -> float:
    """Mean squared z-score of the statistics against the targets (module docstring)."""
    zs = []
    for t in targets.targets:
        v = stats.get(t.name, math.nan)
        z = UNDEFINED_Z if v is None or math.isnan(v) else (v - t.value) / t.tolerance
        zs.append(z * z)
    return float(sum(zs) / len(zs))


def setting_key(values: dict[str, Any]) -> str:
    """Folder name of a knob setting: 12 hex digits of its canonical JSON."""
    from seilab.io import stable_hash

    return stable_hash(values, 12)


@dataclass
class _Context:
    spec: CalibrationSpec
    targets: TargetSet
    model: Any
    model_arg: str
    out: Path
    cycles: int
    param_sets: list[dict[str, Any]]
    subset: str | None
    backend: str
    scheduler: str | None
    workers_per_trial: int
    progress: bool


def _suggest(trial: Any, spec: CalibrationSpec) -> dict[str, Any]:
    vals: dict[str, Any] = {}
    for kn in spec.knobs:
        if kn.kind == "categorical":
            vals[kn.name] = trial.suggest_categorical(kn.name, list(kn.values))
        elif kn.kind == "int":
            vals[kn.name] = trial.suggest_int(kn.name, int(kn.low), int(kn.high), log=kn.log)
        else:
            vals[kn.name] = trial.suggest_float(kn.name, kn.low, kn.high, log=kn.log)
    return vals


def evaluate(ctx: _Context, values: dict[str, Any]) -> dict[str, Any]:
    """Simulate one knob setting (resumable campaign) and compute its statistics and loss."""
    from seilab.calibrate.statistics import TrialData, compute
    from seilab.campaign import CampaignConfig, load_dataset, run_campaign

    over, box = knob_overrides(ctx.spec, values, ctx.model)
    folder = ctx.out / "trials" / setting_key(values)
    cfg = CampaignConfig(
        design="sets",
        param_sets=[dict(s) for s in ctx.param_sets],
        replicates=ctx.spec.replicates,
        seed=ctx.spec.seed,
        model=ctx.model_arg,
        cycles=ctx.cycles,
        box=tuple(box),
        set=over,
        backend=ctx.backend,
        workers=ctx.workers_per_trial,
        scheduler=ctx.scheduler,
    )
    res = run_campaign(cfg, folder, progress=False)
    if res.n_failed:
        raise CalibrationError(
            f"trial {values}: {res.n_failed} simulation(s) failed in {folder}: "
            f"{res.failures[0][1].splitlines()[0] if res.failures else ''}"
        )
    data = load_dataset(folder)
    meta = None
    if ctx.subset is not None:
        from seilab.calibrate.fidelity import run_meta

        meta = run_meta(data, ctx.subset)
    a = float(ctx.model.spec.lattice.a_angstrom)
    td = TrialData(data, tuple(box), a, ctx.cycles, meta)
    stats = {t.name: compute(td, t.statistic, t.params) for t in ctx.targets.targets}
    runs = data.groupby("run_id")["wall_s"].first() if "wall_s" in data else None
    return {
        "folder": str(folder.relative_to(ctx.out)),
        "stats": stats,
        "loss": trial_loss(stats, ctx.targets),
        "n_runs": int(data["run_id"].nunique()),
        "run_wall_s": float(runs.sum()) if runs is not None else math.nan,
        "overrides": over,
        "box": box,
    }


def _make_sampler(spec: CalibrationSpec, n_done: int):
    import optuna

    seed = spec.sampler_seed + n_done  # a resumed study does not replay the first proposals
    if spec.sampler == "grid":
        space = {k.name: list(k.values) for k in spec.knobs}
        return _GridSampler(space, seed=spec.sampler_seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=spec.n_startup_trials,
        n_ei_candidates=spec.n_ei_candidates,
        multivariate=spec.multivariate,
        group=False,
        constant_liar=True,  # parallel trials: pending ones count as bad, no duplicates
    )


def _grid_class():
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """Optuna's grid sampler for an ask/tell loop.

        Optuna's own stops the study when the grid is used up, which only works inside
        ``study.optimize``; here the trial count ends the loop (a used-up grid repeats points,
        whose campaigns are reused).
        """

        def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001
            return None

    return GridSampler


def _GridSampler(space: dict[str, list[Any]], seed: int):  # noqa: N802 - a class factory
    return _grid_class()(space, seed=seed)


def _complete(study: Any) -> list[Any]:
    import optuna

    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def _open_study(out: Path, identity: dict[str, Any], spec: CalibrationSpec):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{(out / 'optuna.db').resolve()}"
    storage = optuna.storages.RDBStorage(url)
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    if STUDY_NAME in names:
        study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
        old = study.user_attrs.get("identity")
        if old != identity:
            raise CalibrationError(
                f"{out}: holds a calibration with another spec, targets or model "
                f"({_diff(old or {}, identity)}); give another --out"
            )
        # trials of a killed session: fail them, run their settings again (runs are reused)
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            study.enqueue_trial(dict(t.params), skip_if_exists=False)
    else:
        study = optuna.create_study(study_name=STUDY_NAME, storage=storage, direction="minimize")
        study.set_user_attr("identity", identity)
    study.sampler = _make_sampler(spec, len(_complete(study)))
    return study


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k} differs" for k in keys) or "identity differs"


@contextmanager
def _cluster(spec: CalibrationSpec, workers: int):
    """One local Dask cluster for every trial (workers stay warm), or an external scheduler."""
    if spec.backend != "dask":
        yield None
        return
    if spec.scheduler:
        yield spec.scheduler
        return
    import logging

    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # no fixed port: other clusters may hold 8787
        silence_logs=logging.ERROR,
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def prepare(
    model: str | Path | None,
    spec: str | Path | CalibrationSpec,
    targets: str | Path | TargetSet,
    *,
    cycles: int | None = None,
    workers: int | None = None,
    backend: str | None = None,
) -> tuple[CalibrationSpec, TargetSet, Any, str, int]:
    """Read and validate everything before any work (nothing is written).

    Returns
    -------
    spec, targets, model, model_arg, cycles
    """
    from seilab.errors import SeilabError
    from seilab.model import load_model

    sp = spec if isinstance(spec, CalibrationSpec) else load_spec(spec)
    tg = targets if isinstance(targets, TargetSet) else load_targets(targets)
    model_arg = str(model if model is not None else (sp.model or "paper"))
    try:
        m = load_model(model_arg)
    except SeilabError as exc:
        raise CalibrationError(str(exc)) from None
    if workers is not None:
        if int(workers) < 1:
            raise CalibrationError(f"--workers {workers}: must be an integer >= 1")
        sp.workers = int(workers)
    if backend is not None:
        if backend not in ("dask", "process"):
            raise CalibrationError(f"--backend {backend!r}: allowed: dask, process")
        sp.backend = backend
    if cycles is not None and int(cycles) < 1:
        raise CalibrationError(f"--cycles {cycles}: must be an integer >= 1")
    n_cycles = int(cycles or sp.cycles or m.spec.protocol.cycles)
    check_against_model(sp, tg, m)
    return sp, tg, m, model_arg, n_cycles


def calibrate(
    model: str | Path | None,
    spec: str | Path | CalibrationSpec,
    targets: str | Path | TargetSet,
    out: str | Path,
    *,
    trials: int | None = None,
    cycles: int | None = None,
    workers: int | None = None,
    backend: str | None = None,
    progress: bool = False,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
    write: bool = True,
    max_wall_s: float | None = None,
) -> CalibrationResult:
    """Calibrate a model's knobs against targets (see the module docstring).

    Parameters
    ----------
    model
        Bundled model name or TOML path (``None``: the spec's ``model``, else ``paper``).
    spec, targets
        Calibration spec and targets files (or already loaded objects).
    out
        Output folder (created; an existing calibration folder is continued).
    trials
        Completed trials to reach (default: the spec's ``trials``); a rerun continues.
    cycles
        Cycle horizon override (part of the identity).
    workers, backend
        Execution overrides (not part of the identity).
    progress
        Show a progress bar.
    on_trial
        Called with each finished trial's record.
    write
        Write the tables, the best model and the figures at the end.
    max_wall_s
        Time budget of this call: no new trials are started after it (the trials in flight
        finish; a rerun continues the study).

    Returns
    -------
    CalibrationResult

    Raises
    ------
    CalibrationError
        Invalid spec, targets, model or folder (checked before anything is written).
    """
    import optuna

    t0 = time.perf_counter()
    sp, tg, m, model_arg, n_cycles = prepare(
        model, spec, targets, cycles=cycles, workers=workers, backend=backend
    )
    n_target = int(trials if trials is not None else sp.trials)
    if n_target < 1:
        raise CalibrationError(f"--trials {trials}: must be an integer >= 1")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CalibrationError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "optuna.db").is_file():
        raise CalibrationError(
            f"--out {out}: the folder is not empty and holds no calibration; give a new folder"
        )
    identity = {
        "spec_sha256": sp.sha256,
        "targets_sha256": tg.sha256,
        "model_sha256": m.sha256,
        "cycles": n_cycles,
    }
    subset = None if sp.design == "single" else sp.design
    if subset is None:
        param_sets: list[dict[str, Any]] = [{}]
    else:
        from seilab.calibrate.fidelity import subset_sets

        param_sets, _ = subset_sets(subset)
    runs_per_trial = len(param_sets) * sp.replicates
    parallel = sp.parallel_trials or max(1, sp.workers // runs_per_trial)
    out.mkdir(parents=True, exist_ok=True)
    study = _open_study(out, identity, sp)
    _write_state(out, sp, tg, model_arg, m, n_cycles, identity)
    wpt = max(1, sp.workers // parallel) if sp.backend == "process" else sp.workers
    bar = _bar(progress, n_target, len(_complete(study)))
    with _cluster(sp, sp.workers) as scheduler:
        ctx = _Context(
            sp,
            tg,
            m,
            model_arg,
            out,
            n_cycles,
            param_sets,
            subset,
            sp.backend,
            scheduler,
            wpt,
            progress,
        )
        try:
            with ThreadPoolExecutor(max_workers=parallel) as pool:
                while len(_complete(study)) < n_target:
                    if max_wall_s is not None and time.perf_counter() - t0 > max_wall_s:
                        break
                    n_ask = min(parallel, n_target - len(_complete(study)))
                    asked = [study.ask() for _ in range(n_ask)]
                    vals = [_suggest(t, sp) for t in asked]
                    futs = [pool.submit(evaluate, ctx, v) for v in vals]
                    told: set[int] = set()
                    try:
                        for t, v, f in zip(asked, vals, futs, strict=True):
                            rec = f.result()
                            for k in (
                                "folder",
                                "stats",
                                "n_runs",
                                "run_wall_s",
                                "overrides",
                                "box",
                            ):
                                t.set_user_attr(k, rec[k])
                            study.tell(t, rec["loss"])
                            told.add(t.number)
                            if bar is not None:
                                bar.update(bar.task_ids[0], advance=1)
                            if on_trial is not None:
                                on_trial({"trial": t.number, "values": v, **rec})
                    except Exception:
                        # a failed trial is recorded; an interrupt (KeyboardInterrupt) leaves
                        # the trials RUNNING, so the next session runs their settings again
                        for t in asked:
                            if t.number not in told:
                                try:
                                    study.tell(t, state=optuna.trial.TrialState.FAIL)
                                except ValueError:  # already finished
                                    pass
                        raise
        finally:
            if bar is not None:
                bar.stop()
    from seilab.calibrate.outputs import trials_table, write_outputs

    table = trials_table(study, sp, tg)
    if table.empty:
        raise CalibrationError(f"{out}: no trial completed yet (time budget too short?)")
    best = table.sort_values(["loss", "trial"]).iloc[0].to_dict()
    n_sims, sim_wall = _count_sims(out)
    res = CalibrationResult(out, table, best, n_sims, sim_wall, time.perf_counter() - t0)
    if write:
        res.files = write_outputs(res, sp, tg, m, model_arg, n_cycles, study)
    return res


def _bar(enabled: bool, total: int, done: int):
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]calibrate"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("trials"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    bar.add_task("trials", total=total, completed=done)
    bar.start()
    return bar


def _count_sims(out: Path) -> tuple[int, float]:
    """Finished simulations in the trial folders and their summed wall time."""
    from seilab.campaign import read_manifest

    n, wall = 0, 0.0
    for d in sorted((out / "trials").glob("*")):
        try:
            man = read_manifest(d)
        except Exception:  # noqa: BLE001 - a folder without manifest has no finished run
            continue
        done = man[man["status"] == "done"]
        n += len(done)
        wall += float(done["wall_s"].fillna(0).sum())
    return n, wall


def _write_state(
    out: Path,
    sp: CalibrationSpec,
    tg: TargetSet,
    model_arg: str,
    m: Any,
    cycles: int,
    identity: dict[str, Any],
) -> None:
    """Record what the folder calibrates (spec and targets copied, hashes, versions)."""
    from seilab.io import atomic_write_text, utc_now, versions

    path = out / STATE_FILE
    if path.is_file():
        return
    doc = {
        "identity": identity,
        "model": model_arg,
        "model_source": m.source,
        "spec_file": sp.path,
        "spec": sp.raw,
        "targets_file": tg.path,
        "targets": [t.__dict__ for t in tg.targets],
        "created_utc": utc_now(),
        "versions": versions() | {"optuna": _optuna_version()},
    }
    atomic_write_text(json.dumps(doc, indent=1, default=str) + "\n", path)


def _optuna_version() -> str:
    import optuna

    return optuna.__version__
