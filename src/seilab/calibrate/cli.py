"""``seilab calibrate``: the command line of :func:`seilab.calibrate.calibrate`.

Exit status: 0 when done, 2 on a user error (one line on stderr, nothing written), 130 when
interrupted (the study and the finished runs are kept: run the same command to continue).
"""

from __future__ import annotations

from pathlib import Path

import typer


def calibrate_cmd(
    spec: str | None = typer.Option(
        None, "--spec", "-s", help="Calibration spec TOML, or a shipped name (paper-reference)."
    ),
    targets: str | None = typer.Option(
        None, "--targets", "-t", help="Targets TOML, or a shipped name (reference-run)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output folder (created, or continued when it holds one)."
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model name or TOML \\[default: the spec's, else paper]."
    ),
    trials: int | None = typer.Option(
        None, "--trials", help="Completed trials to reach \\[default: the spec's]."
    ),
    cycles: int | None = typer.Option(None, "--cycles", help="Cycle horizon \\[spec default]."),
    workers: int | None = typer.Option(None, "--workers", "-w", help="Worker processes."),
    backend: str | None = typer.Option(None, "--backend", help="dask | process \\[spec default]."),
    progress: bool | None = typer.Option(
        None, "--progress/--no-progress", help="Progress bar \\[default: when on a terminal]."
    ),
    max_minutes: float | None = typer.Option(
        None, "--max-minutes", help="Start no new trial after this many minutes (rerun continues)."
    ),
    statistics: bool = typer.Option(
        False, "--statistics", help="List the statistics a targets file may name, and exit."
    ),
) -> None:
    """Search a model's knobs (Optuna) so that its simulated statistics hit the targets."""
    import sys

    from seilab.calibrate import bundled_file
    from seilab.calibrate.spec import CalibrationError

    if statistics:
        from seilab.calibrate.statistics import STATISTICS

        for s in STATISTICS.values():
            par = f" [{', '.join(f'{k}={v}' for k, v in s.params.items())}]" if s.params else ""
            typer.echo(f"{s.name}{par} ({s.unit}): {s.description}")
        return
    missing = [
        n for n, v in (("--spec", spec), ("--targets", targets), ("--out", out)) if v is None
    ]
    if missing:
        raise CalibrationError(
            f"missing option(s) {', '.join(missing)} (see seilab calibrate --help)"
        )
    from seilab.errors import require_extra

    require_extra("ml", "seilab calibrate")  # Optuna, and matplotlib for the figures
    from seilab.calibrate.search import calibrate

    show = sys.stderr.isatty() if progress is None else progress

    def on_trial(rec: dict) -> None:
        if not show:
            vals = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in rec["values"].items()
            )
            typer.echo(f"trial {rec['trial']}: loss {rec['loss']:.4g} ({vals})", err=True)

    try:
        res = calibrate(
            model,
            bundled_file("specs", spec),
            bundled_file("targets", targets),
            out,
            trials=trials,
            cycles=cycles,
            workers=workers,
            backend=backend,
            progress=show,
            on_trial=on_trial,
            max_wall_s=None if max_minutes is None else 60.0 * max_minutes,
        )
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted: {out} keeps the study and finished runs; run again to continue", err=True
        )
        raise typer.Exit(130) from None
    b = res.best
    typer.echo(
        f"calibration {res.out}: {len(res.trials)} trials, {res.n_simulations} simulations "
        f"({res.sim_wall_s:.0f} s run time), {res.wall_s:.0f} s; best trial {int(b['trial'])} "
        f"loss {res.best_loss:.4g}; wrote {', '.join(p.name for p in res.files)}"
    )
