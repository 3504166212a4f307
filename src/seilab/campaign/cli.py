"""``seilab campaign run|resume|status|slurm-script``.

Heavy imports (NumPy, pyarrow, Dask, the simulator) happen inside the commands.  Exit status
of ``run``/``resume``: 0 when every run is done, 1 when some failed, 2 on a user error (one
line on stderr), 130 when interrupted (the manifest is written; re-run to resume).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(help="Run and inspect parameter campaigns.", no_args_is_help=True)

_DESIGN_HELP = (
    "paper (19 x 16 one-at-a-time + 76 random = 380 runs), oat, random (--n), sobol (--n), "
    "file (--file sets.csv|.toml|.json)"
)


def _parse_sets(values: list[str] | None) -> dict[str, Any] | None:
    from seilab.errors import CampaignError
    from seilab.model import parse_value

    if not values:
        return None
    out: dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise CampaignError(
                f"--set {item!r}: expected NAME=VALUE (e.g. protocol.event_budget=30)"
            )
        key, _, val = item.partition("=")
        if not key.strip():
            raise CampaignError(f"--set {item!r}: empty NAME")
        out[key.strip()] = parse_value(val)
    return out


def _echo_result(result: Any, cmd: str) -> None:
    c = result.counts
    typer.echo(
        f"campaign {result.folder}: {result.n_runs} runs: {c.get('done', 0)} done "
        f"({result.skipped} already finished, {result.ran} run now), {c.get('failed', 0)} failed, "
        f"{c.get('pending', 0)} pending; {result.wall_s:.1f} s"
    )
    if result.failures:
        typer.echo(f"{len(result.failures)} run(s) failed:", err=True)
        for rid, err in result.failures[:5]:
            typer.echo(f"  {rid}: {err.splitlines()[0] if err else ''}", err=True)
        if len(result.failures) > 5:
            typer.echo(f"  ... see `seilab campaign status {result.folder}`", err=True)
        typer.echo(f"{cmd} tries the failed runs again", err=True)


def _run(cfg: Any, out: Path, progress: bool | None, cmd: str) -> None:
    from seilab.campaign.runner import run_campaign
    from seilab.io import check_writable_dir

    check_writable_dir(out)

    def on_start(plan: Any, n_todo: int, backend: str, n_done: int) -> None:
        if n_todo:
            typer.echo(
                f"campaign {out}: design {plan.config.design}, {len(plan.runs)} runs, "
                f"{n_done} already finished, {n_todo} to run on {backend}",
                err=True,
            )

    try:
        result = run_campaign(cfg, out, progress=progress, on_start=on_start)
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted: the manifest of {out} is up to date; run the same command again "
            "to resume",
            err=True,
        )
        raise typer.Exit(130) from None
    _echo_result(result, cmd)
    if result.n_failed:
        raise typer.Exit(1)


@app.command("run")
def run_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Campaign folder (created or resumed)."),
    design: str | None = typer.Option(None, "--design", help=_DESIGN_HELP + " \\[default: paper]"),
    n: int | None = typer.Option(None, "--n", help="Number of parameter sets (random, sobol)."),
    pairs: str | None = typer.Option(
        None, "--pairs", help="Comma-separated pairs varied by oat/random/sobol \\[default: all]."
    ),
    file: Path | None = typer.Option(None, "--file", help="Parameter sets of --design file."),
    replicates: int | None = typer.Option(
        None, "--replicates", help="Seeds per set \\[default: 1]."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Campaign seed \\[default: 0]."),
    model: str | None = typer.Option(
        None, "--model", help="Model name or TOML \\[default: paper]."
    ),
    cycles: int | None = typer.Option(None, "--cycles", help="Cycles per run \\[model default]."),
    box: tuple[int, int, int] | None = typer.Option(
        None, "--box", help="Box NX NY NZ in cubes \\[model default]."
    ),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Model override NAME=VALUE for every run (repeatable)."
    ),
    backend: str | None = typer.Option(
        None, "--backend", help="process | dask | slurm \\[default: process]."
    ),
    workers: int | None = typer.Option(
        None, "--workers", "-w", help="Worker processes \\[default: os.cpu_count()]."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Address of a Dask scheduler (--backend dask)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Campaign TOML (sections campaign, simulator, execution, slurm)."
    ),
    progress: bool | None = typer.Option(
        None, "--progress/--no-progress", help="Progress bar \\[default: when on a terminal]."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan, write nothing."),
) -> None:
    """Run a campaign (or complete an interrupted one: finished runs are skipped)."""
    from seilab.campaign.config import CampaignConfig, read_config_file

    base = read_config_file(config) if config is not None else CampaignConfig()
    cfg = base.merged(
        design=design,
        n=n,
        pairs=None if pairs is None else [p for p in pairs.split(",") if p.strip()],
        file=None if file is None else str(file),
        replicates=replicates,
        seed=seed,
        model=model,
        cycles=cycles,
        box=box,
        set=_parse_sets(set_),
        backend=backend,
        workers=workers,
        scheduler=scheduler,
    )
    if dry_run:
        from seilab.campaign.runner import plan_campaign, plan_summary

        for line in plan_summary(plan_campaign(cfg)):
            typer.echo(line)
        return
    _run(cfg, out, progress, "Re-running the same command")


@app.command("resume")
def resume_cmd(
    folder: Path = typer.Argument(..., help="Campaign folder."),
    backend: str | None = typer.Option(None, "--backend", help="process | dask | slurm."),
    workers: int | None = typer.Option(None, "--workers", "-w", help="Worker processes."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler address."),
    progress: bool | None = typer.Option(None, "--progress/--no-progress", help="Progress bar."),
) -> None:
    """Complete a campaign with the configuration stored in its campaign.toml."""
    from seilab import schema
    from seilab.campaign import store
    from seilab.campaign.config import read_config_file
    from seilab.errors import CampaignError

    cfg_path = folder / schema.CAMPAIGN_CONFIG
    if not cfg_path.is_file():
        raise CampaignError(f"{folder}: no {schema.CAMPAIGN_CONFIG}; not a campaign folder")
    cfg = read_config_file(cfg_path)
    sets_path = folder / store.PARAM_SETS_FILE
    if cfg.design in ("file", "sets"):
        if not sets_path.is_file():
            raise CampaignError(f"{folder}: {store.PARAM_SETS_FILE} is missing")
        cfg.param_sets = json.loads(sets_path.read_text(encoding="utf-8"))
        cfg.file = None if cfg.design == "sets" else cfg.file
    cfg = cfg.merged(backend=backend, workers=workers, scheduler=scheduler)
    if backend is not None and backend != "dask" and scheduler is None:
        cfg.scheduler = None
    _run(cfg, folder, progress, f"`seilab campaign resume {folder}`")


@app.command("status")
def status_cmd(
    folder: Path = typer.Argument(..., help="Campaign folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    errors: int = typer.Option(20, "--errors", help="Failures to list (0: none, -1: all)."),
) -> None:
    """Summarise a campaign folder: runs by status, time, failures with their errors."""
    from seilab.campaign.store import campaign_status
    from seilab.errors import AnalysisError, CampaignError

    try:
        st = campaign_status(folder)
    except AnalysisError as exc:
        raise CampaignError(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(st, indent=1, default=str))
        return
    cfg = st["config"]
    camp, sim = cfg.get("campaign", {}), cfg.get("simulator", {})
    head = f"campaign {st['folder']}: {st['n_runs']} runs"
    if camp:
        head += (
            f", design {camp.get('design')}, seed {camp.get('seed')}, "
            f"{camp.get('replicates')} replicate(s); model {sim.get('model')}, "
            f"{sim.get('cycles')} cycles, box {sim.get('box')}"
        )
    typer.echo(head)
    c = st["counts"]
    line = f"status: {c.get('done', 0)} done, {c.get('failed', 0)} failed, {c.get('pending', 0)} pending"
    if st["in_manifest_pending_with_file"]:
        line += f" ({st['in_manifest_pending_with_file']} done runs not yet in the manifest)"
    if st["running_pid"]:
        line += f"; in use by pid {st['running_pid']}"
    typer.echo(line)
    if st["end_reasons"]:
        typer.echo("end reasons: " + ", ".join(f"{k} {v}" for k, v in st["end_reasons"].items()))
    n_done = c.get("done", 0) - st["in_manifest_pending_with_file"]
    mean = st["run_wall_s"] / n_done if n_done else 0.0
    typer.echo(
        f"time: {len(st['sessions'])} session(s), elapsed {st['elapsed_s']:.1f} s; "
        f"run time {st['run_wall_s']:.1f} s in total ({mean:.2f} s per finished run)"
    )
    fails = st["failures"]
    if fails and errors != 0:
        typer.echo(f"failures ({len(fails)}):")
        shown = fails if errors < 0 else fails[:errors]
        for f in shown:
            typer.echo(f"  {f['run_id']}: {f['error']}")
        if len(shown) < len(fails):
            typer.echo(f"  ... {len(fails) - len(shown)} more (--errors -1 lists all)")


@app.command("slurm-script")
def slurm_script_cmd(
    config: Path | None = typer.Option(
        None, "--config", help="Campaign TOML with a slurm section \\[default: Dask config]."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Scheduler address to write \\[default: a placeholder]."
    ),
) -> None:
    """Print the SLURM job script that dask-jobqueue would submit for one worker job."""
    from seilab.campaign.backends import slurm_job_script
    from seilab.campaign.config import read_config_file

    settings = read_config_file(config).slurm if config is not None else None
    typer.echo(slurm_job_script(settings, scheduler), nl=False)


def main() -> None:  # pragma: no cover - thin wrapper, exercised through subprocess tests
    """Entry point of ``python -m seilab.campaign`` (same error handling as ``seilab``)."""
    from seilab.errors import SeilabError

    show_tb = "--traceback" in sys.argv
    if show_tb:
        sys.argv.remove("--traceback")
    try:
        app(standalone_mode=True, prog_name="seilab campaign")
    except SeilabError as exc:
        if show_tb:
            raise
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
