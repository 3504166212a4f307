"""``seilab run``: campaign, data-set summary, CE analysis, optimisation, failure analysis, report.

The run folder::

    DIR/
      seilab-run.json   stage status, settings, sessions (written atomically after every change)
      campaign/         the campaign folder (docs/campaigns.md)
      dataset/          CE against cycle, descriptive statistics, per-run table, summary.json
      ce/               ``seilab analyze ce`` outputs (summary.json last)
      bo/               ``seilab optimize`` outputs (summary.json last)
      failure/          ``seilab analyze failure`` outputs (failure_summary.json last)
      report.html       the report (``seilab report DIR`` rewrites it)
      .lock             held while a ``seilab run`` works on the folder

Resume: the campaign resumes by itself (finished runs are kept).  An analysis stage is skipped
when ``seilab-run.json`` records it as done with the same *input key* (a hash of its settings
and of the finished runs of the campaign) and its last-written file exists; a stage whose key
changed (new runs, other settings) is recomputed in an emptied folder; an interrupted stage with
an unchanged key is re-run in place (the optimisation then resumes its Optuna study and reuses
the verification simulations already done).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seilab import schema
from seilab.errors import SeilabError
from seilab.io import (
    LOCK_FILE,
    atomic_write_text,
    folder_lock,
    sigterm_as_interrupt,
    stable_hash,
    utc_now,
    versions,
)
from seilab.report.presets import Preset

STATUS_FILE = "seilab-run.json"
STATUS_FORMAT = "seilab-run/1"
REPORT_FILE = "report.html"

#: Stages in order, with their folder and the file each writes last (its completion mark).
STAGES: tuple[str, ...] = ("campaign", "dataset", "ce", "bo", "failure", "report")
STAGE_TITLES: dict[str, str] = {
    "campaign": "campaign (simulations)",
    "dataset": "data set summary",
    "ce": "CE analysis (regressors, SHAP)",
    "bo": "Bayesian optimisation + verification",
    "failure": "failure analysis",
    "report": "HTML report",
}
STAGE_DIRS: dict[str, str] = {
    "campaign": "campaign",
    "dataset": "dataset",
    "ce": "ce",
    "bo": "bo",
    "failure": "failure",
}
SENTINELS: dict[str, str] = {
    "campaign": schema.MANIFEST,
    "dataset": "summary.json",
    "ce": "summary.json",
    "bo": "summary.json",
    "failure": "failure_summary.json",
}

#: Fields of a preset that decide the campaign (a resumed folder must match them).
CAMPAIGN_FIELDS: tuple[str, ...] = ("design", "n", "pairs", "replicates", "cycles", "box", "set")


def _hash(obj: Any) -> str:
    return stable_hash(obj, 16)


@dataclass
class RunOptions:
    """Everything ``seilab run`` needs besides the folder.

    Attributes
    ----------
    preset
        Resolved preset (with command-line overrides applied).
    seed
        Seed of the campaign and of every analysis.
    model
        Model name or TOML file of the simulations.
    workers
        Simulation worker processes (None: all cores).
    backend, scheduler
        Campaign executor (``process``, ``dask``, ``slurm``) and Dask scheduler address.
    jobs
        Threads of the analyses (torch, XGBoost, random forests).
    progress
        Progress bars and spinners (None: when stderr is a terminal).
    """

    preset: Preset
    seed: int = 0
    model: str = "paper"
    workers: int | None = None
    backend: str = "process"
    scheduler: str | None = None
    jobs: int = 2
    progress: bool | None = None

    def campaign_identity(self) -> dict[str, Any]:
        """The settings that decide the campaign's runs (compared on resume)."""
        p = self.preset.to_dict()
        return {**{k: p[k] for k in CAMPAIGN_FIELDS}, "model": self.model, "seed": self.seed}


@dataclass
class PipelineResult:
    """Outcome of :func:`run_pipeline`.

    Attributes
    ----------
    folder
        The run folder.
    report
        The report file (None if it could not be written).
    stages
        Stage name -> its record in ``seilab-run.json``.
    ran, skipped
        Stages computed in this session, and stages found finished.
    failed_stages
        Stages that raised (their error is in ``stages``; the other stages went on).
    failed_runs
        Simulations of the campaign that failed.
    wall_s
        Wall time of this session.
    """

    folder: Path
    report: Path | None
    stages: dict[str, dict[str, Any]]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed_stages: list[str] = field(default_factory=list)
    failed_runs: int = 0
    wall_s: float = 0.0


# ------------------------------------------------------------------------------ folder
def read_status(folder: str | Path) -> dict[str, Any]:
    """Read ``DIR/seilab-run.json``.

    Raises
    ------
    SeilabError
        The folder does not exist, is not a run folder, or its status file is unreadable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SeilabError(f"{folder}: no such folder")
    path = folder / STATUS_FILE
    if not path.is_file():
        hint = ""
        if (folder / schema.CAMPAIGN_CONFIG).is_file():
            hint = (
                " (it is a campaign folder: analyse it with `seilab analyze ce|failure`, "
                "or run the whole pipeline with `seilab run --out NEW_DIR`)"
            )
        raise SeilabError(
            f"{folder}: not a seilab run folder (no {STATUS_FILE}); create one with "
            f"`seilab run --out {folder}`{hint}"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SeilabError(f"{path}: unreadable ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != STATUS_FORMAT:
        raise SeilabError(f"{path}: not a {STATUS_FORMAT} status file")
    return doc


def _check_target(folder: Path) -> dict[str, Any] | None:
    """Existing status of a run folder, None for a new/empty folder; refuse anything else."""
    if folder.exists() and not folder.is_dir():
        raise SeilabError(f"--out {folder}: exists and is not a folder")
    if folder.is_dir():
        if (folder / STATUS_FILE).is_file():
            return read_status(folder)
        entries = {p.name for p in folder.iterdir()} - {LOCK_FILE}
        if entries:
            what = (
                "a campaign folder"
                if schema.CAMPAIGN_CONFIG in entries
                else "not empty and not a seilab run folder"
            )
            raise SeilabError(
                f"--out {folder}: {what} (no {STATUS_FILE}); give a new or empty folder"
            )
    return None


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold ``DIR/.lock`` so that two ``seilab run`` never share a folder.

    Raises
    ------
    SeilabError
        "run folder DIR is in use by another process (pid N)".
    """
    with folder_lock(folder, what="run folder", error=SeilabError):
        yield


class _Status:
    """The run folder's status document; every change is written atomically at once."""

    def __init__(self, folder: Path, doc: dict[str, Any]) -> None:
        self.folder = folder
        self.doc = doc

    def save(self) -> None:
        self.doc["updated_utc"] = utc_now()
        atomic_write_text(
            json.dumps(self.doc, indent=1, default=str) + "\n", self.folder / STATUS_FILE
        )

    def stage(self, name: str) -> dict[str, Any]:
        return self.doc.setdefault("stages", {}).setdefault(name, {"status": "pending"})

    def set_stage(self, name: str, **values: Any) -> None:
        self.stage(name).update(values)
        self.save()


# ------------------------------------------------------------------------------ stages
def campaign_config(opts: RunOptions) -> Any:
    """The :class:`seilab.campaign.CampaignConfig` of a run's campaign."""
    from seilab.campaign.config import CampaignConfig

    p = opts.preset
    return CampaignConfig(
        design=p.design,
        n=p.n,
        pairs=None if p.pairs is None else list(p.pairs),
        replicates=p.replicates,
        seed=opts.seed,
        model=opts.model,
        cycles=p.cycles,
        box=p.box,
        set=dict(p.set),
        backend=opts.backend,
        workers=opts.workers,
        scheduler=opts.scheduler,
    )


def data_fingerprint(campaign_dir: Path) -> dict[str, Any]:
    """Hash of the finished runs of a campaign folder (run id, cycles, seed) and run counts."""
    from seilab.campaign.store import read_manifest, run_path

    man = read_manifest(campaign_dir)
    have = man["run_id"].map(lambda r: run_path(campaign_dir, r).is_file()).astype(bool)
    done = man[have | (man["status"] == "done")]
    rows = sorted(
        (str(r.run_id), int(r.n_cycles) if r.n_cycles == r.n_cycles else -1, int(r.seed))
        for r in done.itertuples()
    )
    counts = {
        "runs": len(man),
        "done": int(have.sum()),
        "failed": int((man["status"] == "failed").sum()),
    }
    counts["pending"] = counts["runs"] - counts["done"] - counts["failed"]
    return {"key": _hash(rows), **counts}


def summarise_dataset(campaign_dir: str | Path, out: str | Path) -> dict[str, Any]:
    """Data-set section of the report: CE against cycle, descriptive statistics, per-run table.

    Parameters
    ----------
    campaign_dir
        Campaign folder.
    out
        Output folder: ``ce_vs_cycle.png``, ``descriptive_stats.csv`` (mean, standard deviation,
        minimum, 25/50/75 % percentiles and maximum of every per-cycle event and mobility feature
        and of the CE over all cycles of all runs, as in the paper's table), ``runs.csv`` (one
        row per run) and ``summary.json`` (written last).

    Returns
    -------
    dict
        The summary.
    """
    import numpy as np
    import pandas as pd

    from seilab.campaign.store import load_dataset, read_manifest
    from seilab.plotting.report import ce_vs_cycle
    from seilab.plotting.style import save_figure

    campaign_dir, out = Path(campaign_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(campaign_dir)
    man = read_manifest(campaign_dir)
    feats = [
        c
        for c in (
            *schema.FEATURE_GROUPS["events"],
            *schema.FEATURE_GROUPS["mobility"],
            schema.TARGET,
        )
        if c in data.columns
    ]
    desc = data[feats].apply(pd.to_numeric, errors="coerce").describe().T
    desc.insert(0, "feature", [schema.label(c) for c in desc.index])
    desc.index.name = "column"
    atomic_write_text(desc.to_csv(), out / "descriptive_stats.csv")

    ce = pd.to_numeric(data[schema.TARGET], errors="coerce")
    g = data.assign(_ce=ce).groupby(schema.RUN_ID, sort=False)
    runs = pd.DataFrame(
        {
            "n_cycles": g[schema.CYCLE].count(),
            "ce_mean_pct": g["_ce"].mean(),
            "ce_min_pct": g["_ce"].min(),
            "ce_last_pct": g["_ce"].last(),
        }
    )
    keep = [c for c in ("design_set", "seed", "end_reason", "wall_s") if c in man.columns]
    runs = runs.join(man.set_index("run_id")[keep], how="left")
    atomic_write_text(runs.to_csv(), out / "runs.csv")

    save_figure(ce_vs_cycle(data), out / "ce_vs_cycle.png")

    finite = ce[np.isfinite(ce)]
    summary: dict[str, Any] = {
        "campaign": str(campaign_dir),
        "n_runs_design": int(len(man)),
        "n_runs_done": int(runs.shape[0]),
        "n_runs_failed": int((man["status"] == "failed").sum()) if "status" in man else 0,
        "n_rows": int(len(data)),
        "cycles_per_run": {
            "min": int(runs["n_cycles"].min()),
            "max": int(runs["n_cycles"].max()),
        },
        "ce_pct": {
            "mean": float(finite.mean()) if len(finite) else None,
            "median": float(finite.median()) if len(finite) else None,
            "min": float(finite.min()) if len(finite) else None,
            "max": float(finite.max()) if len(finite) else None,
            "n_missing": int(len(ce) - len(finite)),
            "fraction_above_100": float((finite > 100).mean()) if len(finite) else None,
        },
        "end_reasons": {str(k): int(v) for k, v in man["end_reason"].value_counts().items()}
        if "end_reason" in man
        else {},
        "features": feats,
        "outputs": ["ce_vs_cycle.png", "descriptive_stats.csv", "runs.csv"],
    }
    atomic_write_text(json.dumps(summary, indent=2, default=str) + "\n", out / "summary.json")
    return summary


def _stage_settings(opts: RunOptions) -> dict[str, dict[str, Any]]:
    p = opts.preset
    return {
        "campaign": opts.campaign_identity(),
        "dataset": {},
        "ce": {
            "size": p.ce_size,
            "shap_samples": p.shap_samples,
            "shap_background": p.shap_background,
            "seed": opts.seed,
        },
        "bo": {
            "trials": p.bo_trials,
            "top_k": p.bo_top_k,
            "surrogate": p.bo_surrogate,
            "size": p.bo_size,
            "verify": p.verify,
            "replicates": p.verify_replicates,
            "seed": opts.seed,
            "simulator": opts.campaign_identity(),
        },
        "failure": {"small": p.failure_small, "cv_repeats": p.cv_repeats, "seed": opts.seed},
    }


def _run_ce(camp: Path, out: Path, opts: RunOptions, progress: bool) -> dict[str, Any]:
    from seilab.analysis.ce import CESettings, run_ce_analysis

    p = opts.preset
    res = run_ce_analysis(
        camp,
        out,
        CESettings(
            seed=opts.seed,
            size=p.ce_size,
            n_jobs=opts.jobs,
            shap_samples=p.shap_samples,
            shap_background=p.shap_background,
        ),
        progress=progress,
    )
    best = res.metrics["test_rmse"].idxmin()
    return {"note": f"best test RMSE: {best} ({res.metrics.loc[best, 'test_rmse']:.3g} %)"}


def _run_bo(
    camp: Path, out: Path, folder: Path, opts: RunOptions, progress: bool
) -> dict[str, Any]:
    from seilab.analysis.optimize import BOSettings, run_optimization

    p = opts.preset
    ranking = folder / STAGE_DIRS["ce"] / "shap_ranking.csv"
    res = run_optimization(
        camp,
        out,
        top_k=p.bo_top_k,
        ranking=ranking if ranking.is_file() else None,
        settings=BOSettings(trials=p.bo_trials, seed=opts.seed),
        surrogate_model=p.bo_surrogate,
        size=p.bo_size,
        n_jobs=opts.jobs,
        verify=p.verify,
        replicates=p.verify_replicates,
        simulator_options={
            "base_model": opts.model,
            "cycles": p.cycles,
            "box": None if p.box is None else list(p.box),
            "overrides": dict(p.set) or None,
            "workers": opts.workers,
            "seed": opts.seed,
            "backend": opts.backend,
            "scheduler": opts.scheduler,
        },
        progress=progress,
    )
    note = f"converged at trial {res.converged_trial} of {res.summary['trials']}"
    v = res.summary.get("verification")
    if v:
        note += f"; verification: holds = {v.get('holds')}"
    return {"note": note}


def _run_failure(camp: Path, out: Path, opts: RunOptions, console: Any) -> dict[str, Any]:
    from seilab.analysis.failure import run_failure_analysis
    from seilab.campaign.store import load_dataset

    p = opts.preset
    ctx = console.status("failure analysis ...") if console is not None else _null()
    with ctx:
        summary = run_failure_analysis(
            load_dataset(camp),
            out,
            seed=opts.seed,
            n_jobs=opts.jobs,
            small=p.failure_small,
            cv_repeats=p.cv_repeats,
        )
    frac = summary.get("fraction_failing")
    note = f"{summary['n_failed']} of {summary['n_runs']} runs fail"
    if frac is not None:
        note += f" ({100 * frac:.1f} %)"
    return {"note": note, "messages": summary.get("messages", [])}


@contextmanager
def _null() -> Iterator[None]:
    yield


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn the first SIGTERM into KeyboardInterrupt, so that the status file records it."""
    with sigterm_as_interrupt():
        yield


# ------------------------------------------------------------------------------ driver
def run_pipeline(
    folder: str | Path,
    options: RunOptions,
    *,
    log: Callable[[str], None] | None = None,
    command: str | None = None,
) -> PipelineResult:
    """Run (or resume) the whole job into a run folder and write its report.

    Parameters
    ----------
    folder
        Run folder (created; an existing run folder is resumed).
    options
        Preset and execution options.
    log
        Receives one line per stage event (default: printed on stderr through rich).
    command
        Command line recorded in the status file (default: ``sys.argv``).

    Returns
    -------
    PipelineResult

    Raises
    ------
    SeilabError
        Invalid options, a folder that is not a run folder, a folder in use, or a run folder
        made with other campaign settings (nothing is computed).
    KeyboardInterrupt
        After the status file records the interrupted stage (re-run to resume).
    """
    from seilab.campaign.runner import plan_campaign, run_campaign

    t0 = time.perf_counter()
    folder = Path(folder)
    opts = options
    progress = sys.stderr.isatty() if opts.progress is None else bool(opts.progress)
    console = None
    if log is None:
        from rich.console import Console

        console = Console(stderr=True)

        def log(msg: str) -> None:
            console.print(msg, highlight=False)

    cfg = campaign_config(opts)
    plan = plan_campaign(cfg)  # validate every campaign option before writing anything
    old = _check_target(folder)
    ident = opts.campaign_identity()
    if old is not None:
        prev = old.get("campaign_identity", {})
        diff = [
            f"{k}: folder {prev.get(k)!r}, given {ident[k]!r}"
            for k in ident
            if json.dumps(prev.get(k), default=str) != json.dumps(ident[k], default=str)
        ]
        if diff:
            raise SeilabError(
                f"run folder {folder} holds another campaign ({'; '.join(diff)}); re-run with "
                f"its options (preset {old.get('preset')!r}) or give another --out folder"
            )
    folder.mkdir(parents=True, exist_ok=True)
    result = PipelineResult(folder=folder, report=None, stages={})
    with run_lock(folder), _sigterm_as_interrupt():
        doc = old or {
            "format": STATUS_FORMAT,
            "created_utc": utc_now(),
            "stages": {},
            "sessions": [],
        }
        doc.update(
            {
                "preset": opts.preset.name,
                "settings": opts.preset.to_dict(),
                "campaign_identity": ident,
                "execution": {
                    "workers": opts.workers,
                    "backend": opts.backend,
                    "scheduler": opts.scheduler,
                    "jobs": opts.jobs,
                },
                "versions": versions(),
                "platform": {"system": platform.platform(), "cpus": os.cpu_count()},
            }
        )
        session = {
            "started_utc": utc_now(),
            "pid": os.getpid(),
            "command": command if command is not None else " ".join(sys.argv),
            "ran": result.ran,
            "skipped": result.skipped,
        }
        doc.setdefault("sessions", []).append(session)
        st = _Status(folder, doc)
        st.save()
        settings = _stage_settings(opts)
        camp = folder / STAGE_DIRS["campaign"]
        n_stages = len(STAGES)

        def header(i: int, name: str, what: str) -> None:
            log(f"[bold]\\[{i}/{n_stages}] {STAGE_TITLES[name]}[/bold]: {what}")

        # -- 1. campaign
        rec = st.stage("campaign")
        key = _hash(settings["campaign"])
        fp = data_fingerprint(camp) if (camp / schema.MANIFEST).is_file() else None
        all_done = fp is not None and fp["done"] == len(plan.runs)
        if rec.get("status") == "done" and rec.get("input_key") == key and all_done:
            header(1, "campaign", f"{fp['done']} runs already finished, skipped")
            result.skipped.append("campaign")
        else:
            header(1, "campaign", f"{len(plan.runs)} runs ({plan.config.design} design)")
            st.set_stage(
                "campaign", status="running", input_key=key, started_utc=utc_now(), error=None
            )
            t = time.perf_counter()
            try:
                res = run_campaign(cfg, camp, progress=progress)
            except KeyboardInterrupt:
                st.set_stage(
                    "campaign",
                    status="interrupted",
                    finished_utc=utc_now(),
                    wall_s=round(time.perf_counter() - t + float(rec.get("wall_s") or 0.0), 3),
                )
                raise
            wall = time.perf_counter() - t
            c = res.counts
            note = (
                f"{c.get('done', 0)} of {res.n_runs} runs done ({res.skipped} already finished, "
                f"{res.ran} run now), {c.get('failed', 0)} failed; {wall:.1f} s"
            )
            log(f"    {note}")
            for rid, err in res.failures[:3]:
                log(f"    [red]run {rid} failed[/red]: {err.splitlines()[0] if err else ''}")
            st.set_stage(
                "campaign",
                status="done",
                finished_utc=utc_now(),
                wall_s=round(wall + (float(rec.get("wall_s") or 0.0) if res.skipped else 0.0), 3),
                note=note,
                runs=c,
            )
            result.ran.append("campaign")
        fp = data_fingerprint(camp)
        result.failed_runs = fp["failed"]

        # -- 2..5: analyses
        def analysis(
            i: int, name: str, fn: Callable[[Path], dict[str, Any]], after: str | None = None
        ) -> None:
            rec = st.stage(name)
            out = folder / STAGE_DIRS[name]
            upstream = st.stage(after).get("input_key") if after else None
            key = _hash({"data": fp["key"], "after": upstream, **settings[name]})
            if (
                rec.get("status") == "done"
                and rec.get("input_key") == key
                and (out / SENTINELS[name]).is_file()
            ):
                header(
                    i, name, f"finished earlier ({float(rec.get('wall_s') or 0):.1f} s), skipped"
                )
                result.skipped.append(name)
                return
            if fp["done"] == 0:
                header(i, name, "no finished runs to analyse")
                st.set_stage(
                    name,
                    status="failed",
                    input_key=key,
                    error="no finished runs in the campaign",
                    finished_utc=utc_now(),
                )
                result.failed_stages.append(name)
                return
            if rec.get("input_key") not in (None, key) and out.exists():
                shutil.rmtree(out)  # other data or settings: start this stage afresh
            header(i, name, "running")
            st.set_stage(
                name,
                status="running",
                input_key=key,
                started_utc=utc_now(),
                error=None,
                note=None,
            )
            t = time.perf_counter()
            try:
                extra = fn(out)
            except KeyboardInterrupt:
                st.set_stage(name, status="interrupted", finished_utc=utc_now())
                raise
            except Exception as exc:  # noqa: BLE001 - one stage's failure does not stop the others
                wall = time.perf_counter() - t
                first = f"{type(exc).__name__}: {exc}".splitlines()[0]
                log(f"    [red]{name} failed[/red]: {first}")
                st.set_stage(
                    name,
                    status="failed",
                    finished_utc=utc_now(),
                    wall_s=round(wall, 3),
                    error=first,
                    traceback=traceback.format_exc(limit=8),
                )
                result.failed_stages.append(name)
                return
            wall = time.perf_counter() - t
            log(f"    {extra.get('note', 'done')}; {wall:.1f} s")
            st.set_stage(
                name,
                status="done",
                finished_utc=utc_now(),
                wall_s=round(wall, 3),
                traceback=None,
                **extra,
            )
            result.ran.append(name)

        def dataset_fn(out: Path) -> dict[str, Any]:
            ctx = console.status("data set summary ...") if console and progress else _null()
            with ctx:
                s = summarise_dataset(camp, out)
            return {"note": f"{s['n_runs_done']} runs, {s['n_rows']} cycles"}

        analysis(2, "dataset", dataset_fn)
        analysis(3, "ce", lambda out: _run_ce(camp, out, opts, progress))
        analysis(4, "bo", lambda out: _run_bo(camp, out, folder, opts, progress), after="ce")
        analysis(
            5,
            "failure",
            lambda out: _run_failure(camp, out, opts, console if progress else None),
        )

        # -- 6. report
        from seilab.report.html import write_report

        header(6, "report", "writing")
        t = time.perf_counter()
        session["wall_s"] = round(time.perf_counter() - t0, 3)
        st.set_stage("report", status="running", started_utc=utc_now(), error=None)
        try:
            path = write_report(folder, status=st.doc)
        except Exception as exc:  # noqa: BLE001 - recorded; the stages' outputs are kept
            first = f"{type(exc).__name__}: {exc}".splitlines()[0]
            log(f"    [red]report failed[/red]: {first}")
            st.set_stage(
                "report",
                status="failed",
                error=first,
                traceback=traceback.format_exc(limit=8),
                finished_utc=utc_now(),
            )
            result.failed_stages.append("report")
        else:
            wall = time.perf_counter() - t
            st.set_stage(
                "report",
                status="done",
                finished_utc=utc_now(),
                wall_s=round(wall, 3),
                traceback=None,
            )
            result.report = path
            result.ran.append("report")
            log(f"    wrote {path} ({path.stat().st_size / 1e6:.1f} MB); {wall:.1f} s")
        result.wall_s = time.perf_counter() - t0
        session["wall_s"] = round(result.wall_s, 3)
        session["finished_utc"] = utc_now()
        st.save()
        result.stages = dict(st.doc["stages"])
    return result
