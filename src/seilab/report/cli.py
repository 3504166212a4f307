"""``seilab run`` (campaign, analyses and report in one command) and ``seilab report``.

Only Typer is imported at module level; the campaign machinery, the analyses and their
libraries load when a command runs.  Exit status of ``seilab run``: 0 when every stage finished
and every simulation ran, 1 when a stage or some simulations failed (the other stages still
ran; re-run to retry), 2 on a user error (one line on stderr), 130 when interrupted (re-run the
same command to resume).
"""

from __future__ import annotations

from pathlib import Path

import typer

from seilab.stages.presets import DEFAULT_PRESET, PRESETS

_PRESET_HELP = ", ".join(f"{p.name} ({p.short})" for p in PRESETS.values())


def report_cmd(
    folder: Path = typer.Argument(..., help="Run folder written by `seilab run`."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Report file \\[default: FOLDER/report.html]."
    ),
) -> None:
    """(Re)write the self-contained HTML report of a run folder from its files."""
    from seilab.io import check_writable_file
    from seilab.report.html import write_report

    if output is not None:
        check_writable_file(output, option="--output")
    path = write_report(folder, output)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


def run_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (created, or resumed)."),
    preset: str = typer.Option(
        DEFAULT_PRESET,
        "--preset",
        "-p",
        help=f"Settings of the whole job: {_PRESET_HELP}; see docs/run.md.",
    ),
    workers: int | None = typer.Option(
        None, "--workers", "-w", help="Simulation worker processes \\[default: all cores]."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the campaign and of every analysis."),
    design: str | None = typer.Option(
        None, "--design", help="Campaign design (paper, oat, random, sobol) \\[preset]."
    ),
    n: int | None = typer.Option(None, "--n", help="Parameter sets of random/sobol \\[preset]."),
    pairs: str | None = typer.Option(
        None, "--pairs", help="Comma-separated pairs varied by oat/random/sobol \\[all]."
    ),
    replicates: int | None = typer.Option(None, "--replicates", help="Seeds per set \\[preset]."),
    cycles: int | None = typer.Option(None, "--cycles", help="Cycles per run \\[preset]."),
    box: tuple[int, int, int] | None = typer.Option(
        None, "--box", help="Box NX NY NZ in cubes \\[preset]."
    ),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Model override NAME=VALUE for every run (repeatable)."
    ),
    model: str = typer.Option("paper", "--model", help="Model name or TOML file."),
    trials: int | None = typer.Option(None, "--trials", help="Bayesian-optimisation trials."),
    verify: int | None = typer.Option(
        None, "--verify", help="Best BO proposals simulated to verify the optimum (0: none)."
    ),
    backend: str = typer.Option("process", "--backend", help="process | dask | slurm."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Address of a Dask scheduler (--backend dask)."
    ),
    jobs: int = typer.Option(2, "--jobs", "-j", help="Threads of the analyses."),
    progress: bool | None = typer.Option(
        None, "--progress/--no-progress", help="Progress bars \\[default: when on a terminal]."
    ),
) -> None:
    """The main job: run the paper's campaign, the CE and failure analyses and the report.

    Stage outputs go to OUT/campaign, OUT/dataset, OUT/ce, OUT/bo, OUT/failure and
    OUT/report.html; OUT/seilab-run.json records every stage.  Re-running the same command
    resumes: finished simulations and finished stages are skipped.
    """
    from dataclasses import replace

    from seilab.errors import SeilabError, require_extra

    require_extra("ml", "seilab run")
    from seilab.io import check_writable_dir

    check_writable_dir(out)
    from seilab.campaign.cli import _parse_sets
    from seilab.report.pipeline import RunOptions, run_pipeline
    from seilab.stages.presets import get_preset

    if jobs < 1:
        raise SeilabError(f"--jobs must be at least 1, got {jobs}")
    if workers is not None and workers < 1:
        raise SeilabError(f"--workers must be at least 1, got {workers}")
    if trials is not None and trials < 1:
        raise SeilabError(f"--trials must be at least 1, got {trials}")
    if verify is not None and verify < 0:
        raise SeilabError(f"--verify must be 0 or more, got {verify}")
    p = get_preset(preset).with_options(
        design=design,
        n=n,
        pairs=None if pairs is None else [x.strip() for x in pairs.split(",") if x.strip()],
        replicates=replicates,
        cycles=cycles,
        box=box,
        set=_parse_sets(set_),
        bo_trials=trials,
        verify=verify,
    )
    if p.design in ("random", "sobol") and p.n is None:
        raise SeilabError(f"--design {p.design} needs --n (the number of parameter sets)")
    if p.design not in ("random", "sobol") and p.n is not None:
        p = replace(p, n=None)
    opts = RunOptions(
        preset=p,
        seed=seed,
        model=model,
        workers=workers,
        backend=backend,
        scheduler=scheduler,
        jobs=jobs,
        progress=progress,
    )
    try:
        res = run_pipeline(out, opts)
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted: {out}/seilab-run.json is up to date; run the same command again to "
            "resume",
            err=True,
        )
        raise typer.Exit(130) from None
    typer.echo(
        f"run {res.folder}: {len(res.ran)} stage(s) run, {len(res.skipped)} skipped"
        + (
            f", {len(res.failed_stages)} failed ({', '.join(res.failed_stages)})"
            if res.failed_stages
            else ""
        )
        + f"; {res.wall_s:.1f} s"
    )
    if res.report is not None:
        typer.echo(f"report: {res.report}")
    if res.failed_runs:
        typer.echo(
            f"{res.failed_runs} simulation(s) failed (see `seilab campaign status {res.folder}/campaign`); "
            "re-running the same command tries them again",
            err=True,
        )
    if res.failed_stages or res.failed_runs:
        raise typer.Exit(1)
