"""The ``failure`` stage: the failure analysis of the campaign into ``DIR/failure``.

Declared outputs are the module constants below (the report imports them).  Tables are written
for every part that could be computed; figures when ``figures`` is true; a part that cannot be
computed (no failing run, too few runs of a class, ...) is listed in the summary's ``skipped``
with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from seilab.stages.base import OutputWriter, Stage, StageContext

RUNS = "failure_runs.csv"
CYCLE_STATS = "failure_cycle_stats.csv"
CE_INTERVAL_NORMALISED = "ce_interval_normalised.csv"
CE_INTERVAL_ABSOLUTE = "ce_interval_absolute.csv"
CE_INTERVAL_COUNTS = "ce_interval_counts.csv"
CE_INTERVAL_HEATMAP = "ce_interval_heatmap.png"
VS_NONFAILURE = "failure_vs_nonfailure.csv"
VS_NONFAILURE_HEATMAP = "failure_vs_nonfailure_heatmap.png"
CYCLE_BOXPLOT = "failure_cycle_boxplot.png"
CLASSIFIER_METRICS = "classifier_metrics.csv"
CLASSIFIER_CV_FOLDS = "classifier_cv_folds.csv"
SHAP_IMPORTANCE = "shap_importance.csv"
ROC_CURVES = "roc_curves.png"
CONFUSION_MATRICES = "confusion_matrices.png"
SHAP_BEESWARM = "shap_chosen_classifier.png"
KAPLAN_MEIER = "kaplan_meier.csv"
KAPLAN_MEIER_PLOT = "kaplan_meier.png"
SURVIVAL_PREDICTIONS = "survival_predictions.csv"
EARLY_WARNING = "early_warning.csv"
EARLY_WARNING_PLOT = "early_warning_auc.png"
SUMMARY = "failure_summary.json"

OUTPUTS: tuple[str, ...] = (
    RUNS,
    CYCLE_STATS,
    CE_INTERVAL_NORMALISED,
    CE_INTERVAL_ABSOLUTE,
    CE_INTERVAL_COUNTS,
    CE_INTERVAL_HEATMAP,
    VS_NONFAILURE,
    VS_NONFAILURE_HEATMAP,
    CYCLE_BOXPLOT,
    CLASSIFIER_METRICS,
    CLASSIFIER_CV_FOLDS,
    SHAP_IMPORTANCE,
    ROC_CURVES,
    CONFUSION_MATRICES,
    SHAP_BEESWARM,
    KAPLAN_MEIER,
    KAPLAN_MEIER_PLOT,
    SURVIVAL_PREDICTIONS,
    EARLY_WARNING,
    EARLY_WARNING_PLOT,
    SUMMARY,
)
_FIGURES = {
    CE_INTERVAL_HEATMAP,
    VS_NONFAILURE_HEATMAP,
    CYCLE_BOXPLOT,
    ROC_CURVES,
    CONFUSION_MATRICES,
    SHAP_BEESWARM,
    KAPLAN_MEIER_PLOT,
    EARLY_WARNING_PLOT,
}


def write_failure_outputs(res: Any, out: str | Path, *, figures: bool = True) -> dict[str, Any]:
    """Write the tables, figures and summary of a :class:`~seilab.analysis.failure.FailureResult`.

    Returns
    -------
    dict
        The summary written to ``out/failure_summary.json`` (with ``outputs`` and ``skipped``).
    """
    from seilab.plotting import failure as fplot
    from seilab.plotting.shap import beeswarm

    w = OutputWriter(Path(out), OUTPUTS)
    s = res.settings
    no_fail = "no run fails" if res.stats["n_failed"] == 0 else None
    if not figures:
        for name in _FIGURES:
            w.skip(name, "figures not requested")

    w.csv(RUNS, res.outcomes, index=True)
    w.csv(CYCLE_STATS, pd.DataFrame([res.stats]))
    it = res.intervals
    if it is None:
        for n in (CE_INTERVAL_NORMALISED, CE_INTERVAL_ABSOLUTE, CE_INTERVAL_COUNTS):
            w.skip(n, "no per-cycle event or mobility columns")
        w.skip(CE_INTERVAL_HEATMAP, "no per-cycle event or mobility columns")
    else:
        w.csv(CE_INTERVAL_NORMALISED, it.normalised, index=True)
        w.csv(CE_INTERVAL_ABSOLUTE, it.absolute, index=True)
        w.csv(CE_INTERVAL_COUNTS, it.counts, index=True)
        if it.normalised.empty:
            w.skip(CE_INTERVAL_HEATMAP, "every heatmap feature is constant")
        elif figures:
            w.figure(CE_INTERVAL_HEATMAP, fplot.plot_ce_interval_heatmap(it))

    fv = res.vs_nonfailure
    if fv is None:
        why = no_fail or "failure/non-failure comparison not possible (see messages)"
        w.skip(VS_NONFAILURE, why)
        w.skip(VS_NONFAILURE_HEATMAP, why)
    else:
        w.csv(VS_NONFAILURE, fv, index=True)
        if fv.empty:
            w.skip(VS_NONFAILURE_HEATMAP, "no feature to compare")
        elif figures:
            w.figure(VS_NONFAILURE_HEATMAP, fplot.plot_failure_vs_nonfailure(fv))

    if no_fail:
        w.skip(CYCLE_BOXPLOT, no_fail)
    elif figures:
        w.figure(CYCLE_BOXPLOT, fplot.plot_failure_cycle_box(res.outcomes, res.stats, s.threshold))

    cr = res.classifiers
    if cr is None:
        why = no_fail or "classifiers not trained (see messages)"
        for n in (
            CLASSIFIER_METRICS,
            CLASSIFIER_CV_FOLDS,
            SHAP_IMPORTANCE,
            ROC_CURVES,
            CONFUSION_MATRICES,
            SHAP_BEESWARM,
        ):
            w.skip(n, why)
    else:
        w.csv(CLASSIFIER_METRICS, cr.metrics, index=True)
        w.csv(CLASSIFIER_CV_FOLDS, cr.folds)
        sh = res.shap
        w.csv(SHAP_IMPORTANCE, sh["importance"])
        if figures:
            w.figure(ROC_CURVES, fplot.plot_roc_curves(cr))
            w.figure(CONFUSION_MATRICES, fplot.plot_confusion_matrices(cr))
            X = sh["X"]
            fig = beeswarm(
                sh["values"],
                X.to_numpy(dtype=float),
                list(X.columns),
                title=f"SHAP of {cr.chosen}, one dot per run",
                xlabel=f"SHAP value ({sh['unit']}); > 0 pushes towards failure",
                importance=True,
            )
            w.figure(SHAP_BEESWARM, fig)

    w.csv(KAPLAN_MEIER, res.km)
    if figures:
        w.figure(KAPLAN_MEIER_PLOT, fplot.plot_kaplan_meier(res.km, res.outcomes, s.threshold))
    if res.survival is None:
        w.skip(SURVIVAL_PREDICTIONS, no_fail or "survival model not fitted (see messages)")
    else:
        w.csv(SURVIVAL_PREDICTIONS, res.survival["predictions"], index=True)

    ew = res.early_warning
    if ew is None:
        w.skip(EARLY_WARNING, no_fail or "early warning not computed")
        w.skip(EARLY_WARNING_PLOT, no_fail or "early warning not computed")
    else:
        w.csv(EARLY_WARNING, ew)
        if not ew["auc_mean"].notna().any():
            w.skip(EARLY_WARNING_PLOT, "no early-warning AUC could be computed")
        elif figures:
            w.figure(EARLY_WARNING_PLOT, fplot.plot_early_warning(ew))
    return w.finish(SUMMARY, res.summary)


def run_failure_analysis(
    data: pd.DataFrame,
    out: str | Path,
    threshold: float | None = None,
    seed: int = 0,
    horizon: int | None = None,
    grouping: str = "run",
    early_n: Sequence[int] | None = None,
    test_size: float = 0.4,
    cv_splits: int = 5,
    cv_repeats: int = 5,
    n_jobs: int = 2,
    small: bool = False,
    figures: bool = True,
) -> dict[str, Any]:
    """Analyse (:func:`seilab.analysis.failure.analyse_failure`) and write the outputs to ``out``.

    Parameters are the fields of :class:`seilab.analysis.failure.FailureSettings`; ``figures``
    writes the PNG figures too.

    Returns
    -------
    dict
        The summary written to ``out/failure_summary.json``.
    """
    from seilab.analysis.failure import (
        DEFAULT_THRESHOLD,
        EARLY_WARNING_N,
        FailureSettings,
    )

    settings = FailureSettings(
        threshold=DEFAULT_THRESHOLD if threshold is None else float(threshold),
        seed=seed,
        horizon=horizon,
        grouping=grouping,
        early_n=tuple(EARLY_WARNING_N if early_n is None else (int(n) for n in early_n)),
        test_size=test_size,
        cv_splits=cv_splits,
        cv_repeats=cv_repeats,
        n_jobs=n_jobs,
        small=small,
    )
    return analyse_and_write(data, settings, out, figures=figures)


def analyse_and_write(
    data: pd.DataFrame, settings: Any, out: str | Path, *, figures: bool = True
) -> dict[str, Any]:
    """Analyse with ``settings`` and write the outputs; warnings go to the summary, not stderr."""
    from seilab.analysis.failure import analyse_failure
    from seilab.io import captured_warnings

    with captured_warnings() as caught:
        res = analyse_failure(data, settings)
    res.summary["warnings"] = caught
    return write_failure_outputs(res, out, figures=figures)


class FailureStage(Stage):
    """Failure analysis (heatmaps, classifiers, survival, early warning) into ``DIR/failure``."""

    name = "failure"
    title = "failure analysis"
    folder = "failure"
    summary = SUMMARY

    def outputs(self, settings: Mapping[str, Any]) -> tuple[str, ...]:
        return OUTPUTS

    def recipe(self, ctx: StageContext) -> Any:
        """The :class:`~seilab.analysis.failure.FailureSettings` of a run."""
        from seilab.analysis.failure import FailureSettings

        p = ctx.preset
        return FailureSettings(
            seed=ctx.seed, n_jobs=ctx.jobs, small=p.failure_small, cv_repeats=p.cv_repeats
        )

    def settings(self, ctx: StageContext) -> dict[str, Any]:
        s = self.recipe(ctx).to_dict()
        s.pop("n_jobs")  # threads do not change the results' identity
        return s

    def run(self, ctx: StageContext, out: Path) -> dict[str, Any]:
        from seilab.campaign.store import load_dataset

        with ctx.spinner("failure analysis ..."):
            summary = analyse_and_write(load_dataset(ctx.campaign), self.recipe(ctx), out)
        frac = summary.get("fraction_failing")
        note = f"{summary['n_failed']} of {summary['n_runs']} runs fail"
        if frac is not None:
            note += f" ({100 * frac:.1f} %)"
        return {"note": note, "messages": summary.get("messages", [])}
