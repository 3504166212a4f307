"""``seilab run``: a loop over the registered stages (:mod:`seilab.stages.registry`) with resume
by settings hash, then the report.

The run folder (:mod:`seilab.stages.runfolder`)::

    DIR/
      seilab-run.json   stage status, settings, sessions (written atomically after every change)
      campaign/         the campaign folder (docs/campaigns.md)
      dataset/ ce/ bo/ failure/   one folder per stage, its declared outputs, summary last
      report.html       the report (``seilab report DIR`` rewrites it)
      .lock             held while a ``seilab run`` works on the folder

Resume: the campaign resumes by itself (finished runs are kept; when every run is done with the
same settings it is skipped).  Another stage is skipped when ``seilab-run.json`` records it as
done with the same *input key* (the hash of its settings, of the finished runs of the campaign
and of its upstream stage's key) and its summary file exists; a stage whose key changed is
recomputed in an emptied folder; an interrupted stage with an unchanged key is re-run in place
(the optimisation then resumes its Optuna study and reuses the verification simulations done).
The report is always rewritten.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seilab import schema
from seilab.errors import SeilabError
from seilab.io import canonical_json, captured_warnings, sigterm_as_interrupt, utc_now, versions
from seilab.stages import campaign as campaign_stage
from seilab.stages.base import StageContext
from seilab.stages.campaign import campaign_identity
from seilab.stages.presets import Preset
from seilab.stages.registry import REGISTRY, REPORT_FILE, STAGE_DIRS, STEP_TITLES, STEPS
from seilab.stages.registry import STAGES as _STAGES
from seilab.stages.runfolder import (
    STATUS_FILE,
    STATUS_FORMAT,
    RunStatus,
    check_target,
    data_fingerprint,
    input_key,
    read_status,
    run_lock,
)

#: Every step of ``seilab run`` (the stages, then the report), as before the stage layer.
STAGES = STEPS

__all__ = [
    "STAGES",
    "STAGE_DIRS",
    "campaign_config",
    "REPORT_FILE",
    "STATUS_FILE",
    "PipelineResult",
    "RunOptions",
    "read_status",
    "run_pipeline",
]


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

    def context(self, folder: Path, log: Callable[[str], None]) -> StageContext:
        """The :class:`~seilab.stages.base.StageContext` of these options."""
        progress = sys.stderr.isatty() if self.progress is None else bool(self.progress)
        return StageContext(
            folder=Path(folder),
            preset=self.preset,
            seed=self.seed,
            model=self.model,
            workers=self.workers,
            backend=self.backend,
            scheduler=self.scheduler,
            jobs=self.jobs,
            progress=progress,
            log=log,
            dirs=STAGE_DIRS,
        )

    def campaign_identity(self) -> dict[str, Any]:
        """The settings that decide the campaign's runs (compared on resume)."""
        return campaign_identity(self.context(Path("."), print))


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


def campaign_config(opts: RunOptions) -> Any:
    """The :class:`seilab.campaign.CampaignConfig` of a run's campaign."""
    return campaign_stage.campaign_config(opts.context(Path("."), print))


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def run_pipeline(
    folder: str | Path,
    options: RunOptions,
    *,
    log: Callable[[str], None] | None = None,
    command: str | None = None,
) -> PipelineResult:
    """Run (or resume) every registered stage into a run folder and write its report.

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
    from seilab.campaign.runner import plan_campaign

    t0 = time.perf_counter()
    folder = Path(folder)
    if log is None:
        from rich.console import Console

        console = Console(stderr=True)

        def log(msg: str) -> None:
            console.print(msg, highlight=False)

    ctx = options.context(folder, log)
    plan = plan_campaign(
        campaign_stage.campaign_config(ctx)
    )  # validate every campaign option first
    for stage in REGISTRY.values():
        stage.settings(ctx)  # every stage's recipe is built (and checked) before any work
    old = check_target(folder)
    ident = campaign_identity(ctx)
    if old is not None:
        prev = old.get("campaign_identity", {})
        diff = [
            f"{k}: folder {prev.get(k)!r}, given {ident[k]!r}"
            for k in ident
            if canonical_json(prev.get(k)) != canonical_json(ident[k])
        ]
        if diff:
            raise SeilabError(
                f"run folder {folder} holds another campaign ({'; '.join(diff)}); re-run with "
                f"its options (preset {old.get('preset')!r}) or give another --out folder"
            )
    folder.mkdir(parents=True, exist_ok=True)
    result = PipelineResult(folder=folder, report=None, stages={})
    with run_lock(folder), sigterm_as_interrupt():
        doc = old or {"format": STATUS_FORMAT, "created_utc": utc_now(), "stages": {}}
        doc.update(
            {
                "preset": options.preset.name,
                "settings": options.preset.to_dict(),
                "campaign_identity": ident,
                "execution": {
                    "workers": options.workers,
                    "backend": options.backend,
                    "scheduler": options.scheduler,
                    "jobs": options.jobs,
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
        st = RunStatus(folder, doc)
        st.save()
        fp: dict[str, Any] = {"key": None, "done": 0, "failed": 0}
        n = len(STEPS)
        for i, name in enumerate(_STAGES, 1):
            stage = REGISTRY[name]

            def header(what: str, i: int = i, name: str = name) -> None:
                log(f"[bold]\\[{i}/{n}] {STEP_TITLES[name]}[/bold]: {what}")

            out = folder / stage.folder
            rec = st.stage(name)
            settings = stage.settings(ctx)
            if name == "campaign":
                key = input_key(settings)
                have = (out / schema.MANIFEST).is_file()
                fp = data_fingerprint(out) if have else fp
                if (
                    rec.get("status") == "done"
                    and rec.get("input_key") == key
                    and fp["done"] == len(plan.runs)
                ):
                    header(f"{fp['done']} runs already finished, skipped")
                    result.skipped.append(name)
                    continue
                header(f"{len(plan.runs)} runs ({plan.config.design} design)")
            else:
                upstream = st.stage(stage.after).get("input_key") if stage.after else None
                key = input_key({"data": fp["key"], "after": upstream, **settings})
                if (
                    rec.get("status") == "done"
                    and rec.get("input_key") == key
                    and (out / stage.summary).is_file()
                ):
                    wall = float(rec.get("wall_s") or 0)
                    header(f"finished earlier ({wall:.1f} s), skipped")
                    result.skipped.append(name)
                    continue
                if fp["done"] == 0:
                    header("no finished runs to analyse")
                    st.set_stage(
                        name,
                        status="failed",
                        input_key=key,
                        error="no finished runs in the campaign",
                        finished_utc=utc_now(),
                    )
                    result.failed_stages.append(name)
                    continue
                if rec.get("input_key") not in (None, key) and out.exists():
                    shutil.rmtree(out)  # other data or settings: start this stage afresh
                header("running")
            prev_wall = float(rec.get("wall_s") or 0.0)
            st.set_stage(
                name, status="running", input_key=key, started_utc=utc_now(), error=None, note=None
            )
            t = time.perf_counter()
            try:
                with captured_warnings() as caught:
                    extra = stage.run(ctx, out)
            except KeyboardInterrupt:
                wall = time.perf_counter() - t + (prev_wall if name == "campaign" else 0.0)
                st.set_stage(
                    name, status="interrupted", finished_utc=utc_now(), wall_s=round(wall, 3)
                )
                raise
            except Exception as exc:  # noqa: BLE001 - one stage's failure does not stop the others
                if name == "campaign":
                    raise  # nothing to analyse; the error says why (exit 2 or a traceback)
                wall = time.perf_counter() - t
                log(f"    [red]{name} failed[/red]: {_first_line(exc)}")
                st.set_stage(
                    name,
                    status="failed",
                    finished_utc=utc_now(),
                    wall_s=round(wall, 3),
                    error=_first_line(exc),
                    traceback=traceback.format_exc(limit=8),
                )
                result.failed_stages.append(name)
                continue
            wall = time.perf_counter() - t
            if extra.pop("resumed", False):
                wall += prev_wall  # the campaign's wall time over all its sessions
            log(f"    {extra.get('note', 'done')}; {time.perf_counter() - t:.1f} s")
            st.set_stage(
                name,
                status="done",
                finished_utc=utc_now(),
                wall_s=round(wall, 3),
                traceback=None,
                warnings=caught,  # recorded here, not printed (see docs/run.md)
                **extra,
            )
            result.ran.append(name)
            if name == "campaign":
                fp = data_fingerprint(out)
        session["wall_s"] = round(time.perf_counter() - t0, 3)
        log(f"[bold]\\[{n}/{n}] {STEP_TITLES['report']}[/bold]: writing")
        _report(ctx, st, result, log)
        result.failed_runs = int(fp.get("failed", 0))
        result.wall_s = time.perf_counter() - t0
        session["wall_s"] = round(result.wall_s, 3)
        session["finished_utc"] = utc_now()
        st.save()
        result.stages = dict(st.doc["stages"])
    return result


def _report(
    ctx: StageContext, st: RunStatus, result: PipelineResult, log: Callable[[str], None]
) -> None:
    from seilab.report.html import write_report

    t = time.perf_counter()
    st.set_stage("report", status="running", started_utc=utc_now(), error=None)
    try:
        path = write_report(ctx.folder, status=st.doc)
    except Exception as exc:  # noqa: BLE001 - recorded; the stages' outputs are kept
        log(f"    [red]report failed[/red]: {_first_line(exc)}")
        st.set_stage(
            "report",
            status="failed",
            error=_first_line(exc),
            traceback=traceback.format_exc(limit=8),
            finished_utc=utc_now(),
        )
        result.failed_stages.append("report")
        return
    wall = time.perf_counter() - t
    st.set_stage(
        "report", status="done", finished_utc=utc_now(), wall_s=round(wall, 3), traceback=None
    )
    result.report = path
    result.ran.append("report")
    log(f"    wrote {path} ({path.stat().st_size / 1e6:.1f} MB); {wall:.1f} s")
