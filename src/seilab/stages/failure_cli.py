"""``seilab analyze failure DIR --out OUT``: the failure analysis of a campaign folder.

Register with ``analyze_app.command("failure")(failure_cmd)``.  Only Typer is imported at module
level; pandas, scikit-learn, XGBoost, CatBoost, SHAP and matplotlib load when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def failure_cmd(
    folder: Annotated[
        Path, typer.Argument(help="Campaign folder (manifest.parquet + runs/*.parquet).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created).")],
    threshold: Annotated[
        float,
        typer.Option(
            help="Failure threshold: a run fails at its first cycle with CE below this (%)."
        ),
    ] = 70.0,
    seed: Annotated[int, typer.Option(help="Seed of the split, the CV folds and the models.")] = 0,
    horizon: Annotated[
        int | None,
        typer.Option(
            help="Classify 'fails by cycle H' instead of 'fails before the end of the run'; "
            "runs that end before H without failing are then left out of the classifiers."
        ),
    ] = None,
    grouping: Annotated[
        str,
        typer.Option(
            help="Failure vs non-failure groups: 'run' (all cycles of failing runs, the paper) "
            "or 'cycle' (only cycles at or after the failure cycle)."
        ),
    ] = "run",
    early_n: Annotated[
        list[int] | None,
        typer.Option(
            "--early-n",
            help="Cycles observed for early warning; repeat the option [default: 10 20 30 50].",
        ),
    ] = None,
    test_size: Annotated[float, typer.Option(help="Held-out fraction of runs.")] = 0.4,
    cv_splits: Annotated[int, typer.Option(help="Folds of the repeated stratified CV.")] = 5,
    cv_repeats: Annotated[int, typer.Option(help="Repeats of the stratified CV.")] = 5,
    n_jobs: Annotated[
        int, typer.Option(help="Threads of the random forest and CatBoost (XGBoost: 1).")
    ] = 2,
    quick: Annotated[
        bool, typer.Option(help="Small models (fewer trees), for a quick look.")
    ] = False,
) -> None:
    """Failure analysis: CE-interval and failure/non-failure heatmaps, failure-cycle distribution,
    classifiers of failure from the pair energies with SHAP, Kaplan-Meier and AFT survival model,
    and early warning from the first N cycles.  Writes OUT/failure_summary.json and the tables
    and figures listed in docs/analysis-failure.md.
    """
    from seilab.stages.base import check_command

    check_command("seilab analyze failure", folder, out)
    from seilab.analysis.dataset import load_campaign
    from seilab.analysis.failure import EARLY_WARNING_N
    from seilab.errors import AnalysisError
    from seilab.stages.failure import run_failure_analysis

    if grouping not in ("run", "cycle"):
        raise AnalysisError(f"--grouping must be 'run' or 'cycle', not {grouping!r}")
    if not 0.0 < test_size < 1.0:
        raise AnalysisError(f"--test-size must lie in (0, 1), not {test_size}")
    ns = tuple(sorted(set(early_n))) if early_n else EARLY_WARNING_N
    if any(n < 1 for n in ns):
        raise AnalysisError("--early-n values must be positive cycle counts")
    data = load_campaign(folder)
    summary = run_failure_analysis(
        data,
        out,
        threshold=threshold,
        seed=seed,
        horizon=horizon,
        grouping=grouping,
        early_n=ns,
        test_size=test_size,
        cv_splits=cv_splits,
        cv_repeats=cv_repeats,
        n_jobs=n_jobs,
        small=quick,
    )
    for msg in summary["messages"]:
        typer.echo(f"note: {msg}", err=True)
    typer.echo(_headline(summary, out))


def _headline(summary: dict, out: Path) -> str:
    frac = summary.get("fraction_failing")
    lines = [
        f"{summary['n_failed']} of {summary['n_runs']} runs fail (CE < {summary['threshold_pct']:g} %)"
        + (f", {100 * frac:.1f} %" if frac is not None else "")
    ]
    fc = summary.get("failure_cycle") or {}
    if fc.get("median") is not None:
        lines.append(
            f"failure cycle of the {summary['n_failed']} failing runs: median {fc['median']:g}, "
            f"IQR {fc['q1']:g}-{fc['q3']:g} ({fc['iqr']:g})"
        )
    if summary.get("chosen_classifier"):
        c = summary["classifiers"][summary["chosen_classifier"]]
        auc_sd = c.get("cv_auc_sd")
        lines.append(
            f"chosen classifier: {summary['chosen_classifier']} (test AUC {c['auc']:.3f}, "
            f"CV AUC {c['cv_auc_mean']:.3f}"
            + (f" ± {auc_sd:.3f}" if auc_sd is not None else "")
            + ")"
        )
    if summary.get("km_median_cycle") is not None:
        lines.append(
            f"Kaplan-Meier median failure-free cycle of all {summary['n_runs']} runs "
            f"(non-failing runs censored at their last cycle): {summary['km_median_cycle']:g}"
        )
    elif "km_median_cycle" in summary:
        lines.append(
            "Kaplan-Meier median failure-free cycle of all runs: not reached (fewer than half "
            "fail within the observed cycles)"
        )
    if summary.get("c_index") is not None:
        lines.append(f"survival model C-index (held out): {summary['c_index']:.3f}")
    for r in summary.get("early_warning") or []:
        if r.get("auc_mean") is not None:
            lines.append(
                f"early warning N={r['n_cycles']}: AUC {r['auc_mean']:.3f} "
                f"({r['n_positive']}/{r['n_eligible']} eligible runs fail later)"
            )
    lines.append(f"wrote {out}/failure_summary.json and {len(summary['outputs'])} tables/figures")
    return "\n".join(lines)
