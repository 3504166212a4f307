"""``seilab analyze ce|failure`` and ``seilab optimize`` (owned by the analysis issues).

Heavy libraries (torch, shap, xgboost, optuna, matplotlib) are imported inside the commands.
User errors raise :class:`seilab.errors.AnalysisError`; the ``seilab`` entry point prints them
as one line and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path

import typer

analyze_app = typer.Typer(
    help="Analyse a campaign folder (CE regressors, failure).", no_args_is_help=True
)


@analyze_app.command("ce")
def analyze_ce_cmd(
    folder: Path = typer.Argument(..., help="Campaign folder (manifest.parquet + runs/*.parquet)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for tables and figures."),
    groups: str = typer.Option("events,mobility,pairs", help="Feature groups, comma-separated."),
    cycle: bool = typer.Option(
        True, "--cycle/--no-cycle", help="Use the cycle index as a feature."
    ),
    models: str = typer.Option(
        "dense_nn,mlp,xgboost,extra_trees", help="Regressors, comma-separated."
    ),
    test_size: float = typer.Option(0.2, help="Fraction of simulations in the test set."),
    calib_size: float = typer.Option(
        0.2, help="Fraction of the other simulations used to calibrate intervals."
    ),
    alpha: float = typer.Option(0.1, help="Interval miscoverage (0.1 = 90 % intervals)."),
    seed: int = typer.Option(0, help="Seed of splits, models and SHAP sampling."),
    size: str = typer.Option("full", help="Model size: full (paper) or small (quick look)."),
    jobs: int = typer.Option(2, "--jobs", "-j", help="Threads for torch / XGBoost / Extra Trees."),
    shap_samples: int = typer.Option(200, help="Test rows explained by SHAP."),
    shap_background: int = typer.Option(50, help="Training rows in the SHAP background sample."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Train the four CE regressors, score them, add intervals, and explain them with SHAP."""
    from seilab.stages.base import check_command

    check_command("seilab analyze ce", folder, out)
    from seilab.analysis.ce import CESettings, parse_list
    from seilab.analysis.dataset import resolve_groups
    from seilab.analysis.regressors import resolve_models
    from seilab.errors import AnalysisError
    from seilab.stages.ce import run_ce_analysis

    if size not in ("full", "small"):
        raise AnalysisError(f"--size must be 'full' or 'small', got {size!r}")
    if not 0 < alpha < 1:
        raise AnalysisError(f"--alpha must be between 0 and 1, got {alpha}")
    settings = CESettings(
        groups=resolve_groups(parse_list(groups)),
        include_cycle=cycle,
        models=resolve_models(parse_list(models)),
        test_size=test_size,
        calib_size=calib_size,
        alpha=alpha,
        seed=seed,
        size=size,
        n_jobs=jobs,
        shap_samples=shap_samples,
        shap_background=shap_background,
    )
    res = run_ce_analysis(folder, out, settings, progress=not quiet)  # warnings -> summary.json
    cols = [
        "test_rmse",
        "test_mae",
        "test_r2",
        "train_r2",
        "interval_halfwidth",
        "test_coverage",
        "fit_s",
    ]
    typer.echo(res.metrics[cols].round(4).to_string())
    typer.echo(f"wrote {len(res.files)} files to {res.out}")


def optimize_cmd(
    folder: Path = typer.Argument(..., help="Campaign folder (manifest.parquet + runs/*.parquet)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder (optuna.db, tables, figures)."
    ),
    params: str | None = typer.Option(
        None, help='Pairs to optimise, e.g. "SFO-Li,F-Li" (default: top-k of the SHAP ranking).'
    ),
    top_k: int = typer.Option(
        5, help="Pairs taken from the SHAP ranking when --params is not given."
    ),
    ranking: Path | None = typer.Option(
        None, help="shap_ranking.csv from 'seilab analyze ce' to choose pairs."
    ),
    trials: int = typer.Option(
        150, help="Total surrogate trials in the study (re-running resumes)."
    ),
    seed: int = typer.Option(0, help="Seed of the TPE sampler and the surrogate."),
    study_name: str = typer.Option("seilab-ce-bo", help="Study name inside OUT/optuna.db."),
    startup: int = typer.Option(10, help="Random startup trials before TPE."),
    surrogate: str = typer.Option(
        "xgboost", help="Surrogate regressor: xgboost, dense_nn (the paper's), extra_trees, mlp."
    ),
    size: str = typer.Option("full", help="Surrogate size: full or small."),
    jobs: int = typer.Option(2, "--jobs", "-j", help="Threads."),
    verify: int = typer.Option(0, help="Simulate the N best proposals and the DFT defaults."),
    replicates: int = typer.Option(3, help="Replicate seeds per verified parameter set."),
    rounds: int = typer.Option(1, help="Verification rounds (results fed back between rounds)."),
    sim_model: str | None = typer.Option(
        None, help="Model of the verification simulations, name or TOML (default: the campaign's)."
    ),
    sim_cycles: int | None = typer.Option(
        None, help="Cycles per verification simulation (default: the campaign's)."
    ),
    sim_workers: int | None = typer.Option(
        None, help="Parallel simulation workers (default: the campaign's)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Bayesian optimisation (Optuna TPE) of pair energies on a CE surrogate, optionally verified."""
    from seilab.stages.base import check_command

    check_command("seilab optimize", folder, out)
    if ranking is not None and not ranking.is_file():
        from seilab.errors import AnalysisError

        raise AnalysisError(f"--ranking {ranking}: file not found")
    from seilab.analysis.optimize import BOSettings
    from seilab.io import captured_warnings
    from seilab.stages.bo import record_bo_outputs
    from seilab.stages.bo_run import run_optimization

    # the one recipe object, validated before any work and passed as is to the stage
    settings = BOSettings(
        params=params,
        top_k=top_k,
        surrogate=surrogate,
        size=size,
        n_jobs=jobs,
        trials=trials,
        seed=seed,
        n_startup_trials=startup,
        study_name=study_name,
        verify=verify,
        replicates=replicates,
        rounds=rounds,
    )
    with captured_warnings() as caught:  # recorded in summary.json, not printed
        res = run_optimization(
            folder,
            out,
            settings,
            ranking=ranking,
            simulator_options={
                "base_model": sim_model,
                "cycles": sim_cycles,
                "workers": sim_workers,
                "seed": seed,
            },
            progress=not quiet,
        )
    record_bo_outputs(res.out, warnings=caught)
    s = res.summary
    typer.echo(
        f"study {res.study_name!r} in {res.storage}: {s['trials']} trials, converged at trial {res.converged_trial}"
    )
    typer.echo(
        f"best predicted CE {s['best_value_pct']:.2f} % (DFT defaults {s['dft_predicted_pct']:.2f} %)"
    )
    typer.echo(res.best[res.best["optimised"]].to_string(index=False))
    if res.verification is not None:
        v = s["verification"]
        typer.echo(f"verification: holds = {v.get('holds')} ({v.get('note') or v.get('rule', '')})")
    typer.echo(f"outputs in {res.out}")


def _register_failure() -> None:
    """``seilab analyze failure`` lives in :mod:`seilab.stages.failure_cli` (failure issue)."""
    from seilab.stages.failure_cli import failure_cmd

    analyze_app.command("failure")(failure_cmd)


_register_failure()
